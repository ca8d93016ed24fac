//! The closed-form optimal velocity of flow matching for an empirical data distribution:
//!
//! u*(x, t) = sum_i lambda_i(x, t) (x_i - x) / (1 - t),
//! lambda(x, t) = softmax_i(-||x - t x_i||^2 / (2 (1 - t)^2)).
//!
//! Scores use direct differences ||x - t x_i||^2 (the expanded form cancels in f32 as t -> 1) and
//! a max-subtracted softmax. Memory is O(n) per query: never an n-by-m matrix.

/// The softmax exponent for one training point.
#[inline(always)]
fn score(x: &[f32], xi: &[f32], t: f32, inv_two_var: f32) -> f32 {
    -squared_distance_scaled(x, xi, t) * inv_two_var
}

/// ||x - t y||^2 with eight independent partial sums, so LLVM vectorises it (SIMD128 on wasm).
#[inline(always)]
pub fn squared_distance_scaled(x: &[f32], y: &[f32], t: f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let xc = x.chunks_exact(8);
    let yc = y.chunks_exact(8);
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for k in 0..8 {
            let d = a[k] - t * b[k];
            acc[k] += d * d;
        }
    }
    let mut tail = 0.0;
    for (a, b) in xr.iter().zip(yr) {
        let d = a - t * b;
        tail += d * d;
    }
    acc.iter().sum::<f32>() + tail
}

/// 1 / (2 (1 - t)^2), the inverse of twice the variance of p_t(x | x_i).
fn inverse_two_variance(t: f32) -> f32 {
    let s = 1.0 - t;
    1.0 / (2.0 * s * s)
}

/// lambda(x, t) for one point `x` (length dim): the posterior over which training point x_t
/// came from. `data` is n x dim, row-major. Weights sum to 1; those below e^-NEGLIGIBLE of the
/// largest are 0, as in the velocity.
pub fn posterior_weights(data: &[f32], dim: usize, x: &[f32], t: f32) -> Vec<f32> {
    debug_assert_eq!(x.len(), dim);
    let inv = inverse_two_variance(t);
    let mut weights: Vec<f32> = data
        .chunks_exact(dim)
        .map(|xi| score(x, xi, t, inv))
        .collect();
    softmax_in_place(&mut weights);
    weights
}

/// u*(x, t) for every row of `points` (m x dim); returns m x dim. t must be in [0, 1).
pub fn closed_form_velocity(data: &[f32], dim: usize, points: &[f32], t: f32) -> Vec<f32> {
    ClosedForm::new(data, dim).velocity(points, t)
}

/// Queries handled together: each training point is read once per block, so the training set
/// streams through memory m / QUERY_BLOCK times instead of m times.
const QUERY_BLOCK: usize = 4;

/// Blocks of queries scored together against each tile of panels (at most), and the floats of
/// their scores kept at once (about 1 MB, so the scores stay in cache beside the tile).
const MAX_GROUP: usize = 16;
const GROUP_SCORE_FLOATS: usize = 1 << 19;

/// Floats of the packed training points in one tile (128 kB): read from memory once, then
/// scored against every block of a group from cache.
const TILE_FLOATS: usize = 1 << 15;

/// Training points per panel of the packed copy the scores are computed from.
const PANEL: usize = 8;

/// Softmax exponents more than this below the maximum are dropped: e^-30 ~ 1e-13 of the
/// largest weight.
const NEGLIGIBLE: f32 = 30.0;

/// Below this t the softmax exponents of different training points differ by less than f32
/// resolves (about t |x| |x_i| / (1 - t)^2): the weights are uniform, as at t = 0.
const UNIFORM_BELOW: f32 = 1e-12;

/// The training points in panels of PANEL, coordinate-major inside a panel
/// (`out[(i / PANEL) * dim * PANEL + k * PANEL + i % PANEL]` is coordinate k of point i), so
/// one pass over a panel scores PANEL points against a block of queries with vector loads. The
/// last panel is padded with zeros; its padding scores are never read.
fn pack_panels(data: &[f32], dim: usize) -> Vec<f32> {
    let n = data.len() / dim;
    let mut out = vec![0.0f32; n.div_ceil(PANEL) * dim * PANEL];
    for (i, xi) in data.chunks_exact(dim).enumerate() {
        let base = (i / PANEL) * dim * PANEL + i % PANEL;
        for (k, &v) in xi.iter().enumerate() {
            out[base + k * PANEL] = v;
        }
    }
    out
}

