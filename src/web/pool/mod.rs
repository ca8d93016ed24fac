//! The CPU path on every core: a pool of Web Workers, each running the engine's module
//! (www/worker.js, engine/: `crate::engine::Engine`), asked `Job`s and answering `Event`s in the
//! engine's one encoding (`engine::wire`). A training set is split into one slice
//! per worker and sent once; a closed-form query goes to every worker, each returns the softmax
//! state of its slice (`flow::Partials`), and the page merges them with the log-sum-exp merge the
//! GPU's split uses. Messages copy or transfer their buffers: no SharedArrayBuffer, so host pages
//! need no cross-origin isolation. Where workers cannot start (a page's policy, a module served
//! from another origin), `pool()` is None and the CPU path runs on the page's thread as before.

pub use super::port::Failure;
use super::port::{taken, Heard, Port, Reply, START};
use crate::engine::{wire, Answer, Envelope, Event, Job, Refusal};
use crate::flow::mlp::MlpShape;
use crate::flow::training::TrainOptions;
use crate::flow::Partials;
use futures_channel::mpsc;
use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use futures_util::StreamExt;
use js_sys::{Array, Float32Array};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// The most workers a page starts: each holds its own instance of the module, and past this the
/// merge and the messages cost more than another slice saves.
const MAX_WORKERS: usize = 8;

/// How long the workers may take to start before the page computes without them.
const START_TIMEOUT_MS: i32 = 10_000;

struct Worker {
    port: Port,
    /// Unique among the workers that held a slot of the pool: a set loaded into a worker that was
    /// since replaced is known by it. (The training worker's is not compared.)
    serial: u32,
    /// The last slice's array, handed back once the worker copied it in: the next slice is
    /// copied into it (its memory already mapped) rather than into a new array, which costs
    /// several times as much as the copy itself.
    spare: Rc<RefCell<Option<Float32Array>>>,
}

/// The page's compute workers.
pub struct Pool {
    /// The closed-form workers; one that broke is replaced by a fresh one at its next use.
    workers: RefCell<Vec<Rc<Worker>>>,
    /// The worker that trains networks, started by the first trainer: apart from the workers
    /// that answer closed-form queries, so that a training chunk never holds a query up.
    trainers: RefCell<Option<SharedWorker>>,
    next_set: Cell<u32>,
    /// The serial of the next worker started in place of a broken one (the first ones are
    /// numbered from 0).
    next_serial: Cell<u32>,
}

/// What a compute worker's message says: an event (`engine::wire`: the answer to a call, a
/// handed-back array), or, from www/worker.js when the module failed to start or trapped,
/// `{ failed: { error } }`.
fn read(data: JsValue, spare: &RefCell<Option<Float32Array>>) -> Heard {
    let event = match wire::from_message::<Event<()>>(&data) {
        Ok((head, arrays)) => head.join(arrays),
        Err(unread) => {
            let failed = js_sys::Reflect::get(&data, &"failed".into()).unwrap_or_default();
            return Heard::Broken(
                js_sys::Reflect::get(&failed, &"error".into())
                    .ok()
                    .and_then(|e| e.as_string())
                    .unwrap_or_else(|| {
                        format!("a compute worker answered something unknown: {unread}")
                    }),
            );
        }
    };
    match event {
        Ok(Event {
            ticket: Some(ticket),
            outcome,
        }) => Heard::Reply {
            ticket,
            last: true,
            reply: outcome
                .map(|answer| Box::new(answer) as Box<dyn std::any::Any>)
                .map_err(Failure::from),
        },
        Ok(Event {
            ticket: None,
            outcome: Ok(Answer::Spare(array)),
        }) => {
            *spare.borrow_mut() = Some(array);
            Heard::Nothing
        }
        // A message the worker could not read: no call can be told apart, so every one fails.
        Ok(Event {
            ticket: None,
            outcome: Err(Refusal::Input(e) | Refusal::Broken(e)),
        }) => Heard::Broken(e),
        Ok(Event { ticket: None, .. }) => Heard::Nothing,
        Err(e) => Heard::Broken(format!("a compute worker answered something unknown: {e}")),
    }
}

