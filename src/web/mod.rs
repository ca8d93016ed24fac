//! The browser side (wasm32 only): the JS API, the figures, their controls and their lifecycle.

pub mod api;
mod backend_switch;
mod controls;
pub mod digits;
mod figures;
mod page;
mod share;
pub mod shared;
pub mod training_api;
