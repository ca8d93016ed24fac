//! The digits lab: the shipped U-Net (`flow::unet`, weights from `cargo xtask train-digits`) and
//! the closed form over the same 9,000 training digits, side by side on the same noises. It runs
//! in a worker of its own, built as a WebAssembly module of its own (digits-lab/) that the page fetches
//! only when a figure that needs the network nears the viewport: the network and its weights
//! never weigh on the article's first module. This file is what that worker computes and the
//! messages it speaks, pure Rust, so the same code runs (and is tested) natively.

use crate::flow::closed_form::closed_form_velocity;
use crate::flow::digit_training::{self, DigitOptions, DigitTraining, Weights};
use crate::flow::digits::{self, PIXELS};
use crate::flow::metrics;
use crate::flow::sampler::HybridPath;
use crate::flow::unet::Unet;
use crate::flow::FlowError;
use crate::gpu::canary::{self, Spoil};
use crate::gpu::digit_trainer::GpuDigitTraining;
use crate::gpu::trainer::TrainingPipelines;
use crate::gpu::unet::{GpuUnet, UnetPipelines};
use crate::gpu::{ClosedFormPipeline, Gpu, GpuError};
use serde::{Deserialize, Serialize};
use std::rc::Rc;
use std::sync::Arc;

/// Why a sampling on the device gave no samples: its input (said to the caller) or the device
/// (the sampling goes to the CPU).
enum Placed {
    Input(String),
    Device(String),
}

/// What the page asks the lab. It crosses as bytes, like `Reply` (`encode`; as JSON, externally
/// tagged: `{"reference": {...}}`). A message that is not one of these is refused, never
/// defaulted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Request {
    /// Fetch the weights and the digits from these addresses (the worker fetches them) and load.
    Load { weights: String, digits: String },
    /// Integrate `noise` (rows of 784) in `steps` Euler steps: the closed form on [0, tau), the
    /// network after (tau = 0: the network alone; tau = 1: the closed form alone). A `Step`
    /// reply after every `every` steps (0: none), then `Sampled`, with the pixels of the nearest
    /// training digit of the first `pictured` samples (those a page draws). `own`: with the
    /// network trained here (`Train`, its weights' average) in place of the shipped one. `gpu`:
    /// the network's steps on the lab's WebGPU device (the page computes on one), once it has
    /// passed the start-up check; else, or if it fails, on the CPU.
    Sample {
        ticket: u32,
        noise: Vec<f32>,
        steps: u32,
        tau: f32,
        every: u32,
        pictured: u32,
        own: bool,
        gpu: bool,
    },
    /// Trains the reader's own network for about `millis` milliseconds (at least one step, at
    /// most MAX_CHUNK), as `cargo xtask train-digits` trains the shipped one (the same seeded
    /// initialisation, batches, Adam, clipping and average) but with batches of `batch`: on a
    /// WebGPU device of the lab's own where `gpu` (the page computes on one), else on the CPU
    /// twin; from scratch where `restart`. The batch may change between requests.
    Train {
        ticket: u32,
        gpu: bool,
        batch: u32,
        restart: bool,
        millis: u32,
    },
    /// The nearest two training digits of the first `count` held-out digits: the reference for
    /// how far a new digit lies from the training set.
    Reference { ticket: u32, count: u32 },
    /// Where the network departs from u* at time `t`, over `pairs` pairs (x0, a training digit)
    /// drawn from DEPARTURE_SEED (`flow::digit_training::departure`).
    Departure { ticket: u32, t: f32, pairs: u32 },
}

/// The pairs' seed: the one `cargo xtask train-digits`'s report measures with.
pub const DEPARTURE_SEED: u64 = 21;

impl Request {
    /// The request's ticket (a load has none).
    pub fn ticket(&self) -> Option<u32> {
        match self {
            Request::Load { .. } => None,
            Request::Sample { ticket, .. }
            | Request::Train { ticket, .. }
            | Request::Reference { ticket, .. }
            | Request::Departure { ticket, .. } => Some(*ticket),
        }
    }

    /// Names the request by `ticket` (a load has none).
    pub fn set_ticket(&mut self, to: u32) {
        match self {
            Request::Load { .. } => {}
            Request::Sample { ticket, .. }
            | Request::Train { ticket, .. }
            | Request::Reference { ticket, .. }
            | Request::Departure { ticket, .. } => *ticket = to,
        }
    }

    /// A sampling of the shipped network on the CPU split over consecutive rows of its noise,
    /// one part per ticket (at most one per row), each for a lab of its own: a sample depends on
    /// its own noise alone (the closed form and the network take each row by itself), so the
    /// parts' samples are the whole's, and `Merge` puts their replies back together. None for any
    /// other request (the reader's own network lives in one lab; a GPU is one device however
    /// many labs ask it), for rows that do not divide, and for a single part.
    pub fn split(&self, tickets: &[u32]) -> Option<Vec<Request>> {
        let Request::Sample {
            noise,
            steps,
            tau,
            every,
            pictured,
            own: false,
            gpu: false,
            ..
        } = self
        else {
            return None;
        };
        let rows = noise.len() / PIXELS;
        let parts = tickets.len().min(rows);
        // A request the lab would refuse whole is not split (each part could pass alone).
        if parts < 2 || !noise.len().is_multiple_of(PIXELS) || rows > MAX_ROWS {
            return None;
        }
        let pictured = *pictured as usize;
        let parts = (0..parts).map(|k| {
            let (a, b) = (k * rows / parts, (k + 1) * rows / parts);
            Request::Sample {
                ticket: tickets[k],
                noise: noise[a * PIXELS..b * PIXELS].to_vec(),
                steps: *steps,
                tau: *tau,
                every: *every,
                // The part's rows among the first `pictured` of the whole.
                pictured: (pictured.clamp(a, b) - a) as u32,
                own: false,
                gpu: false,
            }
        });
        Some(parts.collect())
    }
}

