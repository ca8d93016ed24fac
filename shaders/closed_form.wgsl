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
// columns 4 kb .. 4 kb + 3 and 4 (kb + 8) .. 4 (kb + 8) + 3 of every strip, in the accumulation
// and nowhere else, and invocation q < TQ owns that query's `state`. Workgroup memory is shared only across workgroupBarrier(), and every barrier sits in
// uniform control flow: loop bounds and branches around barriers depend only on `params` and the
// workgroup id.

const TQ: u32 = 16u;
const TK: u32 = 32u;
const TD: u32 = 64u;
const WG: u32 = 64u;
// Row strides of the workgroup tiles (in vec4 for q_tile and k_tile), one element longer than a
// row so that the rows read at the same time (same column, different rows) fall in different
// memory banks.
const QS: u32 = 17u;  // TD / 4 + 1
const KS: u32 = 17u;  // TD / 4 + 1
const WS: u32 = 33u;  // TK + 1

// Params, flags and bindings: closed_form_bindings.wgsl.

var<workgroup> q_tile: array<vec4<f32>, 272>;  // TQ * QS: queries, four coordinates a word
var<workgroup> k_tile: array<vec4<f32>, 544>;  // TK * KS: points x_k
var<workgroup> w_tile: array<f32, 528>;   // TQ * WS scores, then weights
var<workgroup> row_max: array<f32, 16>;
var<workgroup> row_sum: array<f32, 16>;
var<workgroup> row_scale: array<f32, 16>;
var<workgroup> row_t: array<f32, 16>;

// Four values of the training set from `base`, zeros past `count` of them. A whole vec4 (the
// common case) takes four plain loads: per-element branches cost dearly where invocations run
// in SIMD lanes with masks (SwiftShader).
fn load4_data(base: u32, count: u32) -> vec4<f32> {
    if (count >= 4u) {
        return vec4<f32>(data[base], data[base + 1u], data[base + 2u], data[base + 3u]);
    }
    var v = vec4<f32>(0.0);
    for (var i = 0u; i < count; i++) {
        v[i] = data[base + i];
    }
    return v;
}

// The same for the queries.
fn load4_queries(base: u32, count: u32) -> vec4<f32> {
    if (count >= 4u) {
        return vec4<f32>(queries[base], queries[base + 1u], queries[base + 2u], queries[base + 3u]);
    }
    var v = vec4<f32>(0.0);
    for (var i = 0u; i < count; i++) {
        v[i] = queries[base + i];
    }
    return v;
}

// Stages points [k0, k0 + TK) x columns [d0, d0 + width) into k_tile, times `scale` (zeros past
// the ends).
fn stage_points(lid: u32, k0: u32, n: u32, d0: u32, width: u32, scale: f32) {
    let dim = params.dim;
    for (var r = 0u; r < TK * TD / 4u / WG; r++) {
        let e = lid + r * WG;
        let row = e / (TD / 4u);
        let col = 4u * (e % (TD / 4u));
        let k = k0 + row;
        var v = vec4<f32>(0.0);
        if (k < n && col < width) {
            v = load4_data(k * dim + d0 + col, width - col);
        }
        k_tile[row * KS + col / 4u] = scale * v;
    }
}

