//! The article's figures. Each is a `Figure` built from a name by `create`; its state lives in an
//! `Rc<RefCell<..>>` shared with its controls' callbacks and with its background computations.

mod alignment_dimensions;
mod cfm_efm;
mod conditional_paths;
mod digit_memorization;
mod hybrid_tau;
mod memorization;
mod model_capacity;
mod noise_to_data;
mod stochastic_target;
mod target_alignment;
mod velocity_field;

use super::compute::{ComputeError, Training};
use super::controls::{element, JsResult};
use crate::charts;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsValue;
use web_sys::{Element, HtmlCanvasElement, HtmlElement};

/// A live figure mounted in a page element.
pub trait Figure {
    /// One animation frame, `now` in milliseconds; only called while the figure is visible.
    fn frame(&mut self, now: f64);
    /// Visible on screen (and the tab is shown); animations stop when false.
    fn set_visible(&mut self, visible: bool);
    /// What the figure shows, as CSV with a header row ("Download data"); None before any data.
    fn csv(&self) -> Option<String> {
        None
    }
}

/// Builds the figure `name` inside `root`.
pub fn create(name: &str, root: &Element) -> JsResult<Box<dyn Figure>> {
    Ok(match name {
        "noise-to-data" => Box::new(noise_to_data::NoiseToData::mount(root)?),
        "conditional-paths" => Box::new(conditional_paths::ConditionalPaths::mount(root)?),
        "velocity-field" => Box::new(velocity_field::VelocityField::mount(root)?),
        "memorization" => Box::new(memorization::Memorization::mount(root)?),
        "stochastic-target" => Box::new(stochastic_target::StochasticTarget::mount(root)?),
        "target-alignment" => Box::new(target_alignment::TargetAlignment::mount(root)?),
        "objective-gap" => Box::new(target_alignment::ObjectiveGap::mount(root)?),
        "alignment-by-dimension" => {
            Box::new(alignment_dimensions::AlignmentDimensions::mount(root)?)
        }
        "digit-memorization" => Box::new(digit_memorization::DigitMemorization::mount(root)?),
        "cfm-vs-efm" => Box::new(cfm_efm::CfmEfm::mount(root)?),
        "model-capacity" => Box::new(model_capacity::ModelCapacity::mount(root)?),
        "hybrid-tau" => Box::new(hybrid_tau::HybridTau::mount(root)?),
        other => {
            return Err(JsValue::from_str(&format!(
                "unknown figure \"{other}\"; valid names: {}",
                crate::catalog::FIGURES.map(|f| f.name).join(", ")
            )))
        }
    })
}

/// A figure's state, reachable from the callbacks of controls built before the state exists
/// (the state holds those controls). Callbacks that fire before `set` do nothing.
pub struct Later<S>(Rc<RefCell<Option<Rc<RefCell<S>>>>>);

impl<S> Clone for Later<S> {
    fn clone(&self) -> Self {
        Later(self.0.clone())
    }
}

impl<S> Later<S> {
    pub fn new() -> Self {
        Later(Rc::new(RefCell::new(None)))
    }

    pub fn set(&self, state: &Rc<RefCell<S>>) {
        *self.0.borrow_mut() = Some(state.clone());
    }

    /// Runs `f` on the state, once it exists.
    pub fn with(&self, f: impl FnOnce(&mut S)) {
        if let Some(s) = self.0.borrow().as_ref() {
            f(&mut s.borrow_mut())
        }
    }
}

/// Seconds between a figure's animation frames: 0 for the first frame after a (re)start, so an
/// animation resumes where it stopped, and at most a tenth of a second after a stall.
#[derive(Default)]
pub struct FrameClock {
    last: Option<f64>,
}

impl FrameClock {
    /// The seconds since the previous tick, `now` in milliseconds.
    pub fn tick(&mut self, now: f64) -> f64 {
        let dt = self.last.map_or(0.0, |last| (now - last) / 1000.0).min(0.1);
        self.last = Some(now);
        dt
    }

