//! The stochastic target and what really happens: for an x_t the reader drags, the n conditional
//! targets (x_i - x) / (1 - t) weighted by lambda_i and their average u*; and the histogram of
//! cos(u*(x_t, t), x1 - x0) over random pairs (x0, x1) at the chosen t.

use super::{draw_histogram, draw_plane, two_panels, Figure, Later, Status, TwoPanels};
use crate::catalog::stochastic_target as settings;
use crate::charts::{histogram::HistogramView, plane::Plane, scenes};
use crate::flow::{self, metrics, rng::Rng, Dataset};
use crate::web::controls::{canvas_point, select, JsResult, Listeners, Slider};
use crate::web::shared::backend;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlCanvasElement};

const PAIRS: usize = 2000;
use crate::catalog::stochastic_target::THREE;
const THREE_POINTS: [f32; 6] = [-1.8, -1.2, 1.8, -1.2, 0.0, 1.9];

struct State {
    plane: HtmlCanvasElement,
    histogram: HtmlCanvasElement,
    status: Status,
    dataset: String,
    n: usize,
    t: f32,
    x: (f32, f32),
    dragging: bool,
    data: Vec<f32>,
    version: u64,
    cosines: Option<Vec<f32>>,
    computed_for: Option<(u64, f32)>,
    busy: bool,
    needs_draw: bool,
}

impl State {
    fn regenerate(&mut self) {
        self.data = match Dataset::from_id(&self.dataset) {
            Some(d) => d.sample(self.n, 0),
            None => THREE_POINTS.to_vec(),
        };
        self.version += 1;
        self.needs_draw = true;
    }

    fn draw(&mut self) {
        self.needs_draw = false;
        let x = [self.x.0, self.x.1];
        let weights = flow::posterior_weights(&self.data, 2, &x, self.t);
        let u = flow::closed_form_velocity(&self.data, 2, &x, self.t);
        let scene = scenes::conditional_targets(&self.data, self.x, &weights, (u[0], u[1]), self.t);
        let result = draw_plane(&self.plane, &scene).and_then(|_| {
            let Some(cosines) = &self.cosines else {
                return Ok(());
            };
            let hist = metrics::Histogram::new(cosines, -1.0, 1.0, 40);
            let above = crate::flow::metrics::fraction_above(cosines, 0.9);
            let title = format!("cos(û*(x_t, t), x1 − x0): {:.0}% above 0.9", 100.0 * above);
            draw_histogram(
                &self.histogram,
                &HistogramView {
                    histogram: &hist,
                    title: &title,
                    x_label: "cosine between the closed form and the CFM target",
                    marker: Some((0.9, "0.9")),
                },
            )
        });
        if let Err(e) = result {
            self.status.error(&format!("{e:?}"));
        }
    }
}

pub struct StochasticTarget {
    state: Rc<RefCell<State>>,
    _listeners: Listeners,
}

