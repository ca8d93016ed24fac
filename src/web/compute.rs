//! Where a computation runs, decided here alone: on the page's GPU when it has one, else split
//! across the compute workers (`pool`), else on the page's own thread in paced slices. A set or
//! a trainer is made in one of the three places and keeps what it needs to compute there (a GPU
//! set holds its device), so the figures and the API call the same methods whatever the place,
//! and no set can meet another place's work.

use super::pool::{pool, Failure, PoolSet, PoolTrainer};
use super::turns::pace;
use crate::flow;
use crate::flow::mlp::MlpShape;
use crate::flow::sampler::HybridPath;
use crate::flow::training::{row_blocks, CpuTraining, TrainOptions};
use crate::gpu::backend::{GpuBackend, UPLOAD_PIECE};
use crate::gpu::trainer::GpuTrainer;
use crate::gpu::{Backend, GpuError, TrainingSet};
use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

/// Why a computation failed: on the backend, or in a compute worker.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    #[error(transparent)]
    Gpu(#[from] GpuError),
    /// The input was refused where it was read (in a worker): the message says why.
    #[error("{0}")]
    Input(String),
    #[error("a compute worker failed: {0}")]
    Worker(String),
}

/// A set a figure made ready: the data it came from, its dim, the set (while both live).
type SharedSet = (Weak<Vec<f32>>, usize, Weak<Ready>);

/// An answer being computed or computed, for every figure that asks its question.
type Answer = Shared<LocalBoxFuture<'static, Result<Rc<dyn Any>, Rc<ComputeError>>>>;

/// What the figures made ready or computed, kept here for the figures that need the same:
/// figures share through the compute layer, never through each other.
#[derive(Default)]
struct Between {
    /// The sets figures made ready: figures that query the same data share one.
    sets: Vec<SharedSet>,
    /// Answers by question (and by the answer's type, so one question cannot be read as another
    /// type): computed once for the page, whichever figure asks first.
    answers: HashMap<(Question, TypeId), Answer>,
}

thread_local! {
    static BETWEEN: RefCell<Between> = RefCell::new(Between::default());
}

/// A question that several figures ask of the same data: a name that says what is computed over
/// which data, and which one of its kind (a t, a row).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Question(pub &'static str, pub usize);

/// The answer to `question`: computed by `compute` if no figure has computed it or is computing
/// it, else that computation's (awaited if still under way, so the page never does the work
/// twice). Kept for the page's life; an error is not kept, and the next asker computes again.
/// The flag says whether this call computed it.
pub async fn answer<T: 'static, F>(
    question: Question,
    compute: impl FnOnce() -> F,
) -> Result<(Rc<T>, bool), Rc<ComputeError>>
where
    F: std::future::Future<Output = Result<T, ComputeError>> + 'static,
{
    let key = (question, TypeId::of::<T>());
    let asked = BETWEEN.with(|b| b.borrow().answers.get(&key).cloned());
    let (pending, fresh) = match asked {
        Some(pending) => (pending, false),
        None => {
            // Made outside the borrow (`compute` may reach the compute layer); nothing is awaited
            // between the look-up and the insertion, so no other asker comes in between.
            let computing = compute();
            let pending = async move {
                match computing.await {
                    Ok(value) => Ok(Rc::new(value) as Rc<dyn Any>),
                    Err(e) => Err(Rc::new(e)),
                }
            }
            .boxed_local()
            .shared();
            BETWEEN.with(|b| b.borrow_mut().answers.insert(key, pending.clone()));
            (pending, true)
        }
    };
    match pending.clone().await {
        Ok(value) => Ok((
            value
                .downcast::<T>()
                .expect("answers are keyed by their type"),
            fresh,
        )),
        Err(e) => {
            BETWEEN.with(|b| {
                let mut b = b.borrow_mut();
                if b.answers.get(&key).is_some_and(|p| p.ptr_eq(&pending)) {
                    b.answers.remove(&key);
                }
            });
            Err(e)
        }
    }
}