    /// Forgets the previous tick (the figure was hidden, or its animation paused).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

/// The Play / Pause button of a figure animated in t, with its frame clock.
pub struct PlayButton {
    button: HtmlElement,
    pub playing: bool,
    pub clock: FrameClock,
}

impl PlayButton {
    /// Starts paused (call `set` to start playing).
    pub fn new(button: HtmlElement) -> PlayButton {
        PlayButton {
            button,
            playing: false,
            clock: FrameClock::default(),
        }
    }

    pub fn set(&mut self, playing: bool) {
        self.playing = playing;
        self.clock.reset();
        self.button
            .set_text_content(Some(if playing { "Pause" } else { "Play" }));
    }

    /// The seconds since the previous frame while playing; None while paused.
    pub fn tick(&mut self, now: f64) -> Option<f64> {
        self.playing.then(|| self.clock.tick(now))
    }
}

/// The "Pause training" / "Resume training" button of a figure's background training; the
/// figure keeps it in its state and checks `paused` before starting a chunk.
pub struct PauseToggle {
    button: HtmlElement,
    pub paused: bool,
}

impl PauseToggle {
    /// Once a paused run's last chunk has finished, says so in the status line (unless it shows
    /// an error).
    pub fn show_paused(&self, status: &Status, busy: bool, step: usize, max_steps: usize) {
        if self.paused && !busy && step < max_steps && !status.is_error() {
            status.set(&format!(
                "Paused at step {step} of {max_steps}: Resume training continues."
            ));
        }
    }

    /// Pauses (after an error, say), as the button would.
    pub fn stop(&mut self) {
        if !self.paused {
            self.flip();
        }
    }

    fn flip(&mut self) {
        self.paused = !self.paused;
        let label = if self.paused {
            "Resume training"
        } else {
            "Pause training"
        };
        self.button.set_text_content(Some(label));
        let _ = self
            .button
            .set_attribute("aria-pressed", &self.paused.to_string());
    }
}

/// Pause and Reset buttons for a figure's training: `pause` finds the toggle in the state,
/// `reset` starts the run again (work in flight for the old run must be dropped).
pub fn run_controls<S: 'static>(
    panel: &HtmlElement,
    listeners: &mut super::controls::Listeners,
    cell: &Later<S>,
    pause: fn(&mut S) -> &mut PauseToggle,
    reset: fn(&mut S),
) -> JsResult<PauseToggle> {
    let c = cell.clone();
    let button = super::controls::button(panel, listeners, "Pause training", move || {
        c.with(|s| pause(s).flip())
    })?;
    button.set_attribute("aria-pressed", "false")?;
    let c = cell.clone();
    super::controls::button(panel, listeners, "Reset", move || c.with(reset))?;
    Ok(PauseToggle {
        button,
        paused: false,
    })
}

/// The layout most figures share: a row of controls, two square canvases side by side (they
/// wrap on narrow screens), and a status line.
pub struct TwoPanels {
    pub controls: HtmlElement,
    pub left: HtmlCanvasElement,
    pub right: HtmlCanvasElement,
    pub status: Status,
}

pub fn two_panels(root: &Element, left_label: &str, right_label: &str) -> JsResult<TwoPanels> {
    let controls = element("div", "figure-controls", root)?;
    let row = element("div", "figure-row", root)?;
    let left = super::controls::canvas(&row, 480, 480, left_label)?;
    let right = super::controls::canvas(&row, 480, 480, right_label)?;
    let status = Status::new(root)?;
    Ok(TwoPanels {
        controls,
        left,
        right,
        status,
    })
}

/// A canvas in a row of its own under what `root` holds, `class` setting its layout
/// ("figure-wide", "figure-digits"): the full-width charts below or instead of two panels.
pub fn row_canvas(
    root: &Element,
    (width, height): (u32, u32),
    class: &str,
    label: &str,
) -> JsResult<HtmlCanvasElement> {
    let row = element("div", "figure-row", root)?;
    let canvas = super::controls::canvas(&row, width, height, label)?;
    canvas.class_list().add_1(class)?;
    Ok(canvas)
}

/// The line under a figure that says what it is doing (or what went wrong).
pub struct Status(HtmlElement);

