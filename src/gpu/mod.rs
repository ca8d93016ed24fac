//! The same closed form on WebGPU through wgpu: device acquisition, one struct per pipeline, a
//! readback helper, and the `Backend` that answers on the GPU or falls back to `flow` on the CPU.

pub mod backend;
pub mod canary;
pub mod closed_form;
pub mod context;
pub mod kernel_report;
pub mod network_path;
pub mod readback;
pub mod shaders;
pub mod trainer;

pub use backend::Backend;
pub use closed_form::{ClosedFormPipeline, TrainingSet};
pub use context::{Gpu, GpuError};
