//! Two figures over the same random pairs (x0 ~ N(0, I), x1 from the data) at t = 0, 0.1, ...,
//! 0.9, for two moons (dim 2) beside MNIST (dim 784), each over 10,000 training points: the
//! closed-form velocity u*(x_t, t) is computed once per (data set, t) and measured against the
//! conditional target x1 - x0, one t per background task, so the rows appear one by one.
//! - `target-alignment`: histograms of cos(u*(x_t, t), x1 - x0), as ridgelines.
//! - `objective-gap`: both sides of the objective, E‖x1 - x0 - u*(x_t, t)‖² (the constant of
//!   Theorem 2 at t) and E‖x1 - x0‖² (the target's own size), against t.

use super::driver::{Ctx, Settings, Sketch, Ui};
use super::{draw_on, two_canvases, DigitsGate, TwoCanvases};
use crate::catalog::FigureSpec;
use crate::charts::alignment::{draw_ridgelines, draw_target_variance, Ridge};
use crate::charts::DrawResult;
use crate::flow::alignment::{self, TargetVariance};
use crate::flow::{metrics::Histogram, Dataset};
use crate::web::backend::figure_backend;
use crate::web::compute::{self, ComputeError, Question, Ready};
use crate::web::controls::JsResult;
use crate::web::drawing::AnyBackend;
use futures_util::future::LocalBoxFuture;
use plotters::coord::Shift;
use plotters::prelude::DrawingArea;
use std::cell::RefCell;
use std::rc::Rc;
use web_sys::HtmlCanvasElement;

pub const TIMES: usize = 10;
pub const PAIRS: usize = 256;
const POINTS: usize = 10_000;
const BINS: usize = 40;
const SEED: u32 = 1;

/// What a figure measures of the velocities at one t, and how it draws and exports it.
pub trait Measure: 'static {
    /// The figure's entry in the catalogue, and its controls' id prefix.
    const SPEC: &'static FigureSpec;
    const ID: &'static str;
    type Row;
    /// The canvases' accessible labels (two moons, MNIST).
    const LABELS: [&'static str; 2];
    /// The CSV header; `csv_rows` writes rows under it.
    const CSV_HEADER: &'static str;
    fn row(velocities: &[f32], targets: &[f32], dim: usize) -> Self::Row;
    fn draw<'b>(
        area: &DrawingArea<AnyBackend<'b>, Shift>,
        title: &str,
        rows: &[Option<Self::Row>],
    ) -> DrawResult<AnyBackend<'b>>;
    fn csv_rows(data: &str, t: f32, row: &Self::Row, out: &mut Vec<String>);
}

/// Histograms of the cosines, and the share above 0.9.
pub struct Cosines;

impl Measure for Cosines {
    const SPEC: &'static FigureSpec = &crate::catalog::target_alignment::SPEC;
    const ID: &'static str = "ta";
    type Row = (Histogram, f32);
    const LABELS: [&'static str; 2] = [
        "Histograms of the cosine between the closed-form velocity and the conditional target for two moons, one per t",
        "The same histograms for MNIST digits (dimension 784)",
    ];
    const CSV_HEADER: &'static str = "data,t,bin_lo,bin_hi,count,share_above_0.9";

    fn row(velocities: &[f32], targets: &[f32], dim: usize) -> Self::Row {
        let cosines = alignment::row_cosines(velocities, targets, dim);
        let aligned = crate::flow::metrics::fraction_above(&cosines, 0.9);
        (Histogram::new(&cosines, -1.0, 1.0, BINS), aligned)
    }

    fn draw<'b>(
        area: &DrawingArea<AnyBackend<'b>, Shift>,
        title: &str,
        rows: &[Option<Self::Row>],
    ) -> DrawResult<AnyBackend<'b>> {
        let ridges: Vec<Ridge> = rows
            .iter()
            .enumerate()
            .map(|(k, row)| Ridge {
                label: match row {
                    Some((_, aligned)) => format!("t={:.1} {:.0}%", t_of(k), 100.0 * aligned),
                    None => format!("t={:.1} …", t_of(k)),
                },
                histogram: row.as_ref().map(|(h, _)| h),
            })
            .collect();
        draw_ridgelines(
            area,
            title,
            "cos(û*(x_t, t), x1 − x0)   (% > 0.9 on the left)",
            (-1.0, 1.0),
            &ridges,
        )
    }

    fn csv_rows(data: &str, t: f32, (h, aligned): &Self::Row, out: &mut Vec<String>) {
        let w = h.bin_width();
        for (b, c) in h.counts.iter().enumerate() {
            let lo = h.lo + b as f32 * w;
            out.push(format!("{data},{t},{lo},{},{c},{aligned}", lo + w));
        }
    }
}

