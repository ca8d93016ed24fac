//! Where the page computes, as chosen once (`Backend`: a GPU, or the CPU path and why), and the
//! GPU side of it (`GpuBackend`: the device, its pipelines, and the work it runs). Everything on
//! the CPU path (the compute workers, the page's thread) is `web::compute`'s, the arithmetic
//! `flow`'s: this file knows the GPU only.

use super::trainer::{GpuTrainer, TrainingPipelines};
use super::{ClosedFormPipeline, Gpu, GpuError, TrainingSet};
use crate::flow::mlp::MlpShape;
use crate::flow::training::TrainOptions;
use std::cell::{Cell, OnceCell};
use std::rc::Rc;

/// A GPU device and its pipelines: what sets and trainers made on it compute with. Each holds
/// an `Rc` of it, so a set cannot meet another device's pipelines.
pub struct GpuBackend {
    pub gpu: Gpu,
    closed_form: ClosedFormPipeline,
    /// Compiled with the first trainer, shared by the rest.
    training: OnceCell<TrainingPipelines>,
    /// The device is gone (`mark_lost`): work on it is refused with a message that says what to
    /// do, rather than whatever the dead device would answer.
    lost: Cell<bool>,
}

/// Where the work runs. Figures never care which.
pub enum Backend {
    Gpu(Rc<GpuBackend>),
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

/// Floats of a training set written to the GPU at once by `upload_paced` (1 MB: about a
/// millisecond of the page's thread).
pub const UPLOAD_PIECE: usize = 1 << 18;

impl Backend {
    /// The GPU backend if a device can be had (on a software adapter only if
    /// `accept_software`), else the CPU with the reason.
    pub async fn acquire(accept_software: bool) -> Backend {
        match Gpu::request(accept_software).await {
            Ok(gpu) => Backend::Gpu(Rc::new(GpuBackend::new(gpu))),
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

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Gpu(_) => "webgpu",
            Backend::Cpu { .. } => "cpu",
        }
    }

    /// The GPU, when the page computes on one.
    pub fn gpu(&self) -> Option<&Rc<GpuBackend>> {
        match self {
            Backend::Gpu(b) => Some(b),
            Backend::Cpu { .. } => None,
        }
    }
}

impl GpuBackend {
    pub fn new(gpu: Gpu) -> GpuBackend {
        let closed_form = ClosedFormPipeline::new(&gpu);
        GpuBackend {
            gpu,
            closed_form,
            training: OnceCell::new(),
            lost: Cell::new(false),
        }
    }

    /// The training pipelines, compiled on first use.
    fn training(&self) -> &TrainingPipelines {
        self.training
            .get_or_init(|| TrainingPipelines::new(&self.gpu))
    }

    /// The device is gone: what was made on it can no longer compute.
    pub fn mark_lost(&self) {
        self.lost.set(true);
    }

    /// Whether the device is gone (`mark_lost`).
    pub fn is_lost(&self) -> bool {
        self.lost.get()
    }

    /// Ok while the device lives.
    fn alive(&self) -> Result<(), GpuError> {
        match self.lost.get() {
            false => Ok(()),
            true => Err(GpuError::DeviceLost(
                "this was prepared on a GPU device that is gone; the page now computes on the \
                 CPU, so create it again (a new trainer or training set)"
                    .into(),
            )),
        }
    }

    /// `data` (n x dim) written to the GPU UPLOAD_PIECE floats at a time, `pause` awaited
    /// between pieces (the browser copies what the queue writes on the page's thread).
    pub async fn upload_paced<P, F>(
        &self,
        data: &[f32],
        dim: usize,
        pause: P,
    ) -> Result<TrainingSet, GpuError>
    where
        P: FnMut() -> F,
        F: std::future::Future<Output = ()>,
    {
        self.alive()?;
        TrainingSet::upload_paced(&self.gpu, data, dim, UPLOAD_PIECE, pause).await
    }

    /// u*(x_q, t_q) for each row of `points` at its own time `times[q]`: one submission.
    pub async fn velocity_at(
        &self,
        set: &TrainingSet,
        points: &[f32],
        times: &[f32],
    ) -> Result<Vec<f32>, GpuError> {
        self.alive()?;
        self.closed_form
            .velocity_at(&self.gpu, set, points, times)
            .await
    }

    /// `steps` Euler steps of size `dt` from `t_start` (the caller keeps t below 1): the
    /// positions at the end, one submission and one readback.
    pub async fn euler(
        &self,
        set: &TrainingSet,
        x0: &[f32],
        t_start: f32,
        dt: f32,
        steps: usize,
    ) -> Result<Vec<f32>, GpuError> {
        self.alive()?;
        self.closed_form
            .euler(&self.gpu, set, x0, t_start, dt, steps)
            .await
    }

    /// The positions after each of `steps` Euler steps (steps x m x dim, step-major): one
    /// submission and one readback.
    pub async fn trajectory(
        &self,
        set: &TrainingSet,
        x0: &[f32],
        t_start: f32,
        dt: f32,
        steps: usize,
    ) -> Result<Vec<f32>, GpuError> {
        self.alive()?;
        self.closed_form
            .trajectory(&self.gpu, set, x0, t_start, dt, steps)
            .await
    }

    /// A trainer of `shape` from its seeded initialisation on `data` (n x dim).
    pub fn trainer(
        &self,
        shape: MlpShape,
        data: &[f32],
        options: TrainOptions,
    ) -> Result<GpuTrainer, GpuError> {
        self.alive()?;
        GpuTrainer::new(
            &self.gpu,
            &self.closed_form,
            self.training(),
            shape,
            &shape.init(options.seed as u64),
            data,
            options,
        )
    }

    /// `steps` optimisation steps of `trainer`; returns their losses.
    pub async fn train(
        &self,
        trainer: &mut GpuTrainer,
        steps: usize,
    ) -> Result<Vec<f32>, GpuError> {
        self.alive()?;
        trainer.train(&self.gpu, steps).await
    }

    /// The network's current parameters (flow::mlp layout).
    pub async fn parameters(&self, trainer: &GpuTrainer) -> Result<Vec<f32>, GpuError> {
        self.alive()?;
        trainer.parameters(&self.gpu).await
    }

    /// u_theta(x, t) for every row of `x` at its time in `t`.
    pub async fn network_velocity(
        &self,
        trainer: &GpuTrainer,
        x: &[f32],
        t: &[f32],
    ) -> Result<Vec<f32>, GpuError> {
        self.alive()?;
        trainer.velocity(&self.gpu, x, t).await
    }

    /// The network's samples from `x0` (flow::sampler::HybridPath: the closed form of `data`
    /// while t < tau, then the network): one submission, one readback.
    pub async fn network_path(
        &self,
        trainer: &GpuTrainer,
        x0: &[f32],
        steps: usize,
        closed: (&[f32], f32),
        keep_frames: bool,
    ) -> Result<Vec<f32>, GpuError> {
        self.alive()?;
        trainer
            .path(&self.gpu, &self.closed_form, x0, steps, closed, keep_frames)
            .await
    }
}