/// A part's samples as `Reply::Sampled` gives them: the samples, their nearest training digits,
/// the pixels of the pictured ones' nearest, and where they were computed.
type Part = (Vec<f32>, Vec<Nearest>, Vec<f32>, String);

/// The replies of a sampling split over several labs (`Request::split`), put back together in
/// the whole's row order: a step each time the slowest part has taken one more (the positions
/// each part last gave: a part ahead shows its own later step, and only one picture a part is
/// kept, however far apart the parts run), the samples once every part has given its own; the
/// first failure is the whole's, and nothing follows the whole's last reply.
pub struct Merge {
    ticket: u32,
    /// Each part's last positions, and the step they are after.
    latest: Vec<Option<(u32, Vec<f32>)>>,
    /// The step of the last `Step` given.
    shown: u32,
    sampled: Vec<Option<Part>>,
    done: bool,
}

impl Merge {
    /// For a sampling of `parts` parts, its replies named by `ticket`.
    pub fn new(ticket: u32, parts: usize) -> Merge {
        Merge {
            ticket,
            latest: vec![None; parts],
            shown: 0,
            sampled: vec![None; parts],
            done: false,
        }
    }

    /// Part `k`'s `reply`; the whole's reply it completes, if any.
    pub fn take(&mut self, k: usize, reply: Reply) -> Option<Reply> {
        let parts = self.sampled.len();
        if self.done || k >= parts {
            return None;
        }
        match reply {
            Reply::Step { step, x, .. } => {
                self.latest[k] = Some((step, x));
                let slowest = self
                    .latest
                    .iter()
                    .map(|l| l.as_ref().map(|l| l.0))
                    .min()??;
                if slowest <= self.shown {
                    return None;
                }
                self.shown = slowest;
                let x = self.latest.iter().flatten().flat_map(|(_, x)| x).copied();
                Some(Reply::Step {
                    ticket: self.ticket,
                    step: slowest,
                    x: x.collect(),
                })
            }
            Reply::Sampled {
                x,
                nearest,
                nearest_x,
                device,
                ..
            } => {
                self.sampled[k] = Some((x, nearest, nearest_x, device));
                if !self.sampled.iter().all(Option::is_some) {
                    return None;
                }
                self.done = true;
                let (mut x, mut nearest, mut nearest_x) = (Vec::new(), Vec::new(), Vec::new());
                let mut devices: Vec<String> = Vec::new();
                for (px, pn, pnx, device) in self.sampled.drain(..).flatten() {
                    x.extend(px);
                    nearest.extend(pn);
                    nearest_x.extend(pnx);
                    if !devices.contains(&device) {
                        devices.push(device);
                    }
                }
                Some(Reply::Sampled {
                    ticket: self.ticket,
                    x,
                    nearest,
                    nearest_x,
                    device: devices.join(" and "),
                })
            }
            Reply::Failed { error, .. } => {
                self.done = true;
                Some(Reply::failed(self.ticket, error))
            }
            _ => {
                self.done = true;
                Some(Reply::failed(
                    self.ticket,
                    "a part of a sampling answered something else".into(),
                ))
            }
        }
    }
}

/// A digit's nearest training digit (its index among the 9,000), the distance to it and to the
/// second nearest. Memorized when `distance < second / 3`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Nearest {
    pub index: u32,
    pub distance: f32,
    pub second: f32,
}

impl Nearest {
    /// Gu et al.'s criterion: much nearer one training digit than any other.
    pub fn memorized(&self) -> bool {
        self.distance < self.second / 3.0
    }
}

/// What the lab answers. It crosses to the page as bytes (`encode`, postcard): serde-wasm-
/// bindgen's reader of this enum (field names, maps) cost the article's module twice postcard's
/// (a sequence of values), and the samples' floats cross as bytes rather than one JS number at a
/// time. As JSON it is externally tagged: `{"sampled": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Reply {
    /// Loaded: how the network was trained, and the data's sizes.
    Loaded {
        parameters: u32,
        steps: u32,
        batch: u32,
        check_loss: f32,
        weight_bytes: u32,
        train: u32,
        held: u32,
    },
    /// The positions after `step` steps.
    Step { ticket: u32, step: u32, x: Vec<f32> },
    /// The samples, each one's nearest training digits, and the nearest one's pixels for the
    /// first `pictured` (so that a page can show them without the digits of its own).
    Sampled {
        ticket: u32,
        x: Vec<f32>,
        nearest: Vec<Nearest>,
        nearest_x: Vec<f32>,
        /// Where the network's steps ran (`Trained`'s `device`).
        device: String,
    },
    /// The held-out digits' nearest training digits.
    Reference { ticket: u32, nearest: Vec<Nearest> },
    /// The reader's own network after `step` steps: the mean loss of this request's steps, their
    /// milliseconds, and where they ran.
    Trained {
        ticket: u32,
        step: u32,
        steps: u32,
        loss: f32,
        millis: f32,
        device: String,
    },
    /// E|u_theta - u*|^2 / D and E|u*|^2 / D at `t`.
    Departure {
        ticket: u32,
        t: f32,
        gap: f32,
        scale: f32,
    },
    /// A request failed: why (`ticket` absent for a load).
    Failed { ticket: Option<u32>, error: String },
}

