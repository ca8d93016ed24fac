// Closed-form flow-matching velocity as fused attention with an online softmax.
//
// queries x (m x dim), keys t * x_i, values x_i (one slice of the training set, n_slice x dim),
// score_i = -||x - t x_i||^2 / (2 (1 - t)^2), with one t for all queries or, with PER_QUERY_T,
// each query's own t from `times` (the EFM training target: x_t at the batch's times).
//
// One workgroup owns TQ queries. It streams the slice's points in chunks of TK through workgroup
// memory: a TQ x TK score tile (direct differences, tiled over dim in TD-wide strips), then the
// running max / sum per query and the accumulator sum_i w_i x_i (kept in `out`, rows owned by this
// workgroup) are rescaled and updated. Nothing of size m x n ever exists.
//
// The training set is processed as several dispatches, each over points [k_begin, k_end) of one
// slice (a training set larger than one storage binding has several slices; short dispatches also
// keep every one well under GPU watchdogs).
// FIRST starts the accumulators, LAST turns them into the velocity (or into an Euler step).

const TQ: u32 = 16u;
const TK: u32 = 32u;
const TD: u32 = 64u;
const WG: u32 = 64u;
// Per thread: TK / (WG / TQ) = 8 scores of the tile.
const KPT: u32 = 8u;

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
// Running (max, sum) per query, carried between slices.
@group(0) @binding(4) var<storage, read_write> state: array<f32>;
// Each query's t (read with PER_QUERY_T only).
@group(0) @binding(5) var<storage, read> times: array<f32>;

