//! Model capacity: a network of the chosen width trains on n points; the figure plots
//! E||u_theta(x_t, t) - u*(x_t, t)||^2 against t, binned over [0, 1), which shows where the
//! network fails to learn the closed form (small and large t), and how close its samples come to
//! the training points: the mean distance to the nearest one (over the data scale) against n, one
//! point per (width, n) trained so far, beside the same for the closed form and for held-out
//! points of the distribution at every n of the slider (`flow::capacity`).
//!
//! Every computation is a job: the training chunks; then, on the network where it trains (its
//! worker, or the GPU), its samples' path and its velocity at the error pairs, with the closed
//! form at the same pairs where closed forms are computed (the workers or the GPU); then the
//! reference curve, one n a job. The page's thread only draws, a frame of the samples' path at a
//! time.

use super::driver::{Ctx, Settings, Sketch, Ui};
use super::{
    draw_on, draw_plane, run_controls, two_canvases, ChunkEnd, Lent, PauseToggle, TrainingRun,
    TwoCanvases,
};
use crate::catalog::model_capacity as settings;
use crate::catalog::FigureSpec;
use crate::catalog::Kind;
use crate::charts::layout::Fit;
use crate::charts::{curves, scenes};
use crate::flow::capacity::{self, References, FLOW_STEPS, SAMPLES as PARTICLES, WIDTHS};
use crate::flow::training::TrainOptions;
use crate::flow::{mlp, rng::Rng};
use crate::web::compute::{ComputeError, Network, Ready};
use crate::web::controls::JsResult;
use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;
use std::rc::Rc;
use web_sys::HtmlCanvasElement;

const MAX_STEPS: usize = capacity::STEPS;
const STEPS_PER_CHUNK: usize = 50;
const BINS: usize = 20;
const PAIRS_PER_BIN: usize = 200;
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
    /// The training set, the shared noise and the two reference distances for n (the closed
    /// form's NaN until measured).
    refs: References,
    /// (n, held-out, closed form) for the slider's first stops, one job each.
    curve: Vec<(f32, f32, f32)>,
    /// Why the reference curve stopped, when it failed.
    curve_failed: bool,
    /// Per width (WIDTHS order), (n, mean distance of the network's samples) measured so far.
    runs: Vec<(usize, Vec<(f32, f32)>)>,
    trainer: TrainingRun,
    steps: usize,
    params: Option<Vec<f32>>,
    /// What the trained network measured.
    measured: Option<Measured>,
    /// The frame of the samples' path shown (one more each animation frame).
    flow_step: usize,
    /// The charts beside the plane changed in an animation frame (the path's end adds a run's
    /// point): drawn with the plane then; other animation frames draw the plane alone.
    charts_stale: bool,
    pause: PauseToggle,
}

/// A job of the figure.
#[derive(Clone, Copy, PartialEq)]
pub enum Work {
    /// The run's chunk from these steps.
    Chunk(u64, usize),
    /// The trained network of this run, measured.
    Measure(u64),
    /// The reference curve at the slider's k-th n.
    Reference(usize),
}

/// What a job gives back.
pub enum Done {
    Chunk(ChunkEnd),
    Measured(Lent<Measured>),
    /// The k-th n's (held-out, closed form) distances.
    Reference(usize, Result<(f32, f32), ComputeError>),
}

/// What the trained network measured: its samples' path from the shared noise (FLOW_STEPS + 1
/// frames), the mean squared error against the closed form per t bin, and the closed form's own
/// samples from the same noise.
pub struct Measured {
    frames: Vec<f32>,
    errors: Vec<f32>,
    closed_form: Vec<f32>,
}

