// Draws one CFM training batch on the GPU: x0 ~ N(0, I) (Box-Muller), x1 uniform from the
// training set, t ~ U[0, 1), from a counter-based hash keyed by (seed, step, row, k): the same
// stream as flow::mlp::draw_batch. Writes the network input [x_t, sin(2^j t), cos(2^j t)] and
// the target x1 - x0. One invocation per batch row.
//
// For the EFM target (efm_rows > 0) it also writes x_t and t as the closed-form kernel's queries,
// and the reference set: rows 0..efm_rows of `reference` are the training points that rows
// 0..efm_rows of an extended batch would draw (the batch's own x1 first), as
// flow::mlp::efm_reference does. The closed-form kernel then overwrites `goal` with u*(x_t, t).
//
// What it relies on (WGSL memory model): invocation b writes only row b of `input`, `goal`,
// `queries`, `reference` and `times`, and reads no storage that another invocation of this
// dispatch writes (`data` is read-only; `counter` was advanced by an earlier dispatch). No
// workgroup memory, no barriers.

struct Config {
    seed: u32,
    n: u32,
    dim: u32,
    rows: u32,
    time_features: u32,
    efm_rows: u32,
    _pad1: u32,
    _pad2: u32,
}

struct Counter {
    step: u32,
    base: u32,
}

@group(0) @binding(0) var<uniform> config: Config;
@group(0) @binding(1) var<storage, read> data: array<f32>;
@group(0) @binding(2) var<storage, read_write> input: array<f32>;
@group(0) @binding(3) var<storage, read_write> goal: array<f32>;
@group(0) @binding(4) var<storage, read> counter: Counter;
@group(0) @binding(5) var<storage, read_write> queries: array<f32>;
@group(0) @binding(6) var<storage, read_write> times: array<f32>;
@group(0) @binding(7) var<storage, read_write> reference: array<f32>;

fn hash32(x: u32) -> u32 {
    var v = x;
    v ^= v >> 16u;
    v *= 0x7feb352du;
    v ^= v >> 15u;
    v *= 0x846ca68bu;
    v ^= v >> 16u;
    return v;
}

fn counter_u32(row: u32, k: u32) -> u32 {
    return hash32(config.seed ^ hash32(counter.step ^ hash32(row ^ hash32(k))));
}

fn uniform01(row: u32, k: u32) -> f32 {
    return f32(counter_u32(row, k) >> 8u) * (1.0 / 16777216.0);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    let dim = config.dim;
    let efm = config.efm_rows > 0u;
    let i = counter_u32(b, 0u) % config.n;
    if (b < config.efm_rows) {
        for (var k = 0u; k < dim; k++) {
            reference[b * dim + k] = data[i * dim + k];
        }
    }
    if (b >= config.rows) {
        return;
    }
    let width = dim + config.time_features;
    let t = uniform01(b, 1u);
    for (var k = 0u; k < dim; k++) {
        let u1 = 1.0 - uniform01(b, 2u + 2u * k);
        let u2 = uniform01(b, 3u + 2u * k);
        let x0 = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        let x1 = data[i * dim + k];
        let xt = (1.0 - t) * x0 + t * x1;
        input[b * width + k] = xt;
        if (efm) {
            queries[b * dim + k] = xt;
        } else {
            goal[b * dim + k] = x1 - x0;
        }
    }
    if (efm) {
        times[b] = t;
    }
    let half = config.time_features / 2u;
    for (var j = 0u; j < half; j++) {
        let wt = f32(1u << j) * t;
        input[b * width + dim + j] = sin(wt);
        input[b * width + dim + half + j] = cos(wt);
    }
}
