//! The closed-form optimal velocity of flow matching for an empirical data distribution:
//!
//! u*(x, t) = sum_i lambda_i(x, t) (x_i - x) / (1 - t),
//! lambda(x, t) = softmax_i(-||x - t x_i||^2 / (2 (1 - t)^2)).
//!
//! Scores use direct differences ||x - t x_i||^2 (the expanded form cancels in f32 as t -> 1) and
//! a max-subtracted softmax. Memory is O(n) per query: never an n-by-m matrix.

/// The softmax exponent for one training point.
#[inline]
fn score(x: &[f32], xi: &[f32], t: f32, inv_two_var: f32) -> f32 {
    -squared_distance_scaled(x, xi, t) * inv_two_var
}

/// ||x - t y||^2 with eight independent partial sums, so LLVM vectorises it (SIMD128 on wasm).
#[inline]
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

/// ||x - y||^2, vectorised like `squared_distance_scaled`.
#[inline]
fn squared_distance(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (a, b) in x.chunks_exact(8).zip(y.chunks_exact(8)) {
        for k in 0..8 {
            let d = a[k] - b[k];
            acc[k] += d * d;
        }
    }
    let tail: f32 = x
        .chunks_exact(8)
        .remainder()
        .iter()
        .zip(y.chunks_exact(8).remainder())
        .map(|(a, b)| (a - b) * (a - b))
        .sum();
    acc.iter().sum::<f32>() + tail
}

/// 1 / (2 (1 - t)^2), the inverse of twice the variance of p_t(x | x_i).
fn inverse_two_variance(t: f32) -> f32 {
    let s = 1.0 - t;
    1.0 / (2.0 * s * s)
}

/// Fills `weights` (length n) with lambda(x, t) and returns nothing; weights sum to 1.
fn softmax_weights_into(data: &[f32], dim: usize, x: &[f32], t: f32, weights: &mut [f32]) {
    let inv = inverse_two_variance(t);
    let mut max = f32::NEG_INFINITY;
    for (w, xi) in weights.iter_mut().zip(data.chunks_exact(dim)) {
        *w = score(x, xi, t, inv);
        max = max.max(*w);
    }
    let mut sum = 0.0f32;
    for w in weights.iter_mut() {
        *w = (*w - max).exp();
        sum += *w;
    }
    let inv_sum = 1.0 / sum;
    for w in weights.iter_mut() {
        *w *= inv_sum;
    }
}

/// lambda(x, t) for one point `x` (length dim): the posterior over which training point x_t
/// came from. `data` is n x dim, row-major.
pub fn posterior_weights(data: &[f32], dim: usize, x: &[f32], t: f32) -> Vec<f32> {
    debug_assert_eq!(x.len(), dim);
    let mut weights = vec![0.0; data.len() / dim];
    softmax_weights_into(data, dim, x, t, &mut weights);
    weights
}

/// u*(x, t) for every row of `points` (m x dim); returns m x dim. t must be in [0, 1).
pub fn closed_form_velocity(data: &[f32], dim: usize, points: &[f32], t: f32) -> Vec<f32> {
    closed_form_velocity_at(data, dim, points, &vec![t; points.len() / dim.max(1)])
}

/// Queries handled together: each training point is read once per block, so the training set
/// streams through memory m / QUERY_BLOCK times instead of m times.
const QUERY_BLOCK: usize = 4;

/// Softmax exponents more than this below the maximum are dropped: e^-30 ~ 1e-13 of the
/// largest weight.
const NEGLIGIBLE: f32 = 30.0;

/// u*(x_q, t_q) for every row of `points`, each at its own time `times[q]` in [0, 1).
pub fn closed_form_velocity_at(
    data: &[f32],
    dim: usize,
    points: &[f32],
    times: &[f32],
) -> Vec<f32> {
    let n = data.len() / dim;
    let mut out = vec![0.0f32; points.len()];
    let mut weights = vec![0.0f32; QUERY_BLOCK * n];
    for ((xs, ts), us) in points
        .chunks(QUERY_BLOCK * dim)
        .zip(times.chunks(QUERY_BLOCK))
        .zip(out.chunks_mut(QUERY_BLOCK * dim))
    {
        let q = ts.len();
        // Scores, point-major (weights[i * q + j] for query j), then a softmax per query.
        let shared = ts.iter().all(|&t| t == ts[0]);
        if shared && ts[0] == 0.0 {
            // At t = 0 every training point is equally likely: uniform weights.
            weights[..n * q].fill(0.0);
        } else if shared {
            // One t > 0 for the block: ||x - t x_i||^2 = t^2 ||x / t - x_i||^2, one multiply
            // fewer per coordinate.
            let t = ts[0];
            let scale = t * t * inverse_two_variance(t);
            let scaled: Vec<f32> = xs.iter().map(|v| v / t).collect();
            for (i, xi) in data.chunks_exact(dim).enumerate() {
                for (j, x) in scaled.chunks_exact(dim).enumerate() {
                    weights[i * q + j] = -squared_distance(x, xi) * scale;
                }
            }
        } else {
            for (i, xi) in data.chunks_exact(dim).enumerate() {
                for (j, (x, &t)) in xs.chunks_exact(dim).zip(ts).enumerate() {
                    weights[i * q + j] =
                        -squared_distance_scaled(x, xi, t) * inverse_two_variance(t);
                }
            }
        }
        for j in 0..q {
            let max = (0..n)
                .map(|i| weights[i * q + j])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for i in 0..n {
                let d = weights[i * q + j] - max;
                // Below e^-NEGLIGIBLE of the largest weight a point cannot matter (even 10^6 of
                // them add 1e-7 relative), so it is dropped and skipped below.
                let w = if d < -NEGLIGIBLE { 0.0 } else { d.exp() };
                weights[i * q + j] = w;
                sum += w;
            }
            let inv_sum = 1.0 / sum;
            for i in 0..n {
                weights[i * q + j] *= inv_sum;
            }
        }
        // u_j = (sum_i w_ij x_i - x_j) / (1 - t_j); dropped points add nothing.
        for (i, xi) in data.chunks_exact(dim).enumerate() {
            for (j, u) in us.chunks_exact_mut(dim).enumerate() {
                let w = weights[i * q + j];
                if w != 0.0 {
                    for (a, b) in u.iter_mut().zip(xi) {
                        *a += w * b;
                    }
                }
            }
        }
        for ((u, x), &t) in us.chunks_exact_mut(dim).zip(xs.chunks_exact(dim)).zip(ts) {
            let inv_one_minus_t = 1.0 / (1.0 - t);
            for (a, b) in u.iter_mut().zip(x) {
                *a = (*a - b) * inv_one_minus_t;
            }
        }
    }
    out
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
