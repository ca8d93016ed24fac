//! Model capacity: a network of the chosen width trains on n points; the figure plots
//! E||u_theta(x_t, t) - u*(x_t, t)||^2 against t, binned over [0, 1), which shows where the
//! network fails to learn the closed form (small and large t), and how close its samples come to
//! the training points: the mean distance to the nearest one (over the data scale) against n, one
//! point per (width, n) trained so far, beside the same for the closed form and for held-out
//! points of the distribution at every n of the slider (`flow::capacity`).

use super::driver::{Ctx, Settings, Sketch, Ui};
use super::{
    draw_on, draw_plane, run_controls, two_canvases, ChunkEnd, PauseToggle, TrainingRun,
    TwoCanvases,
};
use crate::catalog::model_capacity as settings;
use crate::catalog::Kind;
use crate::charts::{curves, scenes};
use crate::flow::capacity::{
    self, ReferenceRun, References, FLOW_STEPS, SAMPLES as PARTICLES, WIDTHS,
};
use crate::flow::{self, mlp, rng::Rng};
use crate::gpu::trainer::TrainOptions;
use crate::web::controls::JsResult;
use futures_util::future::LocalBoxFuture;
use web_sys::HtmlCanvasElement;

const MAX_STEPS: usize = capacity::STEPS;
const STEPS_PER_CHUNK: usize = 50;
const BINS: usize = 20;
const PAIRS_PER_BIN: usize = 200;
/// Milliseconds of a frame given to the reference curve's Euler steps.
const REFERENCE_MS: f64 = 4.0;
const OPTIONS: TrainOptions = TrainOptions {
    batch: 256,
    lr: capacity::LR,
    seed: capacity::SEED,
    target: mlp::Target::Cfm,
};

pub struct ModelCapacity {
    plane: HtmlCanvasElement,
    chart: HtmlCanvasElement,
    distances: HtmlCanvasElement,
    width: usize,
    n: usize,
    /// The training set, the shared noise and the two reference distances for n.
    refs: References,
    /// (n, held-out, closed form) for every n of the slider, filled in the frames.
    curve: Vec<(f32, f32, f32)>,
    /// The next n's references, a few Euler steps a frame.
    reference: Option<ReferenceRun>,
    /// Per width (WIDTHS order), (n, mean distance of the network's samples) measured so far.
    runs: Vec<(usize, Vec<(f32, f32)>)>,
    trainer: TrainingRun,
    steps: usize,
    params: Option<Vec<f32>>,
    /// Mean squared error per t bin, filled one bin per frame once trained.
    errors: Vec<f32>,
    /// Particles being integrated with the network, one Euler step per frame.
    particles: Vec<f32>,
    flow_step: usize,
    pause: PauseToggle,
}

impl ModelCapacity {
    fn shape(&self) -> mlp::MlpShape {
        mlp::MlpShape::new(2, self.width, 3)
    }

    fn restart(&mut self, ctx: &mut Ctx<'_>) {
        let s = ctx.settings();
        self.width = 1 << (s.number(&settings::LOG2WIDTH) as usize);
        self.n = s.number(&settings::N) as usize;
        if self.refs.data.len() != 2 * self.n {
            self.refs = References::new(self.n);
        }
        self.trainer.reset();
        self.steps = 0;
        self.params = None;
        self.errors.clear();
        self.particles = self.refs.x0.clone();
        self.flow_step = 0;
    }