/// The message of `job` (`ticket` None: no answer expected), and the buffers it could move.
fn message(ticket: Option<u32>, job: Job<Float32Array>) -> (JsValue, Array) {
    let (head, arrays) = Envelope { ticket, job }.split();
    wire::to_message(&head, arrays)
}

impl Worker {
    /// A new worker running www/worker.js, wherever the page's bundler or copy put it, known by
    /// `serial`.
    fn spawn(serial: u32) -> Result<Worker, JsValue> {
        let worker = super::digits::new_worker()?;
        let spare: Rc<RefCell<Option<Float32Array>>> = Rc::default();
        let returned = spare.clone();
        let port = Port::new(worker, move |data| read(data, &returned), false);
        Ok(Worker {
            port,
            serial,
            spare,
        })
    }

    fn broken(&self) -> bool {
        self.port.is_broken()
    }

    /// An array of `len` floats to fill and move to this worker: the spare one when it is large
    /// enough, else a new one.
    fn buffer(&self, len: usize) -> Float32Array {
        match self.spare.borrow_mut().take() {
            Some(spare) if spare.length() as usize >= len => {
                Float32Array::new_with_byte_offset_and_length(&spare.buffer(), 0, len as u32)
            }
            _ => Float32Array::new_with_length(len as u32),
        }
    }

    /// Posts `job` expecting no answer; its arrays moved, not copied, when `moved`.
    fn post(&self, job: Job<Float32Array>, moved: bool) {
        let (message, transfer) = message(None, job);
        let transfer = if moved { transfer } else { Array::new() };
        // A failed post leaves the worker without the set; its next query says so.
        self.port.post(&message, &transfer);
    }

    /// Posts `job` (its arrays moved, not copied) and returns the answer to come.
    fn request(&self, job: Job<Float32Array>) -> Replies {
        let ticket = self.port.ticket();
        self.port.ask(ticket, None, message(Some(ticket), job))
    }

    /// The worker's start: the answer to a first job, once its module runs.
    fn start(&self) -> Replies {
        self.port.ask(START, None, message(Some(START), Job::Held))
    }
}

type Replies = mpsc::UnboundedReceiver<Reply>;

/// The answer to a call, its arrays in place.
async fn answer(mut rx: Replies) -> Result<Answer<Float32Array>, Failure> {
    let reply: Reply = rx
        .next()
        .await
        .unwrap_or_else(|| Err(Failure::Broken("the compute worker stopped".into())));
    taken(reply)
}

/// A worker's refusal as the page's calls fail: the caller's input, or the worker's failure.
impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Failure {
        match refusal {
            Refusal::Input(e) => Failure::Input(e),
            Refusal::Broken(e) => Failure::Broken(e),
        }
    }
}

/// Workers the page asks for: `?workers=k` (0..=16, for benchmarks and tests; 0 keeps the CPU
/// path on the page's thread), else one per core the browser reports, at most MAX_WORKERS. None
/// in a worker (no pools inside pools).
fn wanted_workers() -> Option<usize> {
    let window = web_sys::window()?;
    let asked = super::query::value("workers")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|k| (0..=16).contains(k));
    let cores = window.navigator().hardware_concurrency() as usize;
    Some(asked.unwrap_or(cores.clamp(1, MAX_WORKERS)))
}

async fn start() -> Option<Rc<Pool>> {
    let count = wanted_workers().filter(|&k| k > 0)?;
    let workers = started(count).await?.into_iter().map(Rc::new).collect();
    Some(Rc::new(Pool {
        workers: RefCell::new(workers),
        trainers: RefCell::new(None),
        next_set: Cell::new(1),
        next_serial: Cell::new(count as u32),
    }))
}

