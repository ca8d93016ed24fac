//! Every WGSL kernel, loaded in one place.

/// Fused closed-form velocity (online softmax over training-set chunks), with an Euler mode.
pub const CLOSED_FORM: &str = include_str!("../../shaders/closed_form.wgsl");

/// (file name, source) of every kernel, for validation in tests.
pub const ALL: &[(&str, &str)] = &[("closed_form.wgsl", CLOSED_FORM)];