/// A training set ready for closed-form queries, in one of the three places.
pub enum Ready {
    Gpu(Rc<GpuBackend>, TrainingSet),
    Workers(PoolSet),
    Here(flow::ClosedForm),
}

impl Ready {
    /// The caller's `data` (n x dim) made ready: split across the workers straight from the
    /// caller's array (checked there), or written to the GPU a piece at a time (checked on the
    /// way), else copied, checked and prepared on the page.
    pub(super) async fn from_js(
        backend: &Backend,
        data: &super::args::Floats,
        dim: usize,
    ) -> Result<Ready, ComputeError> {
        match backend {
            Backend::Gpu(b) => {
                // Straight from the caller's array to the GPU a piece at a time, through one
                // piece of wasm memory (the 31 MB of a digits-sized set are never copied whole).
                let set = TrainingSet::empty(&b.gpu, data.len as usize / dim, dim)?;
                data.pieces(UPLOAD_PIECE, |start, values| {
                    set.write(&b.gpu, start, values)
                })
                .await
                .map_err(|e| ComputeError::Input(e.to_string()))?;
                Ok(Ready::Gpu(b.clone(), set))
            }
            Backend::Cpu { .. } => match pool().await {
                Some(pool) => Ok(Ready::Workers(pool.load_js(data.array(), dim).await)),
                None => {
                    let values = data
                        .copy()
                        .await
                        .map_err(|e| ComputeError::Input(e.to_string()))?;
                    Ok(Ready::Here(flow::ClosedForm::from_rows(values, dim)))
                }
            },
        }
    }

    /// Whether this set computes where `backend` says the page computes now: on that very GPU,
    /// or (on the CPU path) in live workers or here.
    fn fits(&self, backend: &Backend) -> bool {
        match (self, backend) {
            (Ready::Gpu(set_gpu, _), Backend::Gpu(page_gpu)) => Rc::ptr_eq(set_gpu, page_gpu),
            (Ready::Workers(set), Backend::Cpu { .. }) => set.is_live(),
            (Ready::Here(_), Backend::Cpu { .. }) => true,
            _ => false,
        }
    }

    /// `cached` when a figure already holds its set where the page now computes, else the set
    /// another figure made ready from the same `data` (the 10,000 digits are sent to the
    /// workers once for the whole page), else `data` made ready now (also after a device loss
    /// moved the page from the GPU to the CPU).
    pub async fn cached(
        backend: &Backend,
        cached: Option<Rc<Ready>>,
        data: &Rc<Vec<f32>>,
        dim: usize,
    ) -> Result<Rc<Ready>, ComputeError> {
        if let Some(c) = cached.filter(|c| c.fits(backend)) {
            return Ok(c);
        }
        let shared = BETWEEN.with(|b| {
            let shared = &mut b.borrow_mut().sets;
            shared.retain(|(d, _, r)| d.strong_count() > 0 && r.strong_count() > 0);
            shared.iter().find_map(|(d, k, r)| {
                let r = r.upgrade().filter(|r| r.fits(backend))?;
                (*k == dim && d.upgrade().is_some_and(|d| Rc::ptr_eq(&d, data))).then_some(r)
            })
        });
        if let Some(r) = shared {
            return Ok(r);
        }
        let ready = Rc::new(match backend {
            Backend::Gpu(b) => Ready::Gpu(b.clone(), b.upload_paced(data, dim, pace).await?),
            // The workers only serve the CPU path: the GPU path never starts them.
            Backend::Cpu { .. } => match pool().await {
                Some(pool) => Ready::Workers(pool.load(data, dim).await),
                None => Ready::Here(flow::ClosedForm::from_rows(data[..].to_vec(), dim)),
            },
        });
        BETWEEN.with(|b| {
            b.borrow_mut()
                .sets
                .push((Rc::downgrade(data), dim, Rc::downgrade(&ready)))
        });
        Ok(ready)
    }