/// Both sides of the objective: the mean squared distance of the target from u*, and the
/// target's own mean squared size.
pub struct Spread;

impl Measure for Spread {
    const SPEC: &'static FigureSpec = &crate::catalog::objective_gap::SPEC;
    const ID: &'static str = "og";
    type Row = TargetVariance;
    const LABELS: [&'static str; 2] = [
        "For two moons, the mean squared distance between the conditional target and the closed-form velocity against t, beside the target's mean squared size",
        "The same for MNIST digits (dimension 784)",
    ];
    const CSV_HEADER: &'static str = "data,t,mean_sq_target_minus_u_star,mean_sq_target";

    fn row(velocities: &[f32], targets: &[f32], dim: usize) -> Self::Row {
        TargetVariance::measure(velocities, targets, dim)
    }

    fn draw<'b>(
        area: &DrawingArea<AnyBackend<'b>, Shift>,
        title: &str,
        rows: &[Option<Self::Row>],
    ) -> DrawResult<AnyBackend<'b>> {
        let points: Vec<(f32, f64, f64)> = rows
            .iter()
            .enumerate()
            .filter_map(|(k, row)| row.map(|r| (t_of(k), r.residual, r.energy)))
            .collect();
        draw_target_variance(area, title, &points)
    }

    fn csv_rows(data: &str, t: f32, row: &Self::Row, out: &mut Vec<String>) {
        out.push(format!("{data},{t},{},{}", row.residual, row.energy));
    }
}

/// One panel: a data set and the rows measured so far, one per t.
struct Panel<M: Measure> {
    canvas: HtmlCanvasElement,
    title: &'static str,
    data: Option<(Rc<Vec<f32>>, usize)>,
    prepared: Option<Rc<Ready>>,
    rows: Vec<Option<M::Row>>,
}

fn t_of(k: usize) -> f32 {
    k as f32 / TIMES as f32
}

/// A figure measuring u* against the targets of the same pairs at each t, for both data sets.
pub struct PairsByT<M: Measure> {
    panels: [Panel<M>; 2],
    gate: DigitsGate,
    failed: bool,
}

pub type TargetAlignment = PairsByT<Cosines>;
pub type ObjectiveGap = PairsByT<Spread>;

/// The velocities u*(x_t, t) at a row's pairs, and the pairs' targets: both figures measure the
/// same ones, so they ask the compute layer one question per (panel, t) and whichever asks first
/// computes it.
type Velocities = (Vec<f32>, Vec<f32>);

/// The question of row (panel, t), the same in both figures.
fn question(p: usize, k: usize) -> Question {
    Question(
        "u* and the targets at the alignment figures' pairs, two moons then MNIST, by t",
        p * TIMES + k,
    )
}

/// A row's set (when this figure prepared one), its velocities, and whether the figure beside
/// computed them.
type Row = (Option<Rc<Ready>>, Rc<Velocities>, bool);

/// A computed row: its panel and t, the set prepared for it (when this figure computed the row),
/// the velocities and targets, whether the figure beside computed them, where and in how long.
pub struct Computed {
    result: Result<Row, Rc<ComputeError>>,
    backend: &'static str,
    ms: f64,
}

impl<M: Measure> PairsByT<M> {
    /// The rows still missing (two moons first; MNIST once downloaded).
    fn missing(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.panels.iter().enumerate().flat_map(|(p, panel)| {
            let rows = if panel.data.is_some() { TIMES } else { 0 };
            (0..rows)
                .filter(move |&k| panel.rows[k].is_none())
                .map(move |k| (p, k))
        })
    }

    /// The status line after row (p, k), and the GPU sets dropped once every row is in.
    fn report(&mut self, p: usize, k: usize, how: &str, ctx: &Ctx<'_>) {
        let done: usize = self
            .panels
            .iter()
            .map(|p| p.rows.iter().filter(|r| r.is_some()).count())
            .sum();
        ctx.status.set(&format!(
            "{done} of {} measurements ({} at t = {:.1}: {how}).",
            2 * TIMES,
            if p == 0 { "two moons" } else { "MNIST" },
            t_of(k),
        ));
        if done == 2 * TIMES {
            // The prepared sets are no longer needed (GPU memory).
            for panel in &mut self.panels {
                panel.prepared = None;
            }
        }
    }
}

