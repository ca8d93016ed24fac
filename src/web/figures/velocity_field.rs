//! The closed-form velocity field u*(., t) of a dataset as arrows, with a t slider; hovering a
//! point colours the training points by lambda(x, t) and draws the n segments x_t lies on.

use super::driver::{Ctx, Settings, Sketch, Ui};
use super::{draw_plane, grid};
use crate::catalog::velocity_field as settings;
use crate::catalog::FigureSpec;
use crate::charts::layout::Fit;
use crate::charts::{plane::Plane, scenes};
use crate::flow::{self, Dataset};
use crate::web::backend::figure_backend;
use crate::web::compute::{ComputeError, Ready};
use crate::web::controls::{self, canvas_point, JsResult};
use futures_util::future::LocalBoxFuture;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use web_sys::HtmlCanvasElement;

const GRID_SIDE: usize = 25;
use crate::catalog::velocity_field::CUSTOM;

pub struct VelocityField {
    canvas: HtmlCanvasElement,
    custom: Vec<f32>,
    /// Shared with the job (and with the compute layer's cache of ready sets).
    data: Rc<Vec<f32>>,
    /// Bumped whenever `data` changes; keys the uploaded set and the computed field.
    version: u64,
    prepared: Option<(u64, Rc<Ready>)>,
    /// The drawn arrows and the t they are for (the slider may have moved on since).
    velocities: Option<(Vec<f32>, f32)>,
    hover: Option<(f32, f32)>,
}

/// A computed field: its data version and t, the set prepared for it, the arrows, where and in
/// how many milliseconds.
pub struct Field {
    version: u64,
    t: f32,
    result: Result<(Option<Rc<Ready>>, Vec<f32>), ComputeError>,
    backend: &'static str,
    ms: f64,
    points: usize,
}

impl VelocityField {
    fn regenerate(&mut self, ctx: &mut Ctx<'_>) {
        let s = ctx.settings();
        let dataset = s.choice(&settings::DATASET);
        self.data = Rc::new(match Dataset::from_id(dataset) {
            Some(d) => d.sample(s.number(&settings::N) as usize, 0),
            None => self.custom.clone(),
        });
        ctx.enable(&settings::N, dataset != CUSTOM);
        self.version += 1;
    }

    /// Adds a training point under "Your points" (at most 2,000 of them).
    fn add_point(&mut self, at: (f32, f32), ctx: &mut Ctx<'_>) {
        if ctx.settings().choice(&settings::DATASET) == CUSTOM && self.custom.len() < 2 * 2000 {
            self.custom.extend([at.0, at.1]);
            self.regenerate(ctx);
        }
    }
}

impl Sketch for VelocityField {
    const SPEC: &'static FigureSpec = &crate::catalog::velocity_field::SPEC;
    const ID: &'static str = "vf";
    /// The data version and t's bits.
    type Key = (u64, u32);
    type Output = Field;