    /// u*(x_q, t_q) for every row of `points`, each at its own time: one submission on the GPU,
    /// one request to each worker, or here blocks of about 2^25 multiply-adds between turns.
    pub async fn velocity_at(
        &self,
        points: &[f32],
        times: &[f32],
    ) -> Result<Vec<f32>, ComputeError> {
        match self {
            Ready::Gpu(gpu, set) => Ok(gpu.velocity_at(set, points, times).await?),
            Ready::Workers(set) => set.velocity_at(points, times).await.map_err(failed),
            Ready::Here(set) => {
                let per_block = ((1usize << 25) / set.data().len().max(1)).max(4) / 4 * 4;
                let mut out = Vec::with_capacity(points.len());
                for (x, t) in points
                    .chunks(per_block * set.dim())
                    .zip(times.chunks(per_block))
                {
                    out.extend(set.velocity_at(x, t));
                    pace().await;
                }
                Ok(out)
            }
        }
    }

    /// The positions after each of `steps` Euler steps of size `dt` from `t_start` (steps x m x
    /// dim, step-major): one submission on the GPU; elsewhere flow::sampler::euler_awaiting, the
    /// velocity from the workers or from here.
    pub async fn trajectory(
        &self,
        x0: &[f32],
        t_start: f32,
        dt: f32,
        steps: usize,
    ) -> Result<Vec<f32>, ComputeError> {
        match self {
            Ready::Gpu(gpu, set) => Ok(gpu.trajectory(set, x0, t_start, dt, steps).await?),
            _ => self.euler(x0, t_start, dt, steps, true).await,
        }
    }

    /// The closed form's samples from `x0`: Euler in `steps` steps from `t0` to 1: one
    /// submission on the GPU, one round trip a step on the workers, a turn for the page after
    /// each step here.
    pub async fn sample(
        &self,
        x0: &[f32],
        steps: usize,
        t0: f32,
    ) -> Result<Vec<f32>, ComputeError> {
        let dt = (1.0 - t0) / steps as f32;
        match self {
            Ready::Gpu(gpu, set) => Ok(gpu.euler(set, x0, t0, dt, steps).await?),
            _ => self.euler(x0, t0, dt, steps, false).await,
        }
    }

    /// flow::sampler::euler_awaiting off the GPU (the page's thread only adds dt u, or also
    /// computes u here with a turn for the page after each step): every step's positions
    /// (steps x m x dim) when `keep_frames`, else the last.
    async fn euler(
        &self,
        x0: &[f32],
        t_start: f32,
        dt: f32,
        steps: usize,
        keep_frames: bool,
    ) -> Result<Vec<f32>, ComputeError> {
        flow::sampler::euler_awaiting(
            x0,
            t_start,
            dt,
            steps,
            keep_frames,
            async |x, t| match self {
                Ready::Here(set) => {
                    let u = set.velocity(x, t);
                    pace().await;
                    Ok(u)
                }
                _ => self.velocity_at(x, &vec![t; x.len() / self.dim()]).await,
            },
        )
        .await
    }

    fn dim(&self) -> usize {
        match self {
            Ready::Gpu(_, set) => set.dim,
            Ready::Workers(set) => set.dim(),
            Ready::Here(set) => set.dim(),
        }
    }
}

/// A velocity network being trained: on the GPU, in the pool's training worker (the CPU path),
/// or on the page's thread in paced steps where workers cannot run.
pub enum Training {
    Gpu(Rc<GpuBackend>, Box<GpuTrainer>),
    Workers(PoolTrainer),
    Here(CpuTraining),
}

impl Training {
    /// `shape` from its seeded initialisation, to be trained on `data` (n x dim), where
    /// `backend` says the page computes.
    pub async fn start(
        backend: &Backend,
        shape: MlpShape,
        data: &[f32],
        options: TrainOptions,
    ) -> Result<Training, ComputeError> {
        if let Backend::Gpu(b) = backend {
            return Ok(Training::Gpu(
                b.clone(),
                Box::new(b.trainer(shape, data, options)?),
            ));
        }
        if let Some(pool) = pool().await {
            if let Some(trainer) = pool.trainer(shape, data, options).await {
                return Ok(Training::Workers(trainer));
            }
        }
        Ok(Training::Here(CpuTraining::new(
            shape,
            data.to_vec(),
            options,
        )))
    }

