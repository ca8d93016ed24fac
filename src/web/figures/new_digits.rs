//! New digits: the digits' network (a U-Net trained on 9,000 MNIST digits by `cargo xtask
//! train-digits`) and the closed form over the same 9,000, integrated from the same noises in the
//! digits lab's worker (`web::lab`). With τ the hybrid model: the closed form on [0, τ), the
//! network after (τ = 0: the network alone). Each sample beside its nearest training digit and
//! the distance; the closed form's samples are training digits, copied. "Train from scratch"
//! trains a network of the reader's own in the lab's worker (on WebGPU where the page computes
//! on it), a chunk of steps per job, and samples it from the same noises as it learns.

use super::draw_on;
use super::driver::{Ctx, Settings, Sketch, Ui};
use super::widgets::PauseToggle;
use crate::catalog::new_digits as settings;
use crate::catalog::FigureSpec;
use crate::charts::alignment::{draw_digit_grid, Cell};
use crate::charts::curves::{draw_binned_error, draw_tau_curves};
use crate::charts::layout::{panels, Fit, Grid};
use crate::charts::palette;
use crate::digits_lab::{Nearest, Reply, Request};
use crate::flow::digit_training::original_index;
use crate::flow::digits::{PIXELS, SIDE};
use crate::flow::rng::Rng;
use crate::gpu::Backend;
use crate::web::backend::backend_now;
use crate::web::controls::JsResult;
use crate::web::lab::lab;
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use std::cell::RefCell;
use std::rc::Rc;
use web_sys::HtmlCanvasElement;

/// Noises integrated (and measured) at once; the first SHOWN are drawn.
const SAMPLES: usize = 16;
const SHOWN: usize = 8;
/// The error against t and the hybrid against tau: side by side, or one above the other on a
/// phone.
const GAP_PANELS: Fit = Fit::Panels {
    count: 2,
    min_width: 300,
    width: 480,
    height: 360,
};
/// The digits' grid: the network's (or the hybrid's) samples, their nearest training digits, the
/// closed form's and the reader's network's, SHOWN of each.
const GRID: Grid = Grid {
    side: SIDE as u32,
    columns: SHOWN as u32,
    rows: 4,
    headers: false,
    labels: true,
};
const STEPS: u32 = 20;
/// Times at which the network is measured against u*: the middles of ten bins of [0, 1).
const TIMES: usize = 10;
/// Pairs (x0, a training digit) at each.
const PAIRS: u32 = 128;
/// The hybrid curve's τ (τ = 1 is the closed form's samples).
const TAUS: [f32; 5] = [0.0, 0.2, 0.4, 0.6, 0.8];

/// Noises measured on the reader's device for each of the network and u* (in batches of
/// SAMPLES, after everything shown), from seeds of their own: "New noise" does not restart them.
const MEASURED: usize = 256;
const MEASURE_SEED: u64 = 1000;

/// Milliseconds of training per job (the lab's worker answers other requests between them).
const CHUNK_MS: u32 = 500;
/// The reader's training stops at the shipped network's step count (this many before the lab
/// has said it).
const OWN_STEPS: u32 = 2000;
const TRAIN: &str = "Train from scratch";
/// Steps before the reader's network is first sampled while it trains.
const OWN_FIRST: u32 = 50;

/// Held-out digits measured for the reference distance: all 1,000 (the first 256 alone lie
/// nearer the training digits, 7.9 against 9.3: MNIST's order is not random).
const REFERENCE: u32 = 1000;

/// Background work: the samples at τ (the noise's version and τ's bits), the closed form's
/// samples of the noise, the held-out digits' distances, a point of the hybrid curve (the
/// noise's version and τ's bits), the network against u* at the k-th time.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Work {
    Hybrid(u64, u32),
    Copies(u64),
    Curve(u64, u32),
    Reference,
    Departure(usize),
    /// The b-th batch of the measure, by the network (false) or u* (true).
    Measure(usize, bool),
    /// A chunk of the reader's training: the run's number and its step.
    Train(u32, u32),
    /// The reader's network's samples of the noise (its version) at the run's step.
    Own(u64, u32),
}

fn time_of(k: usize) -> f32 {
    (k as f32 + 0.5) / TIMES as f32
}

