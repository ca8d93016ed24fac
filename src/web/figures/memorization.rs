//! Memorization: particles from N(0, I) integrated with u*, animated (play, pause, scrub t). At
//! the end every particle sits on a training point, which the histogram of nearest-training-point
//! distances shows.

use super::{draw_histogram, draw_plane, two_panels, Figure, Later, PlayButton, Status, TwoPanels};
use crate::catalog::memorization as settings;
use crate::charts::{histogram::HistogramView, scenes};
use crate::flow::{metrics, rng::Rng, Dataset};
use crate::web::controls::{button, select, JsResult, Listeners, Slider};
use crate::web::shared::backend;
use std::cell::RefCell;
use std::rc::Rc;
use web_sys::{Element, HtmlCanvasElement};

const PARTICLES: usize = 800;
const STEPS: usize = 100;
const STEPS_PER_BATCH: usize = 10;
/// Seconds for t to go from 0 to 1 while playing, and the pause at t = 1 before looping.
const PLAY_SECONDS: f64 = 5.0;
const HOLD_SECONDS: f64 = 1.5;

struct State {
    plane: HtmlCanvasElement,
    histogram: HtmlCanvasElement,
    status: Status,
    play: PlayButton,
    t_slider: Slider,
    dataset: String,
    n: usize,
    seed: u64,
    data: Vec<f32>,
    /// Positions after each Euler step: frames[k] is at t = k / STEPS.
    frames: Vec<Vec<f32>>,
    /// Bumped on every setting change: a running integration for an older one stops.
    version: u64,
    computing: bool,
    t: f64,
    visible: bool,
    hold: f64,
    needs_draw: bool,
}

impl State {
    fn restart(&mut self) {
        self.data = Dataset::from_id(&self.dataset)
            .unwrap_or(Dataset::TwoMoons)
            .sample(self.n, self.seed);
        self.frames.clear();
        self.version += 1;
        self.t = 0.0;
        self.t_slider.set(0.0);
        self.needs_draw = true;
    }

    /// Positions at the displayed t, interpolated between computed steps.
    fn positions(&self) -> Option<Vec<f32>> {
        let last = self.frames.len().checked_sub(1)?;
        let x = (self.t * STEPS as f64).min(last as f64);
        let k = (x.floor() as usize).min(last);
        let f = (x - k as f64) as f32;
        let a = &self.frames[k];
        let b = &self.frames[(k + 1).min(last)];
        Some(a.iter().zip(b).map(|(p, q)| p + f * (q - p)).collect())
    }

    fn draw(&mut self) {
        self.needs_draw = false;
        let Some(pos) = self.positions() else { return };
        let done = self.frames.len().saturating_sub(1);
        let caption = if done < STEPS {
            format!("integrating: step {done} / {STEPS}")
        } else {
            format!("{PARTICLES} particles, {STEPS} Euler steps")
        };
        let scene = scenes::particles(&self.data, &pos, self.t as f32, caption);
        let distances = metrics::nearest_distances(&self.data, 2, &pos);
        let scale = metrics::data_scale(&self.data, 2);
        let close = metrics::fraction_below(&distances, 0.01 * scale);
        let hist = metrics::Histogram::new(&distances, 0.0, 1.0, 40);
        let title = format!(
            "{:.0}% within 1% of the data's scale of a training point",
            100.0 * close
        );
        let view = HistogramView {
            histogram: &hist,
            title: &title,
            x_label: "distance to the nearest training point",
            marker: Some((0.01 * scale, "1%")),
        };
        if let Err(e) =
            draw_plane(&self.plane, &scene).and_then(|_| draw_histogram(&self.histogram, &view))
        {
            self.status.error(&format!("{e:?}"));
        }
    }
}

pub struct Memorization {
    state: Rc<RefCell<State>>,
    _listeners: Listeners,
}

