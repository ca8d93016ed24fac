//! Which t matters: a network trained on a small training set, sampled with the hybrid model
//! (the closed form u* on [0, tau), the network after). A tau slider shows the samples; curves
//! of the energy distance to held-out data and of the distance to the nearest training point,
//! over tau in {0, 0.1, ..., 1}, are computed once training is done. Every sampling is a job:
//! in the worker that holds the network on the CPU path, on the GPU that trains it on the GPU
//! path.

use super::driver::{Ctx, Settings, Sketch, Ui};
use super::{
    draw_on, draw_plane, run_controls, two_canvases, ChunkEnd, PauseToggle, Samples, TrainingRun,
    TwoCanvases,
};
use crate::catalog::hybrid_tau as settings;
use crate::catalog::FigureSpec;
use crate::charts::{curves, palette, scenes};
use crate::flow::training::TrainOptions;
use crate::flow::{metrics, mlp, rng::Rng, Dataset};
use crate::web::controls::JsResult;
use futures_util::future::LocalBoxFuture;
use web_sys::HtmlCanvasElement;

const TRAIN_POINTS: usize = 40;
const TEST_POINTS: usize = 1000;
const MAX_STEPS: usize = 1500;
const STEPS_PER_CHUNK: usize = 50;
const PARTICLES: usize = 300;
const FLOW_STEPS: usize = 40;
const TAUS: usize = 11;
const OPTIONS: TrainOptions = TrainOptions {
    batch: 256,
    lr: 2e-3,
    seed: 1,
    target: mlp::Target::Cfm,
};

pub struct HybridTau {
    plane: HtmlCanvasElement,
    curves_canvas: HtmlCanvasElement,
    train: Vec<f32>,
    test: Vec<f32>,
    shape: mlp::MlpShape,
    trainer: TrainingRun,
    steps: usize,
    params: Option<Vec<f32>>,
    samples: Option<(f32, Vec<f32>)>,
    /// (tau, energy distance to the test set, mean distance to the nearest training point).
    curve: Vec<(f32, f32, f32)>,
    pause: PauseToggle,
}

/// A job of the figure.
#[derive(Clone, Copy, PartialEq)]
pub enum Work {
    /// The run's chunk from these steps; it samples at the tau of the moment after it.
    Chunk(u64, usize),
    /// Samples at this tau (its bits) from the network after these steps (trained or paused).
    Samples(u32, usize),
    /// The curves' k-th point, tau = k / (TAUS - 1), once trained.
    Curve(usize),
}

/// What a job gives back: a chunk's end (of no steps for samples alone), and the tau its
/// samples are for.
pub struct Done(ChunkEnd, f32);

impl HybridTau {
    fn reset(&mut self, _: &mut Ctx<'_>) {
        self.trainer.reset();
        self.steps = 0;
        self.params = None;
        self.samples = None;
        self.curve.clear();
    }

    /// The hybrid model's samples at `tau`, asked of the network.
    fn samples(&self, tau: f32) -> Samples {
        Samples {
            x0: Rng::new(21).normals(2 * PARTICLES),
            steps: FLOW_STEPS,
            data: self.train.clone(),
            tau,
            frames: false,
        }
    }
}

impl Sketch for HybridTau {
    const SPEC: &'static FigureSpec = &crate::catalog::hybrid_tau::SPEC;
    const ID: &'static str = "ht";
    type Key = Work;
    type Output = Done;

    fn mount(ui: &mut Ui<'_, Self>) -> JsResult<Self> {
        let TwoCanvases {
            left: plane,
            right: curves_canvas,
        } = two_canvases(
            ui.root,
            "Samples of the hybrid model and the training points",
            "Novelty and quality of the samples against tau",
        )?;
        let pause = run_controls(ui, |s| &mut s.pause, Self::reset)?;
        Ok(HybridTau {
            plane,
            curves_canvas,
            train: Dataset::TwoMoons.sample(TRAIN_POINTS, 0),
            test: Dataset::TwoMoons.sample(TEST_POINTS, 99),
            shape: mlp::MlpShape::new(2, 64, 3),
            trainer: TrainingRun::default(),
            steps: 0,
            params: None,
            samples: None,
            curve: Vec::new(),
            pause,
        })
    }

