//! New digits: the digits' network (a U-Net trained on 9,000 MNIST digits by `cargo xtask
//! train-digits`) and the closed form over the same 9,000, integrated from the same noises in the
//! digits lab's worker (`web::lab`). With τ the hybrid model: the closed form on [0, τ), the
//! network after (τ = 0: the network alone). Each sample beside its nearest training digit and
//! the distance; the closed form's samples are training digits, copied.

use super::driver::{Ctx, Settings, Sketch, Ui};
use super::{draw_on, DigitsGate};
use crate::catalog::new_digits as settings;
use crate::catalog::FigureSpec;
use crate::charts::alignment::{draw_digit_grid, Cell};
use crate::digits_lab::{Nearest, Reply, Request};
use crate::flow::digit_training::original_index;
use crate::flow::digits::{PIXELS, SIDE};
use crate::flow::rng::Rng;
use crate::web::controls::JsResult;
use crate::web::digits::DigitSet;
use crate::web::lab::lab;
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use std::cell::RefCell;
use std::rc::Rc;
use web_sys::HtmlCanvasElement;

/// Noises integrated (and measured) at once; the first SHOWN are drawn.
const SAMPLES: usize = 16;
const SHOWN: usize = 8;
const STEPS: u32 = 20;
/// Held-out digits measured for the reference distance: all 1,000 (the first 256 alone lie
/// nearer the training digits, 7.9 against 9.3: MNIST's order is not random).
const REFERENCE: u32 = 1000;

/// Background work: the samples at τ (the noise's version and τ's bits), the closed form's
/// samples of the noise, the held-out digits' distances.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Work {
    Hybrid(u64, u32),
    Copies(u64),
    Reference,
}

/// Samples and each one's nearest training digits.
struct Samples {
    x: Vec<f32>,
    nearest: Vec<Nearest>,
}

impl Samples {
    /// The mean distance to the nearest training digit, and how many are copies.
    fn measure(&self) -> (f32, usize) {
        let n = self.nearest.len().max(1) as f32;
        let mean = self.nearest.iter().map(|d| d.distance).sum::<f32>() / n;
        (mean, self.nearest.iter().filter(|d| d.memorized()).count())
    }
}

/// The step and positions of a sampling under way, as the lab sends them.
type Progress = Rc<RefCell<Option<(u32, Vec<f32>)>>>;

pub struct NewDigits {
    canvas: HtmlCanvasElement,
    gate: DigitsGate,
    digits: Option<Rc<DigitSet>>,
    seed: u64,
    noise: Vec<f32>,
    version: u64,
    /// The lab's account of the network (steps, loss, bytes), once loaded.
    about: Option<String>,
    hybrid: Option<(f32, Samples, f64)>,
    copies: Option<Samples>,
    reference: Option<f32>,
    /// (τ, mean distance, copies) for each τ sampled from this noise.
    by_tau: Vec<(f32, f32, usize)>,
    /// The positions and step of a sampling under way, from the lab, and the step drawn.
    progress: Progress,
    drawn_step: u32,
    failed: bool,
}

/// A job's last reply (or why it failed), the lab's account of itself, and its seconds.
pub struct Answer(Result<Reply, String>, Option<Reply>, f64);

impl NewDigits {
    fn new_noise(&mut self) {
        self.noise = Rng::new(self.seed).normals(SAMPLES * PIXELS);
        self.version += 1;
        self.hybrid = None;
        self.copies = None;
        self.by_tau.clear();
        self.failed = false;
    }
}

/// The account of the network the lab gives when loaded.
fn about(loaded: &Reply) -> Option<String> {
    match loaded {
        Reply::Loaded {
            parameters,
            steps,
            batch,
            check_loss,
            weight_bytes,
            train,
            ..
        } => Some(format!(
            "a U-Net of {parameters} parameters, trained for {steps} steps of {batch} on {train} digits (check loss {check_loss:.3}; {:.0} KB of float16 weights)",
            *weight_bytes as f64 / 1000.0
        )),
        _ => None,
    }
}

impl Sketch for NewDigits {
    const SPEC: &'static FigureSpec = &settings::SPEC;
    const ID: &'static str = "nd";
    type Key = Work;
    type Output = Answer;