impl Reply {
    /// The request of `ticket` failed: `error` says why.
    fn failed(ticket: u32, error: String) -> Reply {
        Reply::Failed {
            ticket: Some(ticket),
            error,
        }
    }

    /// The sampling of `ticket` after `step` steps: the positions `x`.
    fn step(ticket: u32, step: u32, x: &[f32]) -> Reply {
        Reply::Step {
            ticket,
            step,
            x: x.to_vec(),
        }
    }
}

/// A message as it crosses between the page and the lab's worker: postcard's bytes, as the
/// compute workers' (`crate::engine`).
pub use crate::engine::{decode, encode};

/// The most noise rows one request may carry, and the most steps.
pub const MAX_ROWS: usize = 256;
pub const MAX_STEPS: u32 = 200;
/// The largest batch of the reader's own training, the most steps one `Train` request takes, and
/// the longest it asks for.
pub const MAX_BATCH: u32 = 64;
pub const MAX_CHUNK: u32 = 100;
pub const MAX_MILLIS: u32 = 10_000;

/// Where the reader's own network trains.
enum Trainer {
    Cpu(Box<DigitTraining>),
    Gpu(Rc<LabGpu>, Box<GpuDigitTraining>),
}

/// The lab's WebGPU device, once it has passed the page's start-up check (`gpu::canary::run`)
/// and the network's (`gpu::canary::unet`): the network's samples and the reader's training run
/// on it.
pub struct LabGpu {
    gpu: Gpu,
    pipelines: UnetPipelines,
    /// The shipped network's weights on the device.
    shipped: GpuUnet,
    /// "WebGPU (its adapter)", as replies name it.
    name: String,
}

/// The reader's own network: its training and its weights' average after the last request (empty
/// before the first).
struct Own {
    trainer: Trainer,
    ema: Vec<f32>,
    device: String,
}

/// The network, its weights, and the digits split as they were for training.
pub struct Lab {
    net: Unet,
    params: Vec<f32>,
    weights: Weights,
    weight_bytes: usize,
    /// Shared with the reader's training, if any.
    train: Arc<[f32]>,
    held: Vec<f32>,
    own: Option<Own>,
    /// The lab's WebGPU device once asked for, or why there is none (it could not be had, it
    /// failed the check, or it failed while computing): the work then goes to the CPU.
    gpu: Option<Result<Rc<LabGpu>, String>>,
}

impl Lab {
    /// From the weights file (FMU1) and the packed digits (FMD1), both checked.
    pub fn new(weights: &[u8], packed_digits: &[u8]) -> Result<Lab, FlowError> {
        let w = Weights::decode(weights)?;
        if w.shape.dim() != PIXELS {
            return Err(FlowError::Corrupt(format!(
                "the weights are for images of {} values, not the digits' {PIXELS}",
                w.shape.dim()
            )));
        }
        let all = digits::unpack(packed_digits)?.signed();
        let (train, held) = digit_training::split(&all, PIXELS);
        Ok(Lab {
            net: Unet::new(w.shape),
            params: w.params.clone(),
            weights: w,
            weight_bytes: weights.len(),
            train: train.into(),
            held,
            own: None,
            gpu: None,
        })
    }

    pub fn loaded(&self) -> Reply {
        Reply::Loaded {
            parameters: self.params.len() as u32,
            steps: self.weights.steps,
            batch: self.weights.batch,
            check_loss: self.weights.check_loss,
            weight_bytes: self.weight_bytes as u32,
            train: (self.train.len() / PIXELS) as u32,
            held: (self.held.len() / PIXELS) as u32,
        }
    }

    /// The `j`-th training digit's pixels.
    pub fn training_digit(&self, j: usize) -> &[f32] {
        &self.train[j * PIXELS..(j + 1) * PIXELS]
    }

    /// Answers one request (not `Load`, which the worker does); `emit` receives the `Step`
    /// replies as they come, the return value is the last reply.
    pub fn answer(&self, request: Request, mut emit: impl FnMut(Reply)) -> Reply {
        match request {
            Request::Load { .. } => Reply::Failed {
                ticket: None,
                error: "the lab is already loaded".into(),
            },
            Request::Train { ticket, .. } => {
                Reply::failed(ticket, "training is asked of Lab::train".into())
            }
            Request::Sample {
                ticket,
                noise,
                steps,
                tau,
                every,
                pictured,
                own,
                ..
            } => match self.sample(&noise, steps, tau, every, own, |step, x| {
                emit(Reply::step(ticket, step, x))
            }) {
                Ok(x) => self.sampled(ticket, x, pictured, "the CPU".into()),
                Err(error) => Reply::failed(ticket, error),
            },
            Request::Departure { ticket, t, pairs } => match self.departure(t, pairs as usize) {
                Ok((gap, scale)) => Reply::Departure {
                    ticket,
                    t,
                    gap,
                    scale,
                },
                Err(error) => Reply::failed(ticket, error),
            },
            Request::Reference { ticket, count } => {
                let count = (count as usize).min(self.held.len() / PIXELS);
                Reply::Reference {
                    ticket,
                    nearest: self.nearest(&self.held[..count * PIXELS]),
                }
            }
        }
    }

    /// The reply to a sampling: the samples, each one's nearest training digits, the first
    /// `pictured` ones' pixels.
    fn sampled(&self, ticket: u32, x: Vec<f32>, pictured: u32, device: String) -> Reply {
        let nearest = self.nearest(&x);
        let nearest_x = nearest
            .iter()
            .take(pictured as usize)
            .flat_map(|n| self.training_digit(n.index as usize))
            .copied()
            .collect();
        Reply::Sampled {
            ticket,
            x,
            nearest,
            nearest_x,
            device,
        }
    }