impl StochasticTarget {
    pub fn mount(root: &Element) -> JsResult<StochasticTarget> {
        let mut listeners = Listeners::default();
        let TwoPanels {
            controls: panel,
            left: plane,
            right: histogram,
            status,
        } = two_panels(
            root,
            "A point x_t, arrows to every training point weighted by lambda, and their average û*",
            "Histogram of cosines between û* and the conditional target x1 - x0",
        )?;
        plane.set_tab_index(0);
        let cell = Later::<State>::new();
        let c = cell.clone();
        select(
            &panel,
            &mut listeners,
            "st-dataset",
            &settings::DATASET,
            move |v| {
                c.with(|s| {
                    s.dataset = v.clone();
                    s.regenerate();
                })
            },
        )?;
        let c = cell.clone();
        Slider::new(&panel, &mut listeners, "st-n", &settings::N, move |v| {
            c.with(|s| {
                s.n = v as usize;
                if s.dataset != THREE {
                    s.regenerate();
                }
            })
        })?;
        let c = cell.clone();
        Slider::new(&panel, &mut listeners, "st-t", &settings::T, move |v| {
            c.with(|s| {
                s.t = v as f32;
                s.needs_draw = true;
            })
        })?;

        let state = Rc::new(RefCell::new(State {
            plane: plane.clone(),
            histogram,
            status,
            dataset: settings::DATASET.choice().into(),
            n: settings::N.number() as usize,
            t: settings::T.number() as f32,
            x: (0.2, -0.1),
            dragging: false,
            data: Vec::new(),
            version: 0,
            cosines: None,
            computed_for: None,
            busy: false,
            needs_draw: true,
        }));
        state.borrow_mut().regenerate();
        cell.set(&state);

        let size = (plane.width(), plane.height());
        let (s, cv) = (state.clone(), plane.clone());
        listeners.on(&plane, "pointerdown", move |e| {
            if let Some((px, py)) = canvas_point(&cv, &e) {
                let mut s = s.borrow_mut();
                s.dragging = true;
                s.x = Plane::DEFAULT.to_data(size, px, py);
                s.needs_draw = true;
            }
        })?;
        let (s, cv) = (state.clone(), plane.clone());
        listeners.on(&plane, "pointermove", move |e| {
            let mut s = s.borrow_mut();
            if s.dragging {
                if let Some((px, py)) = canvas_point(&cv, &e) {
                    s.x = Plane::DEFAULT.to_data(size, px, py);
                    s.needs_draw = true;
                }
            }
        })?;
        for event in ["pointerup", "pointerleave", "pointercancel"] {
            let s = state.clone();
            listeners.on(&plane, event, move |_| s.borrow_mut().dragging = false)?;
        }
        let s = state.clone();
        listeners.on(&plane, "keydown", move |e| {
            let Some(key) = e.dyn_ref::<web_sys::KeyboardEvent>().map(|k| k.key()) else {
                return;
            };
            let step = 0.1;
            let (dx, dy) = match key.as_str() {
                "ArrowLeft" => (-step, 0.0),
                "ArrowRight" => (step, 0.0),
                "ArrowUp" => (0.0, step),
                "ArrowDown" => (0.0, -step),
                _ => return,
            };
            e.prevent_default();
            let mut s = s.borrow_mut();
            s.x = ((s.x.0 + dx).clamp(-3.2, 3.2), (s.x.1 + dy).clamp(-3.2, 3.2));
            s.needs_draw = true;
        })?;
        Ok(StochasticTarget {
            state,
            _listeners: listeners,
        })
    }
}

/// cos(u*(x_t, t), x1 - x0) for PAIRS random pairs, u* on the page's backend.
fn compute(state: &Rc<RefCell<State>>) {
    let (data, version, t) = {
        let mut s = state.borrow_mut();
        s.busy = true;
        (s.data.clone(), s.version, s.t)
    };
    let state = state.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let backend = backend().await;
        let n = data.len() / 2;
        let mut rng = Rng::new(7);
        let x0 = rng.normals(2 * PAIRS);
        let x1: Vec<f32> = (0..PAIRS)
            .flat_map(|_| {
                let i = rng.below(n);
                [data[2 * i], data[2 * i + 1]]
            })
            .collect();
        let xt: Vec<f32> = x0
            .iter()
            .zip(&x1)
            .map(|(a, b)| (1.0 - t) * a + t * b)
            .collect();
        let result = async {
            let prepared = backend.prepare(&data, 2)?;
            backend.velocity(&prepared, &xt, t).await
        }
        .await;
        let mut s = state.borrow_mut();
        s.busy = false;
        s.computed_for = Some((version, t));
        s.needs_draw = true;
        match result {
            Ok(u) => {
                let cosines: Vec<f32> = (0..PAIRS)
                    .map(|p| {
                        let target = [x1[2 * p] - x0[2 * p], x1[2 * p + 1] - x0[2 * p + 1]];
                        metrics::cosine(&u[2 * p..2 * p + 2], &target)
                    })
                    .collect();
                s.cosines = Some(cosines);
                s.status.set(&format!(
                    "Drag the blue point (or focus the plot and use the arrow keys). Histogram: {PAIRS} pairs, û* on {}.",
                    backend.name()
                ));
            }
            Err(e) => s
                .status
                .error(&format!("Could not compute the cosines: {e}")),
        }
    });
}

impl Figure for StochasticTarget {
    fn csv(&self) -> Option<String> {
        let s = self.state.borrow();
        let c = s.cosines.as_ref()?;
        let t = s.t;
        Some(super::csv_rows(
            "t,cosine_u_star_vs_x1_minus_x0",
            c.iter().map(|v| format!("{t},{v}")),
        ))
    }

    fn frame(&mut self, _now: f64) {
        let (stale, busy, draw) = {
            let s = self.state.borrow();
            (
                s.computed_for != Some((s.version, s.t)),
                s.busy,
                s.needs_draw,
            )
        };
        if stale && !busy {
            compute(&self.state);
        }
        if draw {
            self.state.borrow_mut().draw();
        }
    }

    fn set_visible(&mut self, _visible: bool) {
        self.state.borrow_mut().needs_draw = true;
    }
}
