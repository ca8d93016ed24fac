//! The stochastic target and what really happens: for an x_t the reader drags, the n conditional
//! targets (x_i - x) / (1 - t) weighted by lambda_i and their average u*; and the histogram of
//! cos(u*(x_t, t), x1 - x0) over random pairs (x0, x1) at the chosen t.

use super::driver::{Ctx, Settings, Sketch, Ui};
use super::{draw_histogram, draw_plane, two_canvases, TwoCanvases};
use crate::catalog::stochastic_target as settings;
use crate::catalog::FigureSpec;
use crate::charts::{histogram::HistogramView, plane::Plane, scenes};
use crate::flow::{self, metrics, rng::Rng, Dataset};
use crate::web::backend::figure_backend;
use crate::web::compute::{ComputeError, Ready};
use crate::web::controls::{canvas_point, JsResult};
use futures_util::future::LocalBoxFuture;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use web_sys::HtmlCanvasElement;

const PAIRS: usize = 2000;
use crate::catalog::stochastic_target::THREE;
const THREE_POINTS: [f32; 6] = [-1.8, -1.2, 1.8, -1.2, 0.0, 1.9];

pub struct StochasticTarget {
    plane: HtmlCanvasElement,
    histogram: HtmlCanvasElement,
    x: (f32, f32),
    dragging: bool,
    /// Shared with the jobs (and with the compute layer's cache of ready sets).
    data: Rc<Vec<f32>>,
    /// Bumped whenever `data` changes.
    version: u64,
    /// The set made ready for `data`'s version, kept across jobs (a drag of t reuses it).
    prepared: Option<(u64, Rc<Ready>)>,
    cosines: Option<Vec<f32>>,
}

/// The cosines for a data version and t, and where they were computed.
pub struct Cosines {
    version: u64,
    result: Result<(Rc<Ready>, Vec<f32>), ComputeError>,
    backend: &'static str,
}

impl StochasticTarget {
    fn regenerate(&mut self, ctx: &mut Ctx<'_>) {
        let s = ctx.settings();
        let dataset = s.choice(&settings::DATASET);
        self.data = Rc::new(match Dataset::from_id(dataset) {
            Some(d) => d.sample(s.number(&settings::N) as usize, 0),
            None => THREE_POINTS.to_vec(),
        });
        ctx.enable(&settings::N, dataset != THREE);
        self.version += 1;
    }
}

impl Sketch for StochasticTarget {
    const SPEC: &'static FigureSpec = &crate::catalog::stochastic_target::SPEC;
    const ID: &'static str = "st";
    /// The data version and t's bits.
    type Key = (u64, u32);
    type Output = Cosines;

