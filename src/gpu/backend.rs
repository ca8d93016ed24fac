//! One API for the figures and the JS exports: the GPU when there is one, `flow` otherwise.

use super::{ClosedFormPipeline, Gpu, GpuError, TrainingSet};
use crate::flow;

pub struct GpuBackend {
    pub gpu: Gpu,
    closed_form: ClosedFormPipeline,
    /// Compiled with the first trainer, shared by the rest.
    training: std::cell::OnceCell<super::trainer::TrainingPipelines>,
}

impl GpuBackend {
    /// The training pipelines, compiled on first use.
    fn training(&self) -> &super::trainer::TrainingPipelines {
        self.training
            .get_or_init(|| super::trainer::TrainingPipelines::new(&self.gpu))
    }
}

/// Where the work runs. Figures never care which.
pub enum Backend {
    Gpu(Box<GpuBackend>),
    /// The CPU path: why, and the technical reason the GPU was not used.
    Cpu {
        why: CpuWhy,
        reason: String,
    },
}

/// Why a page computes on the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuWhy {
    /// The page's address asked for it (`?backend=cpu`).
    Requested,
    /// No WebGPU adapter or device could be had.
    NoWebGpu,
    /// The only adapter is a software one, slower than the CPU path.
    SoftwareAdapter,
    /// The GPU's results disagreed with the CPU twin's (or its check failed or timed out).
    CheckFailed,
    /// The GPU device was lost while the page used it.
    DeviceLost,
    /// The page's figures, while the start-up GPU check runs: they move to the GPU if it passes.
    Checking,
}

/// A training set prepared for a backend (uploaded once, reused across calls).
pub enum Prepared {
    Gpu(TrainingSet),
    Cpu(flow::ClosedForm),
}

impl Backend {
    /// The GPU backend if a device can be had (on a software adapter only if
    /// `accept_software`), else the CPU with the reason.
    pub async fn acquire(accept_software: bool) -> Backend {
        match Gpu::request(accept_software).await {
            Ok(gpu) => Backend::from_gpu(gpu),
            Err(e) => Backend::Cpu {
                why: if matches!(e, GpuError::SoftwareAdapter(_)) {
                    CpuWhy::SoftwareAdapter
                } else {
                    CpuWhy::NoWebGpu
                },
                reason: e.to_string(),
            },
        }
    }

    /// Runs the canary (`gpu::canary`) on the GPU backend before the page trusts it; the CPU
    /// backend has nothing to check.
    pub async fn verify(
        &self,
        spoil: super::canary::Spoil,
    ) -> Result<Option<super::canary::CanaryReport>, GpuError> {
        match self {
            Backend::Gpu(b) => super::canary::run(&b.gpu, &b.closed_form, b.training(), spoil)
                .await
                .map(Some),
            Backend::Cpu { .. } => Ok(None),
        }
    }

