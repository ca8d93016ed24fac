//! Which t matters: a network trained on a small training set, sampled with the hybrid model
//! (the closed form u* on [0, tau), the network after). A tau slider shows the samples; curves
//! of the energy distance to held-out data and of the distance to the nearest training point,
//! over tau in {0, 0.1, ..., 1}, are computed in the background once training is done.

use super::{
    draw_on, draw_plane, train_next, two_panels, Figure, Later, PauseToggle, Status, TrainingRun,
    TwoPanels,
};
use crate::catalog::hybrid_tau as settings;
use crate::charts::{curves, scenes};
use crate::flow::{metrics, mlp, rng::Rng, sampler, Dataset};
use crate::gpu::trainer::TrainOptions;
use crate::web::controls::{JsResult, Listeners, Slider};
use std::cell::RefCell;
use std::rc::Rc;
use web_sys::{Element, HtmlCanvasElement};

const TRAIN_POINTS: usize = 40;
const TEST_POINTS: usize = 1000;
const MAX_STEPS: usize = 1500;
const STEPS_PER_CHUNK: usize = 50;
const PARTICLES: usize = 300;
const FLOW_STEPS: usize = 40;
const TAUS: usize = 11;
/// Euler steps of the curve's samples computed per animation frame.
const STEPS_PER_FRAME: usize = 8;

struct State {
    plane: HtmlCanvasElement,
    curves_canvas: HtmlCanvasElement,
    status: Status,
    train: Vec<f32>,
    test: Vec<f32>,
    shape: mlp::MlpShape,
    trainer: TrainingRun,
    steps: usize,
    params: Option<Vec<f32>>,
    tau: f32,
    samples: Option<(f32, Vec<f32>)>,
    /// (tau, energy distance to the test set, mean distance to the nearest training point).
    curve: Vec<(f32, f32, f32)>,
    /// The curve's next point in progress: (tau, positions, Euler steps done).
    curve_samples: Option<(f32, Vec<f32>, usize)>,
    pause: PauseToggle,
    visible: bool,
    needs_draw: bool,
}

impl State {
    fn reset(&mut self) {
        self.trainer.reset();
        self.steps = 0;
        self.params = None;
        self.samples = None;
        self.curve.clear();
        self.curve_samples = None;
        self.needs_draw = true;
    }

    fn sample(&self, params: &[f32], tau: f32) -> Vec<f32> {
        let x0 = Rng::new(21).normals(2 * PARTICLES);
        sampler::hybrid_sample(&self.train, 2, &x0, FLOW_STEPS, tau, |x, t| {
            mlp::forward(&self.shape, params, x, &vec![t; x.len() / 2]).0
        })
    }

    fn draw(&mut self) {
        self.needs_draw = false;
        let positions = match &self.samples {
            Some((_, s)) => s.clone(),
            None => Rng::new(21).normals(2 * PARTICLES),
        };
        let caption = if self.steps < MAX_STEPS {
            format!("training: step {} / {MAX_STEPS}", self.steps)
        } else {
            format!("û* on [0, {:.2}), the network after", self.tau)
        };
        let scene = scenes::particles(&self.train, &positions, 1.0, caption);
        let result = draw_plane(&self.plane, &scene).and_then(|_| {
            draw_on(&self.curves_canvas, |area| {
                curves::draw_tau_curves(area, &self.curve, self.tau)
            })
        });
        if let Err(e) = result {
            self.status.error(&format!("{e:?}"));
        }
    }
}

pub struct HybridTau {
    state: Rc<RefCell<State>>,
    _listeners: Listeners,
}