    fn mount(ui: &mut Ui<'_, Self>) -> JsResult<Self> {
        let TwoCanvases {
            left: plane,
            right: histogram,
        } = two_canvases(
            ui.root,
            "A point x_t, arrows to every training point weighted by lambda, and their average û*",
            "Histogram of cosines between û* and the conditional target x1 - x0",
        )?;
        plane.set_tab_index(0);
        let cv = plane.clone();
        let at = move |e: &web_sys::Event| {
            canvas_point(&cv, e).map(|((px, py), size)| Plane::DEFAULT.to_data(size, px, py))
        };
        let (at2, at3) = (at.clone(), at.clone());
        // A mouse or a pen moves x_t where it presses; a finger moves it where it taps (a click)
        // or drags sideways, so that a scroll that starts on the plane leaves it where it was
        // (the browser takes a vertical drag for a scroll and cancels the pointer).
        ui.on(&plane, "pointerdown", move |s, _, e| {
            let touch = e
                .dyn_ref::<web_sys::PointerEvent>()
                .is_some_and(|p| p.pointer_type() == "touch");
            if let Some(x) = at(e) {
                s.dragging = true;
                if !touch {
                    s.x = x;
                }
            }
        })?;
        ui.on(&plane, "click", move |s, _, e| {
            if let Some(x) = at3(e) {
                s.x = x;
            }
        })?;
        ui.on(&plane, "pointermove", move |s, _, e| {
            if s.dragging {
                if let Some(x) = at2(e) {
                    s.x = x;
                }
            }
        })?;
        for event in ["pointerup", "pointerleave", "pointercancel"] {
            ui.on(&plane, event, |s, _, _| s.dragging = false)?;
        }
        ui.on(&plane, "keydown", |s, _, e| {
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
            s.x = ((s.x.0 + dx).clamp(-3.2, 3.2), (s.x.1 + dy).clamp(-3.2, 3.2));
        })?;
        Ok(StochasticTarget {
            plane,
            histogram,
            x: (0.2, -0.1),
            dragging: false,
            data: Rc::default(),
            version: 0,
            prepared: None,
            cosines: None,
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

    /// cos(u*(x_t, t), x1 - x0) for PAIRS random pairs, u* on the page's backend.
    fn job(
        &mut self,
        &(version, t): &Self::Key,
        _: &mut Ctx<'_>,
    ) -> LocalBoxFuture<'static, Cosines> {
        let t = f32::from_bits(t);
        let data = self.data.clone();
        let cached = self
            .prepared
            .as_ref()
            .filter(|(v, _)| *v == version)
            .map(|(_, p)| p.clone());
        Box::pin(async move {
            let backend = figure_backend();
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
                // In the compute workers on the CPU path; the set is made ready once per data.
                let prepared = Ready::cached(&backend, cached, &data, 2).await?;
                let u = prepared.velocity_at(&xt, &vec![t; PAIRS]).await?;
                Ok((prepared, u))
            }
            .await
            .map(|(prepared, u): (Rc<Ready>, Vec<f32>)| {
                let cosines = (0..PAIRS)
                    .map(|p| {
                        let target = [x1[2 * p] - x0[2 * p], x1[2 * p + 1] - x0[2 * p + 1]];
                        metrics::cosine(&u[2 * p..2 * p + 2], &target)
                    })
                    .collect();
                (prepared, cosines)
            });
            Cosines {
                version,
                result,
                backend: backend.name(),
            }
        })
    }

    fn done(&mut self, _: Self::Key, cosines: Cosines, ctx: &mut Ctx<'_>) {
        match cosines.result {
            Ok(_) if cosines.version != self.version => {}
            Ok((prepared, c)) => {
                self.prepared = Some((cosines.version, prepared));
                self.cosines = Some(c);
                ctx.status.set(&format!(
                    "Drag the blue point (or focus the plot and use the arrow keys). Histogram: {PAIRS} pairs, û* on {}.",
                    cosines.backend
                ));
            }
            Err(e) => ctx
                .status
                .error(&format!("Could not compute the cosines: {e}")),
        }
    }

    fn draw(&mut self, ctx: &mut Ctx<'_>) -> JsResult<()> {
        let t = ctx.settings().number(&settings::T) as f32;
        let x = [self.x.0, self.x.1];
        let weights = flow::posterior_weights(&self.data, 2, &x, t);
        let u = flow::closed_form_velocity(&self.data, 2, &x, t);
        let scene = scenes::conditional_targets(&self.data, self.x, &weights, (u[0], u[1]), t);
        draw_plane(&self.plane, &scene)?;
        let Some(cosines) = &self.cosines else {
            return Ok(());
        };
        let hist = metrics::Histogram::new(cosines, -1.0, 1.0, 40);
        let above = metrics::fraction_above(cosines, 0.9);
        let title = format!("cos(û*(x_t, t), x1 − x0): {:.0}% above 0.9", 100.0 * above);
        draw_histogram(
            &self.histogram,
            &HistogramView {
                histogram: &hist,
                title: &title,
                x_label: "cosine of û* and the CFM target",
                marker: Some((0.9, "0.9")),
            },
        )
    }

    fn csv(&self, settings: &Settings) -> Option<String> {
        let c = self.cosines.as_ref()?;
        let t = settings.number(&settings::T) as f32;
        Some(super::csv_rows(
            "t,cosine_u_star_vs_x1_minus_x0",
            c.iter().map(|v| format!("{t},{v}")),
        ))
    }
}
