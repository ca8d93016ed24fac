//! One API for the figures and the JS exports: the GPU when there is one, `flow` otherwise.

use super::{ClosedFormPipeline, Gpu, GpuError, TrainingSet};
use crate::flow;

pub struct GpuBackend {
    pub gpu: Gpu,
    closed_form: ClosedFormPipeline,
}

/// Where the work runs. Figures never care which.
pub enum Backend {
    Gpu(Box<GpuBackend>),
    /// The CPU path, with the reason the GPU was not used.
    Cpu { reason: String },
}

/// A training set prepared for a backend (uploaded once, reused across calls).
pub enum Prepared<'a> {
    Gpu(TrainingSet),
    Cpu { data: &'a [f32], dim: usize },
}

impl Backend {
    /// The GPU backend if a device can be had, else the CPU with the reason.
    pub async fn acquire() -> Backend {
        match Gpu::request().await {
            Ok(gpu) => Backend::from_gpu(gpu),
            Err(e) => Backend::Cpu {
                reason: e.to_string(),
            },
        }
    }

    pub fn from_gpu(gpu: Gpu) -> Backend {
        let closed_form = ClosedFormPipeline::new(&gpu);
        Backend::Gpu(Box::new(GpuBackend { gpu, closed_form }))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Gpu(_) => "webgpu",
            Backend::Cpu { .. } => "cpu",
        }
    }

    pub fn prepare<'a>(&self, data: &'a [f32], dim: usize) -> Result<Prepared<'a>, GpuError> {
        Ok(match self {
            Backend::Gpu(b) => Prepared::Gpu(TrainingSet::upload(&b.gpu, data, dim)?),
            Backend::Cpu { .. } => Prepared::Cpu { data, dim },
        })
    }

    pub async fn velocity(
        &self,
        set: &Prepared<'_>,
        points: &[f32],
        t: f32,
    ) -> Result<Vec<f32>, GpuError> {
        match (self, set) {
            (Backend::Gpu(b), Prepared::Gpu(s)) => b.closed_form.velocity(&b.gpu, s, points, t).await,
            (_, Prepared::Cpu { data, dim }) => Ok(flow::closed_form_velocity(data, *dim, points, t)),
            (Backend::Cpu { .. }, Prepared::Gpu(_)) => unreachable_mix(),
        }
    }

    pub async fn sample(
        &self,
        set: &Prepared<'_>,
        x0: &[f32],
        steps: usize,
        t0: f32,
    ) -> Result<Vec<f32>, GpuError> {
        match (self, set) {
            (Backend::Gpu(b), Prepared::Gpu(s)) => {
                b.closed_form.sample(&b.gpu, s, x0, steps, t0).await
            }
            (_, Prepared::Cpu { data, dim }) => Ok(flow::euler_sample(data, *dim, x0, steps, t0)),
            (Backend::Cpu { .. }, Prepared::Gpu(_)) => unreachable_mix(),
        }
    }
}

fn unreachable_mix() -> Result<Vec<f32>, GpuError> {
    Err(GpuError::Validation(
        "a GPU training set was handed to the CPU backend".into(),
    ))
}