/// The pairs of the error curve: PAIRS_PER_BIN x_t (and t) per bin, t uniform in the bin.
fn error_pairs(data: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let n = data.len() / 2;
    let mut xt = Vec::with_capacity(2 * BINS * PAIRS_PER_BIN);
    let mut ts = Vec::with_capacity(BINS * PAIRS_PER_BIN);
    for k in 0..BINS {
        let mut rng = Rng::new(100 + k as u64);
        for _ in 0..PAIRS_PER_BIN {
            let t = ((k as f64 + rng.uniform()) / BINS as f64) as f32;
            let i = rng.below(n);
            for c in 0..2 {
                let x0 = rng.normal() as f32;
                xt.push((1.0 - t) * x0 + t * data[2 * i + c]);
            }
            ts.push(t);
        }
    }
    (xt, ts)
}

/// The trained network measured where it is, the closed forms where they are computed.
async fn measure(
    network: &Network<'_>,
    data: Rc<Vec<f32>>,
    x0: Vec<f32>,
) -> Result<Measured, ComputeError> {
    let frames = network.path(&x0, FLOW_STEPS, (&[], 0.0), true).await?;
    let (xt, ts) = error_pairs(&data);
    let u = network.velocity(&xt, &ts).await?;
    let backend = crate::web::backend::figure_backend();
    let set = Ready::cached(&backend, None, &data, 2).await?;
    let star = set.velocity_at(&xt, &ts).await?;
    let closed_form = set.sample(&x0, FLOW_STEPS, 0.0).await?;
    let errors = u
        .chunks(2 * PAIRS_PER_BIN)
        .zip(star.chunks(2 * PAIRS_PER_BIN))
        .map(|(u, star)| {
            let total: f64 = u
                .iter()
                .zip(star)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum();
            (total / PAIRS_PER_BIN as f64) as f32
        })
        .collect();
    Ok(Measured {
        frames,
        errors,
        closed_form,
    })
}