    pub fn from_gpu(gpu: Gpu) -> Backend {
        let closed_form = ClosedFormPipeline::new(&gpu);
        Backend::Gpu(Box::new(GpuBackend {
            gpu,
            closed_form,
            training: std::cell::OnceCell::new(),
        }))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Gpu(_) => "webgpu",
            Backend::Cpu { .. } => "cpu",
        }
    }

    pub fn prepare(&self, data: &[f32], dim: usize) -> Result<Prepared, GpuError> {
        Ok(match self {
            Backend::Gpu(b) => Prepared::Gpu(TrainingSet::upload(&b.gpu, data, dim)?),
            Backend::Cpu { .. } => Prepared::Cpu(flow::ClosedForm::new(data, dim)),
        })
    }

    /// `prepare` for data the caller hands over: the CPU path keeps it instead of a copy (so a
    /// set costs two copies of the data there, the rows and their packed panels), the GPU path
    /// drops it once uploaded.
    pub fn prepare_owned(&self, data: Vec<f32>, dim: usize) -> Result<Prepared, GpuError> {
        Ok(match self {
            Backend::Gpu(b) => Prepared::Gpu(TrainingSet::upload(&b.gpu, &data, dim)?),
            Backend::Cpu { .. } => Prepared::Cpu(flow::ClosedForm::from_rows(data, dim)),
        })
    }

    /// `prepare` (of `data` borrowed, or handed over as `prepare_owned`'s) with the GPU's copy
    /// written UPLOAD_PIECE floats at a time, `pause` awaited between pieces (the browser copies
    /// what the queue writes on the page's thread).
    pub async fn prepare_paced<P, F>(
        &self,
        data: std::borrow::Cow<'_, [f32]>,
        dim: usize,
        pause: P,
    ) -> Result<Prepared, GpuError>
    where
        P: FnMut() -> F,
        F: std::future::Future<Output = ()>,
    {
        Ok(match self {
            Backend::Gpu(b) => Prepared::Gpu(
                TrainingSet::upload_paced(&b.gpu, &data, dim, UPLOAD_PIECE, pause).await?,
            ),
            Backend::Cpu { .. } => {
                Prepared::Cpu(flow::ClosedForm::from_rows(data.into_owned(), dim))
            }
        })
    }

    pub async fn velocity(
        &self,
        set: &Prepared,
        points: &[f32],
        t: f32,
    ) -> Result<Vec<f32>, GpuError> {
        match (self, set) {
            (Backend::Gpu(b), Prepared::Gpu(s)) => {
                b.closed_form.velocity(&b.gpu, s, points, t).await
            }
            (_, Prepared::Cpu(set)) => Ok(set.velocity(points, t)),
            (Backend::Cpu { .. }, Prepared::Gpu(_)) => unreachable_mix(),
        }
    }

    /// u*(x_q, t_q) for each row of `points` at its own time `times[q]`. On the CPU, `pause` is
    /// awaited between blocks of about 2^25 multiply-adds so a page stays responsive.
    pub async fn velocity_at<P, F>(
        &self,
        set: &Prepared,
        points: &[f32],
        times: &[f32],
        mut pause: P,
    ) -> Result<Vec<f32>, GpuError>
    where
        P: FnMut() -> F,
        F: std::future::Future<Output = ()>,
    {
        match (self, set) {
            (Backend::Gpu(b), Prepared::Gpu(s)) => {
                b.closed_form.velocity_at(&b.gpu, s, points, times).await
            }
            (_, Prepared::Cpu(set)) => {
                let per_block = ((1usize << 25) / set.data().len().max(1)).max(4) / 4 * 4;
                let mut out = Vec::with_capacity(points.len());
                for (x, t) in points
                    .chunks(per_block * set.dim())
                    .zip(times.chunks(per_block))
                {
                    out.extend(set.velocity_at(x, t));
                    pause().await;
                }
                Ok(out)
            }
            (Backend::Cpu { .. }, Prepared::Gpu(_)) => unreachable_mix(),
        }
    }

    /// `cached` when a figure already holds its set on this backend, else `data` prepared now
    /// (also when the cached set lives on a GPU the page no longer uses, after a device loss).
    pub fn prepared(
        &self,
        cached: Option<std::rc::Rc<Prepared>>,
        data: &[f32],
        dim: usize,
    ) -> Result<std::rc::Rc<Prepared>, GpuError> {
        match (cached, self) {
            (Some(p), Backend::Gpu(_)) if matches!(*p, Prepared::Gpu(_)) => Ok(p),
            (Some(p), Backend::Cpu { .. }) if matches!(*p, Prepared::Cpu(_)) => Ok(p),
            _ => Ok(std::rc::Rc::new(self.prepare(data, dim)?)),
        }
    }

    /// Euler from t0 to 1 in `steps` equal steps. On the CPU, `pause` is awaited after every
    /// step.
    pub async fn sample<P, F>(
        &self,
        set: &Prepared,
        x0: &[f32],
        steps: usize,
        t0: f32,
        mut pause: P,
    ) -> Result<Vec<f32>, GpuError>
    where
        P: FnMut() -> F,
        F: std::future::Future<Output = ()>,
    {
        let dt = (1.0 - t0) / steps as f32;
        match set {
            Prepared::Cpu(set) => Ok(cpu_euler(set, x0, t0, dt, steps, &mut pause, false).await),
            Prepared::Gpu(_) => self.euler(set, x0, t0, dt, steps).await,
        }
    }

    /// `steps` Euler steps of size `dt` from `t_start` (the caller keeps t below 1).
    pub async fn euler(
        &self,
        set: &Prepared,
        x0: &[f32],
        t_start: f32,
        dt: f32,
        steps: usize,
    ) -> Result<Vec<f32>, GpuError> {
        match (self, set) {
            (Backend::Gpu(b), Prepared::Gpu(s)) => {
                b.closed_form.euler(&b.gpu, s, x0, t_start, dt, steps).await
            }
            (_, Prepared::Cpu(set)) => Ok(flow::sampler::euler_range(
                x0,
                t_start,
                dt,
                steps,
                |x, t| set.velocity(x, t),
            )),
            (Backend::Cpu { .. }, Prepared::Gpu(_)) => unreachable_mix(),
        }
    }

    /// The positions after each of `steps` Euler steps (steps x m x dim, step-major): one
    /// submission and one readback on the GPU; on the CPU, `pause` is awaited after every step.
    pub async fn trajectory<P, F>(
        &self,
        set: &Prepared,
        x0: &[f32],
        t_start: f32,
        dt: f32,
        steps: usize,
        mut pause: P,
    ) -> Result<Vec<f32>, GpuError>
    where
        P: FnMut() -> F,
        F: std::future::Future<Output = ()>,
    {
        match (self, set) {
            (Backend::Gpu(b), Prepared::Gpu(s)) => {
                b.closed_form
                    .trajectory(&b.gpu, s, x0, t_start, dt, steps)
                    .await
            }
            (_, Prepared::Cpu(set)) => {
                Ok(cpu_euler(set, x0, t_start, dt, steps, &mut pause, true).await)
            }
            (Backend::Cpu { .. }, Prepared::Gpu(_)) => unreachable_mix(),
        }
    }
}

