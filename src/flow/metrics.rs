//! Measurements on point clouds: nearest-training-point distances, histograms, cosines.

use super::closed_form::squared_distance_scaled;

/// Root-mean-square distance of the data to its mean: "the data's scale".
pub fn data_scale(data: &[f32], dim: usize) -> f32 {
    let n = (data.len() / dim) as f64;
    let mut mean = vec![0.0f64; dim];
    for x in data.chunks_exact(dim) {
        for (m, &v) in mean.iter_mut().zip(x) {
            *m += v as f64 / n;
        }
    }
    let ss: f64 = data
        .chunks_exact(dim)
        .map(|x| {
            x.iter()
                .zip(&mean)
                .map(|(&v, m)| (v as f64 - m).powi(2))
                .sum::<f64>()
        })
        .sum();
    (ss / n).sqrt() as f32
}

/// For each point: the index of its nearest training point, the distance to it, and the
/// distance to the second nearest (how far "another training point" is).
pub fn nearest_two(data: &[f32], dim: usize, points: &[f32]) -> Vec<(usize, f32, f32)> {
    let mut nearest = NearestTwo::new(dim, points);
    nearest.scan(data, 0);
    nearest.finish()
}

/// `nearest_two` over the training points a block at a time (a caller that gives the page a
/// turn between blocks): the same comparisons in the same order, so the same answer.
pub struct NearestTwo<'a> {
    dim: usize,
    points: &'a [f32],
    /// Per point: the nearest index and the two smallest squared distances so far.
    best: Vec<(usize, f32, f32)>,
}

impl<'a> NearestTwo<'a> {
    pub fn new(dim: usize, points: &'a [f32]) -> NearestTwo<'a> {
        NearestTwo {
            dim,
            points,
            best: vec![(0, f32::INFINITY, f32::INFINITY); points.len() / dim],
        }
    }

    /// The next block of training points, whose first row is training point `first`.
    pub fn scan(&mut self, block: &[f32], first: usize) {
        for (x, (best, d1, d2)) in self.points.chunks_exact(self.dim).zip(&mut self.best) {
            for (i, xi) in block.chunks_exact(self.dim).enumerate() {
                let d = squared_distance_scaled(x, xi, 1.0);
                if d < *d1 {
                    (*best, *d2, *d1) = (first + i, *d1, d);
                } else if d < *d2 {
                    *d2 = d;
                }
            }
        }
    }

    pub fn finish(self) -> Vec<(usize, f32, f32)> {
        self.best
            .into_iter()
            .map(|(i, d1, d2)| (i, d1.sqrt(), d2.sqrt()))
            .collect()
    }
}

/// For each row of `points`, the Euclidean distance to its nearest row of `data`.
pub fn nearest_distances(data: &[f32], dim: usize, points: &[f32]) -> Vec<f32> {
    points
        .chunks_exact(dim)
        .map(|x| {
            data.chunks_exact(dim)
                .map(|xi| squared_distance_scaled(x, xi, 1.0))
                .fold(f32::INFINITY, f32::min)
                .sqrt()
        })
        .collect()
}

/// Mean Euclidean distance between the rows of `a` and the rows of `b` (all pairs).
fn mean_pair_distance(a: &[f32], b: &[f32], dim: usize) -> f64 {
    let mut sum = 0.0f64;
    for x in a.chunks_exact(dim) {
        for y in b.chunks_exact(dim) {
            sum += (squared_distance_scaled(x, y, 1.0) as f64).sqrt();
        }
    }
    sum / ((a.len() / dim) * (b.len() / dim)).max(1) as f64
}

/// The share of `samples` within `relative` x data_scale of a training point: the memorization
/// measure of the article (1% of the data's RMS radius).
pub fn memorized_fraction(data: &[f32], dim: usize, samples: &[f32], relative: f32) -> f32 {
    let threshold = relative * data_scale(data, dim);
    fraction_below(&nearest_distances(data, dim, samples), threshold)
}

/// Mean distance from each sample to its nearest training point.
pub fn mean_nearest_distance(data: &[f32], dim: usize, samples: &[f32]) -> f32 {
    let d = nearest_distances(data, dim, samples);
    d.iter().sum::<f32>() / d.len().max(1) as f32
}

/// Energy distance 2 E||X - Y|| - E||X - X'|| - E||Y - Y'|| between two samples (rows):
/// zero when the distributions agree, positive otherwise.
pub fn energy_distance(x: &[f32], y: &[f32], dim: usize) -> f32 {
    (2.0 * mean_pair_distance(x, y, dim)
        - mean_pair_distance(x, x, dim)
        - mean_pair_distance(y, y, dim)) as f32
}

/// Fraction of `values` strictly below `threshold`.
pub fn fraction_below(values: &[f32], threshold: f32) -> f32 {
    values.iter().filter(|&&v| v < threshold).count() as f32 / values.len().max(1) as f32
}

/// The share of `values` above `threshold` (0 for none): e.g. of pairs whose cosine is above 0.9.
pub fn fraction_above(values: &[f32], threshold: f32) -> f32 {
    values.iter().filter(|&&v| v > threshold).count() as f32 / values.len().max(1) as f32
}

/// Cosine similarity; 0 when either vector is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        (ab / (aa.sqrt() * bb.sqrt())) as f32
    }
}

