//! Memorization in image space: digits generated from noise with the closed form over the
//! 10,000 MNIST digits, each path x_t shown as a strip of frames, and beside it the nearest
//! training digit, which is the same image.

use super::driver::{Ctx, Settings, Sketch, Ui};
use super::{draw_on, DigitsGate};
use crate::catalog::FigureSpec;
use crate::charts::alignment::{draw_digit_grid, Cell};
use crate::charts::layout::{Fit, Grid};
use crate::flow::digits::{PIXELS, SIDE};
use crate::flow::{metrics, rng::Rng};
use crate::web::backend::figure_backend;
use crate::web::compute::{ComputeError, Ready};
use crate::web::controls::JsResult;
use crate::web::digits::DigitSet;
use crate::web::turns::pace;
use futures_util::future::LocalBoxFuture;
use std::rc::Rc;
use web_sys::HtmlCanvasElement;

const SAMPLES: usize = 4;
const STEPS: usize = 40;
/// Frames shown: indices into the trajectory (frame k is at t = k / STEPS; 0 is the noise).
const SHOWN: [usize; 7] = [0, 10, 20, 30, 36, 38, 40];
/// A row per sample: its path at the SHOWN times, then its nearest training digit.
const GRID: Grid = Grid {
    side: SIDE as u32,
    columns: SHOWN.len() as u32 + 1,
    rows: SAMPLES as u32,
    headers: true,
    labels: false,
};
/// Training digits compared with the samples between two turns for the page.
const NEAREST_ROWS: usize = 1000;

/// One generated digit: its path at the SHOWN times, its nearest training digit and distance.
struct Sample {
    frames: Vec<Vec<f32>>,
    nearest: usize,
    distance: f32,
    /// Distance to the second-nearest training digit, for scale.
    second: f32,
}

pub struct DigitMemorization {
    canvas: HtmlCanvasElement,
    gate: DigitsGate,
    digits: Option<Rc<DigitSet>>,
    prepared: Option<Rc<Ready>>,
    seed: u64,
    /// The starting noise of each row (shown before the paths are computed).
    noise: Vec<f32>,
    samples: Vec<Sample>,
    /// Bumped by "New noise": a computation for an older seed is dropped.
    version: u64,
    failed: bool,
}

/// What the paths' job computed: the set it prepared, the trajectory (step-major), and for each
/// generated digit its nearest training digit, the distance to it and to the second nearest.
struct Computed {
    prepared: Rc<Ready>,
    path: Vec<f32>,
    nearest: Vec<(usize, f32, f32)>,
}

/// The paths from one noise: the set prepared for them, the trajectory and each path's nearest
/// two training digits, the noise, where and in how long.
pub struct Paths {
    result: Result<Computed, ComputeError>,
    x0: Vec<f32>,
    backend: &'static str,
    seconds: f64,
}

impl Sketch for DigitMemorization {
    const SPEC: &'static FigureSpec = &crate::catalog::digit_memorization::SPEC;
    const ID: &'static str = "dm";
    /// The noise's version.
    type Key = u64;
    type Output = Paths;

    fn mount(ui: &mut Ui<'_, Self>) -> JsResult<Self> {
        let canvas = super::row_canvas(
            ui.root,
            Fit::Grid(GRID),
            "figure-digits",
            "Digits generated with the closed form from noise, their paths, and the nearest training digit",
        )?;
        ui.button("New noise", |s, _| {
            s.seed += 1;
            s.noise = Rng::new(s.seed).normals(SAMPLES * PIXELS);
            s.version += 1;
            s.samples.clear();
            s.failed = false;
        })?;
        let gate = DigitsGate::new(ui.panel, ui.listeners)?;
        Ok(DigitMemorization {
            canvas,
            gate,
            digits: None,
            prepared: None,
            seed: 1,
            noise: Rng::new(1).normals(SAMPLES * PIXELS),
            samples: Vec::new(),
            version: 0,
            failed: false,
        })
    }

    fn animate(&mut self, _: f64, ctx: &mut Ctx<'_>) -> bool {
        if self.digits.is_none() {
            self.digits = self.gate.poll(ctx.status);
            if self.digits.is_some() {
                ctx.status
                    .set("Integrating the closed form from noise over 10,000 digits…");
            }
        }
        false
    }