var<workgroup> q_tile: array<f32, 1024>;  // TQ * TD
var<workgroup> k_tile: array<f32, 2048>;  // TK * TD: points x_k
var<workgroup> w_tile: array<f32, 512>;   // TQ * TK scores, then weights
var<workgroup> row_max: array<f32, 16>;
var<workgroup> row_sum: array<f32, 16>;
var<workgroup> row_scale: array<f32, 16>;
var<workgroup> row_t: array<f32, 16>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let dim = params.dim;
    let n = params.k_end;
    let m = params.m;
    let q0 = wid.x * TQ;
    let first = (params.flags & FIRST) != 0u;
    let per_query = (params.flags & PER_QUERY_T) != 0u;

    if (lid < TQ) {
        let q = q0 + lid;
        var tq = params.t;
        if (per_query && q < m) {
            tq = times[q];
        }
        row_t[lid] = tq;
        if (first || q >= m) {
            row_max[lid] = 0.0;
            row_sum[lid] = 0.0;
        } else {
            row_max[lid] = state[2u * q];
            row_sum[lid] = state[2u * q + 1u];
        }
    }
    workgroupBarrier();

    // Scores: thread (tq, tk) computes query tq against points tk, tk + 4, ..., tk + 28.
    let tq = lid / 4u;
    let tk = lid % 4u;
    let t = row_t[tq];
    let one_minus_t = 1.0 - t;
    let inv_two_var = 1.0 / (2.0 * one_minus_t * one_minus_t);
    var fresh = first;

    for (var k0 = params.k_begin; k0 < n; k0 += TK) {
        // ||x - t x_k||^2 summed strip by strip, with the strip totals added under Kahan
        // compensation: one running f32 sum over 3,072 terms loses a whole unit in a score of
        // ~7,000, which is the difference between two training points' weights.
        var acc: array<f32, 8>;
        var comp: array<f32, 8>;
        for (var j = 0u; j < KPT; j++) {
            acc[j] = 0.0;
            comp[j] = 0.0;
        }
        for (var d0 = 0u; d0 < dim; d0 += TD) {
            let width = min(TD, dim - d0);
            for (var r = 0u; r < TQ * TD / WG; r++) {
                let e = lid + r * WG;
                let row = e / TD;
                let col = e % TD;
                let q = q0 + row;
                var v = 0.0;
                if (q < m && col < width) {
                    v = queries[q * dim + d0 + col];
                }
                q_tile[e] = v;
            }
            for (var r = 0u; r < TK * TD / WG; r++) {
                let e = lid + r * WG;
                let row = e / TD;
                let col = e % TD;
                let k = k0 + row;
                var v = 0.0;
                if (k < n && col < width) {
                    v = data[k * dim + d0 + col];
                }
                k_tile[e] = v;
            }
            workgroupBarrier();
            // Zeroed explicitly: SwiftShader kept a loop-local array's values from the previous
            // iteration when relying on WGSL's implicit zero initialisation.
            var part: array<f32, 8>;
            for (var j = 0u; j < KPT; j++) {
                part[j] = 0.0;
            }
            for (var d = 0u; d < width; d++) {
                let xq = q_tile[tq * TD + d];
                for (var j = 0u; j < KPT; j++) {
                    let diff = xq - t * k_tile[(tk + 4u * j) * TD + d];
                    part[j] += diff * diff;
                }
            }
            for (var j = 0u; j < KPT; j++) {
                let y = part[j] - comp[j];
                let sum = acc[j] + y;
                comp[j] = (sum - acc[j]) - y;
                acc[j] = sum;
            }
            workgroupBarrier();
        }
        for (var j = 0u; j < KPT; j++) {
            w_tile[tq * TK + tk + 4u * j] = -acc[j] * inv_two_var;
        }
        workgroupBarrier();

        // Online softmax: merge this chunk into the running max and sum of each query. Only the
        // chunk's valid points are read, and a fresh accumulator gets scale 0 explicitly: no
        // sentinel like -3e38 ever reaches exp() (shader compilers may use fast math).
        let kmax = min(TK, n - k0);
        if (lid < TQ) {
            var chunk_max = w_tile[lid * TK];
            for (var k = 1u; k < kmax; k++) {
                chunk_max = max(chunk_max, w_tile[lid * TK + k]);
            }
            var new_max = chunk_max;
            var scale = 0.0;
            if (!fresh) {
                new_max = max(row_max[lid], chunk_max);
                scale = exp(row_max[lid] - new_max);
            }
            var sum = 0.0;
            for (var k = 0u; k < TK; k++) {
                var w = 0.0;
                if (k < kmax) {
                    w = exp(w_tile[lid * TK + k] - new_max);
                }
                w_tile[lid * TK + k] = w;
                sum += w;
            }
            row_max[lid] = new_max;
            row_sum[lid] = row_sum[lid] * scale + sum;
            row_scale[lid] = scale;
        }
        workgroupBarrier();

        // acc_q = acc_q * scale_q + sum_k w_qk x_k, with the chunk streamed through k_tile in
        // TD-wide strips; thread (tq, tk) owns dims tk, tk + 4, ..., tk + 60 of query tq.
        // (Reading the points straight from storage here, or through a per-thread array,
        // computed wrong sums on llvmpipe: tiles only.)
        for (var d0 = 0u; d0 < dim; d0 += TD) {
            let width = min(TD, dim - d0);
            for (var r = 0u; r < TK * TD / WG; r++) {
                let e = lid + r * WG;
                let row = e / TD;
                let col = e % TD;
                let k = k0 + row;
                var v = 0.0;
                if (k < n && col < width) {
                    v = data[k * dim + d0 + col];
                }
                k_tile[e] = v;
            }
            workgroupBarrier();
            let q = q0 + tq;
            for (var j = 0u; j < TD / 4u; j++) {
                let col = tk + 4u * j;
                var a = 0.0;
                for (var k = 0u; k < TK; k++) {
                    a += w_tile[tq * TK + k] * k_tile[k * TD + col];
                }
                if (q < m && col < width) {
                    let idx = q * dim + d0 + col;
                    if (fresh) {
                        out[idx] = a;
                    } else {
                        out[idx] = out[idx] * row_scale[tq] + a;
                    }
                }
            }
            workgroupBarrier();
        }
        fresh = false;
    }

    if ((params.flags & LAST) != 0u) {
        let euler = (params.flags & EULER) != 0u;
        for (var d = lid; d < dim; d += WG) {
            for (var q = 0u; q < TQ; q++) {
                if (q0 + q < m) {
                    let idx = (q0 + q) * dim + d;
                    let x = queries[idx];
                    let u = (out[idx] / row_sum[q] - x) / (1.0 - row_t[q]);
                    if (euler) {
                        out[idx] = x + params.dt * u;
                    } else {
                        out[idx] = u;
                    }
                }
            }
        }
    } else if (lid < TQ && q0 + lid < m) {
        state[2u * (q0 + lid)] = row_max[lid];
        state[2u * (q0 + lid) + 1u] = row_sum[lid];
    }
}
