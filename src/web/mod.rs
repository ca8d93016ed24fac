//! The browser side (wasm32 only): the JS API, the figures, their controls and their lifecycle.

pub mod api;
mod args;
mod backend_switch;
pub(crate) mod compute;
mod controls;
pub mod digits;
mod figures;
mod page;
mod pool;
mod settings;
mod share;
pub mod shared;
pub mod training_api;

/// The system allocator, counting the bytes it has handed out and not had back.
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// Bytes allocated by the module and not yet freed (for the leak tests; the linear memory itself
/// only grows, so it shows the high-water mark, not what is live).
#[wasm_bindgen::prelude::wasm_bindgen(js_name = wasmHeapBytesForTesting)]
pub fn wasm_heap_bytes_for_testing() -> f64 {
    ALLOCATOR.allocated() as f64
}
