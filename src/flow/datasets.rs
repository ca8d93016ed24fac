//! Two-dimensional toy datasets, drawn from a seed. Every preset lives roughly in [-3, 3]^2,
//! on the scale of the source N(0, I).

use super::rng::Rng;
use std::f64::consts::PI;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataset {
    TwoMoons,
    EightGaussians,
    Checkerboard,
    Rings,
    Spirals,
}

impl Dataset {
    pub const ALL: [Dataset; 5] = [
        Dataset::TwoMoons,
        Dataset::EightGaussians,
        Dataset::Checkerboard,
        Dataset::Rings,
        Dataset::Spirals,
    ];

    /// The identifier used in controls, URLs and attributes.
    pub fn id(self) -> &'static str {
        match self {
            Dataset::TwoMoons => "moons",
            Dataset::EightGaussians => "8gaussians",
            Dataset::Checkerboard => "checkerboard",
            Dataset::Rings => "rings",
            Dataset::Spirals => "spirals",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Dataset::TwoMoons => "Two moons",
            Dataset::EightGaussians => "8 Gaussians",
            Dataset::Checkerboard => "Checkerboard",
            Dataset::Rings => "Rings",
            Dataset::Spirals => "Spirals",
        }
    }

    pub fn from_id(id: &str) -> Option<Dataset> {
        Dataset::ALL.into_iter().find(|d| d.id() == id)
    }

    /// `n` points, row-major `[x0, y0, x1, y1, ...]`.
    pub fn sample(self, n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed ^ (self as u64) << 40);
        let mut out = Vec::with_capacity(2 * n);
        for i in 0..n {
            let (x, y) = match self {
                Dataset::TwoMoons => {
                    let theta = PI * rng.uniform();
                    let (x, y) = if i % 2 == 0 {
                        (theta.cos(), theta.sin())
                    } else {
                        (1.0 - theta.cos(), 0.5 - theta.sin())
                    };
                    (
                        1.6 * (x - 0.5) + 0.08 * rng.normal(),
                        1.6 * (y - 0.25) + 0.08 * rng.normal(),
                    )
                }
                Dataset::EightGaussians => {
                    let angle = (i % 8) as f64 * PI / 4.0;
                    (
                        2.0 * angle.cos() + 0.15 * rng.normal(),
                        2.0 * angle.sin() + 0.15 * rng.normal(),
                    )
                }
                Dataset::Checkerboard => {
                    // Eight dark squares of a 4 x 4 board on [-2, 2]^2.
                    let cell = rng.below(8);
                    let row = cell / 2;
                    let col = 2 * (cell % 2) + (row % 2);
                    (
                        -2.0 + col as f64 + rng.uniform(),
                        -2.0 + row as f64 + rng.uniform(),
                    )
                }
                Dataset::Rings => {
                    let radius = if i % 2 == 0 { 1.0 } else { 2.2 };
                    let angle = 2.0 * PI * rng.uniform();
                    (
                        radius * angle.cos() + 0.06 * rng.normal(),
                        radius * angle.sin() + 0.06 * rng.normal(),
                    )
                }
                Dataset::Spirals => {
                    let s = rng.uniform().sqrt();
                    let angle = 3.0 * PI * s + if i % 2 == 0 { 0.0 } else { PI };
                    let radius = 2.5 * s;
                    (
                        radius * angle.cos() + 0.06 * rng.normal(),
                        radius * angle.sin() + 0.06 * rng.normal(),
                    )
                }
            };
            out.push(x as f32);
            out.push(y as f32);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_seeded_bounded_and_distinct() {
        for d in Dataset::ALL {
            let a = d.sample(500, 1);
            assert_eq!(a.len(), 1000);
            assert_eq!(a, d.sample(500, 1), "{} not reproducible", d.id());
            assert_ne!(a, d.sample(500, 2), "{} ignores the seed", d.id());
            assert!(a.iter().all(|v| v.abs() < 3.5), "{} out of bounds", d.id());
            assert_eq!(Dataset::from_id(d.id()), Some(d));
        }
        assert_eq!(Dataset::from_id("mnist"), None);
    }

    #[test]
    fn eight_gaussians_sit_on_their_modes() {
        let pts = Dataset::EightGaussians.sample(800, 0);
        for p in pts.chunks(2) {
            let r = (p[0] * p[0] + p[1] * p[1]).sqrt();
            assert!((r - 2.0).abs() < 0.8, "radius {r}");
        }
    }
}
