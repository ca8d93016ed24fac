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
// Invocation (qa, kb) = (lid / 8, lid % 8) works on the four queries qa + 8 i: in the score tile
// against the four points kb + 8 j, in the weighted sum on the columns 4 kb .. 4 kb + 3 of every
// strip. Four queries per invocation and 32 per workgroup: each tile read feeds four times as many
// multiply-adds as with one query per invocation, and each staged strip of points serves 32
// queries. The sums live in named vec4 variables and the loops over them are unrolled by hand:
// an array indexed in a loop lives in memory on compilers that do not unroll (SwiftShader), which
// made every multiply-add a load and a store.
//
// What it relies on (WGSL memory model): every storage value this kernel reads that another
// invocation wrote was written in an earlier dispatch (`state` and `partial` of earlier
// dispatches, the merge's positions); within a dispatch each invocation reads back only storage
// it wrote itself: invocation (qa, kb) owns the `partial` entries of queries qa + 8 i at columns
// 4 kb .. 4 kb + 3 of every strip, in the accumulation and nowhere else, and invocation q < TQ
// owns that query's `state`. Workgroup memory is shared only across workgroupBarrier(), and every
// barrier sits in uniform control flow: loop bounds and branches around barriers depend only on
// `params` and the workgroup id.

const TQ: u32 = 32u;
const TK: u32 = 32u;
const TD: u32 = 32u;
const WG: u32 = 64u;
// Row strides of the workgroup tiles (in vec4 for q_tile and k_tile), one element longer than a
// row so that the rows read at the same time (same column, different rows) fall in different
// memory banks.
const QS: u32 = 9u;   // TD / 4 + 1
const KS: u32 = 9u;   // TD / 4 + 1
const WS: u32 = 33u;  // TK + 1

// Params, flags and bindings: closed_form_bindings.wgsl.