    /// E||u_theta - u*||^2 over pairs (x0, x1) with t uniform in bin `k`.
    fn bin_error(&self, params: &[f32], k: usize) -> f32 {
        let mut rng = Rng::new(100 + k as u64);
        let n = self.refs.data.len() / 2;
        let mut total = 0.0f64;
        let mut xt = Vec::with_capacity(2 * PAIRS_PER_BIN);
        let mut ts = Vec::with_capacity(PAIRS_PER_BIN);
        for _ in 0..PAIRS_PER_BIN {
            let t = ((k as f64 + rng.uniform()) / BINS as f64) as f32;
            let i = rng.below(n);
            for c in 0..2 {
                let x0 = rng.normal() as f32;
                xt.push((1.0 - t) * x0 + t * self.refs.data[2 * i + c]);
            }
            ts.push(t);
        }
        let u = mlp::forward(&self.shape(), params, &xt, &ts).0;
        for (p, &t) in ts.iter().enumerate() {
            let star = flow::closed_form_velocity(&self.refs.data, 2, &xt[2 * p..2 * p + 2], t);
            total += ((u[2 * p] - star[0]).powi(2) + (u[2 * p + 1] - star[1]).powi(2)) as f64;
        }
        (total / PAIRS_PER_BIN as f64) as f32
    }
}

/// The n of the slider's k-th stop (the reference curve is computed at every one).
fn n_at(k: usize) -> usize {
    match settings::N.kind {
        Kind::Number { min, step, .. } => (min + k as f64 * step) as usize,
        Kind::Choice { .. } => 0,
    }
}

impl Sketch for ModelCapacity {
    const NAME: &'static str = "model-capacity";
    const ID: &'static str = "cap";
    /// The run and the steps trained before the chunk.
    type Key = (u64, usize);
    type Output = ChunkEnd;

    fn mount(ui: &mut Ui<'_, Self>) -> JsResult<Self> {
        let TwoCanvases {
            left: plane,
            right: chart,
        } = two_canvases(
            ui.root,
            "Samples of the trained network over the training points",
            "Squared error between the network and the closed form against t",
        )?;
        let distances = super::row_canvas(
            ui.root,
            (960, 400),
            "figure-wide",
            "Mean distance of samples to the nearest training point against n: held-out points, the closed form, and each network trained so far",
        )?;
        let pause = run_controls(ui, |s| &mut s.pause, Self::restart)?;
        Ok(ModelCapacity {
            plane,
            chart,
            distances,
            width: 0,
            n: 0,
            refs: References::new(100),
            curve: Vec::new(),
            reference: None,
            runs: WIDTHS.iter().map(|&w| (w, Vec::new())).collect(),
            trainer: TrainingRun::default(),
            steps: 0,
            params: None,
            errors: Vec::new(),
            particles: Vec::new(),
            flow_step: 0,
            pause,
        })
    }

    fn changed(&mut self, _: Option<&str>, ctx: &mut Ctx<'_>) {
        self.restart(ctx);
    }

    fn wanted(&self, _: &Settings) -> Option<Self::Key> {
        self.trainer.next(self.steps, MAX_STEPS, &self.pause)
    }

