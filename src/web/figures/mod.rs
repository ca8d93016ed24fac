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
use driver::Driven;
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