/// Samples, each one's nearest training digits, and the nearest one's pixels.
struct Samples {
    x: Vec<f32>,
    nearest: Vec<Nearest>,
    nearest_x: Vec<f32>,
}

/// The mean distance to the nearest training digit, and how many are copies.
fn measure(nearest: &[Nearest]) -> (f32, usize) {
    let n = nearest.len().max(1) as f32;
    let mean = nearest.iter().map(|d| d.distance).sum::<f32>() / n;
    (mean, nearest.iter().filter(|d| d.memorized()).count())
}

impl Samples {
    fn measure(&self) -> (f32, usize) {
        measure(&self.nearest)
    }
}

/// The reader's own network (see `Request::Train`).
#[derive(Default)]
struct Own {
    /// The run's number (Reset starts another; an older run's chunks are not counted).
    run: u32,
    step: u32,
    loss: f32,
    /// Steps a second in the last chunk, and where it ran.
    rate: f32,
    device: String,
    /// Its samples of a noise (version) at a step.
    sampled: Option<(u64, u32, Samples)>,
}

/// The noise's version, the step and the positions of a sampling under way, as the lab sends
/// them (a sampling of an older noise is never drawn over the new one).
type Progress = Rc<RefCell<Option<(u64, u32, Vec<f32>)>>>;

pub struct NewDigits {
    canvas: HtmlCanvasElement,
    gap_canvas: HtmlCanvasElement,
    training: PauseToggle,
    own: Own,
    /// The shipped network's steps, once the lab has said.
    goal: u32,
    /// Whether the lab has been asked for anything yet (it starts with the first job).
    started: bool,
    /// Held while the figure lives: the lab drops its requests once it is gone.
    alive: Rc<()>,
    /// E|u_theta - u*|^2 / D and E|u*|^2 / D at each time, as measured.
    departure: [Option<(f32, f32)>; TIMES],
    seed: u64,
    noise: Vec<f32>,
    version: u64,
    /// The lab's account of the network (steps, loss, bytes), once loaded.
    about: Option<String>,
    /// The hybrid's samples: tau, the samples, seconds, and where the network ran.
    hybrid: Option<(f32, Samples, f64, String)>,
    copies: Option<Samples>,
    reference: Option<f32>,
    /// The measure's nearest training digits so far: the network's samples, u*'s.
    measured: [Vec<Nearest>; 2],
    /// The samples' nearest training digits for each τ sampled from this noise, by τ (the
    /// hybrid curve, τ = 1 the closed form's).
    by_tau: Vec<(f32, Vec<Nearest>)>,
    /// The positions and step of a sampling under way, from the lab, and the step drawn.
    progress: Progress,
    drawn_step: u32,
    failed: bool,
}

/// A job's last reply (or why it failed), the lab's account of itself, and its seconds.
pub struct Answer(Result<Reply, String>, Option<Reply>, f64);

impl NewDigits {
    /// A point of the hybrid curve: the samples at `tau` from this noise.
    fn record(&mut self, tau: f32, nearest: &[Nearest]) {
        self.by_tau.retain(|b| b.0 != tau);
        self.by_tau.push((tau, nearest.to_vec()));
        self.by_tau.sort_by(|a, b| a.0.total_cmp(&b.0));
    }

    /// Whether the reader's network is due for samples of this noise: after OWN_FIRST steps,
    /// then each time it has doubled its steps, and when paused or done (a sampling takes
    /// seconds on the CPU: at every early step it would take most of the time).
    fn own_due(&self) -> bool {
        let step = self.own.step;
        let (paused, done) = (self.training.paused, step >= self.goal);
        let since = |s: u32| paused || done || step >= 2 * s.max(OWN_FIRST / 2);
        step > 0
            && self.own.sampled.as_ref().map_or(since(0), |(v, s, _)| {
                *v != self.version || (*s != step && since(*s))
            })
    }