    fn job(&mut self, _: &Self::Key, _: &mut Ctx<'_>) -> LocalBoxFuture<'static, ChunkEnd> {
        self.trainer.chunk(
            &self.refs.data,
            (self.shape(), OPTIONS, STEPS_PER_CHUNK),
            None,
        )
    }

    fn done(&mut self, _: Self::Key, end: ChunkEnd, ctx: &mut Ctx<'_>) {
        let Some(chunk) = self.trainer.take(end, &mut self.pause, ctx.status) else {
            return;
        };
        self.steps += chunk.losses.len();
        if self.steps >= MAX_STEPS {
            self.trainer.release();
            self.params = Some(chunk.params);
        }
        ctx.status.set(&format!(
            "Training width {} on {} points on {}: step {} of {MAX_STEPS}, loss {:.3}.",
            self.width,
            self.n,
            chunk.backend.name(),
            self.steps,
            chunk.losses.last().copied().unwrap_or(f32::NAN)
        ));
    }

    /// The reference curve, Euler steps for REFERENCE_MS a frame; once trained, one bin of the
    /// error curve or one Euler step of the samples per frame.
    fn animate(&mut self, _: f64, ctx: &mut Ctx<'_>) -> bool {
        let mut moved = false;
        let start = js_sys::Date::now();
        while self.curve.len() < settings::N.steps() && js_sys::Date::now() - start < REFERENCE_MS {
            let n = n_at(self.curve.len());
            let run = self.reference.get_or_insert_with(|| ReferenceRun::new(n));
            if run.step() {
                let r = self.reference.take().map(ReferenceRun::finish);
                if let Some(r) = r {
                    self.curve.push((n as f32, r.held_out, r.closed_form));
                    moved = true;
                }
            }
        }
        let Some(params) = self.params.clone() else {
            return moved;
        };
        if self.errors.len() < BINS {
            let k = self.errors.len();
            let e = self.bin_error(&params, k);
            self.errors.push(e);
            return true;
        }
        if self.flow_step == FLOW_STEPS {
            return moved;
        }
        let dt = 1.0 / FLOW_STEPS as f32;
        let t = self.flow_step as f32 * dt;
        let u = mlp::forward(&self.shape(), &params, &self.particles, &[t; PARTICLES]).0;
        for (a, b) in self.particles.iter_mut().zip(&u) {
            *a += dt * b;
        }
        self.flow_step += 1;
        if self.flow_step == FLOW_STEPS {
            let (width, n, d) = (
                self.width,
                self.n as f32,
                self.refs.distance(&self.particles),
            );
            if let Some((_, points)) = self.runs.iter_mut().find(|(w, _)| *w == width) {
                points.retain(|p| p.0 != n);
                points.push((n, d));
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
            ctx.status.set(&format!(
                "Done: width {width}, n = {n}: samples {d:.3} from the training set (closed form {:.3}, held-out points {:.3}). Move a slider to add a point.",
                self.refs.closed_form, self.refs.held_out
            ));
        }
        true
    }

    fn draw(&mut self, ctx: &mut Ctx<'_>) -> JsResult<()> {
        self.pause
            .show_paused(ctx.status, ctx.busy, self.steps, MAX_STEPS);
        let done = self.flow_step == FLOW_STEPS;
        let caption = if done {
            format!(
                "distance to nearest: {:.3} (û* {:.3}, held-out {:.3})",
                self.refs.distance(&self.particles),
                self.refs.closed_form,
                self.refs.held_out
            )
        } else {
            format!(
                "width {}, n = {}: step {} / {MAX_STEPS}",
                self.width, self.n, self.steps
            )
        };
        let t = self.flow_step as f32 / FLOW_STEPS as f32;
        let scene = scenes::particles(&self.refs.data, &self.particles, t, caption);
        draw_plane(&self.plane, &scene)?;
        draw_on(&self.chart, |area| {
            curves::draw_binned_error(area, &self.errors, BINS)
        })?;
        draw_on(&self.distances, |area| {
            curves::draw_capacity(area, &self.curve, &self.runs, (self.width, self.n as f32))
        })
    }

    fn csv(&self, _: &Settings) -> Option<String> {
        let s = self;
        let (width, n) = (s.width, s.n);
        let errors = s.errors.iter().enumerate().map(move |(k, e)| {
            let t = (k as f32 + 0.5) / BINS as f32;
            format!("squared_error_vs_u_star,{width},{n},{t},{e}")
        });
        let references = s.curve.iter().flat_map(|&(n, held, closed)| {
            [
                format!("held_out_distance,,{n},,{held}"),
                format!("closed_form_distance,,{n},,{closed}"),
            ]
        });
        let runs = s.runs.iter().flat_map(|(w, points)| {
            points
                .iter()
                .map(move |(n, d)| format!("network_distance,{w},{n},,{d}"))
        });
        let rows: Vec<String> = errors.chain(references).chain(runs).collect();
        (!rows.is_empty()).then(|| super::csv_rows("quantity,width,n,t,value", rows.into_iter()))
    }
}
