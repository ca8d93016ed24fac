//! Conditional paths: pairs (x0, x1) from a source and a target distribution joined by straight
//! segments, particles x_t = (1 - t) x0 + t x1 moving along them, and the marginal p_t formed by
//! many such particles. A t slider (and Play); the source and the target can be any data set.

use super::{draw_plane, two_panels, Figure, Later, PlayButton, Status, TwoPanels};
use crate::catalog::conditional_paths as settings;
use crate::charts::palette;
use crate::charts::plane::{Dot, Scene, Segment};
use crate::flow::{rng::Rng, Dataset};
use crate::web::controls::{button, select, JsResult, Listeners, Slider};
use plotters::style::Color;
use std::cell::RefCell;
use std::rc::Rc;
use web_sys::{Element, HtmlCanvasElement};

const PAIRS: usize = 60;
const MARGINAL: usize = 3000;
/// Seconds for t to go from 0 to 1 while playing.
const PLAY_SECONDS: f64 = 4.0;

struct State {
    planes: [HtmlCanvasElement; 2],
    status: Status,
    t_slider: Slider,
    play: PlayButton,
    source: String,
    target: String,
    /// MARGINAL pairs, x0 and x1 (the first PAIRS are drawn as segments).
    x0: Vec<f32>,
    x1: Vec<f32>,
    t: f64,
    visible: bool,
    needs_draw: bool,
}

fn sample(id: &str, n: usize, seed: u64) -> Vec<f32> {
    match Dataset::from_id(id) {
        Some(d) => d.sample(n, seed),
        None => Rng::new(seed).normals(2 * n),
    }
}

impl State {
    fn resample(&mut self) {
        // Independent pairs: x0 and x1 drawn separately, as in conditional flow matching.
        self.x0 = sample(&self.source, MARGINAL, 3);
        self.x1 = sample(&self.target, MARGINAL, 4);
        self.needs_draw = true;
    }

    fn draw(&mut self) {
        self.needs_draw = false;
        let t = self.t as f32;
        let xt: Vec<f32> = self
            .x0
            .iter()
            .zip(&self.x1)
            .map(|(a, b)| (1.0 - t) * a + t * b)
            .collect();
        let point = |v: &[f32], k: usize| (v[2 * k], v[2 * k + 1]);
        let faint = |v: &[f32], color: plotters::style::RGBColor, count: usize| -> Vec<Dot> {
            (0..count)
                .map(|k| Dot {
                    at: point(v, k),
                    radius: 2,
                    color: color.mix(0.35),
                })
                .collect()
        };
        let mut pairs = Scene {
            segments: (0..PAIRS)
                .map(|k| Segment {
                    from: point(&self.x0, k),
                    to: point(&self.x1, k),
                    color: palette::muted().mix(0.45),
                    width: 1,
                })
                .collect(),
            dots: faint(&self.x0, palette::BAR, PAIRS),
            top_dots: (0..PAIRS)
                .map(|k| Dot {
                    at: point(&xt, k),
                    radius: 4,
                    color: palette::ACCENT.mix(0.9),
                })
                .collect(),
            caption: vec![
                format!("t = {t:.2}"),
                format!("{PAIRS} pairs (x0, x1), x_t on each"),
            ],
            ..Scene::default()
        };
        pairs.dots.extend(faint(&self.x1, palette::DATA, PAIRS));
        let marginal = Scene {
            top_dots: (0..MARGINAL)
                .map(|k| Dot {
                    at: point(&xt, k),
                    radius: 1,
                    color: palette::PARTICLE.mix(0.5),
                })
                .collect(),
            caption: vec![
                format!("t = {t:.2}"),
                format!("p_t: {MARGINAL} particles x_t"),
            ],
            ..Scene::default()
        };
        let result = draw_plane(&self.planes[0], &pairs)
            .and_then(|_| draw_plane(&self.planes[1], &marginal));
        if let Err(e) = result {
            self.status.error(&format!("{e:?}"));
        }
    }
}

pub struct ConditionalPaths {
    state: Rc<RefCell<State>>,
    _listeners: Listeners,
}

impl ConditionalPaths {
    pub fn mount(root: &Element) -> JsResult<ConditionalPaths> {
        let mut listeners = Listeners::default();
        let TwoPanels {
            controls: panel,
            left,
            right,
            status,
        } = two_panels(
            root,
            "Pairs of source and target points joined by straight segments, with the particle x_t on each",
            "The marginal distribution p_t of many such particles",
        )?;
        let cell = Later::<State>::new();
        let c = cell.clone();
        select(
            &panel,
            &mut listeners,
            "cp-source",
            &settings::SOURCE,
            move |v| {
                c.with(|s| {
                    s.source = v;
                    s.resample();
                })
            },
        )?;
        let c = cell.clone();
        select(
            &panel,
            &mut listeners,
            "cp-target",
            &settings::TARGET,
            move |v| {
                c.with(|s| {
                    s.target = v;
                    s.resample();
                })
            },
        )?;
        let c = cell.clone();
        let t_slider = Slider::new(&panel, &mut listeners, "cp-t", &settings::T, move |v| {
            c.with(|s| {
                s.t = v;
                s.play.set(false);
                s.needs_draw = true;
            })
        })?;
        let c = cell.clone();
        let play_button = button(&panel, &mut listeners, "Play", move || {
            c.with(|s| {
                let playing = !s.play.playing;
                s.play.set(playing);
            })
        })?;
        status.set("Drag t, or press Play: each particle moves along its own segment, at constant speed x1 − x0.");
        let mut state = State {
            planes: [left, right],
            status,
            t_slider,
            play: PlayButton::new(play_button),
            source: settings::SOURCE.choice().into(),
            target: settings::TARGET.choice().into(),
            x0: Vec::new(),
            x1: Vec::new(),
            t: settings::T.number(),
            visible: false,
            needs_draw: true,
        };
        state.resample();
        let state = Rc::new(RefCell::new(state));
        cell.set(&state);
        Ok(ConditionalPaths {
            state,
            _listeners: listeners,
        })
    }
}

impl Figure for ConditionalPaths {
    fn csv(&self) -> Option<String> {
        let s = self.state.borrow();
        let t = s.t as f32;
        Some(super::csv_rows(
            "t,x0_x,x0_y,x1_x,x1_y,xt_x,xt_y",
            s.x0.chunks_exact(2)
                .zip(s.x1.chunks_exact(2))
                .map(|(a, b)| {
                    let xt = ((1.0 - t) * a[0] + t * b[0], (1.0 - t) * a[1] + t * b[1]);
                    format!("{t},{},{},{},{},{},{}", a[0], a[1], b[0], b[1], xt.0, xt.1)
                }),
        ))
    }

    fn frame(&mut self, now: f64) {
        let mut s = self.state.borrow_mut();
        if let Some(dt) = s.play.tick(now) {
            s.t = (s.t + dt / PLAY_SECONDS) % 1.0;
            let t = s.t;
            s.t_slider.set((t * 100.0).round() / 100.0);
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
