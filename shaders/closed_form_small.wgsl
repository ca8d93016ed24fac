// Closed-form velocity for small dimension (dim <= 4: the article's 2-D figures): one invocation
// per query, the accumulator in a vec4 register, a per-point online softmax, and no workgroup
// memory or barriers. Same bindings, flags and slice protocol as closed_form.wgsl, so the two
// kernels are interchangeable; software GPUs pay dearly per barrier and per workgroup, which made
// the tiled kernel slow for tiny problems.

const FIRST: u32 = 1u;
const LAST: u32 = 2u;
const EULER: u32 = 4u;
const PER_QUERY_T: u32 = 8u;

struct Params {
    k_begin: u32,
    k_end: u32,
    dim: u32,
    m: u32,
    flags: u32,
    t: f32,
    dt: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> data: array<f32>;
@group(0) @binding(2) var<storage, read> queries: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> state: array<f32>;
@group(0) @binding(5) var<storage, read> times: array<f32>;

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
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.x;
    let dim = params.dim;
    if (q >= params.m) {
        return;
    }
    var t = params.t;
    if ((params.flags & PER_QUERY_T) != 0u) {
        t = times[q];
    }
    let one_minus_t = 1.0 - t;
    let inv_two_var = 1.0 / (2.0 * one_minus_t * one_minus_t);
    let x = load(dim, q * dim, true);

    var fresh = (params.flags & FIRST) != 0u;
    var run_max = 0.0;
    var run_sum = 0.0;
    var acc = vec4<f32>(0.0);
    if (!fresh) {
        run_max = state[2u * q];
        run_sum = state[2u * q + 1u];
        for (var c = 0u; c < dim; c++) {
            acc[c] = out[q * dim + c];
        }
    }
    for (var k = params.k_begin; k < params.k_end; k++) {
        let xk = load(dim, k * dim, false);
        let d = x - t * xk;
        let s = -dot(d, d) * inv_two_var;
        if (fresh) {
            run_max = s;
            run_sum = 1.0;
            acc = xk;
            fresh = false;
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

    if ((params.flags & LAST) != 0u) {
        let u = (acc / run_sum - x) / one_minus_t;
        var result = u;
        if ((params.flags & EULER) != 0u) {
            result = x + params.dt * u;
        }
        for (var c = 0u; c < dim; c++) {
            out[q * dim + c] = result[c];
        }
    } else {
        state[2u * q] = run_max;
        state[2u * q + 1u] = run_sum;
        for (var c = 0u; c < dim; c++) {
            out[q * dim + c] = acc[c];
        }
    }
}