impl Status {
    pub fn new(root: &Element) -> JsResult<Status> {
        let el = element("p", "figure-status", root)?;
        el.set_attribute("aria-live", "polite")?;
        Ok(Status(el))
    }

    pub fn set(&self, text: &str) {
        // Unchanged text is left alone (the line is an aria-live region).
        if self.0.class_name() == "figure-status" && self.0.text_content().as_deref() == Some(text)
        {
            return;
        }
        self.0.set_class_name("figure-status");
        self.0.set_text_content(Some(text));
    }

    /// The paragraph itself (to move it within the figure).
    pub fn element(&self) -> &HtmlElement {
        &self.0
    }

    pub fn is_error(&self) -> bool {
        self.0.class_name().contains("figure-error")
    }

    pub fn error(&self, text: &str) {
        self.0.set_class_name("figure-status figure-error");
        self.0.set_text_content(Some(text));
    }
}

pub use crate::web::backend_switch::draw_on;

/// Draws a plane scene on a canvas.
pub fn draw_plane(canvas: &HtmlCanvasElement, scene: &charts::plane::Scene) -> JsResult<()> {
    draw_on(canvas, |area| {
        charts::plane::draw(area, &charts::plane::Plane::DEFAULT, scene)
    })
}

/// Draws a histogram on a canvas.
pub fn draw_histogram(
    canvas: &HtmlCanvasElement,
    view: &charts::histogram::HistogramView<'_>,
) -> JsResult<()> {
    draw_on(canvas, |area| charts::histogram::draw(area, view))
}

/// One chunk of a figure's background training: continues `training` (or starts it from the
/// seeded initialisation), runs `steps` steps, and returns it with their losses and the
/// parameters after them.
pub async fn train_chunk(
    backend: &crate::gpu::Backend,
    training: Option<Training>,
    shape: crate::flow::mlp::MlpShape,
    data: &[f32],
    options: crate::gpu::trainer::TrainOptions,
    steps: usize,
) -> Result<(Training, Vec<f32>, Vec<f32>), ComputeError> {
    let mut training = match training {
        Some(t) => t,
        None => Training::start(backend, shape, data, options).await?,
    };
    let (losses, params) = training.train(backend, steps, true).await?;
    Ok((training, losses, params.unwrap_or_default()))
}

/// A figure's network in training, one chunk at a time in the background (`train_next`).
#[derive(Default)]
pub struct TrainingRun {
    training: Option<Training>,
    /// Bumped by `reset`: a chunk in flight for an older run is dropped when it ends.
    run: u64,
    /// Whether a chunk is in flight.
    pub busy: bool,
}

impl TrainingRun {
    /// Starts over from the seeded initialisation at the next chunk.
    pub fn reset(&mut self) {
        self.training = None;
        self.run += 1;
    }

    /// Lets the network go (its GPU buffers, its worker's copy) once training is over; the
    /// figure keeps the parameters it was given.
    pub fn release(&mut self) {
        self.training = None;
    }
}

/// A chunk that ended: its losses, the parameters after it, where and in how long it ran.
pub struct Chunk {
    pub losses: Vec<f32>,
    pub params: Vec<f32>,
    pub backend: Rc<crate::gpu::Backend>,
    pub ms: f64,
}

/// What a chunk trains: the network's shape, the optimiser's options, the steps per chunk.
pub type ChunkPlan = (
    crate::flow::mlp::MlpShape,
    crate::gpu::trainer::TrainOptions,
    usize,
);