    /// Training first; then (or while paused) the samples at the slider's tau; then the curves.
    fn wanted(&self, chosen: &Settings) -> Option<Self::Key> {
        if let Some((run, steps)) = self.trainer.next(self.steps, MAX_STEPS, &self.pause) {
            return Some(Work::Chunk(run, steps));
        }
        self.params.as_ref()?;
        let tau = chosen.number(&settings::TAU) as f32;
        if self.samples.as_ref().is_none_or(|(t, _)| *t != tau) {
            return Some(Work::Samples(tau.to_bits(), self.steps));
        }
        (self.steps >= MAX_STEPS && self.curve.len() < TAUS)
            .then_some(Work::Curve(self.curve.len()))
    }

    fn job(&mut self, work: &Self::Key, ctx: &mut Ctx<'_>) -> LocalBoxFuture<'static, Done> {
        let tau = match *work {
            Work::Chunk(..) => ctx.settings().number(&settings::TAU) as f32,
            Work::Samples(bits, _) => f32::from_bits(bits),
            Work::Curve(k) => k as f32 / (TAUS - 1) as f32,
        };
        let samples = self.samples(tau);
        let end = match *work {
            Work::Chunk(..) => {
                let plan = (self.shape, OPTIONS, STEPS_PER_CHUNK);
                self.trainer.chunk(&self.train, plan, Some(samples))
            }
            // The network as the last chunk left it, in its worker while it is there.
            Work::Samples(..) | Work::Curve(_) => {
                let params = self.params.clone().unwrap_or_default();
                self.trainer.sample(self.shape, params, samples)
            }
        };
        Box::pin(async move { Done(end.await, tau) })
    }

    fn done(&mut self, work: Self::Key, Done(end, tau): Done, ctx: &mut Ctx<'_>) {
        let Some(chunk) = self.trainer.take(end, &mut self.pause, ctx.status) else {
            return; // reset meanwhile
        };
        let samples = chunk.samples.unwrap_or_default();
        match work {
            Work::Chunk(..) => {
                self.steps += chunk.losses.len();
                self.params = Some(chunk.params);
                self.samples = Some((tau, samples));
                ctx.status.set(&format!(
                    "Training on {} training points on {}: step {} of {MAX_STEPS}, loss {:.3}.",
                    TRAIN_POINTS,
                    chunk.backend.name(),
                    self.steps,
                    chunk.losses.last().copied().unwrap_or(f32::NAN)
                ));
            }
            Work::Samples(..) => self.samples = Some((tau, samples)),
            Work::Curve(_) => {
                let energy = metrics::energy_distance(&samples, &self.test, 2);
                let mean = metrics::mean_nearest_distance(&self.train, 2, &samples);
                self.curve.push((tau, energy, mean));
                if self.curve.len() == TAUS {
                    // The network's worker lets it go; the figure keeps its parameters.
                    self.trainer.release();
                    ctx.status.set("Done: drag τ. Small τ keeps the network's novelty; large τ copies the training points.");
                } else {
                    ctx.status.set(&format!(
                        "Trained. Measuring the hybrid model's samples: {} of {TAUS} values of τ.",
                        self.curve.len()
                    ));
                }
            }
        }
    }

    fn draw(&mut self, ctx: &mut Ctx<'_>) -> JsResult<()> {
        self.pause
            .show_paused(ctx.status, ctx.busy, self.steps, MAX_STEPS);
        let tau = ctx.settings().number(&settings::TAU) as f32;
        let positions = match &self.samples {
            Some((_, s)) => s.clone(),
            None => Rng::new(21).normals(2 * PARTICLES),
        };
        let caption = if self.steps < MAX_STEPS {
            format!("training: step {} / {MAX_STEPS}", self.steps)
        } else {
            format!("û* on [0, {tau:.2}), the network after")
        };
        let scene = scenes::particles(&self.train, &positions, 1.0, caption);
        draw_plane(&self.plane, &scene)?;
        let energy: Vec<(f32, f32)> = self.curve.iter().map(|c| (c.0, c.1)).collect();
        let nearest: Vec<(f32, f32)> = self.curve.iter().map(|c| (c.0, c.2)).collect();
        draw_on(&self.curves_canvas, |area| {
            curves::draw_tau_curves(
                area,
                "samples against τ (computed once trained)",
                &[
                    (
                        "energy distance to held-out data",
                        palette::PARTICLE,
                        &energy,
                    ),
                    (
                        "mean distance to nearest training point",
                        palette::DATA,
                        &nearest,
                    ),
                ],
                None,
                tau,
            )
        })
    }

    fn csv(&self, _: &Settings) -> Option<String> {
        (!self.curve.is_empty()).then(|| {
            super::csv_rows(
                "tau,energy_distance_to_held_out,mean_distance_to_nearest_training_point",
                self.curve.iter().map(|(t, e, d)| format!("{t},{e},{d}")),
            )
        })
    }
}