var<workgroup> q_tile: array<vec4<f32>, 288>;  // TQ * QS: queries, four coordinates a word
var<workgroup> k_tile: array<vec4<f32>, 288>;  // TK * KS: points x_k
var<workgroup> w_tile: array<f32, 1056>;       // TQ * WS scores, then weights
var<workgroup> row_max: array<f32, 32>;
var<workgroup> row_sum: array<f32, 32>;
var<workgroup> row_scale: array<f32, 32>;
var<workgroup> row_t: array<f32, 32>;

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
            if (dim % 4u == 0u) {
                v = data4[(k * dim + d0 + col) / 4u];
            } else {
                v = load4_data(k * dim + d0 + col, width - col);
            }
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
    let base = (slot * m + q) * params.dim + d0 + col;
    // A whole vec4 inside the strip (the common case) without a branch per element.
    if (col + 4u <= width) {
        if (scale == 0.0) {
            partial[base] = v.x;
            partial[base + 1u] = v.y;
            partial[base + 2u] = v.z;
            partial[base + 3u] = v.w;
        } else {
            partial[base] = partial[base] * scale + v.x;
            partial[base + 1u] = partial[base + 1u] * scale + v.y;
            partial[base + 2u] = partial[base + 2u] * scale + v.z;
            partial[base + 3u] = partial[base + 3u] * scale + v.w;
        }
        return;
    }
    for (var i = 0u; i < 4u; i++) {
        if (col + i < width) {
            if (scale == 0.0) {
                partial[base + i] = v[i];
            } else {
                partial[base + i] = partial[base + i] * scale + v[i];
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

    let qa = lid / 8u;
    let kb = lid % 8u;
    let t0 = row_t[qa + 0u];
    let inv0 = 1.0 / (2.0 * (1.0 - t0) * (1.0 - t0));
    let t1 = row_t[qa + 8u];
    let inv1 = 1.0 / (2.0 * (1.0 - t1) * (1.0 - t1));
    let t2 = row_t[qa + 16u];
    let inv2 = 1.0 / (2.0 * (1.0 - t2) * (1.0 - t2));
    let t3 = row_t[qa + 24u];
    let inv3 = 1.0 / (2.0 * (1.0 - t3) * (1.0 - t3));
    let widths = TD / 4u;
    var key_scale = 1.0;
    if (!per_query) {
        key_scale = params.t;
    }

    for (var k0 = begin; k0 < n; k0 += TK) {
        // ||x - t x_k||^2 summed strip by strip, with the strip totals added under Kahan
        // compensation: one running f32 sum over 3,072 terms loses a whole unit in a score of
        // ~7,000, which is the difference between two training points' weights.
        // Component j of the sums of query qa + 8 i (acc i): point kb + 8 j.
        var acc0 = vec4<f32>(0.0);
        var comp0 = vec4<f32>(0.0);
        var acc1 = vec4<f32>(0.0);
        var comp1 = vec4<f32>(0.0);
        var acc2 = vec4<f32>(0.0);
        var comp2 = vec4<f32>(0.0);
        var acc3 = vec4<f32>(0.0);
        var comp3 = vec4<f32>(0.0);
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
            var part2 = vec4<f32>(0.0);
            var part3 = vec4<f32>(0.0);
            let words = (width + 3u) / 4u;
            // With one t for all queries the keys t x_k are staged already scaled, which saves
            // a multiply per coordinate; with a t per query each query scales its own.
            if (per_query) {
                for (var d = 0u; d < words; d++) {
                    let x0 = q_tile[(qa + 0u) * QS + d];
                    let x1 = q_tile[(qa + 8u) * QS + d];
                    let x2 = q_tile[(qa + 16u) * QS + d];
                    let x3 = q_tile[(qa + 24u) * QS + d];
                    let y0 = k_tile[(kb + 0u) * KS + d];
                    let y1 = k_tile[(kb + 8u) * KS + d];
                    let y2 = k_tile[(kb + 16u) * KS + d];
                    let y3 = k_tile[(kb + 24u) * KS + d];
                    let a00 = x0 - t0 * y0;
                    let a01 = x0 - t0 * y1;
                    let a02 = x0 - t0 * y2;
                    let a03 = x0 - t0 * y3;
                    let a10 = x1 - t1 * y0;
                    let a11 = x1 - t1 * y1;
                    let a12 = x1 - t1 * y2;
                    let a13 = x1 - t1 * y3;
                    let a20 = x2 - t2 * y0;
                    let a21 = x2 - t2 * y1;
                    let a22 = x2 - t2 * y2;
                    let a23 = x2 - t2 * y3;
                    let a30 = x3 - t3 * y0;
                    let a31 = x3 - t3 * y1;
                    let a32 = x3 - t3 * y2;
                    let a33 = x3 - t3 * y3;
                    part0 += vec4<f32>(dot(a00, a00), dot(a01, a01), dot(a02, a02), dot(a03, a03));
                    part1 += vec4<f32>(dot(a10, a10), dot(a11, a11), dot(a12, a12), dot(a13, a13));
                    part2 += vec4<f32>(dot(a20, a20), dot(a21, a21), dot(a22, a22), dot(a23, a23));
                    part3 += vec4<f32>(dot(a30, a30), dot(a31, a31), dot(a32, a32), dot(a33, a33));
                }
            } else {
                for (var d = 0u; d < words; d++) {
                    let x0 = q_tile[(qa + 0u) * QS + d];
                    let x1 = q_tile[(qa + 8u) * QS + d];
                    let x2 = q_tile[(qa + 16u) * QS + d];
                    let x3 = q_tile[(qa + 24u) * QS + d];
                    let y0 = k_tile[(kb + 0u) * KS + d];
                    let y1 = k_tile[(kb + 8u) * KS + d];
                    let y2 = k_tile[(kb + 16u) * KS + d];
                    let y3 = k_tile[(kb + 24u) * KS + d];
                    let a00 = x0 - y0;
                    let a01 = x0 - y1;
                    let a02 = x0 - y2;
                    let a03 = x0 - y3;
                    let a10 = x1 - y0;
                    let a11 = x1 - y1;
                    let a12 = x1 - y2;
                    let a13 = x1 - y3;
                    let a20 = x2 - y0;
                    let a21 = x2 - y1;
                    let a22 = x2 - y2;
                    let a23 = x2 - y3;
                    let a30 = x3 - y0;
                    let a31 = x3 - y1;
                    let a32 = x3 - y2;
                    let a33 = x3 - y3;
                    part0 += vec4<f32>(dot(a00, a00), dot(a01, a01), dot(a02, a02), dot(a03, a03));
                    part1 += vec4<f32>(dot(a10, a10), dot(a11, a11), dot(a12, a12), dot(a13, a13));
                    part2 += vec4<f32>(dot(a20, a20), dot(a21, a21), dot(a22, a22), dot(a23, a23));
                    part3 += vec4<f32>(dot(a30, a30), dot(a31, a31), dot(a32, a32), dot(a33, a33));
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
            let y2 = part2 - comp2;
            let sum2 = acc2 + y2;
            comp2 = (sum2 - acc2) - y2;
            acc2 = sum2;
            let y3 = part3 - comp3;
            let sum3 = acc3 + y3;
            comp3 = (sum3 - acc3) - y3;
            acc3 = sum3;
            workgroupBarrier();
        }
        let s0 = -acc0 * inv0;
        let s1 = -acc1 * inv1;
        let s2 = -acc2 * inv2;
        let s3 = -acc3 * inv3;
        w_tile[(qa + 0u) * WS + kb + 0u] = s0.x;
        w_tile[(qa + 0u) * WS + kb + 8u] = s0.y;
        w_tile[(qa + 0u) * WS + kb + 16u] = s0.z;
        w_tile[(qa + 0u) * WS + kb + 24u] = s0.w;
        w_tile[(qa + 8u) * WS + kb + 0u] = s1.x;
        w_tile[(qa + 8u) * WS + kb + 8u] = s1.y;
        w_tile[(qa + 8u) * WS + kb + 16u] = s1.z;
        w_tile[(qa + 8u) * WS + kb + 24u] = s1.w;
        w_tile[(qa + 16u) * WS + kb + 0u] = s2.x;
        w_tile[(qa + 16u) * WS + kb + 8u] = s2.y;
        w_tile[(qa + 16u) * WS + kb + 16u] = s2.z;
        w_tile[(qa + 16u) * WS + kb + 24u] = s2.w;
        w_tile[(qa + 24u) * WS + kb + 0u] = s3.x;
        w_tile[(qa + 24u) * WS + kb + 8u] = s3.y;
        w_tile[(qa + 24u) * WS + kb + 16u] = s3.z;
        w_tile[(qa + 24u) * WS + kb + 24u] = s3.w;
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
        // in TD-wide strips; invocation (qa, kb) owns the columns 4 kb .. 4 kb + 3 of queries
        // qa + 8 i, here and nowhere else. (Reading the points straight from storage here, or
        // through a per-thread array, computed wrong sums on llvmpipe: tiles only.)
        let scale0 = row_scale[qa + 0u];
        let scale1 = row_scale[qa + 8u];
        let scale2 = row_scale[qa + 16u];
        let scale3 = row_scale[qa + 24u];
        for (var d0 = 0u; d0 < dim; d0 += TD) {
            let width = min(TD, dim - d0);
            stage_points(lid, k0, n, d0, width, 1.0);
            workgroupBarrier();
            var s0 = vec4<f32>(0.0);
            var s1 = vec4<f32>(0.0);
            var s2 = vec4<f32>(0.0);
            var s3 = vec4<f32>(0.0);
            for (var k = 0u; k < TK; k++) {
                let w0 = w_tile[(qa + 0u) * WS + k];
                let w1 = w_tile[(qa + 8u) * WS + k];
                let w2 = w_tile[(qa + 16u) * WS + k];
                let w3 = w_tile[(qa + 24u) * WS + k];
                let x = k_tile[k * KS + kb];
                s0 += w0 * x;
                s1 += w1 * x;
                s2 += w2 * x;
                s3 += w3 * x;
            }
            update_partial(slot, q0 + qa + 0u, d0, 4u * kb, width, scale0, s0);
            update_partial(slot, q0 + qa + 8u, d0, 4u * kb, width, scale1, s1);
            update_partial(slot, q0 + qa + 16u, d0, 4u * kb, width, scale2, s2);
            update_partial(slot, q0 + qa + 24u, d0, 4u * kb, width, scale3, s3);
            workgroupBarrier();
        }
    }

    if (lid < TQ && q0 + lid < m) {
        state[2u * (slot * m + q0 + lid)] = row_max[lid];
        state[2u * (slot * m + q0 + lid) + 1u] = row_sum[lid];
    }
}