/// The reference distances at n: held-out points' (here, cheap) and the closed form's samples'
/// (sampled where closed forms are computed).
async fn reference(n: usize) -> Result<(f32, f32), ComputeError> {
    let mut refs = References::without_closed_form(n);
    let data = Rc::new(refs.data.clone());
    let backend = crate::web::backend::figure_backend();
    let set = Ready::cached(&backend, None, &data, 2).await?;
    let samples = set.sample(&refs.x0, FLOW_STEPS, 0.0).await?;
    refs.measure_closed_form(&samples);
    Ok((refs.held_out, refs.closed_form))
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
            self.refs = References::without_closed_form(self.n);
        }
        self.trainer.reset();
        self.steps = 0;
        self.params = None;
        self.measured = None;
        self.flow_step = 0;
    }

    /// The samples' positions shown now: the network's path once measured, else the noise.
    fn particles(&self) -> &[f32] {
        let frame = 2 * PARTICLES;
        match &self.measured {
            Some(m) => &m.frames[self.flow_step * frame..(self.flow_step + 1) * frame],
            None => &self.refs.x0,
        }
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
    const SPEC: &'static FigureSpec = &crate::catalog::model_capacity::SPEC;
    const ID: &'static str = "cap";
    type Key = Work;
    type Output = Done;

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
            Fit::wide(960, 400),
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
            refs: References::without_closed_form(100),
            curve: Vec::new(),
            curve_failed: false,
            runs: WIDTHS.iter().map(|&w| (w, Vec::new())).collect(),
            trainer: TrainingRun::default(),
            steps: 0,
            params: None,
            measured: None,
            flow_step: 0,
            charts_stale: false,
            pause,
        })
    }

    fn changed(&mut self, _: Option<&str>, ctx: &mut Ctx<'_>) {
        self.restart(ctx);
    }

    /// Training first, then the trained network's measures, then the reference curve.
    fn wanted(&self, _: &Settings) -> Option<Self::Key> {
        if let Some((run, steps)) = self.trainer.next(self.steps, MAX_STEPS, &self.pause) {
            return Some(Work::Chunk(run, steps));
        }
        // Paused (also after a failure, until Resume or Reset): not measured.
        if self.steps >= MAX_STEPS && self.measured.is_none() && !self.pause.paused {
            return Some(Work::Measure(self.trainer.run()));
        }
        (!self.curve_failed && self.curve.len() < settings::N.steps())
            .then_some(Work::Reference(self.curve.len()))
    }

    fn job(&mut self, work: &Self::Key, _: &mut Ctx<'_>) -> LocalBoxFuture<'static, Done> {
        match *work {
            Work::Chunk(..) => {
                let plan = (self.shape(), OPTIONS, STEPS_PER_CHUNK);
                Box::pin(
                    self.trainer
                        .chunk(&self.refs.data, plan, None)
                        .map(Done::Chunk),
                )
            }
            Work::Measure(_) => {
                let params = self.params.clone().unwrap_or_default();
                let (data, x0) = (Rc::new(self.refs.data.clone()), self.refs.x0.clone());
                let job = self
                    .trainer
                    .lend(self.shape(), params, async move |network| {
                        measure(network, data, x0).await
                    });
                Box::pin(job.map(Done::Measured))
            }
            Work::Reference(k) => {
                Box::pin(async move { Done::Reference(k, reference(n_at(k)).await) })
            }
        }
    }

    fn done(&mut self, _: Self::Key, done: Done, ctx: &mut Ctx<'_>) {
        match done {
            Done::Chunk(end) => {
                let Some(chunk) = self.trainer.take(end, &mut self.pause, ctx.status) else {
                    return;
                };
                self.steps += chunk.losses.len();
                if self.steps >= MAX_STEPS {
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
            Done::Measured(lent) => match self.trainer.give_back(lent) {
                None => {}
                Some(Err(e)) => {
                    ctx.status
                        .error(&format!("Measuring the network failed: {e}"));
                    self.pause.stop();
                }
                Some(Ok(measured)) => {
                    // The network's worker (or GPU buffers) let go; the figure keeps what it
                    // measured.
                    self.trainer.release();
                    self.refs.measure_closed_form(&measured.closed_form);
                    self.measured = Some(measured);
                    self.flow_step = 0;
                }
            },
            Done::Reference(k, result) => match result {
                Ok((held_out, closed_form)) if k == self.curve.len() => {
                    self.curve.push((n_at(k) as f32, held_out, closed_form));
                }
                Ok(_) => {}
                Err(e) => {
                    self.curve_failed = true;
                    ctx.status
                        .error(&format!("The reference curve failed: {e}"));
                }
            },
        }
    }

    /// A frame of the network's samples' path at a time, once measured.
    fn animate(&mut self, _: f64, ctx: &mut Ctx<'_>) -> bool {
        if self.measured.is_none() || self.flow_step == FLOW_STEPS {
            return false;
        }
        self.flow_step += 1;
        if self.flow_step == FLOW_STEPS {
            let (width, n, d) = (
                self.width,
                self.n as f32,
                self.refs.distance(self.particles()),
            );
            if let Some((_, points)) = self.runs.iter_mut().find(|(w, _)| *w == width) {
                points.retain(|p| p.0 != n);
                points.push((n, d));
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
            self.charts_stale = true;
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
                self.refs.distance(self.particles()),
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
        let scene = scenes::particles(&self.refs.data, self.particles(), t, caption);
        draw_plane(&self.plane, &scene)?;
        if !(ctx.full || self.charts_stale) {
            return Ok(());
        }
        self.charts_stale = false;
        let errors = self.measured.as_ref().map_or(&[][..], |m| &m.errors);
        draw_on(&self.chart, |area| {
            curves::draw_binned_error(area, errors, BINS)
        })?;
        draw_on(&self.distances, |area| {
            curves::draw_capacity(area, &self.curve, &self.runs, (self.width, self.n as f32))
        })
    }

    fn csv(&self, _: &Settings) -> Option<String> {
        let s = self;
        let (width, n) = (s.width, s.n);
        let errors = s.measured.iter().flat_map(|m| &m.errors);
        let errors = errors.enumerate().map(move |(k, e)| {
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
