//! Two figures over the same random pairs (x0 ~ N(0, I), x1 from the data) at t = 0, 0.1, ...,
//! 0.9, for two moons (dim 2) beside MNIST (dim 784), each over 10,000 training points: the
//! closed-form velocity u*(x_t, t) is computed once per (data set, t) and measured against the
//! conditional target x1 - x0, one t per background task, so the rows appear one by one.
//! - `target-alignment`: histograms of cos(u*(x_t, t), x1 - x0), as ridgelines.
//! - `objective-gap`: both sides of the objective, E‖x1 - x0 - u*(x_t, t)‖² (the constant of
//!   Theorem 2 at t) and E‖x1 - x0‖² (the target's own size), against t.

use super::{draw_on, two_panels, DigitsGate, Figure, Status, TwoPanels};
use crate::charts::alignment::{draw_ridgelines, draw_target_variance, Ridge};
use crate::charts::DrawResult;
use crate::flow::alignment::{self, TargetVariance};
use crate::flow::{metrics::Histogram, Dataset};
use crate::web::backend_switch::AnyBackend;
use crate::web::compute::{ComputeError, Ready};
use crate::web::controls::{JsResult, Listeners};
use crate::web::shared::backend;
use plotters::coord::Shift;
use plotters::prelude::DrawingArea;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use web_sys::{Element, HtmlCanvasElement};

pub const TIMES: usize = 10;
pub const PAIRS: usize = 256;
const POINTS: usize = 10_000;
const BINS: usize = 40;
const SEED: u32 = 1;

/// What a figure measures of the velocities at one t, and how it draws and exports it.
pub trait Measure: 'static {
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

struct State<M: Measure> {
    panels: [Panel<M>; 2],
    status: Status,
    gate: DigitsGate,
    busy: bool,
    visible: bool,
    needs_draw: bool,
    failed: bool,
}

fn t_of(k: usize) -> f32 {
    k as f32 / TIMES as f32
}

impl<M: Measure> State<M> {
    fn draw(&mut self) {
        self.needs_draw = false;
        for panel in &self.panels {
            let result = draw_on(&panel.canvas, |area| {
                M::draw(area, panel.title, &panel.rows)
            });
            if let Err(e) = result {
                self.status.error(&format!("{e:?}"));
            }
        }
    }
}

/// A figure measuring u* against the targets of the same pairs at each t, for both data sets.
pub struct PairsByT<M: Measure> {
    state: Rc<RefCell<State<M>>>,
    _listeners: Listeners,
}

pub type TargetAlignment = PairsByT<Cosines>;
pub type ObjectiveGap = PairsByT<Spread>;

impl<M: Measure> PairsByT<M> {
    pub fn mount(root: &Element) -> JsResult<PairsByT<M>> {
        let mut listeners = Listeners::default();
        let TwoPanels {
            controls,
            left,
            right,
            status,
        } = two_panels(root, M::LABELS[0], M::LABELS[1])?;
        let gate = DigitsGate::new(&controls, &mut listeners)?;
        let moons = Dataset::TwoMoons.sample(POINTS, 0);
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
        panels[0].data = Some((Rc::new(moons), 2));
        let state = Rc::new(RefCell::new(State {
            panels,
            status,
            gate,
            busy: false,
            visible: false,
            needs_draw: true,
            failed: false,
        }));
        Ok(PairsByT {
            state,
            _listeners: listeners,
        })
    }
}

/// The velocities u*(x_t, t) at the pairs of (panel, t) with the pairs' targets: both figures
/// measure the same ones, so whichever asks first computes them and the other reads them here.
enum Shared {
    Pending,
    Done(Rc<(Vec<f32>, Vec<f32>)>),
}

thread_local! {
    static VELOCITIES: RefCell<HashMap<(usize, usize), Shared>> = RefCell::new(HashMap::new());
}