/// `steps` Euler steps on the CPU from `t_start`, awaiting `pause` after each: the positions at
/// the end, or (`record`) after every step, step-major.
async fn cpu_euler<P, F>(
    set: &flow::ClosedForm,
    x0: &[f32],
    t_start: f32,
    dt: f32,
    steps: usize,
    pause: &mut P,
    record: bool,
) -> Vec<f32>
where
    P: FnMut() -> F,
    F: std::future::Future<Output = ()>,
{
    let integrated = flow::sampler::euler_awaiting(x0, t_start, dt, steps, record, async |x, t| {
        let u = set.velocity(x, t);
        pause().await;
        Ok::<_, std::convert::Infallible>(u)
    });
    let Ok(x) = integrated.await;
    x
}

/// Work prepared on a GPU reached the CPU backend: the page dropped that GPU (its device was lost).
fn unreachable_mix() -> Result<Vec<f32>, GpuError> {
    Err(GpuError::DeviceLost(
        "this was prepared on a GPU device that is gone; the page now computes on the CPU, so \
         create it again (a new trainer or training set)"
            .into(),
    ))
}

/// A velocity network being trained (CFM or EFM) on one backend.
pub enum Training {
    Gpu(Box<crate::gpu::trainer::GpuTrainer>),
    Cpu(CpuTraining),
}

/// Floats of a training set written to the GPU at once by `prepare_paced` (1 MB: about a
/// millisecond of the page's thread).
pub const UPLOAD_PIECE: usize = 1 << 18;

/// Rows of a network evaluation at once: bounds the activations kept in memory.
pub const FORWARD_ROWS: usize = 1024;

/// The CPU's training run: the GPU trainer's twin, step for step the same arithmetic (it runs on
/// the page's thread or in a compute worker).
pub struct CpuTraining {
    pub shape: flow::mlp::MlpShape,
    pub options: crate::gpu::trainer::TrainOptions,
    data: Vec<f32>,
    pub params: Vec<f32>,
    adam: flow::mlp::Adam,
}

impl CpuTraining {
    /// `shape` from its seeded initialisation, to be trained on `data` (n x dim).
    pub fn new(
        shape: flow::mlp::MlpShape,
        data: Vec<f32>,
        options: crate::gpu::trainer::TrainOptions,
    ) -> CpuTraining {
        let params = shape.init(options.seed as u64);
        CpuTraining {
            shape,
            options,
            data,
            adam: flow::mlp::Adam::new(params.len(), options.lr),
            params,
        }
    }

