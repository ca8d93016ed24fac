//! The mathematics of flow matching in plain Rust: datasets, the closed-form velocity, samplers
//! and metrics. No GPU and no browser here; everything else is checked against this module.

pub mod alignment;
pub mod budget;
pub mod capacity;
pub mod closed_form;
pub mod datasets;
pub mod digit_findings;
pub mod digit_training;
pub mod digits;
pub mod error;
pub mod jobs;
pub mod metrics;
pub mod mlp;
pub mod rng;
pub mod sampler;
pub mod training;
pub mod unet;

pub use closed_form::{
    closed_form_velocity, closed_form_velocity_at, closed_form_velocity_f64, posterior_weights,
    ClosedForm, Partials,
};
pub use datasets::Dataset;
pub use error::FlowError;
pub use sampler::{euler_sample, heun_sample, time_grid};
