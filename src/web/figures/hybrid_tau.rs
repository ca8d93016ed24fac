//! Which t matters: a network trained on a small training set, sampled with the hybrid model
//! (the closed form u* on [0, tau), the network after). A tau slider shows the samples; curves
//! of the energy distance to held-out data and of the distance to the nearest training point,
//! over tau in {0, 0.1, ..., 1}, are computed in the background once training is done.

use super::driver::{Ctx, Settings, Sketch, Ui};
use super::{
    draw_on, draw_plane, run_controls, two_canvases, ChunkEnd, PauseToggle, TrainingRun,
    TwoCanvases,
};
use crate::catalog::hybrid_tau as settings;
use crate::charts::{curves, scenes};
use crate::flow::{metrics, mlp, rng::Rng, sampler, Dataset};
use crate::gpu::trainer::TrainOptions;
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
/// Euler steps of the curve's samples computed per animation frame.
const STEPS_PER_FRAME: usize = 8;
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
    /// The curve's next point in progress: (tau, positions, Euler steps done).
    curve_samples: Option<(f32, Vec<f32>, usize)>,
    pause: PauseToggle,
}

impl HybridTau {
    fn reset(&mut self, _: &mut Ctx<'_>) {
        self.trainer.reset();
        self.steps = 0;
        self.params = None;
        self.samples = None;
        self.curve.clear();
        self.curve_samples = None;
    }

    fn sample(&self, params: &[f32], tau: f32) -> Vec<f32> {
        let x0 = Rng::new(21).normals(2 * PARTICLES);
        sampler::hybrid_sample(&self.train, 2, &x0, FLOW_STEPS, tau, |x, t| {
            mlp::forward(&self.shape, params, x, &vec![t; x.len() / 2]).0
        })
    }
}

impl Sketch for HybridTau {
    const NAME: &'static str = "hybrid-tau";
    const ID: &'static str = "ht";
    /// The run and the steps trained before the chunk.
    type Key = (u64, usize);
    type Output = ChunkEnd;

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
            curve_samples: None,
            pause,
        })
    }

    fn changed(&mut self, _: Option<&str>, ctx: &mut Ctx<'_>) {
        let tau = ctx.settings().number(&settings::TAU) as f32;
        if let Some(params) = &self.params {
            self.samples = Some((tau, self.sample(params, tau)));
        }
    }

    fn wanted(&self, _: &Settings) -> Option<Self::Key> {
        self.trainer.next(self.steps, MAX_STEPS, &self.pause)
    }

    fn job(&mut self, _: &Self::Key, _: &mut Ctx<'_>) -> LocalBoxFuture<'static, ChunkEnd> {
        self.trainer
            .chunk(&self.train, (self.shape, OPTIONS, STEPS_PER_CHUNK))
    }

    fn done(&mut self, _: Self::Key, end: ChunkEnd, ctx: &mut Ctx<'_>) {
        let Some(chunk) = self.trainer.take(end, &mut self.pause, ctx.status) else {
            return;
        };
        self.steps += chunk.losses.len();
        let tau = ctx.settings().number(&settings::TAU) as f32;
        self.samples = Some((tau, self.sample(&chunk.params, tau)));
        self.params = Some(chunk.params);
        ctx.status.set(&format!(
            "Training on {} training points on {}: step {} of {MAX_STEPS}, loss {:.3}.",
            TRAIN_POINTS,
            chunk.backend.name(),
            self.steps,
            chunk.losses.last().copied().unwrap_or(f32::NAN)
        ));
        if self.steps >= MAX_STEPS {
            self.trainer.release(); // the parameters are kept
        }
    }

    /// Once trained, a few Euler steps of the next tau's samples per frame, so no frame runs
    /// long while the curves fill in.
    fn animate(&mut self, _: f64, ctx: &mut Ctx<'_>) -> bool {
        if self.steps < MAX_STEPS || self.curve.len() >= TAUS {
            return false;
        }
        let Some(params) = &self.params else {
            return false;
        };
        let tau = self.curve.len() as f32 / (TAUS - 1) as f32;
        let (mut x, done) = match self.curve_samples.take() {
            Some((t, x, done)) if t == tau => (x, done),
            _ => (Rng::new(21).normals(2 * PARTICLES), 0),
        };
        let dt = 1.0 / FLOW_STEPS as f32;
        let end = (done + STEPS_PER_FRAME).min(FLOW_STEPS);
        for step in done..end {
            let t = step as f32 * dt;
            x = sampler::euler_range(&x, t, dt, 1, |x, t| {
                if t < tau {
                    crate::flow::closed_form_velocity(&self.train, 2, x, t)
                } else {
                    mlp::forward(&self.shape, params, x, &vec![t; x.len() / 2]).0
                }
            });
        }
        if end < FLOW_STEPS {
            self.curve_samples = Some((tau, x, end));
            return false;
        }
        let energy = metrics::energy_distance(&x, &self.test, 2);
        let mean = metrics::mean_nearest_distance(&self.train, 2, &x);
        self.curve.push((tau, energy, mean));
        if self.curve.len() == TAUS {
            ctx.status.set("Done: drag τ. Small τ keeps the network's novelty; large τ copies the training points.");
        }
        true
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
        draw_on(&self.curves_canvas, |area| {
            curves::draw_tau_curves(area, &self.curve, tau)
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
