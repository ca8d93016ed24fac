//! A figure's network in training: one chunk of steps a job of the figure's driver, wherever
//! `web::compute` trains it, and the samples drawn from it after a chunk.

use super::widgets::{PauseToggle, Status};
use crate::web::compute::{ComputeError, Network, Training};
use futures_util::future::LocalBoxFuture;
use std::rc::Rc;

/// One chunk of a figure's background training: continues `training` (or starts it from the
/// seeded initialisation), runs `steps` steps, and returns it with their losses, the
/// parameters after them, and the network's samples when asked for.
async fn train_chunk(
    backend: Rc<crate::gpu::Backend>,
    training: Option<Training>,
    (shape, options, steps): ChunkPlan,
    data: &[f32],
    samples: Option<Samples>,
) -> Result<(Training, Chunk), ComputeError> {
    let start = js_sys::Date::now();
    let mut training = match training {
        Some(t) => t,
        None => Training::start(&backend, shape, data, options).await?,
    };
    let (losses, params) = training.train(steps, true).await?;
    let params = params.unwrap_or_default();
    let ms = js_sys::Date::now() - start;
    let samples = match samples {
        Some(s) => Some(s.draw(&training.network()).await?),
        None => None,
    };
    let chunk = Chunk {
        losses,
        params,
        samples,
        backend,
        ms,
    };
    Ok((training, chunk))
}

/// Samples a figure draws from its network after a chunk (compute::Network::path): from `x0`
/// in `steps` Euler steps, along the closed form of the small set `data` while t < tau, every
/// step's positions when `frames`.
pub struct Samples {
    pub x0: Vec<f32>,
    pub steps: usize,
    pub data: Vec<f32>,
    pub tau: f32,
    pub frames: bool,
}

impl Samples {
    /// Drawn from `network`, where it is (`Training::network`).
    async fn draw(&self, network: &Network<'_>) -> Result<Vec<f32>, ComputeError> {
        let closed = (&self.data[..], self.tau);
        network
            .path(&self.x0, self.steps, closed, self.frames)
            .await
    }
}

/// A job's end that had the run's network lent: the run, the network to give back, the result.
pub struct Lent<T> {
    run: u64,
    training: Option<Training>,
    result: Result<T, ComputeError>,
}

/// A figure's network in training, one chunk a job of the figure's driver: `next` is the key
/// of the chunk to train, `chunk` its future, `finish` takes its end.
#[derive(Default)]
pub struct TrainingRun {
    training: Option<Training>,
    /// Bumped by `reset` (and a failure): a chunk that ends for an older run is dropped.
    run: u64,
}

/// A chunk that ended: its losses, the parameters after it, the samples asked for, where and
/// in how long it trained.
pub struct Chunk {
    pub losses: Vec<f32>,
    pub params: Vec<f32>,
    pub samples: Option<Vec<f32>>,
    pub backend: Rc<crate::gpu::Backend>,
    pub ms: f64,
}

/// What a chunk trains: the network's shape, the optimiser's options, the steps per chunk.
pub type ChunkPlan = (
    crate::flow::mlp::MlpShape,
    crate::flow::training::TrainOptions,
    usize,
);

/// The end of a chunk's job: its run, the network to continue, what it trained.
pub type ChunkEnd = Lent<Chunk>;

impl Lent<Chunk> {
    /// The samples drawn after the chunk, if it trained and they were asked for.
    pub fn samples(&self) -> Option<&[f32]> {
        self.result.as_ref().ok()?.samples.as_deref()
    }

    /// How long it trained (0 when it failed).
    pub fn ms(&self) -> f64 {
        self.result.as_ref().map_or(0.0, |c| c.ms)
    }
}

impl TrainingRun {
    /// The run's number (bumped by `reset` and failures): part of a job's key.
    pub fn run(&self) -> u64 {
        self.run
    }

    /// Starts over from the seeded initialisation at the next chunk.
    pub fn reset(&mut self) {
        self.training = None;
        self.run += 1;
    }

    /// Lets the network go (its GPU buffers, its worker's copy) once training is over; the
    /// figure keeps the parameters it was given.
    pub fn release(&mut self) {
        self.training = None;
    }