// partial <- partial * scale + v for query q at columns col .. col + 3 of the strip at d0 (v
// alone when scale is 0: the slot's first points for this query; what `partial` held is
// dropped, not multiplied, as it may be from an earlier call).
fn update_partial(slot: u32, q: u32, d0: u32, col: u32, width: u32, scale: f32, v: vec4<f32>) {
    let m = params.m;
    if (q >= m) {
        return;
    }
    for (var i = 0u; i < 4u; i++) {
        if (col + i < width) {
            let idx = (slot * m + q) * params.dim + d0 + col + i;
            if (scale == 0.0) {
                partial[idx] = v[i];
            } else {
                partial[idx] = partial[idx] * scale + v[i];
            }
        }
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
    // against points kb + 8 j (j < 4), in the weighted sum on the column groups kb and kb + 8
    // (four columns each) of every strip. The hot loops keep their sums in named vec4 variables
    // and are unrolled by hand: an array indexed in a loop lives in memory on compilers that do
    // not unroll (SwiftShader), which made every multiply-add a load and a store.
    let qa = lid / 8u;
    let kb = lid % 8u;
    let t0 = row_t[qa];
    let t1 = row_t[qa + 8u];
    let inv0 = 1.0 / (2.0 * (1.0 - t0) * (1.0 - t0));
    let inv1 = 1.0 / (2.0 * (1.0 - t1) * (1.0 - t1));
    let widths = TD / 4u;
    var key_scale = 1.0;
    if (!per_query) {
        key_scale = params.t;
    }

    for (var k0 = begin; k0 < n; k0 += TK) {
        // ||x - t x_k||^2 summed strip by strip, with the strip totals added under Kahan
        // compensation: one running f32 sum over 3,072 terms loses a whole unit in a score of
        // ~7,000, which is the difference between two training points' weights.
        // Component j of the sums of query qa (0) and qa + 8 (1): point kb + 8 j.
        var acc0 = vec4<f32>(0.0);
        var acc1 = vec4<f32>(0.0);
        var comp0 = vec4<f32>(0.0);
        var comp1 = vec4<f32>(0.0);
        for (var d0 = 0u; d0 < dim; d0 += TD) {
            let width = min(TD, dim - d0);
            for (var r = 0u; r < TQ * widths / WG; r++) {
                let e = lid + r * WG;
                let row = e / widths;
                let col = 4u * (e % widths);
                var v = vec4<f32>(0.0);
                if (q0 + row < m && col < width) {
                    v = load4_queries((q0 + row) * dim + d0 + col, width - col);
                }
                q_tile[row * QS + col / 4u] = v;
            }
            stage_points(lid, k0, n, d0, width, key_scale);
            workgroupBarrier();
            var part0 = vec4<f32>(0.0);
            var part1 = vec4<f32>(0.0);
            let words = (width + 3u) / 4u;
            // With one t for all queries the keys t x_k are staged already scaled, which saves
            // a multiply per coordinate; with a t per query each query scales its own.
            if (per_query) {
                for (var d = 0u; d < words; d++) {
                    let x0 = q_tile[qa * QS + d];
                    let x1 = q_tile[(qa + 8u) * QS + d];
                    let y0 = k_tile[kb * KS + d];
                    let y1 = k_tile[(kb + 8u) * KS + d];
                    let y2 = k_tile[(kb + 16u) * KS + d];
                    let y3 = k_tile[(kb + 24u) * KS + d];
                    let a0 = x0 - t0 * y0;
                    let a1 = x0 - t0 * y1;
                    let a2 = x0 - t0 * y2;
                    let a3 = x0 - t0 * y3;
                    let b0 = x1 - t1 * y0;
                    let b1 = x1 - t1 * y1;
                    let b2 = x1 - t1 * y2;
                    let b3 = x1 - t1 * y3;
                    part0 += vec4<f32>(dot(a0, a0), dot(a1, a1), dot(a2, a2), dot(a3, a3));
                    part1 += vec4<f32>(dot(b0, b0), dot(b1, b1), dot(b2, b2), dot(b3, b3));
                }
            } else {
                for (var d = 0u; d < words; d++) {
                    let x0 = q_tile[qa * QS + d];
                    let x1 = q_tile[(qa + 8u) * QS + d];
                    let y0 = k_tile[kb * KS + d];
                    let y1 = k_tile[(kb + 8u) * KS + d];
                    let y2 = k_tile[(kb + 16u) * KS + d];
                    let y3 = k_tile[(kb + 24u) * KS + d];
                    let a0 = x0 - y0;
                    let a1 = x0 - y1;
                    let a2 = x0 - y2;
                    let a3 = x0 - y3;
                    let b0 = x1 - y0;
                    let b1 = x1 - y1;
                    let b2 = x1 - y2;
                    let b3 = x1 - y3;
                    part0 += vec4<f32>(dot(a0, a0), dot(a1, a1), dot(a2, a2), dot(a3, a3));
                    part1 += vec4<f32>(dot(b0, b0), dot(b1, b1), dot(b2, b2), dot(b3, b3));
                }
            }
            let y0 = part0 - comp0;
            let sum0 = acc0 + y0;
            comp0 = (sum0 - acc0) - y0;
            acc0 = sum0;
            let y1 = part1 - comp1;
            let sum1 = acc1 + y1;
            comp1 = (sum1 - acc1) - y1;
            acc1 = sum1;
            workgroupBarrier();
        }
        let s0 = -acc0 * inv0;
        let s1 = -acc1 * inv1;
        w_tile[qa * WS + kb] = s0.x;
        w_tile[qa * WS + kb + 8u] = s0.y;
        w_tile[qa * WS + kb + 16u] = s0.z;
        w_tile[qa * WS + kb + 24u] = s0.w;
        w_tile[(qa + 8u) * WS + kb] = s1.x;
        w_tile[(qa + 8u) * WS + kb + 8u] = s1.y;
        w_tile[(qa + 8u) * WS + kb + 16u] = s1.z;
        w_tile[(qa + 8u) * WS + kb + 24u] = s1.w;
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
        // in TD-wide strips; invocation (qa, kb) owns the columns 4 kb .. 4 kb + 3 and
        // 4 (kb + 8) .. 4 (kb + 8) + 3 of queries qa and qa + 8, here and nowhere else. (Reading
        // the points straight from storage here, or through a per-thread array, computed wrong
        // sums on llvmpipe: tiles only.)
        let scale0 = row_scale[qa];
        let scale1 = row_scale[qa + 8u];
        for (var d0 = 0u; d0 < dim; d0 += TD) {
            let width = min(TD, dim - d0);
            stage_points(lid, k0, n, d0, width, 1.0);
            workgroupBarrier();
            var s00 = vec4<f32>(0.0);
            var s01 = vec4<f32>(0.0);
            var s10 = vec4<f32>(0.0);
            var s11 = vec4<f32>(0.0);
            for (var k = 0u; k < TK; k++) {
                let w0 = w_tile[qa * WS + k];
                let w1 = w_tile[(qa + 8u) * WS + k];
                let xa = k_tile[k * KS + kb];
                let xb = k_tile[k * KS + kb + 8u];
                s00 += w0 * xa;
                s01 += w0 * xb;
                s10 += w1 * xa;
                s11 += w1 * xb;
            }
            update_partial(slot, q0 + qa, d0, 4u * kb, width, scale0, s00);
            update_partial(slot, q0 + qa, d0, 4u * (kb + 8u), width, scale0, s01);
            update_partial(slot, q0 + qa + 8u, d0, 4u * kb, width, scale1, s10);
            update_partial(slot, q0 + qa + 8u, d0, 4u * (kb + 8u), width, scale1, s11);
            workgroupBarrier();
        }
    }

    if (lid < TQ && q0 + lid < m) {
        state[2u * (slot * m + q0 + lid)] = row_max[lid];
        state[2u * (slot * m + q0 + lid) + 1u] = row_sum[lid];
    }
}