    fn mount(ui: &mut Ui<'_, Self>) -> JsResult<Self> {
        let canvas = controls::canvas(
            ui.root,
            620,
            Fit::SQUARE,
            "Arrows of the closed-form velocity field over the plane, with the training points",
        )?;
        ui.button("Clear your points", |s, ctx| {
            s.custom.clear();
            if ctx.settings().choice(&settings::DATASET) == CUSTOM {
                s.regenerate(ctx);
            }
        })?;
        let cv = canvas.clone();
        let at = move |e: &web_sys::Event| {
            canvas_point(&cv, e).map(|((px, py), size)| Plane::DEFAULT.to_data(size, px, py))
        };
        let (at2, at3) = (at.clone(), at.clone());
        ui.on(&canvas, "pointermove", move |s, _, e| {
            if let Some(x) = at(e) {
                s.hover = Some(x);
            }
        })?;
        // A mouse that leaves hides the weights; a finger that lifts leaves them where it
        // tapped (a touch has no hover: the tap is the hover).
        ui.on(&canvas, "pointerleave", |s, _, e| {
            let mouse = e
                .dyn_ref::<web_sys::PointerEvent>()
                .is_none_or(|p| p.pointer_type() == "mouse");
            if mouse {
                s.hover = None;
            }
        })?;
        ui.on(&canvas, "pointerdown", move |s, _, e| {
            if let Some(x) = at2(e) {
                s.hover = Some(x);
            }
        })?;
        // A point is added on a click: a finger that starts a scroll on the canvas fires
        // pointerdown but no click.
        ui.on(&canvas, "click", move |s, ctx, e| {
            if let Some(x) = at3(e) {
                s.add_point(x, ctx);
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
        ui.on(&canvas, "keydown", |s, ctx, e| {
            let Some(key) = e.dyn_ref::<web_sys::KeyboardEvent>().map(|k| k.key()) else {
                return;
            };
            let at = s.hover.unwrap_or((0.0, 0.0));
            let step = 0.1;
            match key.as_str() {
                "ArrowLeft" => s.hover = Some(((at.0 - step).max(-3.2), at.1)),
                "ArrowRight" => s.hover = Some(((at.0 + step).min(3.2), at.1)),
                "ArrowUp" => s.hover = Some((at.0, (at.1 + step).min(3.2))),
                "ArrowDown" => s.hover = Some((at.0, (at.1 - step).max(-3.2))),
                "Escape" => s.hover = None,
                "Enter" => s.add_point(at, ctx),
                _ => return,
            }
            e.prevent_default();
        })?;
        Ok(VelocityField {
            canvas,
            custom: vec![-1.0, -0.5, 1.2, 0.8, 0.3, 1.9],
            data: Rc::default(),
            version: 0,
            prepared: None,
            velocities: None,
            hover: None,
        })
    }

    fn changed(&mut self, key: Option<&str>, ctx: &mut Ctx<'_>) {
        if key != Some(settings::T.key) {
            self.regenerate(ctx);
        }
    }

    fn wanted(&self, settings: &Settings) -> Option<Self::Key> {
        Some((self.version, settings.bits(&settings::T)))
    }

    /// Computes the field for (data version, t) in the background.
    fn job(
        &mut self,
        &(version, t): &Self::Key,
        _: &mut Ctx<'_>,
    ) -> LocalBoxFuture<'static, Field> {
        let t = f32::from_bits(t);
        let cached = self
            .prepared
            .as_ref()
            .filter(|(v, _)| *v == version)
            .map(|(_, p)| p.clone());
        let data = self.data.clone();
        Box::pin(async move {
            let backend = figure_backend();
            let start = js_sys::Date::now();
            let result = async {
                if data.is_empty() {
                    return Ok((None, Vec::new()));
                }
                // In the compute workers on the CPU path: a drag of t leaves the page's thread free.
                let prepared = Ready::cached(&backend, cached, &data, 2).await?;
                let points = grid(GRID_SIDE, 3.0);
                let times = vec![t; points.len() / 2];
                let u = prepared.velocity_at(&points, &times).await?;
                Ok((Some(prepared), u))
            }
            .await;
            Field {
                version,
                t,
                result,
                backend: backend.name(),
                ms: js_sys::Date::now() - start,
                points: data.len() / 2,
            }
        })
    }

    fn done(&mut self, _: Self::Key, field: Field, ctx: &mut Ctx<'_>) {
        match field.result {
            // A field of data the reader has since changed is not drawn over it.
            Ok(_) if field.version != self.version => {}
            Ok((prepared, u)) => {
                if let Some(p) = prepared {
                    self.prepared = Some((field.version, p));
                }
                self.velocities = Some((u, field.t));
                let text = if field.points == 0 {
                    "Click in the plane to add training points.".to_string()
                } else {
                    format!(
                        "{} training points; field of {}×{} arrows computed on {} in {:.0} ms. Point at or tap the plane to see λ(x, t).",
                        field.points, GRID_SIDE, GRID_SIDE, field.backend, field.ms
                    )
                };
                ctx.status.set(&text);
            }
            Err(e) => ctx
                .status
                .error(&format!("Could not compute the field: {e}")),
        }
    }

    fn draw(&mut self, ctx: &mut Ctx<'_>) -> JsResult<()> {
        let t = ctx.settings().number(&settings::T) as f32;
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
                Some(flow::posterior_weights(&self.data, 2, &[x.0, x.1], t))
            }
            _ => None,
        };
        let hover = self.hover.zip(weights.as_deref());
        let scene = scenes::velocity_field(&self.data, &field_grid, velocities, hover, t);
        draw_plane(&self.canvas, &scene)?;
        // What is on the canvas, for tests and tools: the arrows' t, and the point whose
        // weights are drawn.
        if let Some((_, t)) = &self.velocities {
            self.canvas.set_attribute("data-field-t", &t.to_string())?;
        }
        match hover {
            Some(((x, y), _)) => self
                .canvas
                .set_attribute("data-probe", &format!("{x:.2},{y:.2}"))?,
            None => self.canvas.remove_attribute("data-probe")?,
        }
        Ok(())
    }

    fn csv(&self, _: &Settings) -> Option<String> {
        let (u, t) = self.velocities.as_ref()?;
        let grid = grid(GRID_SIDE, 3.0);
        Some(super::csv_rows(
            "t,x,y,u_x,u_y",
            grid.chunks_exact(2)
                .zip(u.chunks_exact(2))
                .map(|(p, v)| format!("{t},{},{},{},{}", p[0], p[1], v[0], v[1])),
        ))
    }
}
