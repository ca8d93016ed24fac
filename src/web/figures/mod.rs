//! The article's figures. Each declares itself to the figure driver (`driver::Sketch`: its
//! canvases, its jobs, its drawing; its settings are the catalogue's), and `create` mounts it by
//! name as a `Figure` the page animates. The helpers below are the pieces figures share: layouts,
//! the status line, Play and Pause buttons, the training run, the digits' download.

mod alignment_dimensions;
mod cfm_efm;
mod conditional_paths;
mod digit_memorization;
pub mod driver;
mod hybrid_tau;
mod memorization;
mod model_capacity;
mod noise_to_data;
mod stochastic_target;
mod target_alignment;
mod velocity_field;

use super::compute::{ComputeError, Network, Training};
use super::controls::{element, JsResult};
use crate::charts;
use driver::Driven;
use futures_util::future::LocalBoxFuture;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsValue;
use web_sys::{Element, HtmlCanvasElement, HtmlElement};

/// A live figure mounted in a page element.
pub trait Figure {
    /// One animation frame, `now` in milliseconds; only called while the figure is visible.
    /// When not `may_draw` (the frame's drawing budget is spent), a drawing it needs waits for
    /// a later frame.
    fn frame(&mut self, now: f64, may_draw: bool);
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
        "noise-to-data" => Box::new(Driven::<noise_to_data::NoiseToData>::mount(root)?),
        "conditional-paths" => {
            Box::new(Driven::<conditional_paths::ConditionalPaths>::mount(root)?)
        }
        "velocity-field" => Box::new(Driven::<velocity_field::VelocityField>::mount(root)?),
        "memorization" => Box::new(Driven::<memorization::Memorization>::mount(root)?),
        "stochastic-target" => {
            Box::new(Driven::<stochastic_target::StochasticTarget>::mount(root)?)
        }
        "target-alignment" => Box::new(Driven::<target_alignment::TargetAlignment>::mount(root)?),
        "objective-gap" => Box::new(Driven::<target_alignment::ObjectiveGap>::mount(root)?),
        "alignment-by-dimension" => Box::new(
            Driven::<alignment_dimensions::AlignmentDimensions>::mount(root)?,
        ),
        "digit-memorization" => Box::new(Driven::<digit_memorization::DigitMemorization>::mount(
            root,
        )?),
        "cfm-vs-efm" => Box::new(Driven::<cfm_efm::CfmEfm>::mount(root)?),
        "model-capacity" => Box::new(Driven::<model_capacity::ModelCapacity>::mount(root)?),
        "hybrid-tau" => Box::new(Driven::<hybrid_tau::HybridTau>::mount(root)?),
        other => {
            return Err(JsValue::from_str(&format!(
                "unknown figure \"{other}\"; valid names: {}",
                crate::catalog::FIGURES.map(|f| f.name).join(", ")
            )))
        }
    })
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

/// The Play / Pause button of a figure animated in t.
pub struct PlayButton {
    button: HtmlElement,
    pub playing: bool,
}

impl PlayButton {
    /// Starts paused (call `set` to start playing).
    pub fn new(button: HtmlElement) -> PlayButton {
        PlayButton {
            button,
            playing: false,
        }
    }