    /// u_theta(x, t) for every row of `x` at its time in `t`, a block of FORWARD_ROWS rows at a
    /// time (rows are independent: the same values as in one pass, with bounded activations).
    pub fn velocity(&self, x: &[f32], t: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(x.len());
        for (xs, ts) in x
            .chunks(FORWARD_ROWS * self.shape.dim)
            .zip(t.chunks(FORWARD_ROWS))
        {
            out.extend(flow::mlp::forward(&self.shape, &self.params, xs, ts).0);
        }
        out
    }

    /// One optimisation step; returns its loss.
    pub fn step(&mut self) -> f32 {
        flow::mlp::train_step(
            &self.shape,
            &mut self.params,
            &mut self.adam,
            &self.data,
            self.options.batch,
            self.options.seed,
            self.options.target,
        )
    }
}

impl Backend {
    /// Starts training `shape` from its seeded initialisation on `data` (n x dim).
    pub fn training(
        &self,
        shape: flow::mlp::MlpShape,
        data: &[f32],
        options: crate::gpu::trainer::TrainOptions,
    ) -> Result<Training, GpuError> {
        Ok(match self {
            Backend::Gpu(b) => Training::Gpu(Box::new(crate::gpu::trainer::GpuTrainer::new(
                &b.gpu,
                &b.closed_form,
                b.training(),
                shape,
                &shape.init(options.seed as u64),
                data,
                options,
            )?)),
            Backend::Cpu { .. } => Training::Cpu(CpuTraining::new(shape, data.to_vec(), options)),
        })
    }

    /// `steps` optimisation steps; returns their losses. On the CPU, `pause` is awaited after
    /// every step (a pacer that yields only now and then keeps a page responsive cheaply).
    pub async fn train<P, F>(
        &self,
        training: &mut Training,
        steps: usize,
        mut pause: P,
    ) -> Result<Vec<f32>, GpuError>
    where
        P: FnMut() -> F,
        F: std::future::Future<Output = ()>,
    {
        match (self, training) {
            (Backend::Gpu(b), Training::Gpu(t)) => t.train(&b.gpu, steps).await,
            (_, Training::Cpu(t)) => {
                let mut losses = Vec::with_capacity(steps);
                for k in 0..steps {
                    losses.push(t.step());
                    if k + 1 < steps {
                        pause().await;
                    }
                }
                Ok(losses)
            }
            (Backend::Cpu { .. }, Training::Gpu(_)) => unreachable_mix(),
        }
    }

    /// u_theta(x, t) for every row of `x` at its time in `t`, on the GPU that trains it.
    pub async fn network_velocity(
        &self,
        trainer: &crate::gpu::trainer::GpuTrainer,
        x: &[f32],
        t: &[f32],
    ) -> Result<Vec<f32>, GpuError> {
        match self {
            Backend::Gpu(b) => trainer.velocity(&b.gpu, x, t).await,
            Backend::Cpu { .. } => unreachable_mix(),
        }
    }

    /// The network's samples from `x0` (flow::sampler::HybridPath: the closed form of `data`
    /// while t < tau, then the network), on the GPU that trains it: one submission, one readback.
    pub async fn network_path(
        &self,
        trainer: &crate::gpu::trainer::GpuTrainer,
        x0: &[f32],
        steps: usize,
        closed: (&[f32], f32),
        keep_frames: bool,
    ) -> Result<Vec<f32>, GpuError> {
        match self {
            Backend::Gpu(b) => {
                trainer
                    .path(&b.gpu, &b.closed_form, x0, steps, closed, keep_frames)
                    .await
            }
            Backend::Cpu { .. } => unreachable_mix(),
        }
    }

    /// The network's current parameters (flow::mlp layout).
    pub async fn parameters(&self, training: &Training) -> Result<Vec<f32>, GpuError> {
        match (self, training) {
            (Backend::Gpu(b), Training::Gpu(t)) => t.parameters(&b.gpu).await,
            (_, Training::Cpu(t)) => Ok(t.params.clone()),
            (Backend::Cpu { .. }, Training::Gpu(_)) => unreachable_mix(),
        }
    }
}
