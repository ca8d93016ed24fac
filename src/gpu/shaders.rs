//! Every WGSL kernel, loaded in one place.

/// Fused closed-form velocity (online softmax over training-set chunks), with an Euler mode.
pub const CLOSED_FORM: &str = include_str!("../../shaders/closed_form.wgsl");

/// The same for dim <= 4: one invocation per query, no workgroup memory.
pub const CLOSED_FORM_SMALL: &str = include_str!("../../shaders/closed_form_small.wgsl");

/// (file name, source) of every kernel, for validation in tests.
pub const ALL: &[(&str, &str)] = &[
    ("closed_form.wgsl", CLOSED_FORM),
    ("closed_form_small.wgsl", CLOSED_FORM_SMALL),
];