/// `count` workers (serials 0 to count - 1), each running the engine's module; None (said on the
/// console) when one cannot start within START_TIMEOUT_MS.
async fn started(count: usize) -> Option<Vec<Worker>> {
    let mut workers = Vec::with_capacity(count);
    for serial in 0..count as u32 {
        match Worker::spawn(serial) {
            Ok(w) => workers.push(w),
            Err(e) => {
                web_sys::console::info_1(
                    &format!("compute workers unavailable, the CPU path stays on the page: {e:?}")
                        .into(),
                );
                return None;
            }
        }
    }
    let starts: Vec<_> = workers.iter().map(|w| answer(w.start())).collect();
    let all = futures_util::future::join_all(starts).boxed_local();
    let timeout = super::turns::sleep(START_TIMEOUT_MS).boxed_local();
    match futures_util::future::select(all, timeout).await {
        futures_util::future::Either::Left((replies, _)) => {
            if let Some(Err(e)) = replies.into_iter().find(Result::is_err) {
                web_sys::console::info_1(
                    &format!(
                        "a compute worker failed to start, the CPU path stays on the page: {e:?}"
                    )
                    .into(),
                );
                return None;
            }
        }
        futures_util::future::Either::Right(_) => {
            web_sys::console::info_1(
                &"the compute workers did not start in time, the CPU path stays on the page".into(),
            );
            return None;
        }
    }
    Some(workers)
}

type Pending = Shared<LocalBoxFuture<'static, Option<Rc<Pool>>>>;
type SharedWorker = Shared<LocalBoxFuture<'static, Option<Rc<Worker>>>>;

thread_local! {
    static POOL: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

/// The page's pool, started by the first call; None where workers cannot run.
pub async fn pool() -> Option<Rc<Pool>> {
    let pending = POOL.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| start().boxed_local().shared())
            .clone()
    });
    pending.await
}

/// The number of workers of the page's pool (0 without one): for the benchmarks and tests.
#[wasm_bindgen(js_name = computeWorkers)]
pub async fn compute_workers() -> f64 {
    pool().await.map_or(0, |p| p.workers.borrow().len()) as f64
}

/// Makes the first compute worker trap (a Rust panic inside it), for the test that the pool
/// replaces it; resolves to the error its call got.
pub(in crate::web) async fn trap_compute_worker() -> String {
    let Some(pool) = pool().await else {
        return "no compute workers".into();
    };
    let worker = pool.worker(0);
    match answer(worker.request(Job::Trap)).await {
        Ok(_) => "the worker answered".into(),
        Err(e) => format!("{e:?}"),
    }
}

/// Makes the training worker trap (a Rust panic inside it), for the test that its networks are
/// rebuilt; resolves to the error its call got.
pub(in crate::web) async fn trap_training_worker() -> String {
    let Some(pool) = pool().await else {
        return "no compute workers".into();
    };
    let Some(worker) = pool.training_worker().await else {
        return "no training worker".into();
    };
    match answer(worker.request(Job::Trap)).await {
        Ok(_) => "the worker answered".into(),
        Err(e) => format!("{e:?}"),
    }
}

/// What the pool's workers hold now (training sets' slices and networks): for the leak test.
pub(in crate::web) async fn workers_holding() -> f64 {
    let Some(pool) = pool().await else {
        return 0.0;
    };
    let trainer = pool
        .trainers
        .borrow()
        .as_ref()
        .and_then(|t| t.peek().cloned().flatten());
    let slots = pool.workers.borrow().len();
    let workers: Vec<Rc<Worker>> = (0..slots)
        .map(|slot| pool.worker(slot))
        .chain(trainer)
        .collect();
    let asks: Vec<_> = workers
        .iter()
        .map(|w| answer(w.request(Job::Held)))
        .collect();
    let mut held = 0.0;
    for reply in futures_util::future::join_all(asks).await {
        held += match reply {
            Ok(Answer::Held(k)) => k as f64,
            _ => f64::NAN,
        };
    }
    held
}

