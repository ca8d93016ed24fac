// Closed-form flow-matching velocity, second pass: merges the partial softmax results of the
// slots (closed_form.wgsl, closed_form_small.wgsl) with log-sum-exp weights,
//   M = max_j m_j,  S = sum_j s_j e^(m_j - M),  A = sum_j a_j e^(m_j - M),
// and writes u = (A / S - x) / (1 - t), or the Euler step x + dt u with EULER. The same merge, in
// flow::closed_form::merge_partials, is the CPU twin. One invocation per (query, coordinate).
//
// What it relies on (WGSL memory model): `state` and `partial` were written by the previous
// dispatch (the first pass), never by this one; `out` is written only here, each entry by one
// invocation, and is a different buffer from `queries` (positions ping-pong between two). No
// workgroup memory, no barriers. A slot with sum 0 holds no point (its range was empty) and is
// skipped, whatever its `partial` holds.

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
// (binding 1, the training set, is the first pass's)
@group(0) @binding(2) var<storage, read> queries: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> state: array<f32>;
@group(0) @binding(5) var<storage, read> times: array<f32>;
@group(0) @binding(6) var<storage, read_write> partial: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let dim = params.dim;
    let m = params.m;
    let e = (wid.y * groups.x + wid.x) * 64u + lid;
    if (e >= m * dim) {
        return;
    }
    let q = e / dim;
    var t = params.t;
    if ((params.flags & PER_QUERY_T) != 0u) {
        t = times[q];
    }
    var top = 0.0;
    var any = false;
    for (var j = 0u; j < params.slots; j++) {
        if (state[2u * (j * m + q) + 1u] > 0.0) {
            let mj = state[2u * (j * m + q)];
            if (!any || mj > top) {
                top = mj;
            }
            any = true;
        }
    }
    var sum = 0.0;
    var acc = 0.0;
    for (var j = 0u; j < params.slots; j++) {
        let sj = state[2u * (j * m + q) + 1u];
        if (sj > 0.0) {
            let w = exp(state[2u * (j * m + q)] - top);
            sum += sj * w;
            acc += partial[j * m * dim + e] * w;
        }
    }
    let x = queries[e];
    let u = (acc / sum - x) / (1.0 - t);
    if ((params.flags & EULER) != 0u) {
        out[e] = x + params.dt * u;
    } else {
        out[e] = u;
    }
}
