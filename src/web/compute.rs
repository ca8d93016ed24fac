//! Where a closed-form computation runs: on the GPU when the page has one, else split across the
//! compute workers (`pool`), else on the page's own thread in paced slices.

use super::pool::{pool, Failure, PoolSet, PoolTrainer};
use super::shared::pace;
use crate::flow;
use crate::flow::mlp::MlpShape;
use crate::flow::sampler::HybridPath;
use crate::gpu::backend::{Prepared, FORWARD_ROWS, UPLOAD_PIECE};
use crate::gpu::trainer::{GpuTrainer, TrainOptions};
use crate::gpu::{Backend, GpuError, TrainingSet};
use std::cell::RefCell;
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

thread_local! {
    /// The sets figures made ready: figures that query the same data share one.
    static SHARED: RefCell<Vec<SharedSet>> = const { RefCell::new(Vec::new()) };
}

/// A training set ready for closed-form queries on one of the three.
pub enum Ready {
    Pool(PoolSet),
    Backend(Prepared),
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
        if matches!(backend, Backend::Cpu { .. }) {
            if let Some(pool) = pool().await {
                return Ok(Ready::Pool(pool.load_js(data.array(), dim).await));
            }
        }
        if let Backend::Gpu(b) = backend {
            // Straight from the caller's array to the GPU a piece at a time, through one
            // piece of wasm memory (the 31 MB of a digits-sized set are never copied whole).
            let set = TrainingSet::empty(&b.gpu, data.len as usize / dim, dim)?;
            data.pieces(UPLOAD_PIECE, |start, values| {
                set.write(&b.gpu, start, values)
            })
            .await
            .map_err(|e| ComputeError::Input(e.to_string()))?;
            return Ok(Ready::Backend(Prepared::Gpu(set)));
        }
        let values = data
            .copy()
            .await
            .map_err(|e| ComputeError::Input(e.to_string()))?;
        Ok(Ready::Backend(backend.prepare_owned(values, dim)?))
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
        let on_gpu = matches!(backend, Backend::Gpu(_));
        let fits = |c: &Ready| match c {
            Ready::Pool(set) => !on_gpu && set.is_live(),
            Ready::Backend(Prepared::Gpu(_)) => on_gpu,
            Ready::Backend(Prepared::Cpu(_)) => !on_gpu,
        };
        if let Some(c) = cached.filter(|c| fits(c)) {
            return Ok(c);
        }
        let shared = SHARED.with(|shared| {
            let mut shared = shared.borrow_mut();
            shared.retain(|(d, _, r)| d.strong_count() > 0 && r.strong_count() > 0);
            shared.iter().find_map(|(d, k, r)| {
                let r = r.upgrade().filter(|r| fits(r))?;
                (*k == dim && d.upgrade().is_some_and(|d| Rc::ptr_eq(&d, data))).then_some(r)
            })
        });
        if let Some(r) = shared {
            return Ok(r);
        }
        // The workers only serve the CPU path: the GPU path never starts them.
        let pool = if on_gpu { None } else { pool().await };
        let ready = match pool {
            Some(pool) => Rc::new(Ready::Pool(pool.load(data, dim).await)),
            None => Rc::new(Ready::Backend(
                backend.prepare_paced(data[..].into(), dim, pace).await?,
            )),
        };
        SHARED.with(|shared| {
            shared
                .borrow_mut()
                .push((Rc::downgrade(data), dim, Rc::downgrade(&ready)))
        });
        Ok(ready)
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
            Ready::Pool(set) => pool_euler(set, x0, t_start, dt, steps, true).await,
        }
    }

    /// The closed form's samples from `x0`: Euler in `steps` steps from `t0` to 1 (as
    /// `Backend::sample`): one submission on the GPU, one round trip a step on the workers, a
    /// turn for the page after each step on its own thread.
    pub async fn sample(
        &self,
        backend: &Backend,
        x0: &[f32],
        steps: usize,
        t0: f32,
    ) -> Result<Vec<f32>, ComputeError> {
        match self {
            Ready::Backend(set) => Ok(backend.sample(set, x0, steps, t0, pace).await?),
            Ready::Pool(set) => {
                pool_euler(set, x0, t0, (1.0 - t0) / steps as f32, steps, false).await
            }
        }
    }
}