    pub fn set(&mut self, playing: bool) {
        self.playing = playing;
        self.button
            .set_text_content(Some(if playing { "Pause" } else { "Play" }));
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

/// Pause and Reset buttons for a figure's training: `pause` finds the toggle in the figure,
/// `reset` starts the run again (work in flight for the old run must be dropped).
pub fn run_controls<S: driver::Sketch>(
    ui: &mut driver::Ui<'_, S>,
    pause: fn(&mut S) -> &mut PauseToggle,
    reset: fn(&mut S, &mut driver::Ctx<'_>),
) -> JsResult<PauseToggle> {
    let button = ui.button("Pause training", move |s, _| pause(s).flip())?;
    button.set_attribute("aria-pressed", "false")?;
    ui.button("Reset", reset)?;
    Ok(PauseToggle {
        button,
        paused: false,
    })
}

/// Two square canvases side by side in a row of their own (they wrap on narrow screens).
pub struct TwoCanvases {
    pub left: HtmlCanvasElement,
    pub right: HtmlCanvasElement,
}

pub fn two_canvases(root: &Element, left_label: &str, right_label: &str) -> JsResult<TwoCanvases> {
    let row = element("div", "figure-row", root)?;
    let left = super::controls::canvas(&row, 480, 480, left_label)?;
    let right = super::controls::canvas(&row, 480, 480, right_label)?;
    Ok(TwoCanvases { left, right })
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
/// seeded initialisation), runs `steps` steps, and returns it with their losses, the
/// parameters after them, and the network's samples when asked for.
async fn train_chunk(
    backend: Rc<crate::gpu::Backend>,
    training: Option<Training>,
    (shape, options, steps): ChunkPlan,
    data: &[f32],
    samples: Option<Samples>,
) -> Result<(Training, Chunk), ComputeError> {
    let start = js_sys::Date::now();
    let mut training = match training {
        Some(t) => t,
        None => Training::start(&backend, shape, data, options).await?,
    };
    let (losses, params) = training.train(&backend, steps, true).await?;
    let params = params.unwrap_or_default();
    let ms = js_sys::Date::now() - start;
    let samples = match samples {
        Some(s) => {
            let network = network_of(Some(&training), &backend, shape, &params);
            Some(s.draw(&network).await?)
        }
        None => None,
    };
    let chunk = Chunk {
        losses,
        params,
        samples,
        backend,
        ms,
    };
    Ok((training, chunk))
}

/// Samples a figure draws from its network after a chunk (compute::Network::path): from `x0`
/// in `steps` Euler steps, along the closed form of the small set `data` while t < tau, every
/// step's positions when `frames`.
pub struct Samples {
    pub x0: Vec<f32>,
    pub steps: usize,
    pub data: Vec<f32>,
    pub tau: f32,
    pub frames: bool,
}

impl Samples {
    /// Drawn from `network`, where it is (`network_of`).
    async fn draw(&self, network: &Network<'_>) -> Result<Vec<f32>, ComputeError> {
        let closed = (&self.data[..], self.tau);
        network
            .path(&self.x0, self.steps, closed, self.frames)
            .await
    }
}

/// The network where it is (its worker, or the GPU that trains it), else from `params` here.
fn network_of<'a>(
    training: Option<&'a Training>,
    backend: &'a crate::gpu::Backend,
    shape: crate::flow::mlp::MlpShape,
    params: &[f32],
) -> Network<'a> {
    use crate::gpu::{backend::Training as OnBackend, Backend};
    match (training, backend) {
        (Some(Training::Pool(t)), _) => Network::Pool(t),
        (Some(Training::Backend(OnBackend::Gpu(t))), Backend::Gpu(_)) => Network::Gpu(backend, t),
        _ => Network::Here(shape, params.to_vec()),
    }
}

/// A job's end that had the run's network lent: the run, the network to give back, the result.
pub struct Lent<T> {
    run: u64,
    training: Option<Training>,
    result: Result<T, ComputeError>,
}

/// A figure's network in training, one chunk a job of the figure's driver: `next` is the key
/// of the chunk to train, `chunk` its future, `finish` takes its end.
#[derive(Default)]
pub struct TrainingRun {
    training: Option<Training>,
    /// Bumped by `reset` (and a failure): a chunk that ends for an older run is dropped.
    run: u64,
}

/// A chunk that ended: its losses, the parameters after it, the samples asked for, where and
/// in how long it trained.
pub struct Chunk {
    pub losses: Vec<f32>,
    pub params: Vec<f32>,
    pub samples: Option<Vec<f32>>,
    pub backend: Rc<crate::gpu::Backend>,
    pub ms: f64,
}

/// What a chunk trains: the network's shape, the optimiser's options, the steps per chunk.
pub type ChunkPlan = (
    crate::flow::mlp::MlpShape,
    crate::gpu::trainer::TrainOptions,
    usize,
);

/// The end of a chunk's job: its run, the network to continue, what it trained.
pub type ChunkEnd = Lent<Chunk>;

impl Lent<Chunk> {
    /// The samples drawn after the chunk, if it trained and they were asked for.
    pub fn samples(&self) -> Option<&[f32]> {
        self.result.as_ref().ok()?.samples.as_deref()
    }

    /// How long it trained (0 when it failed).
    pub fn ms(&self) -> f64 {
        self.result.as_ref().map_or(0.0, |c| c.ms)
    }
}

impl TrainingRun {
    /// The run's number (bumped by `reset` and failures): part of a job's key.
    pub fn run(&self) -> u64 {
        self.run
    }

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

    /// The key of the next chunk, (run, steps trained so far), while `steps` is under `max`
    /// and the reader has not paused.
    pub fn next(&self, steps: usize, max: usize, pause: &PauseToggle) -> Option<(u64, usize)> {
        (steps < max && !pause.paused).then_some((self.run, steps))
    }

    /// The next chunk as a job: continues the run's network (or starts it from the seeded
    /// initialisation on `data`, copied only then) for `steps` steps, then draws `samples`
    /// from it when asked.
    pub fn chunk(
        &mut self,
        data: &[f32],
        plan: ChunkPlan,
        samples: Option<Samples>,
    ) -> LocalBoxFuture<'static, ChunkEnd> {
        let training = self.training.take();
        let data = match training {
            Some(_) => Vec::new(),
            None => data.to_vec(),
        };
        let run = self.run;
        Box::pin(async move {
            let backend = crate::web::shared::figure_backend();
            match train_chunk(backend, training, plan, &data, samples).await {
                Ok((training, chunk)) => ChunkEnd {
                    run,
                    training: Some(training),
                    result: Ok(chunk),
                },
                Err(e) => ChunkEnd {
                    run,
                    training: None,
                    result: Err(e),
                },
            }
        })
    }

    /// Samples from the network with `params` as a job, without training it (`lend`: where
    /// the run holds the network, else from the parameters here). Its end is a chunk of no
    /// steps.
    pub fn sample(
        &mut self,
        shape: crate::flow::mlp::MlpShape,
        params: Vec<f32>,
        samples: Samples,
    ) -> LocalBoxFuture<'static, ChunkEnd> {
        let kept = params.clone();
        self.lend(shape, params, async move |network| {
            let x = samples.draw(network).await?;
            Ok(Chunk {
                losses: Vec::new(),
                params: kept,
                samples: Some(x),
                backend: crate::web::shared::figure_backend(),
                ms: 0.0,
            })
        })
    }