    /// The status line: what is computed so far, and the reader's training.
    fn report(&self, ctx: &mut Ctx<'_>) {
        let mut text = String::new();
        if let Some((tau, samples, seconds, device)) = &self.hybrid {
            let (mean, copies) = samples.measure();
            let who = if *tau == 0.0 {
                "The network".to_string()
            } else {
                format!("û* up to τ = {tau:.2}, the network after")
            };
            text += &format!(
            "{who}: {SAMPLES} digits ({STEPS} Euler steps on {device}, {seconds:.1} s), mean distance to the nearest training digit {mean:.2}, {copies} of {SAMPLES} copies."
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
            for (tau, nearest) in &self.by_tau {
                text += &format!(" {tau:.1}: {:.2};", measure(nearest).0);
            }
            text.pop();
            text.push('.');
        }
        // The peak of the drawn curve (E|u_theta - u*|^2 / D), and its share of E|u*|^2 / D.
        let measured: Vec<(usize, (f32, f32))> = (0..TIMES)
            .filter_map(|k| self.departure[k].map(|d| (k, d)))
            .collect();
        if let Some(&(k, (gap, scale))) = measured.iter().max_by(|a, b| a.1 .0.total_cmp(&b.1 .0)) {
            text += &format!(
            " The network against û* ({PAIRS} pairs at each t, {} of {TIMES} times so far): farthest at t = {:.2}, E‖u_θ − û*‖²/D = {gap:.3}, {:.1}% of |û*|².",
            measured.len(),
            time_of(k),
            100.0 * gap / scale
        );
        }
        let [net, closed] = &self.measured;
        if !closed.is_empty() {
            let share = |m: &[Nearest]| {
                let n = m.len() as f32;
                let mean = m.iter().map(|d| d.distance).sum::<f32>() / n;
                let copies = m.iter().filter(|d| d.memorized()).count() as f32 / n;
                format!(
                    "{mean:.2} from the nearest training digit, {:.0}% copies",
                    100.0 * copies
                )
            };
            text += &format!(
            " Measured on this device over {} of {MEASURED} other noises: the network's samples {}; û*'s {}.",
            closed.len(),
            share(&net[..closed.len()]),
            share(closed)
        );
        }
        if let Some(about) = &self.about {
            text += &format!(" The network is {about}.");
        }
        let own = &self.own;
        if own.step > 0 {
            text += &format!(
                " Yours: step {} of {} on {}, {:.1} steps a second, loss {:.3}",
                own.step, self.goal, own.device, own.rate, own.loss
            );
            if let Some((_, step, s)) = &own.sampled {
                let (mean, copies) = s.measure();
                text += &format!(
                "; its digits at step {step}: mean distance {mean:.2}, {copies} of {SAMPLES} copies"
            );
            }
            text += if self.training.paused {
                " (paused)."
            } else {
                "."
            };
        } else if !self.training.paused {
            text += " Yours: starting…";
        }
        ctx.status.set(text.trim_start());
    }

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
            Fit::Grid(GRID),
            "figure-digits",
            "Digits made by the network from noise, the nearest training digit to each, the closed form's samples from the same noises, and a network trained on this page's",
        )?;
        let gap_canvas = super::row_canvas(
            ui.root,
            GAP_PANELS,
            "figure-wide",
            "The mean squared difference between the network and the closed form against t",
        )?;
        ui.button("New noise", |s, ctx| {
            s.seed += 1;
            s.new_noise();
            ctx.status.set("New noise: integrating…");
        })?;
        let training = PauseToggle::paused(ui.button(TRAIN, |s, ctx| {
            s.training.flip();
            s.report(ctx);
        })?);
        ui.button("Reset training", |s, ctx| {
            s.own = Own {
                run: s.own.run + 1,
                ..Own::default()
            };
            s.training.unstarted(TRAIN);
            s.report(ctx);
        })?;
        let mut figure = NewDigits {
            canvas,
            gap_canvas,
            training,
            own: Own::default(),
            goal: OWN_STEPS,
            started: false,
            alive: Rc::new(()),
            departure: [None; TIMES],
            seed: 1,
            noise: Vec::new(),
            version: 0,
            about: None,
            hybrid: None,
            copies: None,
            reference: None,
            by_tau: Vec::new(),
            measured: [Vec::new(), Vec::new()],
            progress: Rc::default(),
            drawn_step: 0,
            failed: false,
        };
        figure.new_noise();
        Ok(figure)
    }

    fn animate(&mut self, _: f64, _: &mut Ctx<'_>) -> bool {
        let step = self.progress.borrow().as_ref().map_or(0, |p| p.1);
        let moved = step != self.drawn_step;
        self.drawn_step = step;
        moved
    }

    fn wanted(&self, chosen: &Settings) -> Option<Work> {
        if self.failed {
            return None;
        }
        let tau = chosen.number(&settings::TAU) as f32;
        if self.hybrid.as_ref().is_none_or(|h| h.0 != tau) {
            return Some(Work::Hybrid(self.version, tau.to_bits()));
        }
        if self.copies.is_none() {
            return Some(Work::Copies(self.version));
        }
        if self.reference.is_none() {
            return Some(Work::Reference);
        }
        if let Some(&tau) = TAUS.iter().find(|&&t| self.by_tau.iter().all(|b| b.0 != t)) {
            return Some(Work::Curve(self.version, tau.to_bits()));
        }
        if let Some(k) = (0..TIMES).find(|&k| self.departure[k].is_none()) {
            return Some(Work::Departure(k));
        }
        // The reader's training (once every chart has its points: seconds), then the measure.
        if self.own_due() {
            return Some(Work::Own(self.version, self.own.step));
        }
        if !self.training.paused && self.own.step < self.goal {
            return Some(Work::Train(self.own.run, self.own.step));
        }
        // The network's batch, then u*'s from the same noises.
        let [net, closed] = &self.measured;
        let closed_next = closed.len() < net.len();
        let done = net.len().max(closed.len());
        (done < MEASURED || closed_next)
            .then_some(Work::Measure(closed.len() / SAMPLES, closed_next))
    }

    fn job(&mut self, work: &Work, ctx: &mut Ctx<'_>) -> LocalBoxFuture<'static, Answer> {
        if !self.started {
            self.started = true;
            ctx.status
                .set("Fetching the digits' network (729 KB) and its worker, then integrating…");
        }
        let noise = match *work {
            Work::Measure(b, _) => Rng::new(MEASURE_SEED + b as u64).normals(SAMPLES * PIXELS),
            _ => self.noise.clone(),
        };
        let progress = self.progress.clone();
        let work = *work;
        let (restart, batch) = (
            self.own.step == 0,
            ctx.settings().number(&settings::BATCH) as u32,
        );
        // Where the page computes once its GPU check is done (the CPU until then): the reader's
        // training goes there. The network's samples go to a GPU only when it is a hardware one:
        // on a software adapter (SwiftShader, forced by `?backend=webgpu`) they take about 40
        // times the CPU path's time (the first 16 digits in 87 s against 2 s) and hold up the
        // page's own GPU work on the same threads.
        let (gpu, sample_on_gpu) = match backend_now().as_deref() {
            Some(Backend::Gpu(b)) => (true, !b.gpu.software),
            _ => (false, false),
        };
        let version = self.version;
        let caller = Rc::downgrade(&self.alive);
        Box::pin(async move {
            let start = js_sys::Date::now();
            let (lab, loaded) = match lab(!sample_on_gpu).await {
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
                    pictured: SHOWN as u32,
                    own: false,
                    gpu: sample_on_gpu,
                },
                Work::Copies(_) => Request::Sample {
                    ticket,
                    noise,
                    steps: STEPS,
                    tau: 1.0,
                    every: 0,
                    pictured: 0,
                    own: false,
                    gpu: sample_on_gpu,
                },
                Work::Curve(_, tau) => Request::Sample {
                    ticket,
                    noise,
                    steps: STEPS,
                    tau: f32::from_bits(tau),
                    every: 0,
                    pictured: 0,
                    own: false,
                    gpu: sample_on_gpu,
                },
                Work::Reference => Request::Reference {
                    ticket,
                    count: REFERENCE,
                },
                Work::Measure(_, closed) => Request::Sample {
                    ticket,
                    noise,
                    steps: STEPS,
                    tau: if closed { 1.0 } else { 0.0 },
                    every: 0,
                    pictured: 0,
                    own: false,
                    gpu: sample_on_gpu,
                },
                Work::Departure(k) => Request::Departure {
                    ticket,
                    t: time_of(k),
                    pairs: PAIRS,
                },
                Work::Train(..) => Request::Train {
                    ticket,
                    gpu,
                    batch,
                    restart,
                    millis: CHUNK_MS,
                },
                Work::Own(..) => Request::Sample {
                    ticket,
                    noise,
                    steps: STEPS,
                    tau: 0.0,
                    every: 0,
                    pictured: 0,
                    own: true,
                    gpu: sample_on_gpu,
                },
            };
            let mut result = Err("the digits lab stopped".to_string());
            let mut replies = lab.ask(caller, request);
            while let Some(reply) = replies.next().await {
                match reply {
                    Reply::Step { step, x, .. } => {
                        *progress.borrow_mut() = Some((version, step, x))
                    }
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
            *progress.borrow_mut() = None;
            Answer(result, Some(loaded), (js_sys::Date::now() - start) / 1000.0)
        })
    }

    fn done(&mut self, work: Work, Answer(result, loaded, seconds): Answer, ctx: &mut Ctx<'_>) {
        if self.about.is_none() {
            self.about = loaded.as_ref().and_then(about);
            if let Some(Reply::Loaded { steps, .. }) = loaded {
                self.goal = steps;
            }
        }
        let reply = match result {
            Ok(reply) => reply,
            // The reader's training stops; the figure goes on.
            Err(e) if matches!(work, Work::Train(..) | Work::Own(..)) => {
                self.training.stop();
                ctx.status
                    .error(&format!("Your network's training failed: {e}."));
                return;
            }
            // A failure of an older noise's sampling is not this noise's.
            Err(_)
                if matches!(work, Work::Hybrid(v, _) | Work::Copies(v) | Work::Curve(v, _)
                    if v != self.version) =>
            {
                return
            }
            Err(e) => {
                self.failed = true;
                ctx.status.error(&format!(
                    "The digits' network failed: {e}. New noise tries again."
                ));
                return;
            }
        };
        match (work, reply) {
            (
                Work::Hybrid(version, tau),
                Reply::Sampled {
                    x,
                    nearest,
                    nearest_x,
                    device,
                    ..
                },
            ) if version == self.version => {
                let samples = Samples {
                    x,
                    nearest,
                    nearest_x,
                };
                let tau = f32::from_bits(tau);
                self.record(tau, &samples.nearest);
                self.hybrid = Some((tau, samples, seconds, device));
            }
            (
                Work::Copies(version),
                Reply::Sampled {
                    x,
                    nearest,
                    nearest_x,
                    ..
                },
            ) if version == self.version => {
                self.record(1.0, &nearest);
                self.copies = Some(Samples {
                    x,
                    nearest,
                    nearest_x,
                })
            }
            (Work::Curve(version, tau), Reply::Sampled { nearest, .. })
                if version == self.version =>
            {
                self.record(f32::from_bits(tau), &nearest)
            }
            (Work::Reference, Reply::Reference { nearest, .. }) => {
                let n = nearest.len().max(1) as f32;
                self.reference = Some(nearest.iter().map(|d| d.distance).sum::<f32>() / n);
            }
            (Work::Departure(k), Reply::Departure { gap, scale, .. }) => {
                self.departure[k] = Some((gap, scale))
            }
            (
                Work::Train(run, _),
                Reply::Trained {
                    step,
                    steps,
                    loss,
                    millis,
                    device,
                    ..
                },
            ) if run == self.own.run => {
                self.own.step = step;
                self.own.loss = loss;
                self.own.rate = steps as f32 * 1000.0 / millis.max(1.0);
                self.own.device = device;
                if step >= self.goal {
                    self.training.stop();
                }
            }
            (
                Work::Own(version, step),
                Reply::Sampled {
                    x,
                    nearest,
                    nearest_x,
                    ..
                },
            ) if step <= self.own.step => {
                self.own.sampled = Some((
                    version,
                    step,
                    Samples {
                        x,
                        nearest,
                        nearest_x,
                    },
                ))
            }
            (Work::Measure(b, closed), Reply::Sampled { nearest, .. }) => {
                let measured = &mut self.measured[closed as usize];
                if measured.len() == b * SAMPLES {
                    measured.extend(nearest);
                }
            }
            _ => return,
        }
        self.report(ctx);
    }

    fn draw(&mut self, _: &mut Ctx<'_>) -> JsResult<()> {
        let row = |i: usize| i * PIXELS..(i + 1) * PIXELS;
        let progress = self.progress.borrow();
        let progress = progress.as_ref().filter(|p| p.0 == self.version);
        let top: Vec<Option<Cell>> = (0..SHOWN)
            .map(|i| {
                Some(match (&self.hybrid, progress) {
                    (_, Some((_, step, x))) => Cell {
                        pixels: &x[row(i)],
                        caption: format!("t = {:.2}", *step as f32 / STEPS as f32),
                    },
                    (Some((_, s, ..)), None) => Cell {
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
                let (Some((_, s, ..)), None) = (&self.hybrid, progress) else {
                    return None;
                };
                Some(Cell {
                    pixels: &s.nearest_x[row(i)],
                    caption: format!(
                        "training digit #{}",
                        original_index(s.nearest[i].index as usize)
                    ),
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
        // The reader's network's samples of this noise; empty cells until it has some.
        let own = self.own.sampled.as_ref().filter(|o| o.0 == self.version);
        let yours: Vec<Option<Cell>> = (0..SHOWN)
            .map(|i| {
                own.map(|(_, step, s)| Cell {
                    pixels: &s.x[row(i)],
                    caption: format!("yours ({step}): {:.1}", s.nearest[i].distance),
                })
            })
            .collect();
        let tau = self.hybrid.as_ref().map_or(0.0, |h| h.0);
        let labels = [
            if tau == 0.0 {
                "The network’s samples".to_string()
            } else {
                format!("The hybrid’s samples: û* up to τ = {tau:.1}, then the network")
            },
            "The training digit nearest to each".into(),
            "û* alone, from the same noises".into(),
            match own {
                Some((_, step, _)) => format!("Your network, after {step} steps"),
                None => format!("Your network: press “{TRAIN}”"),
            },
        ];
        draw_on(&self.canvas, |area| {
            draw_digit_grid(area, &GRID, &[], &labels, &[top, nearest, copies, yours])
        })?;
        let gaps: Vec<f32> = self
            .departure
            .iter()
            .map(|d| d.map_or(f32::NAN, |d| d.0))
            .collect();
        let curve: Vec<(f32, f32)> = self
            .by_tau
            .iter()
            .map(|(tau, nearest)| (*tau, measure(nearest).0))
            .collect();
        draw_on(&self.gap_canvas, |area| {
            let [left, right] = &panels(area, GAP_PANELS)[..] else {
                return Ok(());
            };
            draw_binned_error(left, &gaps, TIMES)?;
            draw_tau_curves(
                right,
                &format!("the hybrid model against τ ({SAMPLES} noises)"),
                &[(
                    "mean distance to the nearest training digit",
                    palette::DATA,
                    &curve,
                )],
                self.reference
                    .map(|r| ("held-out digits (never trained on)", r)),
                tau,
            )
        })
    }

    /// Every sample of this noise at every τ sampled (the hybrid curve's points; τ = 1 is û*
    /// alone), and the reader's network's ("yours").
    fn csv(&self, _: &Settings) -> Option<String> {
        self.hybrid.as_ref()?;
        let by_tau = self.by_tau.iter().map(|(tau, nearest)| {
            let source = if *tau == 1.0 { "u*" } else { "hybrid" };
            (source, *tau, nearest)
        });
        // The reader's network's samples of this noise, if any (τ = 0: the network alone).
        let own = self.own.sampled.iter().filter(|o| o.0 == self.version);
        let rows = by_tau
            .chain(own.map(|(_, _, s)| ("yours", 0.0, &s.nearest)))
            .flat_map(|(source, tau, nearest)| {
                nearest.iter().enumerate().map(move |(k, n)| {
                    format!(
                        "{source},{k},{tau},{},{},{},{}",
                        original_index(n.index as usize),
                        n.distance,
                        n.second,
                        n.memorized()
                    )
                })
            });
        Some(super::csv_rows(
            "source,sample,tau,nearest_training_digit,distance,second_nearest_distance,memorized",
            rows,
        ))
    }
}
