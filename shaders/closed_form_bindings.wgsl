// What the three closed-form kernels share (closed_form.wgsl, closed_form_small.wgsl,
// closed_form_merge.wgsl): their flags, their parameters and their bindings, one layout for all
// (gpu::closed_form). gpu::shaders puts this file in front of each of them.

const FIRST: u32 = 1u;
const EULER: u32 = 4u;
const PER_QUERY_T: u32 = 8u;

struct Params {
    k_begin: u32,
    k_end: u32,
    span: u32,
    dim: u32,
    m: u32,
    flags: u32,
    t: f32,
    dt: f32,
    slots: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
// The training set (one slice of it), n x dim.
@group(0) @binding(1) var<storage, read> data: array<f32>;
// Queries (positions, for Euler steps), m x dim.
@group(0) @binding(2) var<storage, read> queries: array<f32>;
// The merge's output: velocities or the next positions, m x dim.
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// Running (max, sum) per (slot, query).
@group(0) @binding(4) var<storage, read_write> state: array<f32>;
// Each query's t (read with PER_QUERY_T only).
@group(0) @binding(5) var<storage, read> times: array<f32>;
// Weighted sum of points per (slot, query): slots x m x dim.
@group(0) @binding(6) var<storage, read_write> partial: array<f32>;
// The same training-set buffer as `data`, four values a word: read when dim is a multiple of 4
// (every row then starts on a word), one 16-byte load where `data` takes four.
@group(0) @binding(7) var<storage, read> data4: array<vec4<f32>>;
