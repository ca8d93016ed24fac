//! Memorization in image space: digits generated from noise with the closed form over the
//! 10,000 MNIST digits, each path x_t shown as a strip of frames, and beside it the nearest
//! training digit, which is the same image.

use super::{draw_on, DigitsGate, Figure, Status};
use crate::charts::alignment::{draw_digit_grid, Cell};
use crate::flow::digits::{PIXELS, SIDE};
use crate::flow::{metrics, rng::Rng};
use crate::web::compute::{ComputeError, Ready};
use crate::web::controls::{button, element, JsResult, Listeners};
use crate::web::digits::DigitSet;
use crate::web::shared::backend;
use std::cell::RefCell;
use std::rc::Rc;
use web_sys::{Element, HtmlCanvasElement};

const SAMPLES: usize = 4;
const STEPS: usize = 40;
/// Frames shown: indices into the trajectory (frame k is at t = k / STEPS; 0 is the noise).
const SHOWN: [usize; 7] = [0, 10, 20, 30, 36, 38, 40];

/// One generated digit: its path at the SHOWN times, its nearest training digit and distance.
struct Sample {
    frames: Vec<Vec<f32>>,
    nearest: usize,
    distance: f32,
    /// Distance to the second-nearest training digit, for scale.
    second: f32,
}

struct State {
    canvas: HtmlCanvasElement,
    status: Status,
    gate: DigitsGate,
    digits: Option<Rc<DigitSet>>,
    prepared: Option<Rc<Ready>>,
    seed: u64,
    /// The starting noise of each row (shown before the paths are computed).
    noise: Vec<f32>,
    samples: Vec<Sample>,
    /// Bumped by "New noise": a computation for an older seed is dropped.
    version: u64,
    busy: bool,
    visible: bool,
    failed: bool,
    needs_draw: bool,
}

impl State {
    fn draw(&mut self) {
        self.needs_draw = false;
        let mut headers: Vec<String> = SHOWN
            .iter()
            .map(|&k| format!("t = {:.2}", k as f32 / STEPS as f32))
            .collect();
        headers.push("nearest digit".into());
        let rows: Vec<Vec<Option<Cell>>> = (0..SAMPLES)
            .map(|r| match (self.samples.get(r), &self.digits) {
                (Some(s), Some(d)) => {
                    let mut row: Vec<Option<Cell>> = s
                        .frames
                        .iter()
                        .map(|f| {
                            Some(Cell {
                                pixels: f,
                                caption: String::new(),
                            })
                        })
                        .collect();
                    row.push(Some(Cell {
                        pixels: &d.full[s.nearest * PIXELS..(s.nearest + 1) * PIXELS],
                        caption: format!("#{}, distance {:.2}", s.nearest, s.distance),
                        // (the second-nearest distance is in the status line)
                    }));
                    row
                }
                _ => std::iter::once(Some(Cell {
                    pixels: &self.noise[r * PIXELS..(r + 1) * PIXELS],
                    caption: String::new(),
                }))
                .chain((0..SHOWN.len()).map(|_| None))
                .collect(),
            })
            .collect();
        let result = draw_on(&self.canvas, |area| {
            draw_digit_grid(area, SIDE, &headers, &rows)
        });
        if let Err(e) = result {
            self.status.error(&format!("{e:?}"));
        }
    }
}

pub struct DigitMemorization {
    state: Rc<RefCell<State>>,
    _listeners: Listeners,
}

impl DigitMemorization {
    pub fn mount(root: &Element) -> JsResult<DigitMemorization> {
        let mut listeners = Listeners::default();
        let controls = element("div", "figure-controls", root)?;
        let canvas = super::row_canvas(
            root,
            (960, 560),
            "figure-digits",
            "Digits generated with the closed form from noise, their paths, and the nearest training digit",
        )?;
        let status = Status::new(root)?;
        let cell = super::Later::<State>::new();
        let c = cell.clone();
        button(&controls, &mut listeners, "New noise", move || {
            c.with(|s| {
                s.seed += 1;
                s.noise = Rng::new(s.seed).normals(SAMPLES * PIXELS);
                s.version += 1;
                s.samples.clear();
                s.failed = false;
                s.needs_draw = true;
            })
        })?;
        let gate = DigitsGate::new(&controls, &mut listeners)?;
        let state = Rc::new(RefCell::new(State {
            canvas,
            status,
            gate,
            digits: None,
            prepared: None,
            seed: 1,
            noise: Rng::new(1).normals(SAMPLES * PIXELS),
            samples: Vec::new(),
            version: 0,
            busy: false,
            visible: false,
            failed: false,
            needs_draw: true,
        }));
        cell.set(&state);
        Ok(DigitMemorization {
            state,
            _listeners: listeners,
        })
    }
}

