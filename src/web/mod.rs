//! The browser side (wasm32 only): the JS API, the figures, their controls and their lifecycle.

pub mod api;
mod args;
pub mod backend;
pub(crate) mod compute;
mod controls;
pub mod digits;
mod drawing;
mod figures;
mod lab;
mod page;
mod pool;
mod port;
mod query;
mod settings;
mod share;
mod testing;
pub mod training_api;
mod turns;

/// The system allocator, counting the bytes it has handed out and not had back.
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);
