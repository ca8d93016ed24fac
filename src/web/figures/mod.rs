//! The article's figures. Each declares itself to the figure driver (`driver::Sketch`: its
//! canvases, its jobs, its drawing; its settings are the catalogue's), and `create` mounts it by
//! name as a `Figure` the page animates. What figures share is in `widgets` (layouts, the
//! status line, Play and Pause buttons), `training_run` (a network trained a chunk a job) and
//! `digits_gate` (the digits' download).

mod alignment_dimensions;
mod cfm_efm;
mod conditional_paths;
mod digit_memorization;
mod digits_gate;
pub mod driver;
mod hybrid_tau;
mod memorization;
mod model_capacity;
mod new_digits;
mod noise_to_data;
mod stochastic_target;
mod target_alignment;
mod training_run;
mod velocity_field;
mod widgets;

pub use digits_gate::DigitsGate;
pub use training_run::*;
pub use widgets::*;

use super::controls::JsResult;
use crate::catalog::FigureSpec;
use driver::{Driven, Sketch};
use wasm_bindgen::JsValue;
use web_sys::Element;

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

/// Mounts one figure in a page element.
type Mount = fn(&Element) -> JsResult<Box<dyn Figure>>;

fn mount<S: Sketch>(root: &Element) -> JsResult<Box<dyn Figure>> {
    Ok(Box::new(Driven::<S>::mount(root)?))
}

/// Every figure's sketch with its catalogue entry, in the catalogue's order.
const SKETCHES: [(&FigureSpec, Mount); 13] = [
    sketch::<noise_to_data::NoiseToData>(),
    sketch::<conditional_paths::ConditionalPaths>(),
    sketch::<velocity_field::VelocityField>(),
    sketch::<memorization::Memorization>(),
    sketch::<stochastic_target::StochasticTarget>(),
    sketch::<target_alignment::TargetAlignment>(),
    sketch::<target_alignment::ObjectiveGap>(),
    sketch::<alignment_dimensions::AlignmentDimensions>(),
    sketch::<digit_memorization::DigitMemorization>(),
    sketch::<cfm_efm::CfmEfm>(),
    sketch::<model_capacity::ModelCapacity>(),
    sketch::<hybrid_tau::HybridTau>(),
    sketch::<new_digits::NewDigits>(),
];

const fn sketch<S: Sketch>() -> (&'static FigureSpec, Mount) {
    (S::SPEC, mount::<S>)
}

// The sketches are the catalogue's figures, in its order: a figure added to one and not the
// other fails the build.
const _: () = {
    assert!(SKETCHES.len() == crate::catalog::FIGURES.len());
    let mut k = 0;
    while k < SKETCHES.len() {
        assert!(same(SKETCHES[k].0.name, crate::catalog::FIGURES[k].name));
        k += 1;
    }
};

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut k = 0;
    while k < a.len() {
        if a[k] != b[k] {
            return false;
        }
        k += 1;
    }
    true
}

/// Builds the figure `name` inside `root`.
pub fn create(name: &str, root: &Element) -> JsResult<Box<dyn Figure>> {
    match SKETCHES.iter().find(|(spec, _)| spec.name == name) {
        Some((_, mount)) => mount(root),
        None => Err(JsValue::from_str(&format!(
            "unknown figure \"{name}\"; valid names: {}",
            crate::catalog::FIGURES.map(|f| f.name).join(", ")
        ))),
    }
}