/// flow::sampler::euler_awaiting with the velocity from the workers (the page's thread only
/// adds dt u): every step's positions (steps x m x dim) when `keep_frames`, else the last.
async fn pool_euler(
    set: &PoolSet,
    x0: &[f32],
    t_start: f32,
    dt: f32,
    steps: usize,
    keep_frames: bool,
) -> Result<Vec<f32>, ComputeError> {
    let m = x0.len() / set.dim();
    flow::sampler::euler_awaiting(x0, t_start, dt, steps, keep_frames, async |x, t| {
        set.velocity_at(x, &vec![t; m]).await.map_err(failed)
    })
    .await
}

/// A velocity network being trained: on the GPU, in the pool's training worker (the CPU path),
/// or on the page's thread in paced steps where workers cannot run.
pub enum Training {
    Backend(crate::gpu::backend::Training),
    Pool(PoolTrainer),
}

impl Training {
    /// `shape` from its seeded initialisation, to be trained on `data` (n x dim).
    pub async fn start(
        backend: &Backend,
        shape: MlpShape,
        data: &[f32],
        options: TrainOptions,
    ) -> Result<Training, ComputeError> {
        if matches!(backend, Backend::Cpu { .. }) {
            if let Some(pool) = pool().await {
                if let Some(trainer) = pool.trainer(shape, data, options).await {
                    return Ok(Training::Pool(trainer));
                }
            }
        }
        Ok(Training::Backend(backend.training(shape, data, options)?))
    }

    /// `steps` optimisation steps: their losses, and the parameters after them when
    /// `with_params` (in the same round trip to a worker).
    pub async fn train(
        &mut self,
        backend: &Backend,
        steps: usize,
        with_params: bool,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>), ComputeError> {
        match self {
            Training::Pool(t) => t.train(steps, with_params).await.map_err(failed),
            Training::Backend(t) => {
                let losses = backend.train(t, steps, pace).await?;
                let params = match with_params {
                    true => Some(backend.parameters(t).await?),
                    false => None,
                };
                Ok((losses, params))
            }
        }
    }

    /// The network as it is now, to evaluate: in the worker that trains it, on the GPU that
    /// trains it, or from its parameters here.
    pub async fn network<'a>(
        &'a self,
        backend: &'a Backend,
        shape: MlpShape,
    ) -> Result<Network<'a>, ComputeError> {
        Ok(match self {
            Training::Pool(t) => Network::Pool(t),
            Training::Backend(crate::gpu::backend::Training::Gpu(t)) => Network::Gpu(backend, t),
            Training::Backend(t) => Network::Here(shape, backend.parameters(t).await?),
        })
    }
}

/// A trained network to evaluate: in its worker, on its GPU, or from its parameters on the
/// page's thread.
pub enum Network<'a> {
    Pool(&'a PoolTrainer),
    Gpu(&'a Backend, &'a GpuTrainer),
    Here(MlpShape, Vec<f32>),
}

impl Network<'_> {
    /// u_theta(x, t) for every row of `x` at its time: in the network's worker, on its GPU, or on
    /// the page's thread a block of FORWARD_ROWS rows between turns.
    pub async fn velocity(&self, x: &[f32], t: &[f32]) -> Result<Vec<f32>, ComputeError> {
        match self {
            Network::Pool(trainer) => trainer.velocity(x, t).await.map_err(failed),
            Network::Gpu(backend, trainer) => Ok(backend.network_velocity(trainer, x, t).await?),
            Network::Here(shape, params) => Ok(forward_here(shape, params, x, t).await),
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
            Network::Pool(trainer) => trainer
                .path(x0, steps, closed, keep_frames)
                .await
                .map_err(failed),
            Network::Gpu(backend, trainer) => Ok(backend
                .network_path(trainer, x0, steps, closed, keep_frames)
                .await?),
            Network::Here(shape, params) => {
                let (data, tau) = closed;
                let mut path = HybridPath::new(data, shape.dim, x0, steps, tau, keep_frames);
                while !path.done() {
                    path.step(|x, t| {
                        crate::flow::mlp::forward(shape, params, x, &vec![t; x.len() / shape.dim]).0
                    });
                    pace().await;
                }
                Ok(path.finish())
            }
        }
    }
}

/// u_theta(x, t) from `params` on the page's thread, a block of FORWARD_ROWS rows between turns.
async fn forward_here(shape: &MlpShape, params: &[f32], x: &[f32], t: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for (xs, ts) in x
        .chunks(FORWARD_ROWS * shape.dim)
        .zip(t.chunks(FORWARD_ROWS))
    {
        out.extend(crate::flow::mlp::forward(shape, params, xs, ts).0);
        pace().await;
    }
    out
}

fn failed(f: Failure) -> ComputeError {
    match f {
        Failure::Input(m) => ComputeError::Input(m),
        Failure::Broken(m) => ComputeError::Worker(m),
    }
}
