// Closed-form flow-matching velocity, second pass: merges the partial softmax results of the
// slots (closed_form.wgsl, closed_form_small.wgsl) with log-sum-exp weights,
//   M = max_j m_j,  S = sum_j s_j e^(m_j - M),  A = sum_j a_j e^(m_j - M),
// and writes u = (A / S - x) / (1 - t), or the Euler step x + dt u with EULER. `main`: one
// workgroup per query; the slots' weights e^(m_j - M) are computed once into workgroup memory
// (not once per coordinate), then each invocation sums the partials of its coordinates.
// `per_coordinate`, for dim <= 4 (the 2-D figures): one invocation per (query, coordinate), which
// recomputes the few weights itself and needs no barrier; software GPUs pay dearly for a workgroup
// and its barriers per query.
//
// What it relies on (WGSL memory model): `state` and `partial` were written by the previous
// dispatch (the first pass), never by this one; `out` is written only here, each entry by one
// invocation, and is a different buffer from `queries` (positions ping-pong between two).
// `weights` and `reduce` are shared only across workgroupBarrier(), reached in uniform control
// flow (loop bounds are uniforms and constants). A slot with sum 0 holds no point (its range was
// empty) and gets weight 0, whatever its `partial` holds.

// Params, flags and bindings: closed_form_bindings.wgsl.

// At most this many slots (gpu::closed_form::Plan keeps to it).
const MAX_SLOTS: u32 = 1024u;

var<workgroup> weights: array<f32, 1024>;
var<workgroup> reduce: array<f32, 64>;

struct Top {
    value: f32,
    any: bool,
}

// The largest running maximum of query q among the slots first, first + stride, ... that hold
// points (sum > 0); `any` is false when none does.
fn live_max(q: u32, first: u32, stride: u32) -> Top {
    let m = params.m;
    var top = Top(0.0, false);
    for (var j = first; j < min(params.slots, MAX_SLOTS); j += stride) {
        if (state[2u * (j * m + q) + 1u] > 0.0) {
            let mj = state[2u * (j * m + q)];
            if (!top.any || mj > top.value) {
                top.value = mj;
            }
            top.any = true;
        }
    }
    return top;
}

// Writes coordinate e (of query q) from the merged mean A / S: the velocity, or the Euler step.
fn write_result(q: u32, e: u32, mean: f32) {
    var t = params.t;
    if ((params.flags & PER_QUERY_T) != 0u) {
        t = times[q];
    }
    let x = queries[e];
    let u = (mean - x) / (1.0 - t);
    if ((params.flags & EULER) != 0u) {
        out[e] = x + params.dt * u;
    } else {
        out[e] = u;
    }
}

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

    // M: the largest running maximum among the slots that hold points. Invocations without a
    // live slot offer a stand-in for -inf below any score, never passed to exp() (only live slots
    // are). (-3.4028235e38, the f32 minimum as printed, is refused by Chrome's compiler, which
    // reads the literal exactly: it is just beyond f32.)
    var top = Top(0.0, false);
    if (live) {
        top = live_max(q, lid, 64u);
    }
    reduce[lid] = select(-3.0e38, top.value, top.any);
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
    for (var d = lid; d < dim; d += 64u) {
        let e = q * dim + d;
        var acc = 0.0;
        for (var j = 0u; j < slots; j++) {
            let w = weights[j];
            if (w > 0.0) {
                acc += partial[j * m * dim + e] * w;
            }
        }
        write_result(q, e, acc / total);
    }
}

@compute @workgroup_size(64)
fn per_coordinate(
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
    let best = live_max(q, 0u, 1u).value;
    var total = 0.0;
    var acc = 0.0;
    for (var j = 0u; j < min(params.slots, MAX_SLOTS); j++) {
        let sj = state[2u * (j * m + q) + 1u];
        if (sj > 0.0) {
            let w = exp(state[2u * (j * m + q)] - best);
            total += sj * w;
            acc += partial[j * m * dim + e] * w;
        }
    }
    write_result(q, e, acc / total);
}
