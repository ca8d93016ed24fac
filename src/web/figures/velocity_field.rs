//! The closed-form velocity field u*(., t) of a dataset as arrows, with a t slider; hovering a
//! point colours the training points by lambda(x, t) and draws the n segments x_t lies on.

use super::{draw_plane, grid, Figure, Later, Status};
use crate::catalog::velocity_field as settings;
use crate::charts::{plane::Plane, scenes};
use crate::flow::{self, Dataset};
use crate::gpu::backend::Prepared;
use crate::schedule::Jobs;
use crate::web::controls::{
    self, button, canvas_point, element, select, JsResult, Listeners, Slider,
};
use crate::web::shared::backend;
use std::cell::RefCell;
use std::rc::Rc;
use web_sys::{Element, HtmlCanvasElement};

const GRID_SIDE: usize = 25;
use crate::catalog::velocity_field::CUSTOM;

struct State {
    canvas: HtmlCanvasElement,
    status: Status,
    n_slider: Slider,
    dataset: String,
    n: usize,
    t: f32,
    custom: Vec<f32>,
    data: Vec<f32>,
    /// Bumped whenever `data` changes; keys the uploaded set and the computed field.
    version: u64,
    prepared: Option<(u64, Rc<Prepared>)>,
    /// The drawn arrows and the t they are for (the slider may have moved on since).
    velocities: Option<(Vec<f32>, f32)>,
    /// The field's jobs, keyed by (data version, t's bits): one in flight, the newest next.
    jobs: Jobs<(u64, u32)>,
    hover: Option<(f32, f32)>,
    needs_draw: bool,
}

impl State {
    fn regenerate(&mut self) {
        self.data = match Dataset::from_id(&self.dataset) {
            Some(d) => d.sample(self.n, 0),
            None => self.custom.clone(),
        };
        self.n_slider.input.set_disabled(self.dataset == CUSTOM);
        self.version += 1;
        self.ask();
    }

    /// The controls changed: the field for them is wanted (a drag replaces the values it
    /// passed before their jobs could start).
    fn ask(&mut self) {
        self.jobs.ask((self.version, self.t.to_bits()));
        self.needs_draw = true;
    }

    fn draw(&mut self) {
        self.needs_draw = false;
        let empty = Vec::new();
        let velocities = self
            .velocities
            .as_ref()
            .map(|(u, _)| u)
            .filter(|v| !v.is_empty())
            .unwrap_or(&empty);
        let field_grid = if velocities.is_empty() {
            Vec::new()
        } else {
            grid(GRID_SIDE, 3.0)
        };
        let weights = match self.hover {
            Some(x) if !self.data.is_empty() => {
                Some(flow::posterior_weights(&self.data, 2, &[x.0, x.1], self.t))
            }
            _ => None,
        };
        let hover = self.hover.zip(weights.as_deref());
        let scene = scenes::velocity_field(&self.data, &field_grid, velocities, hover, self.t);
        if let Err(e) = draw_plane(&self.canvas, &scene) {
            self.status.error(&format!("{e:?}"));
        }
        // What is on the canvas, for tests and tools: the arrows' t, and the jobs (started,
        // dropped before they started, started since the drawn one).
        if let Some((_, t)) = &self.velocities {
            let _ = self.canvas.set_attribute("data-field-t", &t.to_string());
        }
        let jobs = format!(
            "{} {} {}",
            self.jobs.started,
            self.jobs.dropped,
            self.jobs.lag()
        );
        let _ = self.canvas.set_attribute("data-jobs", &jobs);
    }
}

pub struct VelocityField {
    state: Rc<RefCell<State>>,
    _listeners: Listeners,
}