    /// `steps` optimisation steps: their losses, and the parameters after them when
    /// `with_params` (in the same round trip to a worker). Here, a turn for the page between
    /// steps.
    pub async fn train(
        &mut self,
        steps: usize,
        with_params: bool,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>), ComputeError> {
        match self {
            Training::Workers(t) => t.train(steps, with_params).await.map_err(failed),
            Training::Gpu(gpu, t) => {
                let losses = gpu.train(t, steps).await?;
                let params = match with_params {
                    true => Some(gpu.parameters(t).await?),
                    false => None,
                };
                Ok((losses, params))
            }
            Training::Here(t) => {
                let mut losses = Vec::with_capacity(steps);
                for k in 0..steps {
                    losses.push(t.step());
                    if k + 1 < steps {
                        pace().await;
                    }
                }
                Ok((losses, with_params.then(|| t.params.clone())))
            }
        }
    }

    /// Whether this trainer's GPU device is gone (it can no longer compute).
    pub fn on_lost_gpu(&self) -> bool {
        matches!(self, Training::Gpu(gpu, _) if gpu.is_lost())
    }

    /// The network as it is now, to evaluate: in the worker that trains it, on the GPU that
    /// trains it, or from its parameters here.
    pub fn network(&self) -> Network<'_> {
        match self {
            Training::Workers(t) => Network::Workers(t),
            Training::Gpu(gpu, t) => Network::Gpu(gpu, t),
            Training::Here(t) => Network::Here(t.shape, &t.params),
        }
    }
}

/// A trained network to evaluate: in its worker, on its GPU, or from its parameters on the
/// page's thread.
pub enum Network<'a> {
    Workers(&'a PoolTrainer),
    Gpu(&'a GpuBackend, &'a GpuTrainer),
    Here(MlpShape, &'a [f32]),
}

impl Network<'_> {
    /// u_theta(x, t) for every row of `x` at its time: in the network's worker, on its GPU, or on
    /// the page's thread a block of FORWARD_ROWS rows between turns.
    pub async fn velocity(&self, x: &[f32], t: &[f32]) -> Result<Vec<f32>, ComputeError> {
        match self {
            Network::Workers(trainer) => trainer.velocity(x, t).await.map_err(failed),
            Network::Gpu(gpu, trainer) => Ok(gpu.network_velocity(trainer, x, t).await?),
            Network::Here(shape, params) => {
                let mut out = Vec::with_capacity(x.len());
                for (xs, ts) in row_blocks(shape.dim, x, t) {
                    out.extend(flow::mlp::forward(shape, params, xs, ts).0);
                    pace().await;
                }
                Ok(out)
            }
        }
    }

    /// The network's samples from `x0` in `steps` Euler steps, along the closed form of the
    /// small set `data` while t < tau (flow::sampler::HybridPath; tau = 0: the network's own
    /// flow); every step's positions when `keep_frames`. In the network's worker in one round
    /// trip, on its GPU in one submission, or here a step between turns for the page.
    pub async fn path(
        &self,
        x0: &[f32],
        steps: usize,
        closed: (&[f32], f32),
        keep_frames: bool,
    ) -> Result<Vec<f32>, ComputeError> {
        match self {
            Network::Workers(trainer) => trainer
                .path(x0, steps, closed, keep_frames)
                .await
                .map_err(failed),
            Network::Gpu(gpu, trainer) => Ok(gpu
                .network_path(trainer, x0, steps, closed, keep_frames)
                .await?),
            Network::Here(shape, params) => {
                let (data, tau) = closed;
                let mut path = HybridPath::new(data, shape.dim, x0, steps, tau, keep_frames);
                while !path.done() {
                    path.step(|x, t| {
                        flow::mlp::forward(shape, params, x, &vec![t; x.len() / shape.dim]).0
                    });
                    pace().await;
                }
                Ok(path.finish())
            }
        }
    }
}

fn failed(f: Failure) -> ComputeError {
    match f {
        Failure::Input(m) => ComputeError::Input(m),
        Failure::Broken(m) => ComputeError::Worker(m),
    }
}
