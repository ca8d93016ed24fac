// Closed-form flow-matching velocity, first pass: fused attention with an online softmax, split
// over the training points as well as the queries (flash-decoding).
//
// queries x (m x dim), keys t * x_i, values x_i (one slice of the training set),
// score_i = -||x - t x_i||^2 / (2 (1 - t)^2), with one t for all queries or, with PER_QUERY_T,
// each query's own t from `times` (the EFM training target: x_t at the batch's times).
//
// Workgroup (x, y) owns TQ queries (x) and one partial slot (y). A dispatch covers the points
// [k_begin, k_end) of one slice; slot y takes its `span` points starting at k_begin + y * span and
// streams them in chunks of TK through workgroup memory: a TQ x TK score tile (direct differences,
// tiled over dim in TD-wide strips), then the slot's running max / sum per query and its weighted
// sum sum_i w_i x_i (`partial`) are rescaled and updated. A slot carries its state from one
// dispatch to the next (FIRST starts it), so any number of points and slices add up; the merge
// pass (closed_form_merge.wgsl) then combines the slots with log-sum-exp weights. Nothing of size
// m x n ever exists: the partials are slots x m x dim.
//
// What it relies on (WGSL memory model): every storage value this kernel reads that another
// invocation wrote was written in an earlier dispatch (`state` and `partial` of earlier
// dispatches, the merge's positions); within a dispatch each invocation reads back only storage
// it wrote itself: invocation (qa, kb) owns the `partial` entries of queries qa and qa + 8 at
// columns kb + 8 j of every strip, in the accumulation and nowhere else, and invocation q < TQ
// owns that query's `state`. Workgroup memory is shared only across workgroupBarrier(), and every barrier sits in
// uniform control flow: loop bounds and branches around barriers depend only on `params` and the
// workgroup id.

const TQ: u32 = 16u;
const TK: u32 = 32u;
const TD: u32 = 64u;
const WG: u32 = 64u;
// Row strides of the workgroup tiles, one word longer than a row so that the rows read at the
// same time (same column, different rows) fall in different memory banks.
const QS: u32 = 65u;  // TD + 1
const KS: u32 = 65u;  // TD + 1
const WS: u32 = 33u;  // TK + 1

const FIRST: u32 = 1u;
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
@group(0) @binding(1) var<storage, read> data: array<f32>;
@group(0) @binding(2) var<storage, read> queries: array<f32>;
// (binding 3 is the merge pass's output)
// Running (max, sum) per (slot, query).
@group(0) @binding(4) var<storage, read_write> state: array<f32>;
// Each query's t (read with PER_QUERY_T only).
@group(0) @binding(5) var<storage, read> times: array<f32>;
// Weighted sum of points per (slot, query): slots x m x dim.
@group(0) @binding(6) var<storage, read_write> partial: array<f32>;

var<workgroup> q_tile: array<f32, 1040>;  // TQ * QS
var<workgroup> k_tile: array<f32, 2080>;  // TK * KS: points x_k
var<workgroup> w_tile: array<f32, 528>;   // TQ * WS scores, then weights
var<workgroup> row_max: array<f32, 16>;
var<workgroup> row_sum: array<f32, 16>;
var<workgroup> row_scale: array<f32, 16>;
var<workgroup> row_t: array<f32, 16>;

