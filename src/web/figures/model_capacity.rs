//! Model capacity: a network of the chosen width trains on n points; the figure plots
//! E||u_theta(x_t, t) - u*(x_t, t)||^2 against t, binned over [0, 1), which shows where the
//! network fails to learn the closed form (small and large t), and how close its samples come to
//! the training points: the mean distance to the nearest one (over the data scale) against n, one
//! point per (width, n) trained so far, beside the same for the closed form and for held-out
//! points of the distribution at every n of the slider (`flow::capacity`).

use super::{
    draw_on, draw_plane, train_next, two_panels, Figure, Later, PauseToggle, Status, TrainingRun,
    TwoPanels,
};
use crate::catalog::model_capacity as settings;
use crate::catalog::Kind;
use crate::charts::{curves, scenes};
use crate::flow::capacity::{self, References, FLOW_STEPS, SAMPLES as PARTICLES, WIDTHS};
use crate::flow::{self, mlp, rng::Rng};
use crate::gpu::trainer::TrainOptions;
use crate::web::controls::{JsResult, Listeners, Slider};
use std::cell::RefCell;
use std::rc::Rc;
use web_sys::{Element, HtmlCanvasElement};

const MAX_STEPS: usize = capacity::STEPS;
const STEPS_PER_CHUNK: usize = 50;
const BINS: usize = 20;
const PAIRS_PER_BIN: usize = 200;

struct State {
    plane: HtmlCanvasElement,
    chart: HtmlCanvasElement,
    distances: HtmlCanvasElement,
    status: Status,
    width: usize,
    n: usize,
    /// The training set, the shared noise and the two reference distances for n.
    refs: References,
    /// (n, held-out, closed form) for every n of the slider, filled one per frame.
    curve: Vec<(f32, f32, f32)>,
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
    visible: bool,
    needs_draw: bool,
}

impl State {
    fn shape(&self) -> mlp::MlpShape {
        mlp::MlpShape::new(2, self.width, 3)
    }