    /// The key of the next chunk, (run, steps trained so far), while `steps` is under `max`
    /// and the reader has not paused.
    pub fn next(&self, steps: usize, max: usize, pause: &PauseToggle) -> Option<(u64, usize)> {
        (steps < max && !pause.paused).then_some((self.run, steps))
    }

    /// The next chunk as a job: continues the run's network (or starts it from the seeded
    /// initialisation on `data`, copied only then) for `steps` steps, then draws `samples`
    /// from it when asked.
    pub fn chunk(
        &mut self,
        data: &[f32],
        plan: ChunkPlan,
        samples: Option<Samples>,
    ) -> LocalBoxFuture<'static, ChunkEnd> {
        let training = self.training.take();
        let data = match training {
            Some(_) => Vec::new(),
            None => data.to_vec(),
        };
        let run = self.run;
        Box::pin(async move {
            let backend = crate::web::backend::figure_backend();
            match train_chunk(backend, training, plan, &data, samples).await {
                Ok((training, chunk)) => ChunkEnd {
                    run,
                    training: Some(training),
                    result: Ok(chunk),
                },
                Err(e) => ChunkEnd {
                    run,
                    training: None,
                    result: Err(e),
                },
            }
        })
    }

    /// Samples from the network with `params` as a job, without training it (`lend`: where
    /// the run holds the network, else from the parameters here). Its end is a chunk of no
    /// steps.
    pub fn sample(
        &mut self,
        shape: crate::flow::mlp::MlpShape,
        params: Vec<f32>,
        samples: Samples,
    ) -> LocalBoxFuture<'static, ChunkEnd> {
        let kept = params.clone();
        self.lend(shape, params, async move |network| {
            let x = samples.draw(network).await?;
            Ok(Chunk {
                losses: Vec::new(),
                params: kept,
                samples: Some(x),
                backend: crate::web::backend::figure_backend(),
                ms: 0.0,
            })
        })
    }

    /// `work` on the network with `params` as a job, without training it: on the network where
    /// the run holds it (lent to the job, back with `give_back`), else from the parameters here.
    pub fn lend<T, W>(
        &mut self,
        shape: crate::flow::mlp::MlpShape,
        params: Vec<f32>,
        work: W,
    ) -> LocalBoxFuture<'static, Lent<T>>
    where
        T: 'static,
        W: AsyncFnOnce(&Network<'_>) -> Result<T, ComputeError> + 'static,
    {
        let training = self.training.take();
        let run = self.run;
        Box::pin(async move {
            // Where the run holds a network that can still compute (not on a lost GPU).
            let network = match training.as_ref().filter(|t| !t.on_lost_gpu()) {
                Some(t) => t.network(),
                None => Network::Here(shape, &params),
            };
            let result = work(&network).await;
            Lent {
                run,
                // A failure ends the run, as a chunk's does.
                training: training.filter(|_| result.is_ok()),
                result,
            }
        })
    }

    /// A lent network's job ended (a chunk's too): its result, unless the run was reset
    /// meanwhile (None). A failure ends the run: the next chunk starts a new one.
    pub fn give_back<T>(&mut self, lent: Lent<T>) -> Option<Result<T, ComputeError>> {
        if lent.run != self.run {
            return None;
        }
        self.training = lent.training;
        if lent.result.is_err() {
            self.run += 1;
        }
        Some(lent.result)
    }

    /// A chunk ended: what it trained, unless the run was reset meanwhile (None); a failure
    /// ("Training failed: …") ends the run.
    pub fn finish(&mut self, end: ChunkEnd) -> Option<Result<Chunk, String>> {
        Some(
            self.give_back(end)?
                .map_err(|e| format!("Training failed: {e}")),
        )
    }

    /// `finish` for a figure with one run: a failure is shown in the status line and pauses the
    /// training (Resume starts a new run). The chunk, when there is one to take in.
    pub fn take(
        &mut self,
        end: ChunkEnd,
        pause: &mut PauseToggle,
        status: &Status,
    ) -> Option<Chunk> {
        match self.finish(end)? {
            Ok(chunk) => Some(chunk),
            Err(message) => {
                status.error(&message);
                pause.stop();
                None
            }
        }
    }
}