    /// `work` on the network with `params` as a job, without training it: on the network where
    /// the run holds it (lent to the job, back with `give_back`), else from the parameters here.
    pub fn lend<T, W>(
        &mut self,
        shape: crate::flow::mlp::MlpShape,
        params: Vec<f32>,
        work: W,
    ) -> LocalBoxFuture<'static, Lent<T>>
    where
        T: 'static,
        W: AsyncFnOnce(&Network<'_>) -> Result<T, ComputeError> + 'static,
    {
        let training = self.training.take();
        let run = self.run;
        Box::pin(async move {
            let backend = crate::web::shared::figure_backend();
            let result = work(&network_of(training.as_ref(), &backend, shape, &params)).await;
            Lent {
                run,
                // A failure ends the run, as a chunk's does.
                training: training.filter(|_| result.is_ok()),
                result,
            }
        })
    }

    /// A lent network's job ended (a chunk's too): its result, unless the run was reset
    /// meanwhile (None). A failure ends the run: the next chunk starts a new one.
    pub fn give_back<T>(&mut self, lent: Lent<T>) -> Option<Result<T, ComputeError>> {
        if lent.run != self.run {
            return None;
        }
        self.training = lent.training;
        if lent.result.is_err() {
            self.run += 1;
        }
        Some(lent.result)
    }

    /// A chunk ended: what it trained, unless the run was reset meanwhile (None); a failure
    /// ("Training failed: …") ends the run.
    pub fn finish(&mut self, end: ChunkEnd) -> Option<Result<Chunk, String>> {
        Some(
            self.give_back(end)?
                .map_err(|e| format!("Training failed: {e}")),
        )
    }

    /// `finish` for a figure with one run: a failure is shown in the status line and pauses the
    /// training (Resume starts a new run). The chunk, when there is one to take in.
    pub fn take(
        &mut self,
        end: ChunkEnd,
        pause: &mut PauseToggle,
        status: &Status,
    ) -> Option<Chunk> {
        match self.finish(end)? {
            Ok(chunk) => Some(chunk),
            Err(message) => {
                status.error(&message);
                pause.stop();
                None
            }
        }
    }
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