impl Pool {
    /// The worker of `slot`, a fresh one in place of one that broke (a trap poisons a module
    /// instance: what it held is dropped with it, and the sets it held answer that they must be
    /// loaded again).
    fn worker(&self, slot: usize) -> Rc<Worker> {
        let mut workers = self.workers.borrow_mut();
        if workers[slot].broken() {
            let serial = self.next_serial.get();
            self.next_serial.set(serial.wrapping_add(1));
            // Queries posted to a fresh worker wait in its queue behind its start.
            if let Ok(fresh) = Worker::spawn(serial) {
                web_sys::console::info_1(&"a compute worker broke and was replaced".into());
                workers[slot] = Rc::new(fresh);
            }
        }
        workers[slot].clone()
    }

    /// Asks `worker` for the softmax state of the slice it holds under `id`, at the rows of
    /// `points` each at its time; the arrays are moved there.
    fn query(&self, worker: &Worker, id: u32, points: &[f32], times: &[f32]) -> Replies {
        worker.request(Job::Partials {
            set: id,
            points: points.into(),
            times: times.into(),
        })
    }

    /// Sends one slice of `data` (n x dim, in wasm memory) to each worker, kept there under a new
    /// id until the returned set is dropped.
    pub async fn load(self: &Rc<Self>, data: &[f32], dim: usize) -> PoolSet {
        self.load_with(data.len() / dim, dim, true, |into, a, b, at| {
            into.subarray(at as u32, (at + b - a) as u32)
                .copy_from(&data[a..b]);
        })
        .await
    }

    /// `load` straight from the caller's array, each slice copied once and moved to its worker,
    /// which checks that its values are finite (the first refused value of the lowest slice is
    /// the one reported, as a check in order would). Copied in one go: the call takes the array
    /// as it is when made, even if the caller changes it right after.
    pub async fn load_js(self: &Rc<Self>, data: &Float32Array, dim: usize) -> PoolSet {
        let n = data.length() as usize / dim;
        self.load_with(n, dim, false, |into, a, b, at| {
            into.set(&data.subarray(a as u32, b as u32), at as u32);
        })
        .await
    }

    /// Splits n rows into one run of rows per worker; `fill(into, a, b, at)` copies floats
    /// a..b into the array that goes to the worker, from its index `at`. When `paced`, the
    /// copies go in pieces of COPY_FLOATS with a turn for the page between them (the 10,000
    /// digits are 31 MB).
    async fn load_with(
        self: &Rc<Self>,
        n: usize,
        dim: usize,
        paced: bool,
        fill: impl Fn(&Float32Array, usize, usize, usize),
    ) -> PoolSet {
        let id = self.next_set.get();
        self.next_set.set(id.wrapping_add(1));
        let k = self.workers.borrow().len().min(n).max(1);
        let mut holders = Vec::with_capacity(k);
        for w in 0..k {
            let worker = self.worker(w);
            let (a, b) = (n * w / k * dim, n * (w + 1) / k * dim);
            let part = worker.buffer(b - a);
            let piece = if paced { COPY_FLOATS } else { (b - a).max(1) };
            for start in (a..b).step_by(piece) {
                fill(&part, start, b.min(start + piece), start - a);
                if paced {
                    super::turns::pace().await;
                }
            }
            let load = Job::Load {
                set: id,
                dim: dim as u32,
                first: a as u32,
                data: part,
            };
            // Acknowledged by the first query's answer (a worker handles messages in order).
            worker.post(load, true);
            holders.push((w, worker.serial));
        }
        PoolSet {
            pool: self.clone(),
            id,
            dim,
            holders,
        }
    }
}

/// Floats copied between two turns of the page while a set is loaded (1 MB, a millisecond or
/// two).
const COPY_FLOATS: usize = 1 << 18;

/// A network trained in the pool's training worker (`CpuTraining` there, step for step the
/// page's arithmetic); dropped, it is freed there.
///
/// A trap in that worker (a Rust panic: the module's state is lost) does not lose the network:
/// training is deterministic (seeded initialisation, seeded batches, Adam from zero), so the next
/// call rebuilds it in a fresh training worker from its first message and the number of steps it
/// had taken, then asks again. A call that traps twice fails.
pub struct PoolTrainer {
    pool: Rc<Pool>,
    worker: RefCell<Rc<Worker>>,
    id: u32,
    /// The job that made the network (its data kept here, copied to the worker, not moved): to
    /// make it again in a fresh worker.
    first: Job<Float32Array>,
    /// Optimisation steps answered so far: replayed after `first` in a fresh worker.
    steps: Cell<usize>,
}

