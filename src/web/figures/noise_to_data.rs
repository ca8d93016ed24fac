//! From noise to data: a small velocity network trains on two moons when the figure comes into
//! view, with its progress shown, and particles from N(0, I) flow along the learned field.

use super::driver::{Ctx, Settings, Sketch, Ui};
use super::{
    draw_on, draw_plane, run_controls, two_canvases, ChunkEnd, PauseToggle, Samples, TrainingRun,
    TwoCanvases,
};
use crate::catalog::FigureSpec;
use crate::charts::{curves, scenes};
use crate::flow::training::TrainOptions;
use crate::flow::{mlp, rng::Rng, Dataset};
use crate::web::controls::JsResult;
use futures_util::future::LocalBoxFuture;
use web_sys::HtmlCanvasElement;

const MAX_STEPS: usize = 2000;
const STEPS_PER_CHUNK: usize = 25;
const PARTICLES: usize = 300;
const FLOW_STEPS: usize = 30;
const LOOP_SECONDS: f64 = 3.0;
const OPTIONS: TrainOptions = TrainOptions {
    batch: 256,
    lr: 2e-3,
    seed: 0,
    target: mlp::Target::Cfm,
};

pub struct NoiseToData {
    plane: HtmlCanvasElement,
    loss_canvas: HtmlCanvasElement,
    pause: PauseToggle,
    data: Vec<f32>,
    shape: mlp::MlpShape,
    trainer: TrainingRun,
    losses: Vec<f32>,
    /// Particle positions at t = k / FLOW_STEPS under the latest parameters.
    frames: Vec<Vec<f32>>,
    reduced_motion: bool,
    phase: f64,
}

impl NoiseToData {
    fn reset(&mut self, _: &mut Ctx<'_>) {
        self.trainer.reset();
        self.losses.clear();
        self.frames.clear();
    }
}

impl Sketch for NoiseToData {
    const SPEC: &'static FigureSpec = &crate::catalog::noise_to_data::SPEC;
    const ID: &'static str = "nd";
    /// The run and the steps trained before the chunk.
    type Key = (u64, usize);
    type Output = ChunkEnd;

    fn mount(ui: &mut Ui<'_, Self>) -> JsResult<Self> {
        let TwoCanvases {
            left: plane,
            right: loss_canvas,
        } = two_canvases(
            ui.root,
            "Particles flowing from Gaussian noise along the learned velocity field",
            "The training loss against the step",
        )?;
        let pause = run_controls(ui, |s| &mut s.pause, Self::reset)?;
        let reduced_motion = web_sys::window()
            .and_then(|w| {
                w.match_media("(prefers-reduced-motion: reduce)")
                    .ok()
                    .flatten()
            })
            .is_some_and(|m| m.matches());
        Ok(NoiseToData {
            plane,
            loss_canvas,
            pause,
            data: Dataset::TwoMoons.sample(1000, 0),
            shape: mlp::MlpShape::new(2, 64, 3),
            trainer: TrainingRun::default(),
            losses: Vec::new(),
            frames: Vec::new(),
            reduced_motion,
            phase: 0.0,
        })
    }

    fn wanted(&self, _: &Settings) -> Option<Self::Key> {
        self.trainer.next(self.losses.len(), MAX_STEPS, &self.pause)
    }

    fn job(&mut self, _: &Self::Key, _: &mut Ctx<'_>) -> LocalBoxFuture<'static, ChunkEnd> {
        // The particles' paths under the chunk's parameters, drawn where the network is.
        let samples = Samples {
            x0: Rng::new(11).normals(2 * PARTICLES),
            steps: FLOW_STEPS,
            data: Vec::new(),
            tau: 0.0,
            frames: true,
        };
        let plan = (self.shape, OPTIONS, STEPS_PER_CHUNK);
        self.trainer.chunk(&self.data, plan, Some(samples))
    }

    /// A chunk ended: its losses, and the particles' paths under its parameters.
    fn done(&mut self, _: Self::Key, end: ChunkEnd, ctx: &mut Ctx<'_>) {
        let Some(chunk) = self.trainer.take(end, &mut self.pause, ctx.status) else {
            return;
        };
        let shape = self.shape;
        self.losses.extend(chunk.losses);
        if let Some(path) = chunk.samples {
            self.frames = path.chunks(2 * PARTICLES).map(<[f32]>::to_vec).collect();
        }
        let verb = if self.losses.len() >= MAX_STEPS {
            "Trained"
        } else {
            "Training"
        };
        ctx.status.set(&format!(
            "{verb} an MLP with {} hidden layers of width {} on {}: {} steps ({:.0} ms for the last {STEPS_PER_CHUNK}).",
            shape.depth,
            shape.hidden,
            chunk.backend.name(),
            self.losses.len(),
            chunk.ms
        ));
    }

    fn animate(&mut self, dt: f64, _: &mut Ctx<'_>) -> bool {
        if self.reduced_motion || self.frames.is_empty() {
            return false;
        }
        // Flow for LOOP_SECONDS, rest a third of that at t = 1, start again.
        self.phase = (self.phase + dt / LOOP_SECONDS) % 1.34;
        true
    }

    fn draw(&mut self, ctx: &mut Ctx<'_>) -> JsResult<()> {
        self.pause
            .show_paused(ctx.status, ctx.busy, self.losses.len(), MAX_STEPS);
        let t = if self.reduced_motion {
            1.0
        } else {
            self.phase.min(1.0)
        };
        let positions = match self.frames.len() {
            0 => Rng::new(11).normals(2 * PARTICLES),
            len => {
                let x = t * (len - 1) as f64;
                let k = (x.floor() as usize).min(len - 1);
                let f = (x - k as f64) as f32;
                let (a, b) = (&self.frames[k], &self.frames[(k + 1).min(len - 1)]);
                a.iter().zip(b).map(|(p, q)| p + f * (q - p)).collect()
            }
        };
        let caption = format!("network after {} steps", self.losses.len());
        let scene = scenes::particles(&self.data, &positions, t as f32, caption);
        draw_plane(&self.plane, &scene)?;
        // The loss chart changes with a chunk, not with the particles' animation.
        if !ctx.full {
            return Ok(());
        }
        let title = match self.losses.last() {
            Some(l) => format!("step {} / {MAX_STEPS}, loss {l:.3}", self.losses.len()),
            None => "waiting to start".to_string(),
        };
        draw_on(&self.loss_canvas, |area| {
            curves::draw_loss(area, &self.losses, MAX_STEPS, &title)
        })
    }

    fn csv(&self, _: &Settings) -> Option<String> {
        (!self.losses.is_empty()).then(|| {
            super::csv_rows(
                "step,loss",
                self.losses
                    .iter()
                    .enumerate()
                    .map(|(k, l)| format!("{},{l}", k + 1)),
            )
        })
    }
}