    /// Answers any request but `Load` where the request places it: a training (`train`), a
    /// sampling on the lab's WebGPU device where it asks for one and the device passed its
    /// checks, else on the CPU (`answer`). `now` gives milliseconds.
    pub async fn answer_placed(
        &mut self,
        request: Request,
        mut emit: impl FnMut(Reply),
        now: impl Fn() -> f64,
    ) -> Reply {
        match request {
            Request::Train {
                ticket,
                gpu,
                batch,
                restart,
                millis,
            } => self.train(ticket, gpu, batch, restart, millis, now).await,
            Request::Sample {
                ticket,
                noise,
                steps,
                tau,
                every,
                pictured,
                own,
                gpu: true,
            } => {
                // The input first: a bad request costs no device.
                if let Err(error) = self
                    .check_sample(&noise, steps, tau)
                    .and(self.params_of(own).map(|_| ()))
                {
                    return Reply::failed(ticket, error);
                }
                let why_not = match self.device().await {
                    Ok(device) => {
                        let sampled = self
                            .sample_on(&device, &noise, steps, tau, every, own, |step, x| {
                                emit(Reply::step(ticket, step, x))
                            })
                            .await;
                        match sampled {
                            Ok(x) => return self.sampled(ticket, x, pictured, device.name.clone()),
                            Err(Placed::Input(error)) => return Reply::failed(ticket, error),
                            Err(Placed::Device(why)) => {
                                let why = format!("WebGPU failed here: {why}");
                                self.gpu = Some(Err(why.clone()));
                                why
                            }
                        }
                    }
                    Err(why) => why,
                };
                // On the CPU, from the start (the steps the page saw are taken again).
                let on_cpu = Request::Sample {
                    ticket,
                    noise,
                    steps,
                    tau,
                    every,
                    pictured,
                    own,
                    gpu: false,
                };
                let mut reply = self.answer(on_cpu, emit);
                if let Reply::Sampled { device, .. } = &mut reply {
                    *device = format!("the CPU ({why_not})");
                }
                reply
            }
            other => self.answer(other, emit),
        }
    }

    /// The lab's WebGPU device: asked for once, checked by the page's start-up check and the
    /// network's, then kept; or why there is none.
    pub async fn device(&mut self) -> Result<Rc<LabGpu>, String> {
        if let Some(known) = &self.gpu {
            return known.clone();
        }
        let made = async {
            let gpu = Gpu::request(true)
                .await
                .map_err(|e| format!("no WebGPU device for it: {e}"))?;
            let failed = |e: GpuError| format!("this device failed the GPU check: {e}");
            let closed_form = ClosedFormPipeline::new(&gpu);
            let training = TrainingPipelines::new(&gpu);
            canary::run(&gpu, &closed_form, &training, Spoil::None)
                .await
                .map_err(failed)?;
            canary::unet(&gpu).await.map_err(failed)?;
            let pipelines = UnetPipelines::new(&gpu);
            let shipped = GpuUnet::new(&gpu, self.net.clone(), &self.params).map_err(failed)?;
            // Browsers often withhold the adapter's name.
            let name = match gpu.adapter.as_str() {
                "" => "WebGPU".to_string(),
                name => format!("WebGPU ({name})"),
            };
            Ok(Rc::new(LabGpu {
                gpu,
                pipelines,
                shipped,
                name,
            }))
        }
        .await;
        self.gpu = Some(made.clone());
        made
    }

    /// `sample` with the network's steps on `device`: the closed form's steps (t < tau) on the
    /// CPU, the network's on the device, one submission a step where the page follows the steps
    /// (`every` > 0) or the closed form leads, else every step in one submission.
    #[allow(clippy::too_many_arguments)]
    async fn sample_on(
        &self,
        device: &LabGpu,
        noise: &[f32],
        steps: u32,
        tau: f32,
        every: u32,
        own: bool,
        mut each: impl FnMut(u32, &[f32]),
    ) -> Result<Vec<f32>, Placed> {
        let own_net;
        let net = match own {
            false => &device.shipped,
            true => {
                let params = self.params_of(true).map_err(Placed::Input)?;
                own_net = GpuUnet::new(&device.gpu, self.net.clone(), params)
                    .map_err(|e| Placed::Device(e.to_string()))?;
                &own_net
            }
        };
        self.check_sample(noise, steps, tau)
            .map_err(Placed::Input)?;
        let on_device = |e: GpuError| Placed::Device(e.to_string());
        if every == 0 && tau <= 0.0 {
            return net
                .sample(&device.gpu, &device.pipelines, noise, steps as usize)
                .await
                .map_err(on_device);
        }
        let mut path = HybridPath::new(&self.train, PIXELS, noise, steps as usize, tau, false);
        let mut step = 0;
        while !path.done() {
            let u = match path.next_time() {
                (t, true) => net
                    .velocities(&device.gpu, &device.pipelines, path.positions(), t)
                    .await
                    .map_err(on_device)?,
                (t, false) => closed_form_velocity(&self.train, PIXELS, path.positions(), t),
            };
            path.step_with(&u);
            step += 1;
            if every > 0 && step % every == 0 && step < steps {
                each(step, path.positions());
            }
        }
        Ok(path.finish())
    }

    /// The shipped network's weights, or the reader's own network's average.
    fn params_of(&self, own: bool) -> Result<&[f32], String> {
        match (own, &self.own) {
            (false, _) => Ok(&self.params),
            (true, Some(own)) if !own.ema.is_empty() => Ok(&own.ema),
            (true, _) => Err("no network has been trained here yet".into()),
        }
    }

