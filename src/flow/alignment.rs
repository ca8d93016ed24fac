//! How stochastic is the CFM target? For random pairs (x0 ~ N(0, I), x1 from the data) and a
//! time t, the cosine between the closed-form velocity u*(x_t, t) over the whole data set and
//! the conditional target x1 - x0. Near 1, the "random" target is in fact deterministic.

use super::closed_form::closed_form_velocity_at;
use super::metrics::cosine;
use super::mlp::draw_pair;

/// The queries of an alignment measurement: x_t for every (time, pair), time-major, each with
/// its own t, and the conditional targets x1 - x0. The same `seed` gives the same pairs, and
/// every time uses the same pairs.
pub struct AlignmentQueries {
    pub points: Vec<f32>,
    pub times: Vec<f32>,
    pub targets: Vec<f32>,
}

/// The seeded pairs of an alignment measurement: x0 ~ N(0, I), x1 drawn from the data, and the
/// conditional targets x1 - x0 (pairs x dim each). Kept once; the queries of any times are made
/// from them, a few times at a time, so a long `times` never holds all its queries at once.
pub struct AlignmentPairs {
    pairs: usize,
    x0: Vec<f32>,
    x1: Vec<f32>,
    pub targets: Vec<f32>,
}

pub fn alignment_pairs(data: &[f32], dim: usize, pairs: usize, seed: u32) -> AlignmentPairs {
    alignment_pairs_of(data.len() / dim, dim, pairs, seed, |i, x1| {
        x1.extend_from_slice(&data[i * dim..(i + 1) * dim])
    })
}

/// `alignment_pairs` over n training points that `row(i, x1)` appends to x1 one at a time
/// (only the drawn ones are read: the set may live elsewhere).
pub fn alignment_pairs_of(
    n: usize,
    dim: usize,
    pairs: usize,
    seed: u32,
    mut row: impl FnMut(usize, &mut Vec<f32>),
) -> AlignmentPairs {
    let mut x0 = Vec::with_capacity(pairs * dim);
    let mut x1 = Vec::with_capacity(pairs * dim);
    for p in 0..pairs as u32 {
        let i = draw_pair(seed, 0, n, dim, p, &mut x0);
        row(i, &mut x1);
    }
    let targets = x1.iter().zip(&x0).map(|(a, b)| a - b).collect();
    AlignmentPairs {
        pairs,
        x0,
        x1,
        targets,
    }
}

impl AlignmentPairs {
    /// The queries at each of `times`, time-major.
    pub fn queries(&self, times: &[f32]) -> AlignmentQueries {
        let per_time = self.targets.len();
        let mut q = AlignmentQueries {
            points: Vec::with_capacity(times.len() * per_time),
            times: Vec::with_capacity(times.len() * self.pairs),
            targets: Vec::with_capacity(times.len() * per_time),
        };
        for &t in times {
            q.points.extend(
                self.x0
                    .iter()
                    .zip(&self.x1)
                    .map(|(a, b)| (1.0 - t) * a + t * b),
            );
            q.times.extend(std::iter::repeat_n(t, self.pairs));
            q.targets.extend_from_slice(&self.targets);
        }
        q
    }
}

pub fn alignment_queries(
    data: &[f32],
    dim: usize,
    times: &[f32],
    pairs: usize,
    seed: u32,
) -> AlignmentQueries {
    alignment_pairs(data, dim, pairs, seed).queries(times)
}

/// Cosines of each row of `velocities` with the matching row of `targets`.
pub fn row_cosines(velocities: &[f32], targets: &[f32], dim: usize) -> Vec<f32> {
    velocities
        .chunks_exact(dim)
        .zip(targets.chunks_exact(dim))
        .map(|(u, v)| cosine(u, v))
        .collect()
}

/// Both sides of the objective at one t, over the same pairs. Theorem 2 of the paper:
/// L_CFM(θ) = L_FM(θ) + C, where C = E_t E‖x1 − x0 − û*(x_t, t)‖² does not depend on θ: the
/// spread of the conditional target around the closed form, i.e. how stochastic the target is.
/// `residual` is the mean over pairs of ‖x1 − x0 − û*(x_t, t)‖² (C's integrand at this t);
/// `energy` is the mean of ‖x1 − x0‖², the size of the target itself, for scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TargetVariance {
    pub residual: f64,
    pub energy: f64,
}

impl TargetVariance {
    /// From the closed-form velocities at the pairs' x_t and the pairs' targets (row-aligned,
    /// `dim` coordinates a row).
    pub fn measure(velocities: &[f32], targets: &[f32], dim: usize) -> TargetVariance {
        Self::measure_with(velocities.iter().map(|&u| u as f64), targets, dim)
    }

    /// The same from velocities computed in f64 (the tests' reference).
    pub fn measure_f64(velocities: &[f64], targets: &[f32], dim: usize) -> TargetVariance {
        Self::measure_with(velocities.iter().copied(), targets, dim)
    }

