//! fm-explainer: flow matching and its closed form, computed live in the reader's browser.
//!
//! `flow` is what is true (pure Rust), `gpu` computes the same on WebGPU, `charts` draws it, and
//! `web` lets a reader touch it. Each layer only uses the ones before it.

pub mod catalog;
pub mod charts;
pub mod digits_lab;
pub mod engine;
pub mod flow;
pub mod gpu;
pub mod schedule;
#[cfg(all(target_arch = "wasm32", feature = "page"))]
pub mod web;