    /// A sampling's input, checked.
    fn check_sample(&self, noise: &[f32], steps: u32, tau: f32) -> Result<(), String> {
        let rows = noise.len() / PIXELS;
        if noise.is_empty() || !noise.len().is_multiple_of(PIXELS) || rows > MAX_ROWS {
            return Err(format!(
                "noise must hold 1 to {MAX_ROWS} rows of {PIXELS} values, not {} values",
                noise.len()
            ));
        }
        if !noise.iter().all(|v| v.is_finite()) {
            return Err("noise must be finite".into());
        }
        if !(1..=MAX_STEPS).contains(&steps) {
            return Err(format!("steps must be 1 to {MAX_STEPS}, not {steps}"));
        }
        if !(0.0..=1.0).contains(&tau) {
            return Err(format!("tau must be in [0, 1], not {tau}"));
        }
        Ok(())
    }

    /// The hybrid samples (see `Request::Sample`), `each` called with the positions after every
    /// `every` steps; the input checked first.
    pub fn sample(
        &self,
        noise: &[f32],
        steps: u32,
        tau: f32,
        every: u32,
        own: bool,
        mut each: impl FnMut(u32, &[f32]),
    ) -> Result<Vec<f32>, String> {
        let params = self.params_of(own)?;
        self.check_sample(noise, steps, tau)?;
        let mut path = HybridPath::new(&self.train, PIXELS, noise, steps as usize, tau, false);
        let mut step = 0;
        while !path.done() {
            path.step(|x, t| self.net.velocities(params, x, t));
            step += 1;
            if every > 0 && step % every == 0 && step < steps {
                each(step, path.positions());
            }
        }
        Ok(path.positions().to_vec())
    }

    /// `Request::Train` (see there): `now` gives milliseconds. A WebGPU device that cannot be had
    /// sends the training to the CPU twin, and the reply's `device` says why; one that fails while
    /// training fails the request, and the next run trains on the CPU.
    pub async fn train(
        &mut self,
        ticket: u32,
        gpu: bool,
        batch: u32,
        restart: bool,
        millis: u32,
        now: impl Fn() -> f64,
    ) -> Reply {
        let failed = |error: String| Reply::failed(ticket, error);
        if !(1..=MAX_BATCH).contains(&batch) {
            return failed(format!("batch must be 1 to {MAX_BATCH}, not {batch}"));
        }
        if !(1..=MAX_MILLIS).contains(&millis) {
            return failed(format!("millis must be 1 to {MAX_MILLIS}, not {millis}"));
        }
        if restart || self.own.is_none() {
            self.own = Some(self.start_training(gpu).await);
        }
        let Some(own) = self.own.as_mut() else {
            return failed("no training".into());
        };
        let start = now();
        let (mut steps, mut total) = (0u32, 0.0f64);
        let stepped = loop {
            let losses = match &mut own.trainer {
                Trainer::Cpu(run) => {
                    run.options.batch = batch as usize;
                    Ok(vec![run.train_step()])
                }
                Trainer::Gpu(device, run) => {
                    // A step alone, then as many as the time left holds at the rate it took,
                    // submitted together (the device does not wait for the page between them).
                    let (gpu, pipelines) = (&device.gpu, &device.pipelines);
                    run.options.batch = batch as usize;
                    let elapsed = now() - start;
                    let rate = steps as f64 / elapsed.max(1.0);
                    let fits = ((millis as f64 - elapsed) * rate) as u32;
                    let count = fits.clamp(1, MAX_CHUNK - steps);
                    run.train_steps(gpu, pipelines, count as usize).await
                }
            };
            match losses {
                Ok(losses) => {
                    total += losses.iter().map(|&l| l as f64).sum::<f64>();
                    steps += losses.len() as u32;
                }
                Err(e) => break Err(e),
            }
            if steps >= MAX_CHUNK || now() - start >= millis as f64 {
                break Ok(());
            }
        };
        let weights = match (&own.trainer, stepped) {
            (Trainer::Cpu(run), _) => Ok(run.ema.clone()),
            (Trainer::Gpu(device, run), Ok(())) => {
                run.weights(&device.gpu).await.map(|(_, ema)| ema)
            }
            (Trainer::Gpu(..), Err(e)) => Err(e),
        };
        match weights {
            Ok(ema) => own.ema = ema,
            Err(e) => {
                let error = format!("training on WebGPU failed ({e}); Reset trains on the CPU");
                self.gpu = Some(Err(format!("WebGPU failed here: {e}")));
                self.own = None;
                return failed(error);
            }
        }
        Reply::Trained {
            ticket,
            step: match &own.trainer {
                Trainer::Cpu(run) => run.step,
                Trainer::Gpu(_, run) => run.step,
            },
            steps,
            loss: (total / steps as f64) as f32,
            millis: (now() - start) as f32,
            device: own.device.clone(),
        }
    }

    /// A fresh run of the reader's training: on the lab's WebGPU device where `gpu` (and it
    /// passed its checks and has not failed here), else on the CPU.
    async fn start_training(&mut self, gpu: bool) -> Own {
        let options = DigitOptions {
            batch: MAX_BATCH as usize,
            ..DigitOptions::SHIPPED
        };
        let why_not = match gpu {
            false => "the page computes on the CPU".to_string(),
            true => match self.device().await {
                Ok(device) => {
                    match GpuDigitTraining::new(
                        &device.gpu,
                        self.net.shape,
                        self.train.clone(),
                        options,
                    ) {
                        Ok(run) => {
                            return Own {
                                ema: Vec::new(),
                                device: device.name.clone(),
                                trainer: Trainer::Gpu(device, Box::new(run)),
                            }
                        }
                        Err(e) => format!("no WebGPU device for it: {e}"),
                    }
                }
                Err(why) => why,
            },
        };
        let run = DigitTraining::new(self.net.shape, self.train.clone(), options);
        Own {
            ema: Vec::new(),
            trainer: Trainer::Cpu(Box::new(run)),
            device: format!("the CPU ({why_not})"),
        }
    }

