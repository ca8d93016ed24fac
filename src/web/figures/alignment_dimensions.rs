//! Intuitions from small dimension fail: the share of pairs whose conditional target x1 - x0 is
//! aligned with u*(x_t, t) (cosine above 0.9) against t, one curve per resolution of the same
//! 10,000 MNIST digits (2 x 2 up to 28 x 28 pixels: dim 4 to 784), each curve drawn as its
//! times come in.

use super::{draw_on, DigitsGate, Figure, Status};
use crate::charts::alignment::{draw_fractions, Curve};
use crate::flow::{alignment, digits::POOLINGS};
use crate::web::compute::{ComputeError, Ready};
use crate::web::controls::{element, JsResult, Listeners};
use crate::web::digits::DigitSet;
use crate::web::shared::backend;
use std::cell::RefCell;
use std::rc::Rc;
use web_sys::{Element, HtmlCanvasElement};

use super::target_alignment::{PAIRS, TIMES};
const SEED: u32 = 2;
const THRESHOLD: f32 = 0.9;

struct State {
    canvas: HtmlCanvasElement,
    status: Status,
    gate: DigitsGate,
    digits: Option<Rc<DigitSet>>,
    /// Per resolution (POOLINGS order): (t, share above THRESHOLD) computed so far.
    curves: Vec<Vec<(f32, f32)>>,
    /// The resolution being computed, prepared on the backend once.
    prepared: Option<(usize, Rc<Ready>)>,
    started: Option<f64>,
    busy: bool,
    visible: bool,
    failed: bool,
    needs_draw: bool,
}

impl State {
    fn draw(&mut self) {
        self.needs_draw = false;
        let curves: Vec<Curve> = POOLINGS
            .iter()
            .zip(&self.curves)
            .map(|(&(factor, dim), points)| Curve {
                label: format!("{0} × {0} pixels (dim {dim})", 28 / factor),
                points,
            })
            .collect();
        let result = draw_on(&self.canvas, |area| {
            draw_fractions(
                area,
                "share of pairs with cos(û*, x1 − x0) > 0.9",
                "share of 256 pairs",
                &curves,
            )
        });
        if let Err(e) = result {
            self.status.error(&format!("{e:?}"));
        }
    }
}

pub struct AlignmentDimensions {
    state: Rc<RefCell<State>>,
    _listeners: Listeners,
}

impl AlignmentDimensions {
    pub fn mount(root: &Element) -> JsResult<AlignmentDimensions> {
        let mut listeners = Listeners::default();
        let controls = element("div", "figure-controls", root)?;
        let canvas = super::row_canvas(
            root,
            (960, 420),
            "figure-wide",
            "Share of aligned pairs against t, one curve per image resolution",
        )?;
        let status = Status::new(root)?;
        let gate = DigitsGate::new(&controls, &mut listeners)?;
        let state = Rc::new(RefCell::new(State {
            canvas,
            status,
            gate,
            digits: None,
            curves: vec![Vec::new(); POOLINGS.len()],
            prepared: None,
            started: None,
            busy: false,
            visible: false,
            failed: false,
            needs_draw: true,
        }));
        Ok(AlignmentDimensions {
            state,
            _listeners: listeners,
        })
    }
}

/// Computes the next (resolution, t).
fn compute_next(state: &Rc<RefCell<State>>, digits: Rc<DigitSet>) {
    let job = {
        let mut s = state.borrow_mut();
        let Some(r) = s.curves.iter().position(|c| c.len() < TIMES) else {
            return;
        };
        s.busy = true;
        s.started.get_or_insert_with(js_sys::Date::now);
        let k = s.curves[r].len();
        let prepared = s.prepared.clone().filter(|(p, _)| *p == r).map(|(_, p)| p);
        (r, k, prepared)
    };
    let (r, k, prepared) = job;
    let state = state.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let backend = backend().await;
        let (factor, dim) = POOLINGS[r];
        let data = digits.pooled(factor);
        let t = k as f32 / TIMES as f32;
        let result = async {
            let prepared = Ready::cached(&backend, prepared, &data, dim).await?;
            let q = alignment::alignment_queries(&data, dim, &[t], PAIRS, SEED);
            let u = prepared.velocity_at(&backend, &q.points, &q.times).await?;
            let cosines = alignment::row_cosines(&u, &q.targets, dim);
            Ok::<_, ComputeError>((prepared, cosines))
        }
        .await;
        let mut s = state.borrow_mut();
        s.busy = false;
        match result {
            Ok((prepared, cosines)) => {
                let share = crate::flow::metrics::fraction_above(&cosines, THRESHOLD);
                s.curves[r].push((t, share));
                s.prepared = (s.curves[r].len() < TIMES).then_some((r, prepared));
                let done: usize = s.curves.iter().map(Vec::len).sum();
                let total = POOLINGS.len() * TIMES;
                let seconds = (js_sys::Date::now() - s.started.unwrap_or(0.0)) / 1000.0;
                let text = if done == total {
                    format!(
                        "Done on {}: {total} measurements of {PAIRS} pairs over {} digits in {seconds:.1} s.",
                        backend.name(),
                        digits.n
                    )
                } else {
                    format!(
                        "{done} of {total} on {} (dim {dim}, t = {t:.1}), {seconds:.1} s so far.",
                        backend.name()
                    )
                };
                s.status.set(&text);
                s.needs_draw = true;
            }
            Err(e) => {
                s.failed = true;
                s.status.error(&format!("The computation failed: {e}"));
            }
        }
    });
}

impl Figure for AlignmentDimensions {
    fn csv(&self) -> Option<String> {
        let s = self.state.borrow();
        let rows: Vec<String> = POOLINGS
            .iter()
            .zip(&s.curves)
            .flat_map(|(&(_, dim), c)| c.iter().map(move |(t, v)| format!("{dim},{t},{v}")))
            .collect();
        (!rows.is_empty()).then(|| super::csv_rows("dim,t,share_above_0.9", rows.into_iter()))
    }

    fn frame(&mut self, _now: f64) {
        let next = {
            let mut s = self.state.borrow_mut();
            if s.visible && s.digits.is_none() {
                s.digits = s.gate.poll(&s.status);
            }
            match &s.digits {
                Some(d) if s.visible && !s.busy && !s.failed => Some(d.clone()),
                _ => None,
            }
        };
        if let Some(digits) = next {
            compute_next(&self.state, digits);
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