/// Equal-width histogram on [lo, hi]; values outside are clamped into the end bins.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub lo: f32,
    pub hi: f32,
    pub counts: Vec<u32>,
}

impl Histogram {
    pub fn new(values: &[f32], lo: f32, hi: f32, bins: usize) -> Self {
        let mut counts = vec![0u32; bins];
        let width = (hi - lo) / bins as f32;
        for &v in values.iter().filter(|v| v.is_finite()) {
            let k = ((v - lo) / width).floor().clamp(0.0, (bins - 1) as f32) as usize;
            counts[k] += 1;
        }
        Self { lo, hi, counts }
    }

    pub fn bin_width(&self) -> f32 {
        (self.hi - self.lo) / self.counts.len() as f32
    }

    pub fn total(&self) -> u32 {
        self.counts.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_two_finds_first_and_second() {
        let data = [0.0f32, 0.0, 3.0, 0.0, 1.0, 0.0];
        let r = nearest_two(&data, 2, &[2.6, 0.0, -0.5, 0.0]);
        assert_eq!(r[0].0, 1);
        assert!((r[0].1 - 0.4).abs() < 1e-6 && (r[0].2 - 1.6).abs() < 1e-6);
        assert_eq!(r[1].0, 0);
        assert!((r[1].1 - 0.5).abs() < 1e-6 && (r[1].2 - 1.5).abs() < 1e-6);
    }

    #[test]
    fn nearest_two_block_by_block_is_nearest_two() {
        let mut rng = crate::flow::rng::Rng::new(3);
        let (dim, n) = (5, 1003);
        let data = rng.normals(n * dim);
        // Points near training points, so ties and near-ties between blocks are exercised.
        let mut points = data[..4 * dim].to_vec();
        points.extend(data[700 * dim..701 * dim].iter().map(|v| v + 0.01));
        points.extend(rng.normals(3 * dim));
        let whole = nearest_two(&data, dim, &points);
        for rows in [1, 7, 250, n] {
            let mut blocks = NearestTwo::new(dim, &points);
            for (b, block) in data.chunks(rows * dim).enumerate() {
                blocks.scan(block, b * rows);
            }
            assert_eq!(blocks.finish(), whole, "blocks of {rows}");
        }
        assert_eq!(whole[4].0, 700);
        assert_eq!(whole[1], (1, 0.0, whole[1].2));
    }

    #[test]
    fn nearest_and_scale() {
        let data = [0.0f32, 0.0, 2.0, 0.0];
        let d = nearest_distances(&data, 2, &[1.5, 0.0, -1.0, 0.0]);
        assert_eq!(d, vec![0.5, 1.0]);
        assert!((data_scale(&data, 2) - 1.0).abs() < 1e-6);
        assert_eq!(fraction_below(&d, 0.75), 0.5);
    }

    #[test]
    fn energy_distance_separates_shifted_samples() {
        use crate::flow::rng::Rng;
        let a = Rng::new(1).normals(1000);
        let b = Rng::new(2).normals(1000);
        let shifted: Vec<f32> = Rng::new(3).normals(1000).iter().map(|v| v + 1.0).collect();
        let same = energy_distance(&a, &b, 2);
        let apart = energy_distance(&a, &shifted, 2);
        assert!(same.abs() < 0.02, "same distribution: {same}");
        assert!(apart > 0.3, "shifted by 1: {apart}");
    }

    #[test]
    fn histogram_counts_every_value_once() {
        let h = Histogram::new(&[-1.0, 0.0, 0.49, 0.5, 0.99, 1.0, 7.0], 0.0, 1.0, 2);
        assert_eq!(h.counts, vec![3, 4]);
        assert_eq!(h.total(), 7);
    }

    #[test]
    fn cosines() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-7);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-7);
        assert!((cosine(&[1.0, 1.0], &[-1.0, -1.0]) + 1.0).abs() < 1e-7);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