/// ||q_j - p_l||^2 for the QUERY_BLOCK queries (interleaved: `queries[k][j]`) and the PANEL
/// points of one panel: a 4 x 8 tile of accumulators that stays in registers.
#[inline(always)]
fn panel_distances(
    panel: &[[f32; PANEL]],
    queries: &[[f32; QUERY_BLOCK]],
) -> [[f32; PANEL]; QUERY_BLOCK] {
    let mut acc = [[0.0f32; PANEL]; QUERY_BLOCK];
    for (p, q) in panel.iter().zip(queries) {
        for j in 0..QUERY_BLOCK {
            for l in 0..PANEL {
                let d = q[j] - p[l];
                acc[j][l] += d * d;
            }
        }
    }
    acc
}

/// acc[j * dim + k] += sum over the listed points of w[j] x_i[k], for coordinates
/// k0 .. k0 + W: a QUERY_BLOCK x W tile of sums kept in registers across the points.
#[inline(always)]
fn accumulate_slice<const W: usize>(
    data: &[f32],
    dim: usize,
    points: &[(u32, [f32; QUERY_BLOCK])],
    k0: usize,
    acc: &mut [f32],
) {
    let mut tile = [[0.0f32; W]; QUERY_BLOCK];
    for &(i, w) in points {
        let start = i as usize * dim + k0;
        let x: &[f32; W] = data[start..start + W].try_into().unwrap();
        for j in 0..QUERY_BLOCK {
            for l in 0..W {
                tile[j][l] += w[j] * x[l];
            }
        }
    }
    for (j, row) in tile.iter().enumerate() {
        for (a, v) in acc[j * dim + k0..][..W].iter_mut().zip(row) {
            *a += v;
        }
    }
}

/// Up to this dimension the weighted sum keeps its tile of sums in registers and walks the
/// points once per slice of 8 coordinates; above it, per-point loop overhead no longer
/// dominates and one pass over each row (sums in L1) is faster.
const TILED_SUM_MAX_DIM: usize = 64;

/// acc (QUERY_BLOCK x dim, query-major) += sum over the listed points of w_j x_i.
fn accumulate(data: &[f32], dim: usize, points: &[(u32, [f32; QUERY_BLOCK])], acc: &mut [f32]) {
    if dim <= TILED_SUM_MAX_DIM {
        let mut k0 = 0;
        while k0 + 8 <= dim {
            accumulate_slice::<8>(data, dim, points, k0, acc);
            k0 += 8;
        }
        while k0 + 4 <= dim {
            accumulate_slice::<4>(data, dim, points, k0, acc);
            k0 += 4;
        }
        while k0 < dim {
            accumulate_slice::<1>(data, dim, points, k0, acc);
            k0 += 1;
        }
        return;
    }
    for &(i, w) in points {
        let xi = &data[i as usize * dim..][..dim];
        for (&wj, a) in w.iter().zip(acc.chunks_exact_mut(dim)) {
            if wj != 0.0 {
                for (s, &v) in a.iter_mut().zip(xi) {
                    *s += wj * v;
                }
            }
        }
    }
}

/// The sum of the training points (the weighted sum when every weight is 1, as at t = 0).
fn data_sum(data: &[f32], dim: usize) -> Vec<f32> {
    let mut sum = vec![0.0f64; dim];
    for xi in data.chunks_exact(dim) {
        for (m, &v) in sum.iter_mut().zip(xi) {
            *m += v as f64;
        }
    }
    sum.iter().map(|&m| m as f32).collect()
}

/// The closed form's softmax over one set of training points (all of them, or one slice), for
/// each query q: the largest exponent `max[q]`, `sum[q]` = sum_i e^(s_qi - max[q]), and
/// `weighted[q * dim..][..dim]` = sum_i e^(s_qi - max[q]) x_i. The states of disjoint slices
/// merge (`Partials::merge`) into the state of their union, which the GPU's split over
/// workgroups (closed_form_merge.wgsl) and the CPU's split over workers both do.
#[derive(Clone, Debug, PartialEq)]
pub struct Partials {
    pub dim: usize,
    pub max: Vec<f32>,
    pub sum: Vec<f32>,
    pub weighted: Vec<f32>,
}

impl Partials {
    /// The state of the union of disjoint slices (log-sum-exp): M = max_k m_k,
    /// S = sum_k s_k e^(m_k - M), A = sum_k a_k e^(m_k - M). A slice with sum 0 holds no point
    /// and adds nothing. Every part must have the same queries and dim.
    pub fn merge(parts: &[Partials]) -> Partials {
        let Some(first) = parts.first() else {
            return Partials {
                dim: 1,
                max: Vec::new(),
                sum: Vec::new(),
                weighted: Vec::new(),
            };
        };
        let (dim, m) = (first.dim, first.max.len());
        let mut out = Partials {
            dim,
            max: vec![0.0; m],
            sum: vec![0.0; m],
            weighted: vec![0.0; m * dim],
        };
        for q in 0..m {
            let live = parts.iter().filter(|p| p.sum[q] > 0.0);
            let Some(top) = live.clone().map(|p| p.max[q]).reduce(f32::max) else {
                continue;
            };
            out.max[q] = top;
            let acc = &mut out.weighted[q * dim..][..dim];
            for p in live {
                let scale = exp_small(p.max[q] - top);
                out.sum[q] += p.sum[q] * scale;
                for (a, &v) in acc.iter_mut().zip(&p.weighted[q * dim..][..dim]) {
                    *a += v * scale;
                }
            }
        }
        out
    }

