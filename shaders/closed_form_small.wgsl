// Closed-form velocity for small dimension (dim <= 4: the article's 2-D figures), first pass:
// one invocation per query, the accumulator in a vec4 register, a per-point online softmax, and
// no workgroup memory or barriers. Same bindings, flags, slots and partial layout as
// closed_form.wgsl, so the two first passes are interchangeable and share the merge pass
// (closed_form_merge.wgsl); software GPUs pay dearly per barrier and per workgroup, which made the
// tiled kernel slow for tiny problems. Workgroup (x, y) takes 64 queries and slot y's points.
//
// What it relies on (WGSL memory model): invocation q reads and writes only its own query's
// `state` and `partial` entries of its slot, which earlier dispatches wrote; nothing is shared
// between invocations, so no barrier is needed.

// Params, flags and bindings: closed_form_bindings.wgsl.

fn load(dim: u32, base: u32, from_queries: bool) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var c = 0u; c < dim; c++) {
        if (from_queries) {
            v[c] = queries[base + c];
        } else {
            v[c] = data[base + c];
        }
    }
    return v;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let q = gid.x;
    let dim = params.dim;
    let m = params.m;
    if (q >= m) {
        return;
    }
    let slot = wid.y;
    let begin = min(params.k_begin + slot * params.span, params.k_end);
    let end = min(begin + params.span, params.k_end);
    var t = params.t;
    if ((params.flags & PER_QUERY_T) != 0u) {
        t = times[q];
    }
    let one_minus_t = 1.0 - t;
    let inv_two_var = 1.0 / (2.0 * one_minus_t * one_minus_t);
    let x = load(dim, q * dim, true);
    let at = slot * m + q;

    // run_sum == 0: no point yet (every point added brings at least exp(0) = 1).
    var run_max = 0.0;
    var run_sum = 0.0;
    var acc = vec4<f32>(0.0);
    if ((params.flags & FIRST) == 0u) {
        run_max = state[2u * at];
        run_sum = state[2u * at + 1u];
        if (run_sum > 0.0) {
            for (var c = 0u; c < dim; c++) {
                acc[c] = partial[at * dim + c];
            }
        }
    }
    for (var k = begin; k < end; k++) {
        let xk = load(dim, k * dim, false);
        let d = x - t * xk;
        let s = -dot(d, d) * inv_two_var;
        if (run_sum == 0.0) {
            run_max = s;
            run_sum = 1.0;
            acc = xk;
        } else if (s > run_max) {
            let scale = exp(run_max - s);
            run_sum = run_sum * scale + 1.0;
            acc = acc * scale + xk;
            run_max = s;
        } else {
            let w = exp(s - run_max);
            run_sum += w;
            acc += w * xk;
        }
    }
    state[2u * at] = run_max;
    state[2u * at + 1u] = run_sum;
    for (var c = 0u; c < dim; c++) {
        partial[at * dim + c] = acc[c];
    }
}