// Stages points [k0, k0 + TK) x columns [d0, d0 + width) into k_tile (zeros past the ends).
fn stage_points(lid: u32, k0: u32, n: u32, d0: u32, width: u32) {
    let dim = params.dim;
    for (var r = 0u; r < TK * TD / WG; r++) {
        let e = lid + r * WG;
        let row = e / TD;
        let col = e % TD;
        let k = k0 + row;
        var v = 0.0;
        if (k < n && col < width) {
            v = data[k * dim + d0 + col];
        }
        k_tile[row * KS + col] = v;
    }
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let dim = params.dim;
    let m = params.m;
    let q0 = wid.x * TQ;
    let slot = wid.y;
    let begin = min(params.k_begin + slot * params.span, params.k_end);
    let n = min(begin + params.span, params.k_end);
    let first = (params.flags & FIRST) != 0u;
    let per_query = (params.flags & PER_QUERY_T) != 0u;

    // row_sum == 0 marks a query of this slot that has no point yet (every point added brings a
    // weight of at least exp(0) = 1 for the running maximum).
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
            row_max[lid] = state[2u * (slot * m + q)];
            row_sum[lid] = state[2u * (slot * m + q) + 1u];
        }
    }
    workgroupBarrier();

    // Invocation (qa, kb) = (lid / 8, lid % 8) works on queries qa and qa + 8: in the score tile
    // against points kb + 8 j (j < 4), in the weighted sum on columns kb + 8 j (j < 8) of every
    // strip. Two queries per invocation halve the tile reads per multiply-add.
    let qa = lid / 8u;
    let kb = lid % 8u;
    var inv_two_var: array<f32, 2>;
    for (var i = 0u; i < 2u; i++) {
        let one_minus_t = 1.0 - row_t[qa + 8u * i];
        inv_two_var[i] = 1.0 / (2.0 * one_minus_t * one_minus_t);
    }
    let t0 = row_t[qa];
    let t1 = row_t[qa + 8u];

    for (var k0 = begin; k0 < n; k0 += TK) {
        // ||x - t x_k||^2 summed strip by strip, with the strip totals added under Kahan
        // compensation: one running f32 sum over 3,072 terms loses a whole unit in a score of
        // ~7,000, which is the difference between two training points' weights.
        // Entry i * 4 + j: query qa + 8 i, point kb + 8 j.
        var acc: array<f32, 8>;
        var comp: array<f32, 8>;
        for (var e = 0u; e < 8u; e++) {
            acc[e] = 0.0;
            comp[e] = 0.0;
        }
        for (var d0 = 0u; d0 < dim; d0 += TD) {
            let width = min(TD, dim - d0);
            for (var r = 0u; r < TQ * TD / WG; r++) {
                let e = lid + r * WG;
                let row = e / TD;
                let col = e % TD;
                var v = 0.0;
                if (q0 + row < m && col < width) {
                    v = queries[(q0 + row) * dim + d0 + col];
                }
                q_tile[row * QS + col] = v;
            }
            stage_points(lid, k0, n, d0, width);
            workgroupBarrier();
            // Zeroed explicitly: SwiftShader kept a loop-local array's values from the previous
            // iteration when relying on WGSL's implicit zero initialisation.
            var part: array<f32, 8>;
            for (var e = 0u; e < 8u; e++) {
                part[e] = 0.0;
            }
            for (var d = 0u; d < width; d++) {
                let x0 = q_tile[qa * QS + d];
                let x1 = q_tile[(qa + 8u) * QS + d];
                for (var j = 0u; j < 4u; j++) {
                    let xk = k_tile[(kb + 8u * j) * KS + d];
                    let a = x0 - t0 * xk;
                    let b = x1 - t1 * xk;
                    part[j] += a * a;
                    part[4u + j] += b * b;
                }
            }
            for (var e = 0u; e < 8u; e++) {
                let y = part[e] - comp[e];
                let sum = acc[e] + y;
                comp[e] = (sum - acc[e]) - y;
                acc[e] = sum;
            }
            workgroupBarrier();
        }
        for (var i = 0u; i < 2u; i++) {
            for (var j = 0u; j < 4u; j++) {
                w_tile[(qa + 8u * i) * WS + kb + 8u * j] = -acc[i * 4u + j] * inv_two_var[i];
            }
        }
        workgroupBarrier();

        // Online softmax: merge this chunk into the running max and sum of each query. Only the
        // chunk's valid points are read, and a query with no point yet gets scale 0 explicitly:
        // no sentinel like -3e38 ever reaches exp() (shader compilers may use fast math).
        let kmax = min(TK, n - k0);
        if (lid < TQ) {
            var chunk_max = w_tile[lid * WS];
            for (var k = 1u; k < kmax; k++) {
                chunk_max = max(chunk_max, w_tile[lid * WS + k]);
            }
            var new_max = chunk_max;
            var scale = 0.0;
            if (row_sum[lid] > 0.0) {
                new_max = max(row_max[lid], chunk_max);
                scale = exp(row_max[lid] - new_max);
            }
            var sum = 0.0;
            for (var k = 0u; k < TK; k++) {
                var w = 0.0;
                if (k < kmax) {
                    w = exp(w_tile[lid * WS + k] - new_max);
                }
                w_tile[lid * WS + k] = w;
                sum += w;
            }
            row_max[lid] = new_max;
            row_sum[lid] = row_sum[lid] * scale + sum;
            row_scale[lid] = scale;
        }
        workgroupBarrier();

        // partial_q = partial_q * scale_q + sum_k w_qk x_k, with the chunk streamed through k_tile
        // in TD-wide strips; invocation (qa, kb) owns columns kb + 8 j of queries qa and qa + 8,
        // here and nowhere else. (Reading the points straight from storage here, or through a
        // per-thread array, computed wrong sums on llvmpipe: tiles only.)
        let scale0 = row_scale[qa];
        let scale1 = row_scale[qa + 8u];
        for (var d0 = 0u; d0 < dim; d0 += TD) {
            let width = min(TD, dim - d0);
            stage_points(lid, k0, n, d0, width);
            workgroupBarrier();
            // Entry i * 8 + j: query qa + 8 i, column kb + 8 j.
            var sums: array<f32, 16>;
            for (var e = 0u; e < 16u; e++) {
                sums[e] = 0.0;
            }
            for (var k = 0u; k < TK; k++) {
                let w0 = w_tile[qa * WS + k];
                let w1 = w_tile[(qa + 8u) * WS + k];
                for (var j = 0u; j < 8u; j++) {
                    let xk = k_tile[k * KS + kb + 8u * j];
                    sums[j] += w0 * xk;
                    sums[8u + j] += w1 * xk;
                }
            }
            for (var i = 0u; i < 2u; i++) {
                let q = q0 + qa + 8u * i;
                var scale = scale0;
                if (i == 1u) {
                    scale = scale1;
                }
                for (var j = 0u; j < 8u; j++) {
                    let col = kb + 8u * j;
                    if (q < m && col < width) {
                        let idx = (slot * m + q) * dim + d0 + col;
                        // scale 0: the slot's first points for this query; what `partial` held
                        // is dropped, not multiplied (it may be from an earlier call).
                        if (scale == 0.0) {
                            partial[idx] = sums[i * 8u + j];
                        } else {
                            partial[idx] = partial[idx] * scale + sums[i * 8u + j];
                        }
                    }
                }
            }
            workgroupBarrier();
        }
    }

    if (lid < TQ && q0 + lid < m) {
        state[2u * (slot * m + q0 + lid)] = row_max[lid];
        state[2u * (slot * m + q0 + lid) + 1u] = row_sum[lid];
    }
}