impl Pool {
    /// The training worker (started on first use; one that broke is replaced for the calls to
    /// come, and the trainers rebuild what it held); None when it cannot start.
    async fn training_worker(&self) -> Option<Rc<Worker>> {
        let broken = self
            .trainers
            .borrow()
            .as_ref()
            .and_then(|t| t.peek().cloned().flatten())
            .is_some_and(|w| w.broken());
        if broken {
            web_sys::console::info_1(&"the training worker broke and was replaced".into());
            self.trainers.borrow_mut().take();
        }
        let pending = self
            .trainers
            .borrow_mut()
            .get_or_insert_with(|| {
                async { started(1).await?.pop().map(Rc::new) }
                    .boxed_local()
                    .shared()
            })
            .clone();
        pending.await
    }

    /// Starts training `shape` on `data` (n x dim) in the training worker (started on first
    /// use); None when that worker cannot start.
    pub async fn trainer(
        self: &Rc<Self>,
        shape: MlpShape,
        data: &[f32],
        options: TrainOptions,
    ) -> Option<PoolTrainer> {
        let worker = self.training_worker().await?;
        let id = self.next_set.get();
        self.next_set.set(id.wrapping_add(1));
        let first = Job::Trainer {
            set: id,
            shape,
            options,
            data: data.into(),
        };
        // Copied (structured clone), not moved: `first` keeps its data to rebuild the network.
        worker.post(first.clone(), false);
        Some(PoolTrainer {
            pool: self.clone(),
            worker: RefCell::new(worker),
            id,
            first,
            steps: Cell::new(0),
        })
    }
}

impl PoolTrainer {
    /// The worker that holds the network: after a trap, a fresh training worker into which the
    /// network is made again (its first message, then as many steps as it had taken, queued
    /// there before anything asked of it after).
    async fn worker(&self) -> Result<Rc<Worker>, Failure> {
        let current = self.worker.borrow().clone();
        if !current.broken() {
            return Ok(current);
        }
        let fresh = self.pool.training_worker().await.ok_or_else(|| {
            Failure::Broken("the training worker broke and could not start again".into())
        })?;
        // Another call rebuilt it while this one waited for the worker.
        let now = self.worker.borrow().clone();
        if !now.broken() {
            return Ok(now);
        }
        fresh.post(self.first.clone(), false);
        let steps = self.steps.get();
        let replay = (steps > 0).then(|| {
            fresh.request(Job::Train {
                set: self.id,
                steps: steps as u32,
                params: false,
            })
        });
        *self.worker.borrow_mut() = fresh.clone();
        if let Some(replay) = replay {
            answer(replay).await?;
        }
        Ok(fresh)
    }

    /// Asks the network's worker for the job `job` builds (its arrays moved); once more, in a
    /// rebuilt worker, when that worker trapped before answering.
    async fn ask(
        &self,
        job: impl Fn() -> Job<Float32Array>,
    ) -> Result<Answer<Float32Array>, Failure> {
        let mut retried = false;
        loop {
            let worker = self.worker().await?;
            match answer(worker.request(job())).await {
                Err(Failure::Broken(_)) if worker.broken() && !retried => retried = true,
                reply => return reply,
            }
        }
    }

    /// `steps` steps in the worker (one message, one answer); their losses, and the parameters
    /// after them when `with_params`.
    pub async fn train(
        &self,
        steps: usize,
        with_params: bool,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>), Failure> {
        let job = || Job::Train {
            set: self.id,
            steps: steps as u32,
            params: with_params,
        };
        let Answer::Trained { losses, params } = self.ask(job).await? else {
            return Err(wrong_answer());
        };
        if losses.length() as usize != steps || params.is_some() != with_params {
            return Err(wrong_answer());
        }
        self.steps.set(self.steps.get() + steps);
        Ok((losses.to_vec(), params.map(|p| p.to_vec())))
    }

