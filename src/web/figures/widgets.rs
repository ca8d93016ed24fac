//! The pieces figures share on the page: the frame clock, the Play and Pause buttons, the
//! canvases' layouts, the status line, drawing helpers and CSV.

use super::driver;
use crate::charts;
use crate::charts::layout::Fit;
use crate::web::controls::{self, element, JsResult};
use web_sys::{Element, HtmlCanvasElement, HtmlElement};

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

    /// A toggle on `button` that starts paused (its first press starts the run).
    pub fn paused(button: HtmlElement) -> PauseToggle {
        PauseToggle {
            button,
            paused: true,
        }
    }

    /// Paused, with the label of a run not yet started (after a reset).
    pub fn unstarted(&mut self, label: &str) {
        self.stop();
        self.button.set_text_content(Some(label));
    }

    /// Pauses (after an error, say), as the button would.
    pub fn stop(&mut self) {
        if !self.paused {
            self.flip();
        }
    }

    pub fn flip(&mut self) {
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
    let left = controls::canvas(&row, 480, Fit::SQUARE, left_label)?;
    let right = controls::canvas(&row, 480, Fit::SQUARE, right_label)?;
    Ok(TwoCanvases { left, right })
}

/// A canvas in a row of its own under what `root` holds, `class` setting its layout
/// ("figure-wide", "figure-digits"): the full-width charts below or instead of two panels, 960
/// CSS pixels wide at most, `fit` giving their height.
pub fn row_canvas(
    root: &Element,
    fit: Fit,
    class: &str,
    label: &str,
) -> JsResult<HtmlCanvasElement> {
    let row = element("div", "figure-row", root)?;
    let canvas = controls::canvas(&row, 960, fit, label)?;
    canvas.class_list().add_1(class)?;
    Ok(canvas)
}

/// The line under a figure that says what it is doing (or what went wrong).
pub struct Status(HtmlElement);

impl Status {
    pub fn new(root: &Element) -> JsResult<Status> {
        let el = element("p", "figure-status", root)?;
        el.set_attribute("aria-live", "polite")?;
        // On a phone the line shows two lines until tapped (figures.css): a tap focuses it.
        el.set_attribute("tabindex", "0")?;
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

pub use crate::web::drawing::draw_on;

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