    fn measure_with(velocities: impl Iterator<Item = f64>, targets: &[f32], dim: usize) -> Self {
        let (mut residual, mut energy, mut count) = (0.0f64, 0.0f64, 0usize);
        for (u, &v) in velocities.zip(targets) {
            residual += (v as f64 - u).powi(2);
            energy += (v as f64).powi(2);
            count += 1;
        }
        assert_eq!(count, targets.len(), "one velocity per target coordinate");
        let pairs = (targets.len() / dim.max(1)).max(1) as f64;
        TargetVariance {
            residual: residual / pairs,
            energy: energy / pairs,
        }
    }
}

/// The CPU reference: times.len() x pairs cosines, time-major.
pub fn cosine_alignment(
    data: &[f32],
    dim: usize,
    times: &[f32],
    pairs: usize,
    seed: u32,
) -> Vec<f32> {
    let q = alignment_queries(data, dim, times, pairs, seed);
    let velocities = closed_form_velocity_at(data, dim, &q.points, &q.times);
    row_cosines(&velocities, &q.targets, dim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{rng::Rng, Dataset};

    #[test]
    fn queries_made_a_few_times_at_a_time_are_the_same() {
        let data = Dataset::TwoMoons.sample(30, 2);
        let times = [0.0f32, 0.3, 0.6, 0.9, 0.95];
        let whole = alignment_queries(&data, 2, &times, 7, 5);
        let pairs = alignment_pairs(&data, 2, 7, 5);
        let (mut points, mut ts, mut targets) = (vec![], vec![], vec![]);
        for chunk in times.chunks(2) {
            let q = pairs.queries(chunk);
            points.extend(q.points);
            ts.extend(q.times);
            targets.extend(q.targets);
        }
        assert_eq!(whole.times.len(), 5 * 7);
        assert_eq!(
            (points, ts, targets),
            (whole.points, whole.times, whole.targets)
        );
    }

    #[test]
    fn the_shares_the_article_quotes_for_its_moons() {
        // www/index.html: with the stochastic-target figure's moons at n = 100, "only about a third
        // of the pairs are above 0.9 at t = 0.5"; over the hybrid figure's 40 moons points, "about
        // half ... at t = 0.7 and about three quarters at t = 0.9".
        let share = |data: &[f32], t: f32| {
            let c = cosine_alignment(data, 2, &[t], 4000, 1);
            crate::flow::metrics::fraction_above(&c, 0.9)
        };
        let hundred = Dataset::TwoMoons.sample(100, 0);
        let forty = Dataset::TwoMoons.sample(40, 0);
        let third = share(&hundred, 0.5);
        assert!((0.25..0.42).contains(&third), "n 100, t 0.5: {third}");
        let half = share(&forty, 0.7);
        assert!((0.42..0.62).contains(&half), "40 points, t 0.7: {half}");
        let three_quarters = share(&forty, 0.9);
        assert!(
            (0.68..0.84).contains(&three_quarters),
            "40 points, t 0.9: {three_quarters}"
        );
    }

    #[test]
    fn one_training_point_gives_cosine_one_after_t_zero() {
        // u*(x_t, t) = (x1 - x_t) / (1 - t) = x1 - x0 exactly when x1 is the only point.
        let data = vec![0.3f32, -1.2, 2.0, 0.5];
        let times = [0.0f32, 0.1, 0.5, 0.9, 0.99];
        let c = cosine_alignment(&data, 4, &times, 64, 3);
        assert_eq!(c.len(), 5 * 64);
        for (k, row) in c.chunks_exact(64).enumerate().skip(1) {
            for &v in row {
                assert!((v - 1.0).abs() < 1e-4, "t {}: cosine {v}", times[k]);
            }
        }
    }

    #[test]
    fn same_seed_same_pairs_other_seed_other_pairs() {
        let data = Dataset::TwoMoons.sample(200, 1);
        let a = cosine_alignment(&data, 2, &[0.3, 0.7], 50, 9);
        assert_eq!(a, cosine_alignment(&data, 2, &[0.3, 0.7], 50, 9));
        assert_ne!(a, cosine_alignment(&data, 2, &[0.3, 0.7], 50, 10));
    }

    #[test]
    fn alignment_grows_with_t_and_with_dimension() {
        // The paper's observation: in high dimension the target is nearly deterministic except at
        // small t; in 2-D it stays stochastic for a long time.
        let frac = |c: &[f32]| crate::flow::metrics::fraction_above(c, 0.9);
        let moons = Dataset::TwoMoons.sample(1000, 2);
        let high: Vec<f32> = Rng::new(3)
            .normals(1000 * 64)
            .iter()
            .map(|v| v.tanh())
            .collect();
        let times = [0.1f32, 0.5, 0.9];
        let low_c = cosine_alignment(&moons, 2, &times, 256, 4);
        let high_c = cosine_alignment(&high, 64, &times, 256, 4);
        let (l, h): (Vec<f32>, Vec<f32>) = (
            low_c.chunks_exact(256).map(frac).collect(),
            high_c.chunks_exact(256).map(frac).collect(),
        );
        eprintln!("fraction with cosine > 0.9 at t = {times:?}: dim 2 {l:?}, dim 64 {h:?}");
        assert!(l[0] < l[2] && l[1] < 0.6, "dim 2: {l:?}");
        assert!(h[1] > 0.85 && h[2] > 0.95, "dim 64: {h:?}");
        // ... but not at small t, where u* still averages over many training points.
        assert!(h[0] < 0.2, "dim 64 at t = 0.1: {h:?}");
    }
}