    /// `Request::Departure`: at `t` in [0, 1), over 1 to MAX_ROWS pairs.
    pub fn departure(&self, t: f32, pairs: usize) -> Result<(f32, f32), String> {
        if !(0.0..1.0).contains(&t) {
            return Err(format!("t must be in [0, 1), not {t}"));
        }
        if !(1..=MAX_ROWS).contains(&pairs) {
            return Err(format!("pairs must be 1 to {MAX_ROWS}, not {pairs}"));
        }
        let (x0, x1) = digit_training::departure_pairs(&self.train, PIXELS, pairs, DEPARTURE_SEED);
        let xt = digit_training::interpolate(&x0, &x1, t);
        let u_net = self.net.velocities(&self.params, &xt, t);
        let u_star = closed_form_velocity(&self.train, PIXELS, &xt, t);
        Ok(digit_training::departure(&u_net, &u_star))
    }

    /// Each image's nearest two training digits.
    pub fn nearest(&self, images: &[f32]) -> Vec<Nearest> {
        metrics::nearest_two(&self.train, PIXELS, images)
            .into_iter()
            .map(|(index, distance, second)| Nearest {
                index: index as u32,
                distance,
                second,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::rng::Rng;

    fn lab() -> Lab {
        let weights = std::fs::read("www/weights/digits-unet.fmu").expect("the shipped weights");
        let digits = std::fs::read("www/assets/digits.bin").expect("the packed digits");
        Lab::new(&weights, &digits).expect("a lab")
    }

    #[test]
    fn the_network_makes_new_digits_and_the_closed_form_copies() {
        let lab = lab();
        let noise = Rng::new(7).normals(4 * PIXELS);
        let mut steps_seen = Vec::new();
        let network = match lab.answer(
            Request::Sample {
                ticket: 3,
                noise: noise.clone(),
                steps: 10,
                tau: 0.0,
                every: 4,
                pictured: 2,
                own: false,
                gpu: false,
            },
            |r| match r {
                Reply::Step { ticket: 3, step, x } if x.len() == noise.len() => {
                    steps_seen.push(step)
                }
                other => panic!("unexpected {other:?}"),
            },
        ) {
            Reply::Sampled {
                ticket: 3,
                x,
                nearest,
                nearest_x,
                device,
            } => {
                assert_eq!(device, "the CPU");
                assert_eq!(nearest_x.len(), 2 * PIXELS, "the pictured two only");
                assert_eq!(
                    &nearest_x[PIXELS..2 * PIXELS],
                    lab.training_digit(nearest[1].index as usize)
                );
                (x, nearest)
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(steps_seen, [4, 8]);
        // The lab's network path is the training code's sampler, bit for bit.
        let net = Unet::new(lab.weights.shape);
        assert_eq!(
            network.0,
            digit_training::sample(&net, &lab.params, &noise, 10)
        );
        assert!(network.1.iter().all(|n| !n.memorized() && n.distance > 5.0));
        let closed = lab.sample(&noise, 10, 1.0, 0, false, |_, _| {}).unwrap();
        let copies = lab.nearest(&closed);
        assert!(
            copies.iter().all(|n| n.memorized() && n.distance < 0.5),
            "{copies:?}"
        );
    }

    /// A sampling split over labs (`Request::split`, here one lab answering every part) and merged
    /// (`Merge`) gives the whole's replies: its steps, samples, nearest digits and pictures.
    #[test]
    fn a_sampling_split_over_labs_merges_to_the_whole() {
        let lab = lab();
        let noise = Rng::new(11).normals(5 * PIXELS);
        let whole = Request::Sample {
            ticket: 9,
            noise,
            steps: 6,
            tau: 0.5,
            every: 3,
            pictured: 3,
            own: false,
            gpu: false,
        };
        let mut whole_steps = Vec::new();
        let whole_last = lab.answer(whole.clone(), |r| whole_steps.push(r));
        let parts = whole.split(&[9, 20, 21]).expect("three parts");
        let rows: Vec<usize> = parts
            .iter()
            .map(|p| match p {
                Request::Sample {
                    noise, pictured, ..
                } => {
                    assert!(*pictured as usize <= noise.len() / PIXELS);
                    noise.len() / PIXELS
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(rows, [1, 2, 2]);
        // The parts' replies come interleaved, as the labs answer side by side.
        let mut answers: Vec<Vec<Reply>> = parts
            .into_iter()
            .map(|part| {
                let mut replies = Vec::new();
                let last = lab.answer(part, |r| replies.push(r));
                replies.push(last);
                replies
            })
            .collect();
        let mut merge = Merge::new(9, 3);
        let mut merged = Vec::new();
        while answers.iter().any(|a| !a.is_empty()) {
            for k in [2, 0, 1] {
                if !answers[k].is_empty() {
                    let reply = answers[k].remove(0);
                    merged.extend(merge.take(k, reply));
                }
            }
        }
        whole_steps.push(whole_last);
        assert_eq!(merged.len(), whole_steps.len());
        for (m, w) in merged.iter().zip(&whole_steps) {
            match (m, w) {
                (
                    Reply::Step { step, x, .. },
                    Reply::Step {
                        step: ws, x: wx, ..
                    },
                ) => {
                    assert_eq!(step, ws);
                    let worst = x
                        .iter()
                        .zip(wx)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f32::max);
                    assert!(worst <= 1e-5, "step {step}: {worst}");
                }
                (
                    Reply::Sampled {
                        ticket,
                        x,
                        nearest,
                        nearest_x,
                        device,
                    },
                    Reply::Sampled {
                        x: wx,
                        nearest: wn,
                        nearest_x: wnx,
                        device: wd,
                        ..
                    },
                ) => {
                    assert_eq!(*ticket, 9);
                    let worst = x
                        .iter()
                        .zip(wx)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f32::max);
                    assert!(x.len() == wx.len() && worst <= 1e-5, "samples: {worst}");
                    let index = |n: &[Nearest]| n.iter().map(|d| d.index).collect::<Vec<_>>();
                    assert_eq!(index(nearest), index(wn));
                    assert_eq!(nearest_x, wnx, "the first three's nearest digits, in order");
                    assert_eq!(device, wd);
                }
                other => panic!("{other:?}"),
            }
        }
        // A part that runs ahead: the slowest part's step, each part's last positions, one
        // picture a part kept.
        let mut ahead = Merge::new(7, 2);
        assert_eq!(ahead.take(0, Reply::step(1, 3, &[1.0])), None);
        assert_eq!(ahead.take(0, Reply::step(1, 6, &[2.0])), None);
        assert_eq!(
            ahead.take(1, Reply::step(2, 3, &[3.0])),
            Some(Reply::step(7, 3, &[2.0, 3.0]))
        );
        assert_eq!(
            ahead.take(1, Reply::step(2, 6, &[4.0])),
            Some(Reply::step(7, 6, &[2.0, 4.0]))
        );
        // Nothing follows the whole's last reply; a part's failure is the whole's at once.
        assert_eq!(merge.take(0, Reply::failed(1, "late".into())), None);
        let mut failing = Merge::new(5, 2);
        assert!(matches!(
            failing.take(1, Reply::failed(31, "the part broke".into())),
            Some(Reply::Failed { ticket: Some(5), error }) if error == "the part broke"
        ));
        assert_eq!(failing.take(0, Reply::step(30, 1, &[0.0])), None);
        // Only a sampling of the shipped network on the CPU splits, into at most a part a row.
        let one_row = Request::Sample {
            ticket: 1,
            noise: vec![0.0; PIXELS],
            steps: 1,
            tau: 0.0,
            every: 0,
            pictured: 0,
            own: false,
            gpu: false,
        };
        assert_eq!(one_row.split(&[1, 2]), None);
        let mut too_many = one_row.clone();
        if let Request::Sample { noise, .. } = &mut too_many {
            *noise = vec![0.0; (MAX_ROWS + 1) * PIXELS];
        }
        assert_eq!(too_many.split(&[1, 2]), None, "refused whole by the lab");
        let mut renamed = one_row.clone();
        renamed.set_ticket(44);
        assert_eq!(renamed.ticket(), Some(44));
        for changed in [
            |r: &mut Request| {
                if let Request::Sample { own, .. } = r {
                    *own = true
                }
            },
            |r: &mut Request| {
                if let Request::Sample { gpu, .. } = r {
                    *gpu = true
                }
            },
        ] {
            let mut request = whole.clone();
            changed(&mut request);
            assert_eq!(request.split(&[1, 2]), None);
        }
        let departure = Request::Departure {
            ticket: 1,
            t: 0.5,
            pairs: 4,
        };
        assert_eq!(departure.split(&[1, 2]), None);
    }

    #[test]
    fn the_network_follows_u_star_early_and_departs_later() {
        let lab = lab();
        let at = |t: f32| match lab.answer(
            Request::Departure {
                ticket: 4,
                t,
                pairs: 16,
            },
            |_| {},
        ) {
            Reply::Departure {
                ticket: 4,
                gap,
                scale,
                ..
            } => gap / scale,
            other => panic!("{other:?}"),
        };
        // The report's curve over 256 pairs: 0.1% of |u*|^2 at t = 0, 9.7% at t = 0.3.
        let (early, middle) = (at(0.05), at(0.35));
        assert!(early < 0.01 && middle > 0.03, "{early} {middle}");
    }

    /// The reader's own training: the steps are `DigitTraining`'s on the same digits (the run
    /// of `cargo xtask train-digits` with another batch), a chunk stops at its time, a restart
    /// starts from scratch, and the trained network samples in place of the shipped one.
    #[test]
    fn a_reader_trains_a_network_of_their_own() {
        let mut lab = lab();
        let noise = Rng::new(3).normals(2 * PIXELS);
        let own = |lab: &Lab| lab.sample(&noise, 4, 0.0, 0, true, |_, _| {});
        assert!(own(&lab).unwrap_err().contains("no network"));
        let clock = std::cell::Cell::new(0.0);
        // Each reading of the clock is 10 ms later: a chunk of 25 ms takes 3 steps.
        let now = || {
            clock.set(clock.get() + 10.0);
            clock.get()
        };
        let train = |lab: &mut Lab, batch, restart, millis| match pollster::block_on(
            lab.train(5, false, batch, restart, millis, now),
        ) {
            Reply::Trained {
                ticket: 5,
                step,
                steps,
                loss,
                device,
                ..
            } => {
                assert!(loss.is_finite() && loss > 0.0);
                assert!(
                    device.starts_with("the CPU (the page computes on the CPU)"),
                    "{device}"
                );
                (step, steps)
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(train(&mut lab, 2, false, 25), (3, 3));
        assert_eq!(train(&mut lab, 3, false, 1), (4, 1));
        let mut twin = DigitTraining::new(
            lab.net.shape,
            lab.train.clone(),
            DigitOptions {
                batch: 2,
                ..DigitOptions::SHIPPED
            },
        );
        for _ in 0..3 {
            twin.train_step();
        }
        twin.options.batch = 3;
        twin.train_step();
        assert_eq!(lab.own.as_ref().unwrap().ema, twin.ema);
        let x = own(&lab).unwrap();
        assert_eq!(x, digit_training::sample(&lab.net, &twin.ema, &noise, 4));
        assert_ne!(x, lab.sample(&noise, 4, 0.0, 0, false, |_, _| {}).unwrap());
        assert_eq!(train(&mut lab, 2, true, 1), (1, 1), "a restart");
        for (batch, millis, why) in [(0, 5, "batch"), (65, 5, "batch"), (2, 0, "millis")] {
            match pollster::block_on(lab.train(6, false, batch, false, millis, || 0.0)) {
                Reply::Failed {
                    ticket: Some(6),
                    error,
                } => assert!(error.contains(why), "{error}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn bad_requests_are_refused_with_a_reason() {
        let lab = lab();
        let ok = Rng::new(1).normals(PIXELS);
        let bad = |noise: Vec<f32>, steps: u32, tau: f32| {
            lab.sample(&noise, steps, tau, 0, false, |_, _| {})
                .unwrap_err()
        };
        assert!(bad(vec![0.0; 100], 10, 0.0).contains("rows of 784"));
        assert!(bad(vec![f32::NAN; PIXELS], 10, 0.0).contains("finite"));
        assert!(bad(ok.clone(), 0, 0.0).contains("steps"));
        assert!(bad(ok.clone(), 10, 1.5).contains("tau"));
        assert!(bad(ok, 10, f32::NAN).contains("tau"));
        let held = match lab.answer(
            Request::Reference {
                ticket: 1,
                count: 5,
            },
            |_| {},
        ) {
            Reply::Reference { nearest, .. } => nearest,
            other => panic!("{other:?}"),
        };
        assert_eq!(held.len(), 5);
        assert!(held.iter().all(|n| n.distance > 1.0));
        assert!(Lab::new(b"FMU1", &std::fs::read("www/assets/digits.bin").unwrap()).is_err());
        assert!(lab.departure(1.0, 8).unwrap_err().contains("t must"));
        assert!(lab.departure(0.5, 0).unwrap_err().contains("pairs"));
    }

    #[test]
    fn messages_are_typed_and_strict() {
        let r: Request = serde_json::from_str(r#"{"reference":{"ticket":2,"count":9}}"#).unwrap();
        assert_eq!(
            r,
            Request::Reference {
                ticket: 2,
                count: 9
            }
        );
        assert!(serde_json::from_str::<Request>(r#"{"reference":{"ticket":2}}"#).is_err());
        assert!(
            serde_json::from_str::<Request>(r#"{"reference":{"ticket":2,"count":9,"x":1}}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<Request>(r#"{"train":{"ticket":2}}"#).is_err());
        // In bytes, as the page posts them: a request comes back as it went; truncated, it is
        // refused.
        let sample = Request::Sample {
            ticket: 5,
            noise: vec![0.5, -2.0],
            steps: 20,
            tau: 0.25,
            every: 1,
            pictured: 8,
            own: false,
            gpu: true,
        };
        let bytes = encode(&sample);
        assert_eq!(decode::<Request>(&bytes).unwrap(), sample);
        assert!(decode::<Request>(&bytes[..bytes.len() - 1]).is_err());
        let reply: Reply =
            serde_json::from_str(r#"{"departure":{"ticket":1,"t":0.5,"gap":1,"scale":2}}"#)
                .unwrap();
        assert_eq!(
            reply,
            Reply::Departure {
                ticket: 1,
                t: 0.5,
                gap: 1.0,
                scale: 2.0
            }
        );
        // In bytes, as the worker posts them: every reply comes back as it went, and a truncated
        // or padded message is refused.
        let replies = [
            reply.clone(),
            Reply::Trained {
                ticket: 7,
                step: 300,
                steps: 4,
                loss: 0.5,
                millis: 512.5,
                device: "WebGPU (x)".into(),
            },
            Reply::Failed {
                ticket: None,
                error: "why".into(),
            },
            Reply::Sampled {
                ticket: 2,
                x: vec![0.25, -1.0],
                nearest: vec![Nearest {
                    index: 3,
                    distance: 1.5,
                    second: 2.5,
                }],
                nearest_x: vec![],
                device: "WebGPU".into(),
            },
        ];
        for r in &replies {
            let bytes = encode(r);
            assert_eq!(&decode::<Reply>(&bytes).unwrap(), r);
            assert!(decode::<Reply>(&bytes[..bytes.len() - 1]).is_err(), "{r:?}");
            assert!(decode::<Reply>(&[bytes.as_slice(), &[0]].concat()).is_err());
        }
        assert!(decode::<Reply>(&[200]).is_err());
        for bad in [
            r#"{"departure":{"ticket":1,"t":0.5,"gap":1,"scale":2,"x":0}}"#,
            r#"{"departure":{"ticket":1,"t":0.5,"gap":1}}"#,
            r#"{"sampled":{"ticket":1,"x":[],"nearest":[]}}"#,
            r#"{"loaded":{}}"#,
        ] {
            assert!(serde_json::from_str::<Reply>(bad).is_err(), "{bad}");
        }
    }
}