fn generate(state: &Rc<RefCell<State>>, digits: Rc<DigitSet>) {
    let (x0, version, prepared) = {
        let mut s = state.borrow_mut();
        s.busy = true;
        (s.noise.clone(), s.version, s.prepared.clone())
    };
    let state = state.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let backend = backend().await;
        let start = js_sys::Date::now();
        let result = async {
            let prepared = Ready::cached(&backend, prepared, &digits.full, PIXELS).await?;
            let dt = 1.0 / STEPS as f32;
            let path = prepared.trajectory(&backend, &x0, 0.0, dt, STEPS).await?;
            Ok::<_, ComputeError>((prepared, path))
        }
        .await;
        let mut s = state.borrow_mut();
        s.busy = false;
        if s.version != version {
            return;
        }
        match result {
            Ok((prepared, path)) => {
                s.prepared = Some(prepared);
                let frame = |k: usize, r: usize| -> Vec<f32> {
                    if k == 0 {
                        x0[r * PIXELS..(r + 1) * PIXELS].to_vec()
                    } else {
                        let base = (k - 1) * SAMPLES * PIXELS + r * PIXELS;
                        path[base..base + PIXELS].to_vec()
                    }
                };
                let last: Vec<f32> = (0..SAMPLES).flat_map(|r| frame(STEPS, r)).collect();
                let nearest = metrics::nearest_two(&digits.full, PIXELS, &last);
                s.samples = (0..SAMPLES)
                    .map(|r| Sample {
                        frames: SHOWN.iter().map(|&k| frame(k, r)).collect(),
                        nearest: nearest[r].0,
                        distance: nearest[r].1,
                        second: nearest[r].2,
                    })
                    .collect();
                let worst = s.samples.iter().map(|x| x.distance).fold(0.0f32, f32::max);
                let second = s
                    .samples
                    .iter()
                    .map(|x| x.second)
                    .fold(f32::INFINITY, f32::min);
                s.status.set(&format!(
                    "{SAMPLES} digits, {STEPS} Euler steps of the closed form over {} digits on {} ({:.1} s). Distance to the nearest training digit at most {worst:.3}; the second nearest is at least {second:.1} away (pixels in [−1, 1]).",
                    digits.n,
                    backend.name(),
                    (js_sys::Date::now() - start) / 1000.0
                ));
                s.needs_draw = true;
            }
            Err(e) => {
                s.failed = true;
                s.status.error(&format!("The computation failed: {e}"));
            }
        }
    });
}

impl Figure for DigitMemorization {
    fn csv(&self) -> Option<String> {
        let s = self.state.borrow();
        (!s.samples.is_empty()).then(|| {
            super::csv_rows(
                "sample,nearest_training_digit,distance,second_nearest_distance",
                s.samples
                    .iter()
                    .enumerate()
                    .map(|(k, x)| format!("{k},{},{},{}", x.nearest, x.distance, x.second)),
            )
        })
    }

    fn frame(&mut self, _now: f64) {
        let next = {
            let mut s = self.state.borrow_mut();
            if s.visible && s.digits.is_none() {
                s.digits = s.gate.poll(&s.status);
                if s.digits.is_some() {
                    s.status
                        .set("Integrating the closed form from noise over 10,000 digits…");
                }
            }
            match &s.digits {
                Some(d) if s.visible && !s.busy && !s.failed && s.samples.is_empty() => {
                    Some(d.clone())
                }
                _ => None,
            }
        };
        if let Some(digits) = next {
            generate(&self.state, digits);
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