    /// The network's velocity u_theta(x, t) for every row of `points` at its time, evaluated in
    /// the worker that holds the network.
    pub async fn velocity(&self, points: &[f32], times: &[f32]) -> Result<Vec<f32>, Failure> {
        let answer = self
            .ask(|| Job::Forward {
                set: self.id,
                points: points.into(),
                times: times.into(),
            })
            .await?;
        match answer {
            Answer::Velocity(u) if u.length() as usize == points.len() => Ok(u.to_vec()),
            _ => Err(wrong_answer()),
        }
    }

    /// The network's samples from `x0` (flow::sampler::HybridPath: the closed form of `data`
    /// while t < tau), computed in the worker that holds the network; every step's positions
    /// when `keep_frames`.
    pub async fn path(
        &self,
        x0: &[f32],
        steps: usize,
        (data, tau): (&[f32], f32),
        keep_frames: bool,
    ) -> Result<Vec<f32>, Failure> {
        let job = || Job::Path {
            set: self.id,
            points: x0.into(),
            data: data.into(),
            steps: steps as u32,
            tau,
            frames: keep_frames,
        };
        let expected = x0.len() * if keep_frames { steps + 1 } else { 1 };
        match self.ask(job).await? {
            Answer::Path(p) if p.length() as usize == expected => Ok(p.to_vec()),
            _ => Err(wrong_answer()),
        }
    }
}

impl Drop for PoolTrainer {
    fn drop(&mut self) {
        self.worker.borrow().post(Job::Drop { set: self.id }, false);
    }
}

fn wrong_answer() -> Failure {
    Failure::Broken("a compute worker answered with the wrong kind or number of values".into())
}

/// A training set split across the pool's workers.
pub struct PoolSet {
    pool: Rc<Pool>,
    id: u32,
    dim: usize,
    /// The slots holding its slices, and the serial of the worker each was loaded into.
    holders: Vec<(usize, u32)>,
}

impl PoolSet {
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Whether every worker it was loaded into is still there and sound.
    pub fn is_live(&self) -> bool {
        let workers = self.pool.workers.borrow();
        self.holders
            .iter()
            .all(|&(w, serial)| workers[w].serial == serial && !workers[w].broken())
    }

    /// u*(x_q, t_q) for every row of `points`, each at its own time: every worker scores its
    /// slice, the page merges the slices' softmax states.
    pub async fn velocity_at(&self, points: &[f32], times: &[f32]) -> Result<Vec<f32>, Failure> {
        let answers: Vec<_> = self
            .holders
            .iter()
            .map(|&(w, serial)| {
                let worker = self.pool.worker(w);
                if worker.serial != serial {
                    return futures_util::future::ready(Err(Failure::Broken(
                        "the compute worker holding part of this training set broke and was \
                         replaced; the set is loaded again by the next computation"
                            .into(),
                    )))
                    .boxed_local();
                }
                answer(self.pool.query(&worker, self.id, points, times)).boxed_local()
            })
            .collect();
        let mut parts = Vec::with_capacity(answers.len());
        for reply in futures_util::future::join_all(answers).await {
            let Answer::Partials { max, sum, weighted } = reply? else {
                return Err(wrong_answer());
            };
            parts.push(Partials {
                dim: self.dim,
                max: max.to_vec(),
                sum: sum.to_vec(),
                weighted: weighted.to_vec(),
            });
        }
        let m = times.len();
        if parts
            .iter()
            .any(|p| p.max.len() != m || p.sum.len() != m || p.weighted.len() != m * self.dim)
        {
            return Err(wrong_answer());
        }
        Ok(Partials::merge(&parts).velocity(points, times))
    }
}

impl Drop for PoolSet {
    fn drop(&mut self) {
        let workers = self.pool.workers.borrow();
        for &(w, serial) in &self.holders {
            if workers[w].serial == serial {
                workers[w].post(Job::Drop { set: self.id }, false);
            }
        }
    }
}
