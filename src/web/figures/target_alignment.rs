//! The target is not stochastic in high dimension: histograms of cos(u*(x_t, t), x1 - x0) over
//! 256 random pairs at t = 0, 0.1, ..., 0.9, as ridgelines, for two moons (dim 2) beside MNIST
//! (dim 784), each over 10,000 training points. One t is computed per background task, so the
//! rows appear one by one.

use super::{draw_on, two_panels, DigitsGate, Figure, Status, TwoPanels};
use crate::charts::alignment::{draw_ridgelines, Ridge};
use crate::flow::{alignment, metrics::Histogram, Dataset};
use crate::gpu::backend::Prepared;
use crate::web::controls::{JsResult, Listeners};
use crate::web::shared::{backend, pace};
use std::cell::RefCell;
use std::rc::Rc;
use web_sys::{Element, HtmlCanvasElement};

pub const TIMES: usize = 10;
pub const PAIRS: usize = 256;
const POINTS: usize = 10_000;
const BINS: usize = 40;
const SEED: u32 = 1;

/// One panel: a data set and the cosines computed so far, one histogram per t.
struct Panel {
    canvas: HtmlCanvasElement,
    title: &'static str,
    data: Option<(Rc<Vec<f32>>, usize)>,
    prepared: Option<Rc<Prepared>>,
    rows: Vec<Option<(Histogram, f32)>>,
}

struct State {
    panels: [Panel; 2],
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

impl State {
    fn draw(&mut self) {
        self.needs_draw = false;
        for panel in &self.panels {
            let ridges: Vec<Ridge> = panel
                .rows
                .iter()
                .enumerate()
                .map(|(k, row)| Ridge {
                    label: match row {
                        Some((_, aligned)) => {
                            format!("t={:.1} {:.0}%", t_of(k), 100.0 * aligned)
                        }
                        None => format!("t={:.1} …", t_of(k)),
                    },
                    histogram: row.as_ref().map(|(h, _)| h),
                })
                .collect();
            let result = draw_on(&panel.canvas, |area| {
                draw_ridgelines(
                    area,
                    panel.title,
                    "cos(u*(x_t, t), x1 − x0)   (% > 0.9 on the left)",
                    (-1.0, 1.0),
                    &ridges,
                )
            });
            if let Err(e) = result {
                self.status.error(&format!("{e:?}"));
            }
        }
    }
}

pub struct TargetAlignment {
    state: Rc<RefCell<State>>,
    _listeners: Listeners,
}

impl TargetAlignment {
    pub fn mount(root: &Element) -> JsResult<TargetAlignment> {
        let mut listeners = Listeners::default();
        let TwoPanels {
            controls,
            left,
            right,
            status,
        } = two_panels(
            root,
            "Histograms of the cosine between the closed-form velocity and the conditional target for two moons, one per t",
            "The same histograms for MNIST digits (dimension 784)",
        )?;
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
        Ok(TargetAlignment {
            state,
            _listeners: listeners,
        })
    }
}

/// Computes the next missing row (two moons first; MNIST once downloaded).
fn compute_next(state: &Rc<RefCell<State>>) {
    let job = {
        let mut s = state.borrow_mut();
        let next = s.panels.iter().enumerate().find_map(|(p, panel)| {
            let k = panel.rows.iter().position(Option::is_none)?;
            panel
                .data
                .clone()
                .map(|d| (p, k, d, panel.prepared.clone()))
        });
        if next.is_some() {
            s.busy = true;
        }
        next
    };
    let Some((p, k, (data, dim), prepared)) = job else {
        return;
    };
    let state = state.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let backend = backend().await;
        let start = js_sys::Date::now();
        let result = async {
            let prepared = backend.prepared(prepared, &data, dim)?;
            let q = alignment::alignment_queries(&data, dim, &[t_of(k)], PAIRS, SEED);
            let cosines = backend.alignment_cosines(&prepared, &q, dim, pace).await?;
            Ok::<_, crate::gpu::GpuError>((prepared, cosines))
        }
        .await;
        let mut s = state.borrow_mut();
        s.busy = false;
        match result {
            Ok((prepared, cosines)) => {
                let aligned = cosines.iter().filter(|&&c| c > 0.9).count() as f32 / PAIRS as f32;
                let panel = &mut s.panels[p];
                panel.prepared = Some(prepared);
                panel.rows[k] = Some((Histogram::new(&cosines, -1.0, 1.0, BINS), aligned));
                let done: usize = s
                    .panels
                    .iter()
                    .map(|p| p.rows.iter().filter(|r| r.is_some()).count())
                    .sum();
                s.status.set(&format!(
                    "{done} of {} histograms on {} ({} at t = {:.1}: {:.0} ms).",
                    2 * TIMES,
                    backend.name(),
                    if p == 0 { "two moons" } else { "MNIST" },
                    t_of(k),
                    js_sys::Date::now() - start
                ));
                if done == 2 * TIMES {
                    // The prepared sets are no longer needed (GPU memory).
                    for panel in &mut s.panels {
                        panel.prepared = None;
                    }
                }
                s.needs_draw = true;
            }
            Err(e) => {
                s.failed = true;
                s.status.error(&format!("The computation failed: {e}"));
            }
        }
    });
}

impl Figure for TargetAlignment {
    fn csv(&self) -> Option<String> {
        let s = self.state.borrow();
        let mut rows = Vec::new();
        for panel in &s.panels {
            for (k, row) in panel.rows.iter().enumerate() {
                if let Some((h, aligned)) = row {
                    let w = h.bin_width();
                    for (b, c) in h.counts.iter().enumerate() {
                        let lo = h.lo + b as f32 * w;
                        rows.push(format!(
                            "{},{},{lo},{},{c},{aligned}",
                            panel.title.replace(',', ""),
                            t_of(k),
                            lo + w
                        ));
                    }
                }
            }
        }
        (!rows.is_empty()).then(|| {
            super::csv_rows(
                "data,t,bin_lo,bin_hi,count,share_above_0.9",
                rows.into_iter(),
            )
        })
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