impl HybridTau {
    pub fn mount(root: &Element) -> JsResult<HybridTau> {
        let mut listeners = Listeners::default();
        let TwoPanels {
            controls: panel,
            left: plane,
            right: curves_canvas,
            status,
        } = two_panels(
            root,
            "Samples of the hybrid model and the training points",
            "Novelty and quality of the samples against tau",
        )?;
        let cell = Later::<State>::new();
        let c = cell.clone();
        Slider::new(&panel, &mut listeners, "tau", &settings::TAU, move |v| {
            c.with(|s| {
                s.tau = v as f32;
                if let Some(params) = s.params.clone() {
                    let samples = s.sample(&params, s.tau);
                    s.samples = Some((s.tau, samples));
                }
                s.needs_draw = true;
            })
        })?;
        let pause = super::run_controls(
            &panel,
            &mut listeners,
            &cell,
            |s| &mut s.pause,
            |s| s.reset(),
        )?;
        let state = Rc::new(RefCell::new(State {
            plane,
            curves_canvas,
            status,
            train: Dataset::TwoMoons.sample(TRAIN_POINTS, 0),
            test: Dataset::TwoMoons.sample(TEST_POINTS, 99),
            shape: mlp::MlpShape::new(2, 64, 3),
            trainer: TrainingRun::default(),
            steps: 0,
            params: None,
            tau: settings::TAU.number() as f32,
            samples: None,
            curve: Vec::new(),
            curve_samples: None,
            pause,
            visible: false,
            needs_draw: true,
        }));
        cell.set(&state);
        Ok(HybridTau {
            state,
            _listeners: listeners,
        })
    }
}

fn train_chunk(state: &Rc<RefCell<State>>) {
    let options = TrainOptions {
        batch: 256,
        lr: 2e-3,
        seed: 1,
        target: crate::flow::mlp::Target::Cfm,
    };
    let shape = state.borrow().shape;
    train_next(
        state,
        |s| &mut s.trainer,
        |s| &s.train,
        (shape, options, STEPS_PER_CHUNK),
        |s, chunk| {
            s.steps += chunk.losses.len();
            let tau = s.tau;
            let samples = s.sample(&chunk.params, tau);
            s.samples = Some((tau, samples));
            s.params = Some(chunk.params);
            s.status.set(&format!(
                "Training on {} training points on {}: step {} of {MAX_STEPS}, loss {:.3}.",
                TRAIN_POINTS,
                chunk.backend.name(),
                s.steps,
                chunk.losses.last().copied().unwrap_or(f32::NAN)
            ));
            if s.steps >= MAX_STEPS {
                s.trainer.release(); // the parameters are kept
            }
            s.needs_draw = true;
        },
        |s, message| {
            s.status.error(&message);
            s.pause.stop();
        },
    );
}

impl Figure for HybridTau {
    fn csv(&self) -> Option<String> {
        let s = self.state.borrow();
        (!s.curve.is_empty()).then(|| {
            super::csv_rows(
                "tau,energy_distance_to_held_out,mean_distance_to_nearest_training_point",
                s.curve.iter().map(|(t, e, d)| format!("{t},{e},{d}")),
            )
        })
    }

    fn frame(&mut self, _now: f64) {
        let (train, next_tau) = {
            let s = self.state.borrow();
            s.pause
                .show_paused(&s.status, s.trainer.busy, s.steps, MAX_STEPS);
            let train = s.visible && !s.trainer.busy && !s.pause.paused && s.steps < MAX_STEPS;
            let next = (s.steps >= MAX_STEPS && s.curve.len() < TAUS).then_some(s.curve.len());
            (train, next)
        };
        if train {
            train_chunk(&self.state);
        }
        let mut s = self.state.borrow_mut();
        // A few Euler steps of the next tau's samples per frame, so no frame runs long while
        // the curves fill in.
        if let (Some(k), Some(params)) = (next_tau, s.params.clone()) {
            let tau = k as f32 / (TAUS - 1) as f32;
            let (mut x, done) = match s.curve_samples.take() {
                Some((t, x, done)) if t == tau => (x, done),
                _ => (Rng::new(21).normals(2 * PARTICLES), 0),
            };
            let dt = 1.0 / FLOW_STEPS as f32;
            let end = (done + STEPS_PER_FRAME).min(FLOW_STEPS);
            for step in done..end {
                let t = step as f32 * dt;
                x = sampler::euler_range(&x, t, dt, 1, |x, t| {
                    if t < tau {
                        crate::flow::closed_form_velocity(&s.train, 2, x, t)
                    } else {
                        mlp::forward(&s.shape, &params, x, &vec![t; x.len() / 2]).0
                    }
                });
            }
            if end < FLOW_STEPS {
                s.curve_samples = Some((tau, x, end));
            } else {
                let energy = metrics::energy_distance(&x, &s.test, 2);
                let mean = metrics::mean_nearest_distance(&s.train, 2, &x);
                s.curve.push((tau, energy, mean));
                if s.curve.len() == TAUS {
                    s.status.set("Done: drag τ. Small τ keeps the network's novelty; large τ copies the training points.");
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