    fn mount(ui: &mut Ui<'_, Self>) -> JsResult<Self> {
        let canvas = super::row_canvas(
            ui.root,
            (960, 560),
            "figure-digits",
            "Digits made by the network from noise, the nearest training digit to each, and the closed form's samples from the same noises",
        )?;
        ui.button("New noise", |s, _| {
            s.seed += 1;
            s.new_noise();
        })?;
        let gate = DigitsGate::new(ui.panel, ui.listeners)?;
        let mut figure = NewDigits {
            canvas,
            gate,
            digits: None,
            seed: 1,
            noise: Vec::new(),
            version: 0,
            about: None,
            hybrid: None,
            copies: None,
            reference: None,
            by_tau: Vec::new(),
            progress: Rc::default(),
            drawn_step: 0,
            failed: false,
        };
        figure.new_noise();
        Ok(figure)
    }

    fn animate(&mut self, _: f64, ctx: &mut Ctx<'_>) -> bool {
        if self.digits.is_none() {
            self.digits = self.gate.poll(ctx.status);
            if self.digits.is_some() {
                ctx.status
                    .set("Fetching the digits' network and starting its worker…");
            }
        }
        let step = self.progress.borrow().as_ref().map_or(0, |p| p.0);
        let moved = step != self.drawn_step;
        self.drawn_step = step;
        moved
    }

    fn wanted(&self, chosen: &Settings) -> Option<Work> {
        if self.digits.is_none() || self.failed {
            return None;
        }
        let tau = chosen.number(&settings::TAU) as f32;
        if self.hybrid.as_ref().is_none_or(|h| h.0 != tau) {
            return Some(Work::Hybrid(self.version, tau.to_bits()));
        }
        if self.copies.is_none() {
            return Some(Work::Copies(self.version));
        }
        self.reference.is_none().then_some(Work::Reference)
    }