/// Trains the next chunk of the run that `run` finds in the figure's state, on the data `data`
/// finds there (read only to start a run). When it ends, `done` gets it, unless the run was
/// reset meanwhile; an error goes to `failed` ("Training failed: …").
pub fn train_next<S: 'static>(
    state: &Rc<RefCell<S>>,
    run: fn(&mut S) -> &mut TrainingRun,
    data: fn(&S) -> &[f32],
    (shape, options, steps): ChunkPlan,
    done: fn(&mut S, Chunk),
    failed: fn(&mut S, String),
) {
    let (training, id, data) = {
        let mut s = state.borrow_mut();
        let r = run(&mut s);
        r.busy = true;
        let (training, id) = (r.training.take(), r.run);
        let data = match training {
            Some(_) => Vec::new(),
            None => data(&s).to_vec(),
        };
        (training, id, data)
    };
    let state = state.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let backend = crate::web::shared::backend().await;
        let start = js_sys::Date::now();
        let result = train_chunk(&backend, training, shape, &data, options, steps).await;
        let mut s = state.borrow_mut();
        let r = run(&mut s);
        r.busy = false;
        if r.run != id {
            return;
        }
        match result {
            Ok((training, losses, params)) => {
                r.training = Some(training);
                let ms = js_sys::Date::now() - start;
                done(
                    &mut s,
                    Chunk {
                        losses,
                        params,
                        backend,
                        ms,
                    },
                );
            }
            Err(e) => failed(&mut s, format!("Training failed: {e}")),
        }
    });
}

/// A CSV document: the header, then one line per row.
pub fn csv_rows(header: &str, rows: impl Iterator<Item = String>) -> String {
    let mut out = String::from(header);
    out.push('\n');
    for row in rows {
        out.push_str(&row);
        out.push('\n');
    }
    out
}

/// The grid of query points for arrow fields: `side` x `side` over [-extent, extent]^2.
pub fn grid(side: usize, extent: f32) -> Vec<f32> {
    let mut g = Vec::with_capacity(2 * side * side);
    for j in 0..side {
        for i in 0..side {
            let f = |k: usize| -extent + 2.0 * extent * (k as f32 + 0.5) / side as f32;
            g.push(f(i));
            g.push(f(j));
        }
    }
    g
}

enum Gate {
    Idle,
    Loading,
    Ready(Rc<crate::web::digits::DigitSet>),
    Failed(String),
}

/// A figure's access to the page's MNIST digits: `poll` starts the shared download, shows its
/// progress in the figure's status line, and after a failure shows the error and a Retry button.
pub struct DigitsGate {
    state: Rc<RefCell<Gate>>,
    retry: HtmlElement,
}

impl DigitsGate {
    pub fn new(
        panel: &HtmlElement,
        listeners: &mut super::controls::Listeners,
    ) -> JsResult<DigitsGate> {
        let state = Rc::new(RefCell::new(Gate::Idle));
        let s = state.clone();
        let retry = super::controls::button(panel, listeners, "Retry the download", move || {
            *s.borrow_mut() = Gate::Idle;
        })?;
        retry.style().set_property("display", "none")?;
        Ok(DigitsGate { state, retry })
    }

    /// The digits once downloaded; until then None, with the status line kept current.
    pub fn poll(&self, status: &Status) -> Option<Rc<crate::web::digits::DigitSet>> {
        let mut state = self.state.borrow_mut();
        if !matches!(&*state, Gate::Ready(_)) {
            if let Some(d) = crate::web::digits::ready() {
                let _ = self.retry.style().set_property("display", "none");
                *state = Gate::Ready(d);
            }
        }
        match &*state {
            Gate::Ready(d) => return Some(d.clone()),
            Gate::Idle => {
                *state = Gate::Loading;
                let _ = self.retry.style().set_property("display", "none");
                let cell = self.state.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let result = crate::web::digits::load().await;
                    *cell.borrow_mut() = match result {
                        Ok(d) => Gate::Ready(d),
                        Err(e) => Gate::Failed(e),
                    };
                });
                status.set("Downloading the MNIST digits…");
            }
            Gate::Loading => {
                let (got, total) = crate::web::digits::progress();
                let mb = |b: f64| b / 1_048_576.0;
                if total > 0.0 {
                    status.set(&format!(
                        "Downloading the MNIST digits: {:.1} of {:.1} MB ({:.0}%)…",
                        mb(got),
                        mb(total),
                        100.0 * got / total
                    ));
                } else {
                    status.set(&format!("Downloading the MNIST digits: {:.1} MB…", mb(got)));
                }
            }
            Gate::Failed(e) => {
                status.error(&format!("{e}. Check the connection and retry."));
                let _ = self.retry.style().set_property("display", "");
            }
        }
        None
    }
}