impl VelocityField {
    pub fn mount(root: &Element) -> JsResult<VelocityField> {
        let mut listeners = Listeners::default();
        let panel = element("div", "figure-controls", root)?;
        let canvas = controls::canvas(
            root,
            620,
            620,
            "Arrows of the closed-form velocity field over the plane, with the training points",
        )?;
        let status = Status::new(root)?;
        let cell = Later::<State>::new();

        let on = |f: fn(&mut State, f64)| {
            let cell = cell.clone();
            move |v: f64| cell.with(|s| f(s, v))
        };
        let c = cell.clone();
        select(
            &panel,
            &mut listeners,
            "vf-dataset",
            &settings::DATASET,
            move |v| {
                c.with(|s| {
                    s.dataset = v;
                    s.regenerate();
                })
            },
        )?;
        let n_slider = Slider::new(
            &panel,
            &mut listeners,
            "vf-n",
            &settings::N,
            on(|s, v| {
                s.n = v as usize;
                s.regenerate();
            }),
        )?;
        Slider::new(
            &panel,
            &mut listeners,
            "vf-t",
            &settings::T,
            on(|s, v| {
                s.t = v as f32;
                s.ask();
            }),
        )?;
        let c = cell.clone();
        button(&panel, &mut listeners, "Clear your points", move || {
            c.with(|s| {
                s.custom.clear();
                if s.dataset == CUSTOM {
                    s.regenerate();
                }
            })
        })?;

        let state = Rc::new(RefCell::new(State {
            canvas: canvas.clone(),
            status,
            n_slider,
            dataset: settings::DATASET.choice().into(),
            n: settings::N.number() as usize,
            t: settings::T.number() as f32,
            custom: vec![-1.0, -0.5, 1.2, 0.8, 0.3, 1.9],
            data: Vec::new(),
            version: 0,
            prepared: None,
            velocities: None,
            jobs: Jobs::default(),
            hover: None,
            needs_draw: true,
        }));
        state.borrow_mut().regenerate();
        cell.set(&state);

        let (s, cv) = (state.clone(), canvas.clone());
        listeners.on(&canvas, "pointermove", move |e| {
            if let Some((px, py)) = canvas_point(&cv, &e) {
                let mut s = s.borrow_mut();
                s.hover = Some(Plane::DEFAULT.to_data((cv.width(), cv.height()), px, py));
                s.needs_draw = true;
            }
        })?;
        let s = state.clone();
        listeners.on(&canvas, "pointerleave", move |_| {
            let mut s = s.borrow_mut();
            s.hover = None;
            s.needs_draw = true;
        })?;
        let (s, cv) = (state.clone(), canvas.clone());
        listeners.on(&canvas, "pointerdown", move |e| {
            let mut s = s.borrow_mut();
            if s.dataset != CUSTOM {
                return;
            }
            if let Some((px, py)) = canvas_point(&cv, &e) {
                let (x, y) = Plane::DEFAULT.to_data((cv.width(), cv.height()), px, py);
                if s.custom.len() < 2 * 2000 {
                    s.custom.extend([x, y]);
                    s.regenerate();
                }
            }
        })?;
        // From the keyboard: the canvas takes focus, arrows move the probe point whose weights
        // are shown, Enter adds it as a training point under "Your points", Escape hides it.
        canvas.set_attribute("tabindex", "0")?;
        let label = canvas.get_attribute("aria-label").unwrap_or_default();
        canvas.set_attribute(
            "aria-label",
            &format!("{label}. Arrow keys move a probe point that shows the weights; Enter adds it as a training point when the data set is Your points; Escape hides it."),
        )?;
        let s = state.clone();
        listeners.on(&canvas, "keydown", move |e| {
            let Some(key) =
                wasm_bindgen::JsCast::dyn_ref::<web_sys::KeyboardEvent>(&e).map(|k| k.key())
            else {
                return;
            };
            let mut s = s.borrow_mut();
            let at = s.hover.unwrap_or((0.0, 0.0));
            let step = 0.1;
            match key.as_str() {
                "ArrowLeft" => s.hover = Some(((at.0 - step).max(-3.2), at.1)),
                "ArrowRight" => s.hover = Some(((at.0 + step).min(3.2), at.1)),
                "ArrowUp" => s.hover = Some((at.0, (at.1 + step).min(3.2))),
                "ArrowDown" => s.hover = Some((at.0, (at.1 - step).max(-3.2))),
                "Escape" => s.hover = None,
                "Enter" if s.dataset == CUSTOM && s.custom.len() < 2 * 2000 => {
                    s.custom.extend([at.0, at.1]);
                    s.regenerate();
                }
                _ => return,
            }
            e.prevent_default();
            s.needs_draw = true;
        })?;
        Ok(VelocityField {
            state,
            _listeners: listeners,
        })
    }
}

/// Computes the field for job `number`'s (data version, t) in the background.
fn compute(state: &Rc<RefCell<State>>, number: u64, (version, t): (u64, u32)) {
    let t = f32::from_bits(t);
    let (data, cached) = {
        let s = state.borrow();
        let cached = s
            .prepared
            .as_ref()
            .filter(|(v, _)| *v == version)
            .map(|(_, p)| p.clone());
        (s.data.clone(), cached)
    };
    let state = state.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let backend = backend().await;
        let start = js_sys::Date::now();
        let result = async {
            if data.is_empty() {
                return Ok((None, Vec::new()));
            }
            let prepared = backend.prepared(cached, &data, 2)?;
            let u = backend
                .velocity(&prepared, &grid(GRID_SIDE, 3.0), t)
                .await?;
            Ok::<_, crate::gpu::GpuError>((Some(prepared), u))
        }
        .await;
        let mut s = state.borrow_mut();
        s.jobs.finish(number);
        s.needs_draw = true;
        match result {
            // A field of data the reader has since changed is not drawn over it.
            Ok(_) if version != s.version => {}
            Ok((prepared, u)) => {
                if let Some(p) = prepared {
                    s.prepared = Some((version, p));
                }
                s.velocities = Some((u, t));
                let text = if data.is_empty() {
                    "Click in the plane to add training points.".to_string()
                } else {
                    format!(
                        "{} training points; field of {}×{} arrows computed on {} in {:.0} ms. Hover to see λ(x, t).",
                        data.len() / 2,
                        GRID_SIDE,
                        GRID_SIDE,
                        backend.name(),
                        js_sys::Date::now() - start
                    )
                };
                s.status.set(&text);
            }
            Err(e) => s.status.error(&format!("Could not compute the field: {e}")),
        }
    });
}

impl Figure for VelocityField {
    fn csv(&self) -> Option<String> {
        let s = self.state.borrow();
        let (u, t) = s.velocities.as_ref()?;
        let grid = grid(GRID_SIDE, 3.0);
        Some(super::csv_rows(
            "t,x,y,u_x,u_y",
            grid.chunks_exact(2)
                .zip(u.chunks_exact(2))
                .map(|(p, v)| format!("{t},{},{},{},{}", p[0], p[1], v[0], v[1])),
        ))
    }

    fn frame(&mut self, _now: f64) {
        let next = self.state.borrow_mut().jobs.start();
        if let Some((number, key)) = next {
            compute(&self.state, number, key);
        }
        let mut s = self.state.borrow_mut();
        if s.needs_draw {
            s.draw();
        }
    }

    fn set_visible(&mut self, _visible: bool) {
        self.state.borrow_mut().needs_draw = true;
    }
}
