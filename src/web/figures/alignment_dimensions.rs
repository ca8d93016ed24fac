//! Intuitions from small dimension fail: the share of pairs whose conditional target x1 - x0 is
//! aligned with u*(x_t, t) (cosine above 0.9) against t, one curve per resolution of the same
//! 10,000 MNIST digits (2 x 2 up to 28 x 28 pixels: dim 4 to 784), each curve drawn as its
//! times come in.

use super::driver::{Ctx, Settings, Sketch, Ui};
use super::{draw_on, DigitsGate};
use crate::catalog::FigureSpec;
use crate::charts::alignment::{draw_fractions, Curve};
use crate::charts::layout::Fit;
use crate::flow::{alignment, digits::POOLINGS};
use crate::web::backend::figure_backend;
use crate::web::compute::{ComputeError, Ready};
use crate::web::controls::JsResult;
use crate::web::digits::DigitSet;
use futures_util::future::LocalBoxFuture;
use std::rc::Rc;
use web_sys::HtmlCanvasElement;

use super::target_alignment::{PAIRS, TIMES};
const SEED: u32 = 2;
const THRESHOLD: f32 = 0.9;

pub struct AlignmentDimensions {
    canvas: HtmlCanvasElement,
    gate: DigitsGate,
    digits: Option<Rc<DigitSet>>,
    /// Per resolution (POOLINGS order): (t, share above THRESHOLD) computed so far.
    curves: Vec<Vec<(f32, f32)>>,
    /// The resolution being computed, prepared on the backend once.
    prepared: Option<(usize, Rc<Ready>)>,
    started: Option<f64>,
    failed: bool,
}

/// The cosines of one (resolution, t), the set prepared for them, and where they were computed.
pub struct Measured {
    result: Result<(Rc<Ready>, Vec<f32>), ComputeError>,
    backend: &'static str,
}

impl Sketch for AlignmentDimensions {
    const SPEC: &'static FigureSpec = &crate::catalog::alignment_dimensions::SPEC;
    const ID: &'static str = "ad";
    /// The resolution (POOLINGS index) and the index of t.
    type Key = (usize, usize);
    type Output = Measured;

    fn mount(ui: &mut Ui<'_, Self>) -> JsResult<Self> {
        let canvas = super::row_canvas(
            ui.root,
            Fit::wide(960, 420),
            "figure-wide",
            "Share of aligned pairs against t, one curve per image resolution",
        )?;
        let gate = DigitsGate::new(ui.panel, ui.listeners)?;
        Ok(AlignmentDimensions {
            canvas,
            gate,
            digits: None,
            curves: vec![Vec::new(); POOLINGS.len()],
            prepared: None,
            started: None,
            failed: false,
        })
    }

    fn animate(&mut self, _: f64, ctx: &mut Ctx<'_>) -> bool {
        if self.digits.is_none() {
            self.digits = self.gate.poll(ctx.status);
            return self.digits.is_some();
        }
        false
    }

    /// The next (resolution, t), once the digits are in.
    fn wanted(&self, _: &Settings) -> Option<Self::Key> {
        if self.digits.is_none() || self.failed {
            return None;
        }
        let r = self.curves.iter().position(|c| c.len() < TIMES)?;
        Some((r, self.curves[r].len()))
    }

    fn job(&mut self, &(r, k): &Self::Key, _: &mut Ctx<'_>) -> LocalBoxFuture<'static, Measured> {
        self.started.get_or_insert_with(js_sys::Date::now);
        let prepared = self
            .prepared
            .clone()
            .filter(|(p, _)| *p == r)
            .map(|(_, p)| p);
        let digits = self.digits.clone();
        Box::pin(async move {
            let backend = figure_backend();
            let (factor, dim) = POOLINGS[r];
            let t = k as f32 / TIMES as f32;
            let result = async {
                let data = match digits {
                    Some(d) => d.pooled(factor).await,
                    None => Rc::default(),
                };
                let prepared = Ready::cached(&backend, prepared, &data, dim).await?;
                let q = alignment::alignment_queries(&data, dim, &[t], PAIRS, SEED);
                let u = prepared.velocity_at(&q.points, &q.times).await?;
                let cosines = alignment::row_cosines(&u, &q.targets, dim);
                Ok::<_, ComputeError>((prepared, cosines))
            }
            .await;
            Measured {
                result,
                backend: backend.name(),
            }
        })
    }

    fn done(&mut self, (r, k): Self::Key, measured: Measured, ctx: &mut Ctx<'_>) {
        match measured.result {
            Ok((prepared, cosines)) => {
                let t = k as f32 / TIMES as f32;
                let dim = POOLINGS[r].1;
                let share = crate::flow::metrics::fraction_above(&cosines, THRESHOLD);
                self.curves[r].push((t, share));
                self.prepared = (self.curves[r].len() < TIMES).then_some((r, prepared));
                let done: usize = self.curves.iter().map(Vec::len).sum();
                let total = POOLINGS.len() * TIMES;
                let seconds = (js_sys::Date::now() - self.started.unwrap_or(0.0)) / 1000.0;
                let backend = measured.backend;
                let text = if done == total {
                    format!(
                        "Done on {backend}: {total} measurements of {PAIRS} pairs over {} digits in {seconds:.1} s.",
                        self.digits.as_ref().map_or(0, |d| d.n)
                    )
                } else {
                    format!(
                        "{done} of {total} on {backend} (dim {dim}, t = {t:.1}), {seconds:.1} s so far."
                    )
                };
                ctx.status.set(&text);
            }
            Err(e) => {
                self.failed = true;
                ctx.status.error(&format!("The computation failed: {e}"));
            }
        }
    }

    fn draw(&mut self, _: &mut Ctx<'_>) -> JsResult<()> {
        let curves: Vec<Curve> = POOLINGS
            .iter()
            .zip(&self.curves)
            .map(|(&(factor, dim), points)| Curve {
                label: format!("{0} × {0} pixels (dim {dim})", 28 / factor),
                points,
            })
            .collect();
        draw_on(&self.canvas, |area| {
            draw_fractions(
                area,
                "share of pairs with cos(û*, x1 − x0) > 0.9",
                "share of 256 pairs",
                &curves,
            )
        })
    }

    fn csv(&self, _: &Settings) -> Option<String> {
        let rows: Vec<String> = POOLINGS
            .iter()
            .zip(&self.curves)
            .flat_map(|(&(_, dim), c)| c.iter().map(move |(t, v)| format!("{dim},{t},{v}")))
            .collect();
        (!rows.is_empty()).then(|| super::csv_rows("dim,t,share_above_0.9", rows.into_iter()))
    }
}