    fn restart(&mut self) {
        if self.refs.data.len() != 2 * self.n {
            self.refs = References::new(self.n);
        }
        self.trainer.reset();
        self.steps = 0;
        self.params = None;
        self.errors.clear();
        self.particles = self.refs.x0.clone();
        self.flow_step = 0;
        self.needs_draw = true;
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

    fn draw(&mut self) {
        self.needs_draw = false;
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
        let result = draw_plane(&self.plane, &scene)
            .and_then(|_| {
                draw_on(&self.chart, |area| {
                    curves::draw_binned_error(area, &self.errors, BINS)
                })
            })
            .and_then(|_| {
                draw_on(&self.distances, |area| {
                    curves::draw_capacity(
                        area,
                        &self.curve,
                        &self.runs,
                        (self.width, self.n as f32),
                    )
                })
            });
        if let Err(e) = result {
            self.status.error(&format!("{e:?}"));
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

pub struct ModelCapacity {
    state: Rc<RefCell<State>>,
    _listeners: Listeners,
}

impl ModelCapacity {
    pub fn mount(root: &Element) -> JsResult<ModelCapacity> {
        let mut listeners = Listeners::default();
        let TwoPanels {
            controls: panel,
            left: plane,
            right: chart,
            status,
        } = two_panels(
            root,
            "Samples of the trained network over the training points",
            "Squared error between the network and the closed form against t",
        )?;
        let distances = super::row_canvas(
            root,
            (960, 400),
            "figure-wide",
            "Mean distance of samples to the nearest training point against n: held-out points, the closed form, and each network trained so far",
        )?;
        // The status line stays last.
        root.append_child(status.element())?;
        let cell = Later::<State>::new();
        let c = cell.clone();
        Slider::new(
            &panel,
            &mut listeners,
            "cap-log2width",
            &settings::LOG2WIDTH,
            move |v| {
                c.with(|s| {
                    s.width = 1 << (v as usize);
                    s.restart();
                })
            },
        )?;
        let c = cell.clone();
        Slider::new(&panel, &mut listeners, "cap-n", &settings::N, move |v| {
            c.with(|s| {
                s.n = v as usize;
                s.restart();
            })
        })?;
        let pause = super::run_controls(
            &panel,
            &mut listeners,
            &cell,
            |s| &mut s.pause,
            |s| s.restart(),
        )?;
        let state = Rc::new(RefCell::new(State {
            plane,
            chart,
            distances,
            status,
            width: 1 << settings::LOG2WIDTH.number() as usize,
            n: settings::N.number() as usize,
            refs: References::new(100),
            curve: Vec::new(),
            runs: WIDTHS.iter().map(|&w| (w, Vec::new())).collect(),
            trainer: TrainingRun::default(),
            steps: 0,
            params: None,
            errors: Vec::new(),
            particles: Vec::new(),
            flow_step: 0,
            pause,
            visible: false,
            needs_draw: true,
        }));
        state.borrow_mut().restart();
        cell.set(&state);
        Ok(ModelCapacity {
            state,
            _listeners: listeners,
        })
    }
}

fn train_chunk(state: &Rc<RefCell<State>>) {
    let options = TrainOptions {
        batch: 256,
        lr: capacity::LR,
        seed: capacity::SEED,
        target: crate::flow::mlp::Target::Cfm,
    };
    let shape = state.borrow().shape();
    train_next(
        state,
        |s| &mut s.trainer,
        |s| &s.refs.data,
        (shape, options, STEPS_PER_CHUNK),
        |s, chunk| {
            s.steps += chunk.losses.len();
            if s.steps >= MAX_STEPS {
                s.trainer.release();
                s.params = Some(chunk.params);
            }
            s.status.set(&format!(
                "Training width {} on {} points on {}: step {} of {MAX_STEPS}, loss {:.3}.",
                s.width,
                s.n,
                chunk.backend.name(),
                s.steps,
                chunk.losses.last().copied().unwrap_or(f32::NAN)
            ));
            s.needs_draw = true;
        },
        |s, message| {
            s.status.error(&message);
            s.pause.stop();
        },
    );
}

impl Figure for ModelCapacity {
    fn csv(&self) -> Option<String> {
        let s = self.state.borrow();
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

    fn frame(&mut self, _now: f64) {
        let train = {
            let s = self.state.borrow();
            s.pause
                .show_paused(&s.status, s.trainer.busy, s.steps, MAX_STEPS);
            s.visible && !s.trainer.busy && !s.pause.paused && s.steps < MAX_STEPS
        };
        if train {
            train_chunk(&self.state);
        }
        let mut s = self.state.borrow_mut();
        // The reference curve, one n per frame.
        if s.visible && s.curve.len() < settings::N.steps() {
            let n = n_at(s.curve.len());
            let r = References::new(n);
            s.curve.push((n as f32, r.held_out, r.closed_form));
            s.needs_draw = true;
        }
        // Once trained: one bin of the error curve, or one Euler step of the samples, per frame.
        if let Some(params) = s.params.clone() {
            if s.errors.len() < BINS {
                let k = s.errors.len();
                let e = s.bin_error(&params, k);
                s.errors.push(e);
                s.needs_draw = true;
            } else if s.flow_step < FLOW_STEPS {
                let dt = 1.0 / FLOW_STEPS as f32;
                let t = s.flow_step as f32 * dt;
                let u = mlp::forward(&s.shape(), &params, &s.particles, &[t; PARTICLES]).0;
                for (a, b) in s.particles.iter_mut().zip(&u) {
                    *a += dt * b;
                }
                s.flow_step += 1;
                if s.flow_step == FLOW_STEPS {
                    let (width, n, d) = (s.width, s.n as f32, s.refs.distance(&s.particles));
                    if let Some((_, points)) = s.runs.iter_mut().find(|(w, _)| *w == width) {
                        points.retain(|p| p.0 != n);
                        points.push((n, d));
                        points.sort_by(|a, b| a.0.total_cmp(&b.0));
                    }
                    s.status.set(&format!(
                        "Done: width {width}, n = {n}: samples {d:.3} from the training set (closed form {:.3}, held-out points {:.3}). Move a slider to add a point.",
                        s.refs.closed_form, s.refs.held_out
                    ));
                }
                s.needs_draw = true;
            }
        }
        if s.needs_draw {
            s.draw();
        }
    }

    fn set_visible(&mut self, visible: bool) {
        let mut s = self.state.borrow_mut();
        s.visible = visible;
        s.needs_draw = true;
    }
}
