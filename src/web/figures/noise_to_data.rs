//! From noise to data: a small velocity network trains on two moons when the figure comes into
//! view, with its progress shown, and particles from N(0, I) flow along the learned field.

use super::{
    draw_on, draw_plane, train_next, two_panels, Figure, FrameClock, Later, PauseToggle, Status,
    TrainingRun, TwoPanels,
};
use crate::charts::{curves, scenes};
use crate::flow::{mlp, rng::Rng, Dataset};
use crate::gpu::trainer::TrainOptions;
use crate::web::controls::{JsResult, Listeners};
use std::cell::RefCell;
use std::rc::Rc;
use web_sys::{Element, HtmlCanvasElement};

const MAX_STEPS: usize = 2000;
const STEPS_PER_CHUNK: usize = 25;
const PARTICLES: usize = 300;
const FLOW_STEPS: usize = 30;
const LOOP_SECONDS: f64 = 3.0;

struct State {
    plane: HtmlCanvasElement,
    loss_canvas: HtmlCanvasElement,
    status: Status,
    pause: PauseToggle,
    data: Vec<f32>,
    shape: mlp::MlpShape,
    trainer: TrainingRun,
    losses: Vec<f32>,
    /// Particle positions at t = k / FLOW_STEPS under the latest parameters.
    frames: Vec<Vec<f32>>,
    visible: bool,
    reduced_motion: bool,
    phase: f64,
    clock: FrameClock,
    needs_draw: bool,
}

impl State {
    fn reset(&mut self) {
        self.trainer.reset();
        self.losses.clear();
        self.frames.clear();
        self.needs_draw = true;
    }

    fn draw(&mut self) {
        self.needs_draw = false;
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
        let title = match self.losses.last() {
            Some(l) => format!("step {} / {MAX_STEPS}, loss {l:.3}", self.losses.len()),
            None => "waiting to start".to_string(),
        };
        let result = draw_plane(&self.plane, &scene).and_then(|_| {
            draw_on(&self.loss_canvas, |area| {
                curves::draw_loss(area, &self.losses, MAX_STEPS, &title)
            })
        });
        if let Err(e) = result {
            self.status.error(&format!("{e:?}"));
        }
    }
}

pub struct NoiseToData {
    state: Rc<RefCell<State>>,
    _listeners: Listeners,
}

impl NoiseToData {
    pub fn mount(root: &Element) -> JsResult<NoiseToData> {
        let mut listeners = Listeners::default();
        let TwoPanels {
            controls: panel,
            left: plane,
            right: loss_canvas,
            status,
        } = two_panels(
            root,
            "Particles flowing from Gaussian noise along the learned velocity field",
            "The training loss against the step",
        )?;
        let cell = Later::<State>::new();
        let pause = super::run_controls(
            &panel,
            &mut listeners,
            &cell,
            |s| &mut s.pause,
            |s| s.reset(),
        )?;
        let reduced_motion = web_sys::window()
            .and_then(|w| {
                w.match_media("(prefers-reduced-motion: reduce)")
                    .ok()
                    .flatten()
            })
            .is_some_and(|m| m.matches());
        let state = Rc::new(RefCell::new(State {
            plane,
            loss_canvas,
            status,
            pause,
            data: Dataset::TwoMoons.sample(1000, 0),
            shape: mlp::MlpShape::new(2, 64, 3),
            trainer: TrainingRun::default(),
            losses: Vec::new(),
            frames: Vec::new(),
            visible: false,
            reduced_motion,
            phase: 0.0,
            clock: FrameClock::default(),
            needs_draw: true,
        }));
        cell.set(&state);
        Ok(NoiseToData {
            state,
            _listeners: listeners,
        })
    }
}

/// Trains one chunk in the background, then recomputes the particles' paths.
fn train_chunk(state: &Rc<RefCell<State>>) {
    let options = TrainOptions {
        batch: 256,
        lr: 2e-3,
        seed: 0,
        target: crate::flow::mlp::Target::Cfm,
    };
    let shape = state.borrow().shape;
    train_next(
        state,
        |s| &mut s.trainer,
        |s| &s.data,
        (shape, options, STEPS_PER_CHUNK),
        |s, chunk| {
            let shape = s.shape;
            s.losses.extend(chunk.losses);
            let dt = 1.0 / FLOW_STEPS as f32;
            let mut x = Rng::new(11).normals(2 * PARTICLES);
            let mut frames = vec![x.clone()];
            for k in 0..FLOW_STEPS {
                let u = mlp::forward(&shape, &chunk.params, &x, &vec![k as f32 * dt; PARTICLES]).0;
                for (a, b) in x.iter_mut().zip(&u) {
                    *a += dt * b;
                }
                frames.push(x.clone());
            }
            s.frames = frames;
            let verb = if s.losses.len() >= MAX_STEPS {
                "Trained"
            } else {
                "Training"
            };
            s.status.set(&format!(
                "{verb} an MLP with {} hidden layers of width {} on {}: {} steps ({:.0} ms for the last {STEPS_PER_CHUNK}).",
                shape.depth,
                shape.hidden,
                chunk.backend.name(),
                s.losses.len(),
                chunk.ms
            ));
            s.needs_draw = true;
        },
        |s, message| {
            s.status.error(&message);
            s.pause.stop();
        },
    );
}

impl Figure for NoiseToData {
    fn csv(&self) -> Option<String> {
        let s = self.state.borrow();
        (!s.losses.is_empty()).then(|| {
            super::csv_rows(
                "step,loss",
                s.losses
                    .iter()
                    .enumerate()
                    .map(|(k, l)| format!("{},{l}", k + 1)),
            )
        })
    }

    fn frame(&mut self, now: f64) {
        let start = {
            let s = self.state.borrow();
            s.pause
                .show_paused(&s.status, s.trainer.busy, s.losses.len(), MAX_STEPS);
            s.visible && !s.trainer.busy && !s.pause.paused && s.losses.len() < MAX_STEPS
        };
        if start {
            train_chunk(&self.state);
        }
        let mut s = self.state.borrow_mut();
        if !s.reduced_motion && !s.frames.is_empty() {
            let dt = s.clock.tick(now);
            // Flow for LOOP_SECONDS, rest a third of that at t = 1, start again.
            s.phase = (s.phase + dt / LOOP_SECONDS) % 1.34;
            s.needs_draw = true;
        }
        if s.needs_draw {
            s.draw();
        }
    }

    fn set_visible(&mut self, visible: bool) {
        let mut s = self.state.borrow_mut();
        s.visible = visible;
        s.clock.reset();
        s.needs_draw = true;
    }
}
