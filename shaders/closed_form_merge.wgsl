// Closed-form flow-matching velocity, second pass: merges the partial softmax results of the
// slots (closed_form.wgsl, closed_form_small.wgsl) with log-sum-exp weights,
//   M = max_j m_j,  S = sum_j s_j e^(m_j - M),  A = sum_j a_j e^(m_j - M),
// and writes u = (A / S - x) / (1 - t), or the Euler step x + dt u with EULER. One workgroup per
// query: the slots' weights e^(m_j - M) are computed once into workgroup memory (not once per
// coordinate), then each invocation sums the partials of its coordinates.
//
// What it relies on (WGSL memory model): `state` and `partial` were written by the previous
// dispatch (the first pass), never by this one; `out` is written only here, each entry by one
// invocation, and is a different buffer from `queries` (positions ping-pong between two).
// `weights` and `reduce` are shared only across workgroupBarrier(), reached in uniform control
// flow (loop bounds are uniforms and constants). A slot with sum 0 holds no point (its range was
// empty) and gets weight 0, whatever its `partial` holds.

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

// At most this many slots (gpu::closed_form::Plan keeps to it).
const MAX_SLOTS: u32 = 1024u;

var<workgroup> weights: array<f32, 1024>;
var<workgroup> reduce: array<f32, 64>;

@compute @workgroup_size(64)
fn main(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let dim = params.dim;
    let m = params.m;
    let slots = min(params.slots, MAX_SLOTS);
    // Uniform across the workgroup: every invocation reaches every barrier.
    let q = wid.y * groups.x + wid.x;
    let live = q < m;

    // M: the largest running maximum among the slots that hold points.
    var top = -1.0;
    var any = false;
    if (live) {
        for (var j = lid; j < slots; j += 64u) {
            if (state[2u * (j * m + q) + 1u] > 0.0) {
                let mj = state[2u * (j * m + q)];
                if (!any || mj > top) {
                    top = mj;
                }
                any = true;
            }
        }
    }
    // Invocations without a live slot offer -inf's stand-in: the smallest finite f32, never
    // passed to exp() (only live slots are).
    reduce[lid] = select(-3.4028235e38, top, any);
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            reduce[lid] = max(reduce[lid], reduce[lid + stride]);
        }
        workgroupBarrier();
    }
    let best = reduce[0];
    workgroupBarrier();

    // w_j = e^(m_j - M) for live slots, 0 otherwise; S = sum_j s_j w_j.
    var sum = 0.0;
    if (live) {
        for (var j = lid; j < slots; j += 64u) {
            let sj = state[2u * (j * m + q) + 1u];
            var w = 0.0;
            if (sj > 0.0) {
                w = exp(state[2u * (j * m + q)] - best);
            }
            weights[j] = w;
            sum += sj * w;
        }
    }
    reduce[lid] = sum;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            reduce[lid] += reduce[lid + stride];
        }
        workgroupBarrier();
    }
    let total = reduce[0];
    if (!live) {
        return;
    }
    var t = params.t;
    if ((params.flags & PER_QUERY_T) != 0u) {
        t = times[q];
    }
    for (var d = lid; d < dim; d += 64u) {
        let e = q * dim + d;
        var acc = 0.0;
        for (var j = 0u; j < slots; j++) {
            let w = weights[j];
            if (w > 0.0) {
                acc += partial[j * m * dim + e] * w;
            }
        }
        let x = queries[e];
        let u = (acc / total - x) / (1.0 - t);
        if ((params.flags & EULER) != 0u) {
            out[e] = x + params.dt * u;
        } else {
            out[e] = u;
        }
    }
}