/// Measures the next missing row (two moons first; MNIST once downloaded): from the shared
/// velocities when another figure computed them, else computing them now unless a computation
/// (this figure's or the other's) is under way.
fn compute_next<M: Measure>(state: &Rc<RefCell<State<M>>>) {
    let job = {
        let mut s = state.borrow_mut();
        let mut next = None;
        'panels: for (p, panel) in s.panels.iter().enumerate() {
            let Some(data) = panel.data.clone() else {
                continue;
            };
            for (k, row) in panel.rows.iter().enumerate() {
                if row.is_some() {
                    continue;
                }
                let known = VELOCITIES.with(|v| match v.borrow().get(&(p, k)) {
                    None => Some(None),
                    Some(Shared::Pending) => None,
                    Some(Shared::Done(uv)) => Some(Some(uv.clone())),
                });
                if let Some(known) = known {
                    next = Some((p, k, data, panel.prepared.clone(), known));
                    break 'panels;
                }
            }
        }
        let Some((p, k, data, prepared, known)) = next else {
            return;
        };
        if let Some(uv) = known {
            // Another figure's velocities: measured at once.
            s.panels[p].rows[k] = Some(M::row(&uv.0, &uv.1, data.1));
            s.needs_draw = true;
            s.report(p, k, "shared with the figure beside");
            return;
        }
        // One computation at a time across both figures: the other's rows come in as fast, and
        // a page never queues twice the work on its device.
        if VELOCITIES.with(|v| v.borrow().values().any(|e| matches!(e, Shared::Pending))) {
            return;
        }
        VELOCITIES.with(|v| v.borrow_mut().insert((p, k), Shared::Pending));
        s.busy = true;
        (p, k, data, prepared)
    };
    let (p, k, (data, dim), prepared) = job;
    let state = state.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let backend = backend().await;
        let start = js_sys::Date::now();
        let result = async {
            let prepared = Ready::cached(&backend, prepared, &data, dim).await?;
            let q = alignment::alignment_queries(&data, dim, &[t_of(k)], PAIRS, SEED);
            let u = prepared.velocity_at(&backend, &q.points, &q.times).await?;
            Ok::<_, ComputeError>((prepared, Rc::new((u, q.targets))))
        }
        .await;
        VELOCITIES.with(|v| match &result {
            Ok((_, uv)) => v.borrow_mut().insert((p, k), Shared::Done(uv.clone())),
            Err(_) => v.borrow_mut().remove(&(p, k)),
        });
        let mut s = state.borrow_mut();
        s.busy = false;
        match result {
            Ok((prepared, uv)) => {
                s.panels[p].prepared = Some(prepared);
                s.panels[p].rows[k] = Some(M::row(&uv.0, &uv.1, dim));
                let took = format!(
                    "{} in {:.0} ms",
                    backend.name(),
                    js_sys::Date::now() - start
                );
                s.report(p, k, &took);
                s.needs_draw = true;
            }
            Err(e) => {
                s.failed = true;
                s.status.error(&format!("The computation failed: {e}"));
            }
        }
    });
}

impl<M: Measure> State<M> {
    /// The status line after row (p, k), and the GPU sets dropped once every row is in.
    fn report(&mut self, p: usize, k: usize, how: &str) {
        let done: usize = self
            .panels
            .iter()
            .map(|p| p.rows.iter().filter(|r| r.is_some()).count())
            .sum();
        self.status.set(&format!(
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

impl<M: Measure> Figure for PairsByT<M> {
    fn csv(&self) -> Option<String> {
        let s = self.state.borrow();
        let mut rows = Vec::new();
        for panel in &s.panels {
            let data = panel.title.replace(',', "");
            for (k, row) in panel.rows.iter().enumerate() {
                if let Some(row) = row {
                    M::csv_rows(&data, t_of(k), row, &mut rows);
                }
            }
        }
        (!rows.is_empty()).then(|| super::csv_rows(M::CSV_HEADER, rows.into_iter()))
    }

    fn frame(&mut self, _now: f64) {
        let start = {
            let mut s = self.state.borrow_mut();
            if s.visible && s.panels[1].data.is_none() {
                if let Some(d) = s.gate.poll(&s.status) {
                    s.panels[1].data = Some((d.pooled(1), crate::flow::digits::PIXELS));
                }
            }
            s.visible && !s.busy && !s.failed
        };
        if start {
            compute_next(&self.state);
        }
        let mut s = self.state.borrow_mut();
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