    fn wanted(&self, _: &Settings) -> Option<Self::Key> {
        (self.digits.is_some() && !self.failed && self.samples.is_empty()).then_some(self.version)
    }

    fn job(&mut self, _: &Self::Key, _: &mut Ctx<'_>) -> LocalBoxFuture<'static, Paths> {
        let x0 = self.noise.clone();
        let prepared = self.prepared.clone();
        let digits = self.digits.clone();
        Box::pin(async move {
            let backend = figure_backend();
            let start = js_sys::Date::now();
            let mut seconds = 0.0;
            let result = async {
                let data = digits.map(|d| d.full.clone()).unwrap_or_default();
                let prepared = Ready::cached(&backend, prepared, &data, PIXELS).await?;
                let dt = 1.0 / STEPS as f32;
                let path = prepared.trajectory(&x0, 0.0, dt, STEPS).await?;
                seconds = (js_sys::Date::now() - start) / 1000.0;
                // The last frame's nearest training digits, a block of digits between turns.
                let last = &path[(STEPS - 1) * SAMPLES * PIXELS..];
                let mut nearest = metrics::NearestTwo::new(PIXELS, last);
                for (b, block) in data.chunks(NEAREST_ROWS * PIXELS).enumerate() {
                    nearest.scan(block, b * NEAREST_ROWS);
                    pace().await;
                }
                let nearest = nearest.finish();
                Ok::<_, ComputeError>(Computed {
                    prepared,
                    path,
                    nearest,
                })
            }
            .await;
            Paths {
                result,
                x0,
                backend: backend.name(),
                seconds,
            }
        })
    }

    fn done(&mut self, version: Self::Key, paths: Paths, ctx: &mut Ctx<'_>) {
        if version != self.version {
            return;
        }
        let Some(digits) = self.digits.clone() else {
            return;
        };
        match paths.result {
            Ok(Computed {
                prepared,
                path,
                nearest,
            }) => {
                self.prepared = Some(prepared);
                let x0 = &paths.x0;
                let frame = |k: usize, r: usize| -> Vec<f32> {
                    if k == 0 {
                        x0[r * PIXELS..(r + 1) * PIXELS].to_vec()
                    } else {
                        let base = (k - 1) * SAMPLES * PIXELS + r * PIXELS;
                        path[base..base + PIXELS].to_vec()
                    }
                };
                self.samples = (0..SAMPLES)
                    .map(|r| Sample {
                        frames: SHOWN.iter().map(|&k| frame(k, r)).collect(),
                        nearest: nearest[r].0,
                        distance: nearest[r].1,
                        second: nearest[r].2,
                    })
                    .collect();
                let worst = self
                    .samples
                    .iter()
                    .map(|x| x.distance)
                    .fold(0.0f32, f32::max);
                let second = self
                    .samples
                    .iter()
                    .map(|x| x.second)
                    .fold(f32::INFINITY, f32::min);
                ctx.status.set(&format!(
                    "{SAMPLES} digits, {STEPS} Euler steps of the closed form over {} digits on {} ({:.1} s). Distance to the nearest training digit at most {worst:.3}; the second nearest is at least {second:.1} away (pixels in [−1, 1]).",
                    digits.n,
                    paths.backend,
                    paths.seconds
                ));
            }
            Err(e) => {
                self.failed = true;
                ctx.status.error(&format!("The computation failed: {e}"));
            }
        }
    }

    fn draw(&mut self, _: &mut Ctx<'_>) -> JsResult<()> {
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
                        caption: format!("#{} at {:.2}", s.nearest, s.distance),
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
        draw_on(&self.canvas, |area| {
            draw_digit_grid(area, &GRID, &headers, &[], &rows)
        })
    }

    fn csv(&self, _: &Settings) -> Option<String> {
        (!self.samples.is_empty()).then(|| {
            super::csv_rows(
                "sample,nearest_training_digit,distance,second_nearest_distance",
                self.samples
                    .iter()
                    .enumerate()
                    .map(|(k, x)| format!("{k},{},{},{}", x.nearest, x.distance, x.second)),
            )
        })
    }
}