    fn job(&mut self, work: &Work, _: &mut Ctx<'_>) -> LocalBoxFuture<'static, Answer> {
        let noise = self.noise.clone();
        let progress = self.progress.clone();
        let work = *work;
        Box::pin(async move {
            let start = js_sys::Date::now();
            let (lab, loaded) = match lab().await {
                Ok(l) => l,
                Err(e) => return Answer(Err(e), None, 0.0),
            };
            let request = move |ticket| match work {
                Work::Hybrid(_, tau) => Request::Sample {
                    ticket,
                    noise,
                    steps: STEPS,
                    tau: f32::from_bits(tau),
                    every: 1,
                },
                Work::Copies(_) => Request::Sample {
                    ticket,
                    noise,
                    steps: STEPS,
                    tau: 1.0,
                    every: 0,
                },
                Work::Reference => Request::Reference {
                    ticket,
                    count: REFERENCE,
                },
            };
            let mut result = Err("the digits lab stopped".to_string());
            match lab.ask(request) {
                Ok(mut replies) => {
                    while let Some(reply) = replies.next().await {
                        match reply {
                            Reply::Step { step, x, .. } => *progress.borrow_mut() = Some((step, x)),
                            Reply::Failed { error, .. } => {
                                result = Err(error);
                                break;
                            }
                            last => {
                                result = Ok(last);
                                break;
                            }
                        }
                    }
                }
                Err(e) => result = Err(e),
            }
            *progress.borrow_mut() = None;
            Answer(result, Some(loaded), (js_sys::Date::now() - start) / 1000.0)
        })
    }

    fn done(&mut self, work: Work, Answer(result, loaded, seconds): Answer, ctx: &mut Ctx<'_>) {
        if self.about.is_none() {
            self.about = loaded.as_ref().and_then(about);
        }
        let reply = match result {
            Ok(reply) => reply,
            Err(e) => {
                self.failed = true;
                ctx.status
                    .error(&format!("The digits' network failed: {e}"));
                return;
            }
        };
        match (work, reply) {
            (Work::Hybrid(version, tau), Reply::Sampled { x, nearest, .. })
                if version == self.version =>
            {
                let samples = Samples { x, nearest };
                let tau = f32::from_bits(tau);
                let (mean, copies) = samples.measure();
                self.by_tau.retain(|b| b.0 != tau);
                self.by_tau.push((tau, mean, copies));
                self.by_tau.sort_by(|a, b| a.0.total_cmp(&b.0));
                self.hybrid = Some((tau, samples, seconds));
            }
            (Work::Copies(version), Reply::Sampled { x, nearest, .. })
                if version == self.version =>
            {
                self.copies = Some(Samples { x, nearest })
            }
            (Work::Reference, Reply::Reference { nearest, .. }) => {
                let n = nearest.len().max(1) as f32;
                self.reference = Some(nearest.iter().map(|d| d.distance).sum::<f32>() / n);
            }
            _ => return,
        }
        let mut text = String::new();
        if let Some((tau, samples, seconds)) = &self.hybrid {
            let (mean, copies) = samples.measure();
            let who = if *tau == 0.0 {
                "The network".to_string()
            } else {
                format!("û* up to τ = {tau:.2}, the network after")
            };
            text += &format!(
                "{who}: {SAMPLES} digits ({STEPS} Euler steps, {seconds:.1} s), mean distance to the nearest training digit {mean:.2}, {copies} of {SAMPLES} copies."
            );
        }
        if let Some(c) = &self.copies {
            let (mean, copies) = c.measure();
            text += &format!(
                " û* alone from the same noises: {mean:.2}, {copies} of {SAMPLES} copies."
            );
        }
        if let Some(r) = self.reference {
            text += &format!(" The {REFERENCE} held-out digits: {r:.2}.");
        }
        if self.by_tau.len() > 1 {
            text += " Mean distance by τ so far:";
            for (tau, mean, _) in &self.by_tau {
                text += &format!(" {tau:.1}: {mean:.2};");
            }
            text.pop();
            text.push('.');
        }
        if let Some(about) = &self.about {
            text += &format!(" The network is {about}.");
        }
        ctx.status.set(text.trim_start());
    }

    fn draw(&mut self, _: &mut Ctx<'_>) -> JsResult<()> {
        let row = |i: usize| i * PIXELS..(i + 1) * PIXELS;
        let progress = self.progress.borrow();
        let top: Vec<Option<Cell>> = (0..SHOWN)
            .map(|i| {
                Some(match (&self.hybrid, progress.as_ref()) {
                    (_, Some((step, x))) => Cell {
                        pixels: &x[row(i)],
                        caption: format!("t = {:.2}", *step as f32 / STEPS as f32),
                    },
                    (Some((_, s, _)), None) => Cell {
                        pixels: &s.x[row(i)],
                        caption: format!("nearest at {:.1}", s.nearest[i].distance),
                    },
                    (None, None) => Cell {
                        pixels: &self.noise[row(i)],
                        caption: "noise".into(),
                    },
                })
            })
            .collect();
        let nearest: Vec<Option<Cell>> = (0..SHOWN)
            .map(|i| {
                let (Some((_, s, _)), Some(d), None) =
                    (&self.hybrid, &self.digits, progress.as_ref())
                else {
                    return None;
                };
                let n = s.nearest[i];
                let original = original_index(n.index as usize);
                Some(Cell {
                    pixels: &d.full[row(original)],
                    caption: format!("training digit #{original}"),
                })
            })
            .collect();
        let copies: Vec<Option<Cell>> = (0..SHOWN)
            .map(|i| {
                self.copies.as_ref().map(|c| Cell {
                    pixels: &c.x[row(i)],
                    caption: format!("û*: nearest at {:.2}", c.nearest[i].distance),
                })
            })
            .collect();
        draw_on(&self.canvas, |area| {
            draw_digit_grid(area, SIDE, &[], &[top, nearest, copies])
        })
    }

    fn csv(&self, _: &Settings) -> Option<String> {
        let (_, hybrid, _) = self.hybrid.as_ref()?;
        let tau = self.hybrid.as_ref().map_or(0.0, |h| h.0);
        let mut rows: Vec<String> = hybrid
            .nearest
            .iter()
            .enumerate()
            .map(|(k, n)| {
                format!(
                    "{k},{tau},{},{},{},{}",
                    original_index(n.index as usize),
                    n.distance,
                    n.second,
                    n.memorized()
                )
            })
            .collect();
        if let Some(c) = &self.copies {
            rows.extend(c.nearest.iter().enumerate().map(|(k, n)| {
                format!(
                    "{k},1,{},{},{},{}",
                    original_index(n.index as usize),
                    n.distance,
                    n.second,
                    n.memorized()
                )
            }));
        }
        Some(super::csv_rows(
            "sample,tau,nearest_training_digit,distance,second_nearest_distance,memorized",
            rows.into_iter(),
        ))
    }
}
