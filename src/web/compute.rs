//! Where a closed-form computation runs: on the GPU when the page has one, else split across the
//! compute workers (`pool`), else on the page's own thread in paced slices.

use super::pool::{pool, Failure, PoolSet};
use super::shared::pace;
use crate::gpu::backend::Prepared;
use crate::gpu::{Backend, GpuError};
use std::rc::Rc;

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

/// A training set ready for closed-form queries on one of the three.
pub enum Ready {
    Pool(PoolSet),
    Backend(Prepared),
}

impl Ready {
    /// `data` (n x dim) made ready, taken over by the backend where it keeps a copy.
    pub async fn owned(
        backend: &Backend,
        data: Vec<f32>,
        dim: usize,
    ) -> Result<Ready, ComputeError> {
        if matches!(backend, Backend::Cpu { .. }) {
            if let Some(pool) = pool().await {
                return Ok(Ready::Pool(pool.load(&data, dim)));
            }
        }
        Ok(Ready::Backend(backend.prepare_owned(data, dim)?))
    }

    /// The caller's `data` (n x dim) made ready: split across the workers straight from the
    /// caller's array (checked there), else copied, checked and prepared on the backend.
    pub(super) async fn from_js(
        backend: &Backend,
        data: &super::api::Floats,
        dim: usize,
    ) -> Result<Ready, ComputeError> {
        if matches!(backend, Backend::Cpu { .. }) {
            if let Some(pool) = pool().await {
                return Ok(Ready::Pool(pool.load_js(data.array(), dim)));
            }
        }
        let values = data
            .copy()
            .map_err(|e| ComputeError::Input(e.to_string()))?;
        Ok(Ready::Backend(backend.prepare_owned(values, dim)?))
    }

    /// `cached` when a figure already holds its set where the page now computes, else `data`
    /// made ready now (also after a device loss moved the page from the GPU to the CPU).
    pub async fn cached(
        backend: &Backend,
        cached: Option<Rc<Ready>>,
        data: &[f32],
        dim: usize,
    ) -> Result<Rc<Ready>, ComputeError> {
        let on_gpu = matches!(backend, Backend::Gpu(_));
        if let Some(c) = cached {
            let fits = match &*c {
                Ready::Pool(_) => !on_gpu,
                Ready::Backend(Prepared::Gpu(_)) => on_gpu,
                Ready::Backend(Prepared::Cpu(_)) => !on_gpu,
            };
            if fits {
                return Ok(c);
            }
        }
        if !on_gpu {
            if let Some(pool) = pool().await {
                return Ok(Rc::new(Ready::Pool(pool.load(data, dim))));
            }
        }
        Ok(Rc::new(Ready::Backend(backend.prepare(data, dim)?)))
    }

    /// u*(x_q, t_q) for every row of `points`, each at its own time.
    pub async fn velocity_at(
        &self,
        backend: &Backend,
        points: &[f32],
        times: &[f32],
    ) -> Result<Vec<f32>, ComputeError> {
        match self {
            Ready::Pool(set) => set.velocity_at(points, times).await.map_err(failed),
            Ready::Backend(set) => Ok(backend.velocity_at(set, points, times, pace).await?),
        }
    }

    /// The positions after each of `steps` Euler steps of size `dt` from `t_start` (steps x m x
    /// dim, step-major): one submission on the GPU; on the workers one round trip a step (the
    /// page's thread only adds dt u); on the page's thread a turn for the page after each step.
    pub async fn trajectory(
        &self,
        backend: &Backend,
        x0: &[f32],
        t_start: f32,
        dt: f32,
        steps: usize,
    ) -> Result<Vec<f32>, ComputeError> {
        match self {
            Ready::Backend(set) => Ok(backend
                .trajectory(set, x0, t_start, dt, steps, super::shared::yield_to_page)
                .await?),
            Ready::Pool(set) => {
                // flow::sampler::euler_range's steps, with the velocity from the workers.
                let m = x0.len() / set.dim();
                let mut x = x0.to_vec();
                let mut frames = Vec::with_capacity(steps * x0.len());
                for k in 0..steps {
                    let t = crate::flow::sampler::step_time(t_start, dt, k);
                    let u = set.velocity_at(&x, &vec![t; m]).await.map_err(failed)?;
                    for (a, b) in x.iter_mut().zip(&u) {
                        *a += dt * b;
                    }
                    frames.extend_from_slice(&x);
                }
                Ok(frames)
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