    /// u*(x_q, t_q) = (A_q / S_q - x_q) / (1 - t_q) for every row of `points`, each at its time.
    pub fn velocity(&self, points: &[f32], times: &[f32]) -> Vec<f32> {
        let dim = self.dim;
        let mut out = vec![0.0f32; points.len()];
        for (q, ((u, x), &t)) in out
            .chunks_exact_mut(dim)
            .zip(points.chunks_exact(dim))
            .zip(times)
            .enumerate()
        {
            let inv_sum = if self.sum[q] > 0.0 {
                1.0 / self.sum[q]
            } else {
                0.0
            };
            let inv_one_minus_t = 1.0 / (1.0 - t);
            for ((o, b), a) in u.iter_mut().zip(x).zip(&self.weighted[q * dim..][..dim]) {
                *o = (a * inv_sum - b) * inv_one_minus_t;
            }
        }
        out
    }
}

/// A training set ready for closed-form queries: its rows (summed in the weighted average), a
/// copy packed in panels (scored against the queries) and their sum (u* at t = 0). Build it once
/// per training set; every query then reuses it.
#[derive(Clone, Debug)]
pub struct ClosedForm {
    data: Vec<f32>,
    dim: usize,
    panels: Vec<f32>,
    sum: Vec<f32>,
}

impl ClosedForm {
    /// `data` is n x dim, row-major.
    pub fn new(data: &[f32], dim: usize) -> ClosedForm {
        let dim = dim.max(1);
        ClosedForm::from_rows(data[..data.len() / dim * dim].to_vec(), dim)
    }