impl<M: Measure> Sketch for PairsByT<M> {
    const SPEC: &'static FigureSpec = M::SPEC;
    const ID: &'static str = M::ID;
    /// The panel and the index of t.
    type Key = (usize, usize);
    type Output = Computed;

    fn mount(ui: &mut Ui<'_, Self>) -> JsResult<Self> {
        let TwoCanvases { left, right } = two_canvases(ui.root, M::LABELS[0], M::LABELS[1])?;
        let gate = DigitsGate::new(ui.panel, ui.listeners)?;
        let panel = |canvas, title| Panel {
            canvas,
            title,
            data: None,
            prepared: None,
            rows: (0..TIMES).map(|_| None).collect(),
        };
        let mut panels = [
            panel(left, "two moons, dim 2, n = 10,000"),
            panel(right, "MNIST, dim 784, n = 10,000"),
        ];
        panels[0].data = Some((Rc::new(Dataset::TwoMoons.sample(POINTS, 0)), 2));
        Ok(PairsByT {
            panels,
            gate,
            failed: false,
        })
    }

    /// Brings in the digits once downloaded.
    fn animate(&mut self, _: f64, ctx: &mut Ctx<'_>) -> bool {
        if self.panels[1].data.is_none() {
            if let Some(d) = self.gate.poll(ctx.status) {
                self.panels[1].data = Some((d.full.clone(), crate::flow::digits::PIXELS));
            }
        }
        false
    }

    /// The next missing row. Both figures go through the rows in one order and a row under way
    /// in one is awaited by the other (`compute::answer`), so a page never does a row twice.
    fn wanted(&self, _: &Settings) -> Option<Self::Key> {
        if self.failed {
            return None;
        }
        self.missing().next()
    }

    fn job(&mut self, &(p, k): &Self::Key, _: &mut Ctx<'_>) -> LocalBoxFuture<'static, Computed> {
        let panel = &self.panels[p];
        let (data, dim) = panel.data.clone().unwrap_or_default();
        let prepared = panel.prepared.clone();
        Box::pin(async move {
            let backend = figure_backend();
            let start = js_sys::Date::now();
            // The set this figure prepares, if it computes the row rather than the other figure.
            let made = Rc::new(RefCell::new(None));
            let result = compute::answer(question(p, k), || {
                let (backend, made) = (backend.clone(), made.clone());
                async move {
                    let prepared = Ready::cached(&backend, prepared, &data, dim).await?;
                    *made.borrow_mut() = Some(prepared.clone());
                    let q = alignment::alignment_queries(&data, dim, &[t_of(k)], PAIRS, SEED);
                    let u = prepared.velocity_at(&q.points, &q.times).await?;
                    Ok((u, q.targets))
                }
            })
            .await
            .map(|(uv, fresh)| (made.take(), uv, !fresh));
            Computed {
                result,
                backend: backend.name(),
                ms: js_sys::Date::now() - start,
            }
        })
    }

    fn done(&mut self, (p, k): Self::Key, computed: Computed, ctx: &mut Ctx<'_>) {
        match computed.result {
            Ok((prepared, uv, beside)) => {
                let dim = self.panels[p].data.as_ref().map_or(2, |(_, d)| *d);
                if prepared.is_some() {
                    self.panels[p].prepared = prepared;
                }
                self.panels[p].rows[k] = Some(M::row(&uv.0, &uv.1, dim));
                let took = if beside {
                    "shared with the figure beside".to_string()
                } else {
                    format!("{} in {:.0} ms", computed.backend, computed.ms)
                };
                self.report(p, k, &took, ctx);
            }
            Err(e) => {
                self.failed = true;
                ctx.status.error(&format!("The computation failed: {e}"));
            }
        }
    }

    fn draw(&mut self, _: &mut Ctx<'_>) -> JsResult<()> {
        for panel in &self.panels {
            draw_on(&panel.canvas, |area| {
                M::draw(area, panel.title, &panel.rows)
            })?;
        }
        Ok(())
    }

    fn csv(&self, _: &Settings) -> Option<String> {
        let mut rows = Vec::new();
        for panel in &self.panels {
            let data = panel.title.replace(',', "");
            for (k, row) in panel.rows.iter().enumerate() {
                if let Some(row) = row {
                    M::csv_rows(&data, t_of(k), row, &mut rows);
                }
            }
        }
        (!rows.is_empty()).then(|| super::csv_rows(M::CSV_HEADER, rows.into_iter()))
    }
}