impl Memorization {
    pub fn mount(root: &Element) -> JsResult<Memorization> {
        let mut listeners = Listeners::default();
        let TwoPanels {
            controls: panel,
            left: plane,
            right: histogram,
            status,
        } = two_panels(
            root,
            "Particles flowing from the Gaussian source to the training points",
            "Histogram of distances from each particle to its nearest training point",
        )?;
        let cell = Later::<State>::new();

        let c = cell.clone();
        select(
            &panel,
            &mut listeners,
            "mem-dataset",
            &settings::DATASET,
            move |v| {
                c.with(|s| {
                    s.dataset = v.clone();
                    s.restart();
                })
            },
        )?;
        let c = cell.clone();
        Slider::new(&panel, &mut listeners, "mem-n", &settings::N, move |v| {
            c.with(|s| {
                s.n = v as usize;
                s.restart();
            })
        })?;
        let c = cell.clone();
        let t_slider = Slider::new(&panel, &mut listeners, "mem-t", &settings::T, move |v| {
            c.with(|s| {
                s.t = v;
                s.play.set(false);
                s.needs_draw = true;
            })
        })?;
        let c = cell.clone();
        let play_button = button(&panel, &mut listeners, "Pause", move || {
            c.with(|s| {
                let playing = !s.play.playing;
                if playing && s.t >= 1.0 {
                    s.t = 0.0;
                }
                s.play.set(playing);
            })
        })?;
        let c = cell.clone();
        button(&panel, &mut listeners, "New noise", move || {
            c.with(|s| {
                s.seed += 1;
                s.restart();
            })
        })?;

        let reduced_motion = web_sys::window()
            .and_then(|w| {
                w.match_media("(prefers-reduced-motion: reduce)")
                    .ok()
                    .flatten()
            })
            .is_some_and(|m| m.matches());
        let state = Rc::new(RefCell::new(State {
            plane,
            histogram,
            status,
            play: PlayButton::new(play_button),
            t_slider,
            dataset: settings::DATASET.choice().into(),
            n: settings::N.number() as usize,
            seed: 0,
            data: Vec::new(),
            frames: Vec::new(),
            version: 0,
            computing: false,
            t: settings::T.number(),
            visible: false,
            hold: 0.0,
            needs_draw: true,
        }));
        {
            let mut s = state.borrow_mut();
            s.restart();
            s.play.set(!reduced_motion);
        }
        cell.set(&state);
        Ok(Memorization {
            state,
            _listeners: listeners,
        })
    }
}

/// Integrates the particles step by step in the background, keeping every step for the
/// animation; abandons the work when the settings change or the figure leaves the screen.
fn integrate(state: &Rc<RefCell<State>>) {
    let (data, version, seed) = {
        let mut s = state.borrow_mut();
        s.computing = true;
        (s.data.clone(), s.version, s.seed)
    };
    let state = state.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let backend = backend().await;
        let start = js_sys::Date::now();
        let x0 = Rng::new(1000 + seed).normals(2 * PARTICLES);
        let mut x = x0.clone();
        state.borrow_mut().frames = vec![x0];
        let result = async {
            let prepared = backend.prepare(&data, 2)?;
            let dt = 1.0 / STEPS as f32;
            // Steps in batches (one submission and one readback each), so the animation can
            // start while the rest integrates and the progress shows.
            for k0 in (0..STEPS).step_by(STEPS_PER_BATCH) {
                {
                    let s = state.borrow();
                    if s.version != version || !s.visible {
                        return Ok(false);
                    }
                }
                let steps = STEPS_PER_BATCH.min(STEPS - k0);
                let frames = backend
                    .trajectory(
                        &prepared,
                        &x,
                        k0 as f32 * dt,
                        dt,
                        steps,
                        crate::web::shared::pace,
                    )
                    .await?;
                let mut s = state.borrow_mut();
                if s.version != version {
                    return Ok(false);
                }
                s.frames.extend(frames.chunks(x.len()).map(<[f32]>::to_vec));
                x = s.frames.last().cloned().unwrap_or_default();
                s.needs_draw = true;
            }
            Ok::<_, crate::gpu::GpuError>(true)
        }
        .await;
        let mut s = state.borrow_mut();
        s.computing = false;
        match result {
            Ok(true) => s.status.set(&format!(
                "{PARTICLES} particles × {STEPS} Euler steps with û* of {} points, on {} in {:.0} ms.",
                data.len() / 2,
                backend.name(),
                js_sys::Date::now() - start
            )),
            Ok(false) => {
                if s.version == version {
                    // Paused off-screen: start again when visible.
                    s.frames.clear();
                }
            }
            Err(e) => {
                s.status.error(&format!("Could not integrate: {e}"));
                s.version += 1;
            }
        }
    });
}

impl Figure for Memorization {
    fn csv(&self) -> Option<String> {
        let s = self.state.borrow();
        let x = s.positions()?;
        let nearest = crate::flow::metrics::nearest_distances(&s.data, 2, &x);
        let t = s.t;
        Some(super::csv_rows(
            "t,x,y,distance_to_nearest_training_point",
            x.chunks_exact(2)
                .zip(&nearest)
                .map(|(p, d)| format!("{t},{},{},{d}", p[0], p[1])),
        ))
    }

    fn frame(&mut self, now: f64) {
        let start = {
            let s = self.state.borrow();
            !s.computing && s.frames.len() < STEPS + 1
        };
        if start {
            integrate(&self.state);
        }
        let mut s = self.state.borrow_mut();
        if let Some(dt) = s.play.tick(now) {
            let available = s.frames.len().saturating_sub(1) as f64 / STEPS as f64;
            if s.t >= 1.0 {
                s.hold += dt;
                if s.hold > HOLD_SECONDS {
                    s.hold = 0.0;
                    s.t = 0.0;
                }
            } else {
                s.t = (s.t + dt / PLAY_SECONDS).min(available).min(1.0);
            }
            let t = s.t;
            s.t_slider.set(t);
            s.needs_draw = true;
        }
        if s.needs_draw {
            s.draw();
        }
    }

    fn set_visible(&mut self, visible: bool) {
        let mut s = self.state.borrow_mut();
        s.visible = visible;
        s.play.clock.reset();
        s.needs_draw = true;
    }
}