    /// `new` keeping `data` itself rather than a copy (a trailing partial row is dropped).
    pub fn from_rows(mut data: Vec<f32>, dim: usize) -> ClosedForm {
        let dim = dim.max(1);
        data.truncate(data.len() / dim * dim);
        ClosedForm {
            panels: pack_panels(&data, dim),
            sum: data_sum(&data, dim),
            data,
            dim,
        }
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// u*(x, t) for every row of `points` (m x dim); t in [0, 1).
    pub fn velocity(&self, points: &[f32], t: f32) -> Vec<f32> {
        self.velocity_at(points, &vec![t; points.len() / self.dim])
    }

    /// u*(x_q, t_q) for every row of `points`, each at its own time `times[q]` in [0, 1).
    pub fn velocity_at(&self, points: &[f32], times: &[f32]) -> Vec<f32> {
        self.partials_at(points, times).velocity(points, times)
    }

    /// The softmax state of these training points for every row of `points`, each at its own
    /// time `times[q]` in [0, 1): what `velocity_at` finishes, and what a slice of a training
    /// set split across workers returns for merging.
    ///
    /// Blocks of QUERY_BLOCK queries: their exponents against every panel of training points
    /// (||x - t x_i||^2 = t^2 ||x / t - x_i||^2, so each query is divided by its t once), a
    /// softmax per query that zeroes negligible weights, then the weighted sum over the points
    /// that still carry weight. Memory is O(n) per block: never an n-by-m matrix.
    pub fn partials_at(&self, points: &[f32], times: &[f32]) -> Partials {
        let (data, dim, panels) = (&self.data[..], self.dim, &self.panels[..]);
        let m = points.len() / dim;
        let mut out = Partials {
            dim,
            max: vec![0.0; m],
            sum: vec![0.0; m],
            weighted: vec![0.0; m * dim],
        };
        let n = data.len() / dim;
        if n == 0 {
            return out;
        }
        let padded = n.div_ceil(PANEL) * PANEL;
        // Blocks are scored in groups, a tile of panels at a time: a tile read from memory
        // serves every block of the group from cache, so a large set streams through memory
        // once per group rather than once per block. Each score is the same arithmetic as
        // block by block.
        let blocks = m.div_ceil(QUERY_BLOCK);
        let group = (GROUP_SCORE_FLOATS / (QUERY_BLOCK * padded)).clamp(1, MAX_GROUP);
        let tile_floats = (TILE_FLOATS / (dim * PANEL)).max(1) * dim * PANEL;
        // Per block of a group: its scores, queries, scales, whether it is uniform, the points
        // it carries, and its weighted sums (allocated once, reused by every group).
        let slots = group.min(blocks);
        let mut scores = vec![0.0f32; slots * QUERY_BLOCK * padded];
        let mut queries = vec![vec![[0.0f32; QUERY_BLOCK]; dim]; slots];
        let mut scales = vec![[0.0f32; QUERY_BLOCK]; slots];
        let mut uniform = vec![false; slots];
        let mut carrying: Vec<Vec<(u32, [f32; QUERY_BLOCK])>> = vec![Vec::new(); slots];
        let mut sums = vec![0.0f32; slots * QUERY_BLOCK * dim];
        let mut cursors = vec![0usize; slots];
        for g0 in (0..blocks).step_by(group) {
            let g = group.min(blocks - g0);
            let block = |b: usize| (g0 + b) * QUERY_BLOCK..((g0 + b + 1) * QUERY_BLOCK).min(m);
            for b in 0..g {
                let ts = &times[block(b)];
                let xs = &points[block(b).start * dim..block(b).end * dim];
                // Every training point equally likely (every weight e^0): the plain sum,
                // without scoring.
                uniform[b] = ts.iter().all(|&t| t < UNIFORM_BELOW);
                for j in 0..QUERY_BLOCK {
                    let t = ts.get(j).copied().unwrap_or(0.0);
                    let flat = t < UNIFORM_BELOW;
                    scales[b][j] = if flat {
                        0.0
                    } else {
                        t * t * inverse_two_variance(t)
                    };
                    for (k, query) in queries[b].iter_mut().enumerate() {
                        query[j] = if flat { 0.0 } else { xs[j * dim + k] / t };
                    }
                }
            }
            for (t0, tile) in panels.chunks(tile_floats).enumerate() {
                let first = t0 * tile_floats / (dim * PANEL);
                for b in (0..g).filter(|&b| !uniform[b]) {
                    let scores = &mut scores[b * QUERY_BLOCK * padded..];
                    for (p, panel) in tile.chunks_exact(dim * PANEL).enumerate() {
                        let (panel, _) = panel.as_chunks::<PANEL>();
                        let d2 = panel_distances(panel, &queries[b]);
                        let at = (first + p) * PANEL;
                        for j in 0..QUERY_BLOCK {
                            for l in 0..PANEL {
                                scores[j * padded + at + l] = -d2[j][l] * scales[b][j];
                            }
                        }
                    }
                }
            }
            for b in 0..g {
                let range = block(b);
                let q = range.len();
                let (maxes, sums) = (&mut out.max[range.clone()], &mut out.sum[range.clone()]);
                if uniform[b] {
                    let acc = &mut out.weighted[range.start * dim..range.end * dim];
                    for a in acc.chunks_exact_mut(dim) {
                        a.copy_from_slice(&self.sum);
                    }
                    sums.fill(n as f32);
                    continue;
                }
                let scores = &mut scores[b * QUERY_BLOCK * padded..(b + 1) * QUERY_BLOCK * padded];
                for j in 0..QUERY_BLOCK {
                    let row = &mut scores[j * padded..j * padded + n];
                    if j < q {
                        (maxes[j], sums[j]) = softmax_unnormalised(row);
                    } else {
                        row.fill(0.0);
                    }
                }
                // Only the points some query of the block still weighs are summed.
                let carrying = &mut carrying[b];
                carrying.clear();
                for i in 0..n {
                    let w: [f32; QUERY_BLOCK] = std::array::from_fn(|j| scores[j * padded + i]);
                    if w.iter().any(|&v| v != 0.0) {
                        carrying.push((i as u32, w));
                    }
                }
            }
            // The weighted sums of the group's scored blocks. Above TILED_SUM_MAX_DIM each
            // point is added straight into its block's sums, in the points' order, so the rows
            // can go a tile at a time for every block (read from memory once per group) with
            // the same arithmetic; below it a block's points are summed in one pass.
            let scored: Vec<usize> = (0..g).filter(|&b| !uniform[b]).collect();
            let rows = if dim > TILED_SUM_MAX_DIM {
                (TILE_FLOATS / dim).max(1)
            } else {
                n
            };
            sums.fill(0.0);
            cursors.fill(0);
            for r1 in (rows..n + rows).step_by(rows) {
                for (c, &b) in scored.iter().enumerate() {
                    let from = cursors[c];
                    let list = &carrying[b][from..];
                    let count = list.partition_point(|&(i, _)| (i as usize) < r1);
                    let acc = &mut sums[c * QUERY_BLOCK * dim..(c + 1) * QUERY_BLOCK * dim];
                    accumulate(data, dim, &list[..count], acc);
                    cursors[c] = from + count;
                }
            }
            for (c, &b) in scored.iter().enumerate() {
                let range = block(b);
                let q = range.len();
                out.weighted[range.start * dim..range.end * dim]
                    .copy_from_slice(&sums[c * QUERY_BLOCK * dim..][..q * dim]);
            }
        }
        out
    }
}

/// u*(x_q, t_q) for every row of `points`, each at its own time `times[q]` in [0, 1), for a
/// training set used once (build a `ClosedForm` to query one set repeatedly).
pub fn closed_form_velocity_at(
    data: &[f32],
    dim: usize,
    points: &[f32],
    times: &[f32],
) -> Vec<f32> {
    ClosedForm::new(data, dim).velocity_at(points, times)
}

/// Turns softmax exponents into unnormalised weights e^(s - max), in place, and returns (max,
/// sum of the weights). Exponents more than NEGLIGIBLE below the largest become exactly 0 (even
/// 10^6 of them would add 1e-7 relative), so later passes can skip them. Branch-free with eight
/// partial results, so it vectorises.
fn softmax_unnormalised(row: &mut [f32]) -> (f32, f32) {
    let mut maxes = [f32::NEG_INFINITY; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for k in 0..8 {
            maxes[k] = if c[k] > maxes[k] { c[k] } else { maxes[k] };
        }
    }
    let max = maxes.iter().fold(tail, |m, &v| m.max(v));
    let mut sums = [0.0f32; 8];
    let weight = |s: f32| {
        let d = s - max;
        if d < -NEGLIGIBLE {
            0.0
        } else {
            exp_small(d)
        }
    };
    let mut chunks = row.chunks_exact_mut(8);
    for c in &mut chunks {
        for k in 0..8 {
            c[k] = weight(c[k]);
            sums[k] += c[k];
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for v in chunks.into_remainder() {
        *v = weight(*v);
        sum += *v;
    }
    (max, sum)
}

/// Turns softmax exponents into weights summing to 1, in place (see `softmax_unnormalised`).
fn softmax_in_place(row: &mut [f32]) {
    let (_, sum) = softmax_unnormalised(row);
    let inv_sum = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv_sum;
    }
}

/// e^d for d <= 0 (clamped below -87), to about 2 ulp, with integer and float arithmetic
/// only, so a loop of it vectorises (the library exp is a scalar call on wasm).
/// e^d = 2^k e^f with k = round(d log2 e), f = d - k ln 2 (Cody-Waite: ln 2 in two parts, so f
/// is exact), |f| <= ln2 / 2, e^f by its Taylor polynomial of degree 7.
#[inline(always)]
pub(crate) fn exp_small(d: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    const LN2_HI: f32 = 0.693_145_75; // 16 significant bits: k LN2_HI is exact
    const LN2_LO: f32 = 1.428_606_8e-6;
    let d = d.max(-87.0);
    let shifted = d * std::f32::consts::LOG2_E + MAGIC;
    let kf = shifted - MAGIC;
    let k = shifted.to_bits() as i32 - MAGIC.to_bits() as i32;
    let f = (d - kf * LN2_HI) - kf * LN2_LO;
    let p = 1.0
        + f * (1.0
            + f * (0.5
                + f * (1.0 / 6.0
                    + f * (1.0 / 24.0
                        + f * (1.0 / 120.0 + f * (1.0 / 720.0 + f * (1.0 / 5040.0)))))));
    p * f32::from_bits(((k + 127) as u32) << 23)
}

/// The same formula entirely in f64: the reference the f32 paths (CPU and GPU) are held to.
pub fn closed_form_velocity_f64(data: &[f32], dim: usize, points: &[f32], t: f64) -> Vec<f64> {
    let s = 1.0 - t;
    let inv = 1.0 / (2.0 * s * s);
    let mut out = Vec::with_capacity(points.len());
    let mut scores = vec![0.0f64; data.len() / dim];
    for x in points.chunks_exact(dim) {
        let mut max = f64::NEG_INFINITY;
        for (sc, xi) in scores.iter_mut().zip(data.chunks_exact(dim)) {
            let d2: f64 = x
                .iter()
                .zip(xi)
                .map(|(&a, &b)| (a as f64 - t * b as f64).powi(2))
                .sum();
            *sc = -d2 * inv;
            max = max.max(*sc);
        }
        let mut sum = 0.0;
        let mut acc = vec![0.0f64; dim];
        for (sc, xi) in scores.iter().zip(data.chunks_exact(dim)) {
            let w = (sc - max).exp();
            sum += w;
            for (a, &b) in acc.iter_mut().zip(xi) {
                *a += w * b as f64;
            }
        }
        out.extend(acc.iter().zip(x).map(|(a, &b)| (a / sum - b as f64) / s));
    }
    out
}

/// Relative error of an f32 result against an f64 reference: the worst row of
/// ||a_r - b_r|| / max(||b_r||, rms), where rms is the root-mean-square row norm of the
/// reference. The floor keeps rows where u* nearly vanishes (x at the weighted mean, where
/// f32 cancellation is unavoidable) from dominating; elsewhere it is the plain row-wise error.
pub fn max_relative_error(a: &[f32], reference: &[f64], dim: usize) -> f64 {
    let rows = reference.len() / dim;
    let rms = (reference.iter().map(|q| q * q).sum::<f64>() / rows.max(1) as f64).sqrt();
    a.chunks_exact(dim)
        .zip(reference.chunks_exact(dim))
        .map(|(x, r)| {
            let diff: f64 = x.iter().zip(r).map(|(&p, q)| (p as f64 - q).powi(2)).sum();
            let norm: f64 = r.iter().map(|q| q * q).sum();
            diff.sqrt() / norm.sqrt().max(rms).max(1e-12)
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{rng::Rng, Dataset};

    fn random(count: usize, seed: u64) -> Vec<f32> {
        Rng::new(seed).normals(count)
    }

    #[test]
    fn at_t0_velocity_is_mean_minus_x() {
        let dim = 3;
        let data = random(40 * dim, 1);
        let pts = random(5 * dim, 2);
        let u = closed_form_velocity(&data, dim, &pts, 0.0);
        let mut mean = [0.0f32; 3];
        for xi in data.chunks(dim) {
            for k in 0..dim {
                mean[k] += xi[k] / 40.0;
            }
        }
        for (x, v) in pts.chunks(dim).zip(u.chunks(dim)) {
            for k in 0..dim {
                assert!((v[k] - (mean[k] - x[k])).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn one_training_point_gives_the_straight_line() {
        let dim = 4;
        let data = random(dim, 3);
        let pts = random(6 * dim, 4);
        for t in [0.0, 0.3, 0.9, 0.999] {
            let u = closed_form_velocity(&data, dim, &pts, t);
            for (x, v) in pts.chunks(dim).zip(u.chunks(dim)) {
                for k in 0..dim {
                    let want = (data[k] - x[k]) / (1.0 - t);
                    assert!((v[k] - want).abs() <= 1e-4 * want.abs().max(1.0), "t={t}");
                }
            }
        }
    }

    #[test]
    fn translation_equivariance() {
        // Shifting data by c and x by t*c leaves the weights unchanged and u*(x + t c) shifts
        // by c: u'(x + t c) = u(x) + c.
        let dim = 2;
        let data = Dataset::TwoMoons.sample(200, 5);
        let pts = random(10 * dim, 6);
        let c = [1.5f32, -0.7];
        let t = 0.6;
        let shifted: Vec<f32> = data.iter().enumerate().map(|(i, v)| v + c[i % 2]).collect();
        let moved: Vec<f32> = pts
            .iter()
            .enumerate()
            .map(|(i, v)| v + t * c[i % 2])
            .collect();
        let u = closed_form_velocity(&data, dim, &pts, t);
        let v = closed_form_velocity(&shifted, dim, &moved, t);
        for (i, (a, b)) in u.iter().zip(&v).enumerate() {
            assert!((b - a - c[i % 2]).abs() < 1e-3, "{a} {b}");
        }
    }

    #[test]
    fn weights_sum_to_one_and_concentrate_as_t_goes_to_one() {
        let data = Dataset::EightGaussians.sample(100, 7);
        let x = [0.3f32, -0.2];
        for t in [0.0, 0.5, 0.9, 0.99, 0.999] {
            let w = posterior_weights(&data, 2, &x, t);
            let sum: f32 = w.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "t={t} sum={sum}");
        }
        let w = posterior_weights(&data, 2, &x, 0.0);
        assert!(w.iter().all(|&v| (v - 0.01).abs() < 1e-6));
        // x_t near 0.999 * x_j is explained by x_j alone.
        let j = 17;
        let near = [0.999 * data[2 * j] + 1e-4, 0.999 * data[2 * j + 1]];
        let w = posterior_weights(&data, 2, &near, 0.999);
        assert!(w[j] > 0.999, "lambda_j = {}", w[j]);
    }

    #[test]
    fn velocity_blows_up_as_t_goes_to_one() {
        let data = Dataset::TwoMoons.sample(50, 8);
        let x = [0.05f32, 0.1];
        let norm = |t: f32| {
            let u = closed_form_velocity(&data, 2, &x, t);
            (u[0] * u[0] + u[1] * u[1]).sqrt()
        };
        assert!(norm(0.999) > 10.0 * norm(0.5));
        assert!(norm(0.99) > 5.0 * norm(0.5));
    }

    #[test]
    fn f32_matches_f64_reference_in_high_dimension() {
        let dim = 64;
        let data = random(300 * dim, 9);
        let pts = random(8 * dim, 10);
        for t in [0.0, 0.25, 0.5, 0.75, 0.9, 0.99] {
            let u = closed_form_velocity(&data, dim, &pts, t);
            let r = closed_form_velocity_f64(&data, dim, &pts, t as f64);
            let err = max_relative_error(&u, &r, dim);
            assert!(err < 1e-4, "t={t}: {err}");
        }
    }

    #[test]
    fn exp_small_matches_f64_exp() {
        let mut worst = 0.0f64;
        for k in 0..=62_000 {
            let d = -(k as f32) * 0.0005; // 0 .. -31
            let want = (d as f64).exp();
            worst = worst.max(((exp_small(d) as f64) - want).abs() / want);
        }
        assert!(worst < 5e-7, "worst relative error {worst:e}");
        assert_eq!(exp_small(-200.0), (-87.0f64).exp() as f32 * 1.0);
    }

    #[test]
    fn softmax_drops_only_negligible_weights() {
        let mut row: Vec<f32> = (0..21).map(|i| -(i as f32) * 2.0).collect();
        let want: Vec<f64> = {
            let e: Vec<f64> = row.iter().map(|&v| (v as f64).exp()).collect();
            let sum: f64 = e.iter().sum();
            e.iter().map(|v| v / sum).collect()
        };
        softmax_in_place(&mut row);
        for (i, (&w, &r)) in row.iter().zip(&want).enumerate() {
            if i * 2 > NEGLIGIBLE as usize {
                assert_eq!(w, 0.0, "exponent -{}", 2 * i);
            } else {
                assert!(((w as f64) - r).abs() <= 1e-6 * r, "{i}: {w} vs {r}");
            }
        }
    }

    #[test]
    fn mixed_times_in_a_block_match_f64_reference() {
        // n, dim and m not multiples of the panel, slice or block widths; each block mixes
        // t = 0, a t below UNIFORM_BELOW and ordinary times.
        let (n, dim, m) = (37, 13, 11);
        let data = random(n * dim, 11);
        let pts = random(m * dim, 12);
        let times: Vec<f32> = (0..m)
            .map(|q| [0.0, 1e-13, 0.2, 0.55, 0.9, 0.97][q % 6])
            .collect();
        let u = closed_form_velocity_at(&data, dim, &pts, &times);
        for (q, &t) in times.iter().enumerate() {
            let row = &pts[q * dim..(q + 1) * dim];
            let r = closed_form_velocity_f64(&data, dim, row, t as f64);
            let err = max_relative_error(&u[q * dim..(q + 1) * dim], &r, dim);
            assert!(err < 1e-5, "query {q}, t = {t}: {err}");
        }
        // A set built once answers like the one-off function, query by query.
        let set = ClosedForm::new(&data, dim);
        for (q, &t) in times.iter().enumerate() {
            let row = &pts[q * dim..(q + 1) * dim];
            assert_eq!(
                set.velocity(row, t),
                closed_form_velocity(&data, dim, row, t)
            );
        }
    }

    #[test]
    fn groups_of_blocks_over_tiles_answer_query_by_query() {
        // Three tiles of panels (the last one short), three groups of blocks (the last one
        // short, its last block short), uniform blocks among scored ones, weighted sums in one
        // pass (dim 64) and a tile of rows at a time (dim 72): every query's partials are
        // exactly those it gets asked alone (a weight of 0 adds exactly nothing), and its
        // velocity is the float64 reference's.
        for dim in [TILED_SUM_MAX_DIM, TILED_SUM_MAX_DIM + 8] {
            let per_tile = TILE_FLOATS / (dim * PANEL) * PANEL;
            let n = 2 * per_tile + 3 * PANEL + 5;
            let data = random(n * dim, 31);
            let m = QUERY_BLOCK * MAX_GROUP * 2 + 2 * QUERY_BLOCK + 3;
            let pts = random(m * dim, 32);
            let times: Vec<f32> = (0..m)
                .map(|q| match (q / QUERY_BLOCK) % 5 {
                    1 => 0.0,
                    k => [0.2, 0.5, 0.8, 0.95, 0.99][(q + k) % 5],
                })
                .collect();
            let set = ClosedForm::new(&data, dim);
            assert!(QUERY_BLOCK * MAX_GROUP * n.div_ceil(PANEL) * PANEL <= GROUP_SCORE_FLOATS);
            assert!(n > 2 * (TILE_FLOATS / dim));
            let all = set.partials_at(&pts, &times);
            for q in 0..m {
                let one = set.partials_at(&pts[q * dim..(q + 1) * dim], &times[q..q + 1]);
                assert_eq!(all.max[q], one.max[0], "dim {dim}, query {q} max");
                assert_eq!(all.sum[q], one.sum[0], "dim {dim}, query {q} sum");
                let row = &all.weighted[q * dim..(q + 1) * dim];
                assert_eq!(row, &one.weighted[..], "dim {dim}, query {q}");
            }
            let u = Partials::merge(&[all]).velocity(&pts, &times);
            for (q, &t) in times.iter().enumerate() {
                let row = &pts[q * dim..(q + 1) * dim];
                let r = closed_form_velocity_f64(&data, dim, row, t as f64);
                let err = max_relative_error(&u[q * dim..(q + 1) * dim], &r, dim);
                assert!(err < 1e-4, "dim {dim}, query {q}, t = {t}: {err}");
            }
        }
    }

    #[test]
    fn slices_merged_answer_like_the_whole_set() {
        // MNIST-like sizes are in tests/digits.rs; here odd sizes, slices of unequal length, an
        // empty slice, and times from 0 to 0.99.
        let (n, dim, m) = (203, 7, 9);
        let data = random(n * dim, 21);
        let pts = random(m * dim, 22);
        let times: Vec<f32> = (0..m).map(|q| [0.0, 0.3, 0.6, 0.9, 0.99][q % 5]).collect();
        let whole = ClosedForm::new(&data, dim).velocity_at(&pts, &times);
        for cuts in [
            vec![0, 101, 203],
            vec![0, 1, 50, 50, 190, 203],
            vec![0, 203],
        ] {
            let parts: Vec<Partials> = cuts
                .windows(2)
                .map(|c| {
                    ClosedForm::new(&data[c[0] * dim..c[1] * dim], dim).partials_at(&pts, &times)
                })
                .collect();
            let merged = Partials::merge(&parts).velocity(&pts, &times);
            for (q, &t) in times.iter().enumerate() {
                let row = &pts[q * dim..(q + 1) * dim];
                let r = closed_form_velocity_f64(&data, dim, row, t as f64);
                let err = max_relative_error(&merged[q * dim..(q + 1) * dim], &r, dim);
                assert!(err < 1e-5, "cuts {cuts:?}, query {q}, t = {t}: {err}");
                let err = max_relative_error(
                    &merged[q * dim..(q + 1) * dim],
                    &whole[q * dim..(q + 1) * dim]
                        .iter()
                        .map(|&v| v as f64)
                        .collect::<Vec<_>>(),
                    dim,
                );
                assert!(
                    err < 2e-6,
                    "cuts {cuts:?}, query {q}: merged against whole {err}"
                );
            }
            // The order of the parts does not matter beyond rounding.
            let mut reversed = parts.clone();
            reversed.reverse();
            let back = Partials::merge(&reversed).velocity(&pts, &times);
            for (a, b) in merged.iter().zip(&back) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{a} vs {b}");
            }
        }
        // One part: the merge is the identity.
        let one = ClosedForm::new(&data, dim).partials_at(&pts, &times);
        assert_eq!(Partials::merge(std::slice::from_ref(&one)), one);
    }

    #[test]
    fn a_slice_far_from_the_query_weighs_nothing_after_the_merge() {
        // Two points near the query and one far away, in slices of their own: at t = 0.9 the
        // far slice's own softmax gives its point weight 1, and the merge must scale it to ~0.
        let dim = 2;
        let near = [0.9f32, 0.9, 1.1, 1.1];
        let far = [-50.0f32, -50.0];
        let x = [0.9f32, 0.9];
        let times = [0.9f32];
        let parts = [
            ClosedForm::new(&near, dim).partials_at(&x, &times),
            ClosedForm::new(&far, dim).partials_at(&x, &times),
        ];
        let all: Vec<f32> = near.iter().chain(&far).copied().collect();
        let r = closed_form_velocity_f64(&all, dim, &x, 0.9);
        let u = Partials::merge(&parts).velocity(&x, &times);
        assert!(max_relative_error(&u, &r, dim) < 1e-5, "{u:?} vs {r:?}");
    }

    #[test]
    fn data_mean_is_the_velocity_target_at_t_zero_for_any_block_size() {
        let (n, dim) = (1001, 3);
        let data = random(n * dim, 13);
        let pts = random(7 * dim, 14);
        let u = closed_form_velocity(&data, dim, &pts, 0.0);
        let r = closed_form_velocity_f64(&data, dim, &pts, 0.0);
        assert!(max_relative_error(&u, &r, dim) < 1e-6);
    }

    #[test]
    fn direct_differences_survive_t_near_one() {
        // Two training points far from the origin, nearly equidistant from x near t x_0: the
        // expanded form ||x||^2 - 2t<x,x_i> + t^2||x_i||^2 cancels to noise here.
        let data = [100.0f32, 100.0, 100.0, 100.02];
        let t = 0.999f32;
        let x = [t * 100.0, t * 100.0 + 0.000_01];
        let w = posterior_weights(&data, 2, &x, t);
        let r = closed_form_velocity_f64(&data, 2, &x, t as f64);
        let u = closed_form_velocity(&data, 2, &x, t);
        assert!(max_relative_error(&u, &r, 2) < 1e-3, "{u:?} vs {r:?}");
        assert!((w[0] + w[1] - 1.0).abs() < 1e-6);
    }
}
