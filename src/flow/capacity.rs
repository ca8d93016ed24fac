//! The model-capacity measurement: how close a trained network's samples come to its training
//! points, against the same for the closed form (which copies them) and for fresh points of the
//! distribution (which do not). Distances are divided by the training set's scale.

use super::mlp::{self, MlpShape, Target};
use super::{metrics, rng::Rng, sampler, Dataset};

/// The widths of the figure's slider (log2 width 4..=8), depth 3.
pub const WIDTHS: [usize; 5] = [16, 32, 64, 128, 256];
/// Training steps (batch 256, Adam).
pub const STEPS: usize = 1500;
pub const LR: f32 = 2e-3;
pub const SEED: u32 = 2;
/// Samples drawn from each model, and Euler steps.
pub const SAMPLES: usize = 200;
pub const FLOW_STEPS: usize = 20;

/// The training set of n two-moons points, the shared noise, and the two references.
pub struct References {
    pub data: Vec<f32>,
    pub x0: Vec<f32>,
    pub scale: f32,
    /// Mean distance of held-out points of the same distribution to the nearest training point.
    pub held_out: f32,
    /// The same for the closed form's samples from `x0` (Euler, FLOW_STEPS).
    pub closed_form: f32,
}

impl References {
    pub fn new(n: usize) -> References {
        let mut r = References::without_closed_form(n);
        let samples = sampler::euler_sample(&r.data, 2, &r.x0, FLOW_STEPS, 0.0);
        r.measure_closed_form(&samples);
        r
    }

    /// The training set, the noise and the held-out distance for n (cheap); `closed_form` is NaN
    /// until the closed form's samples from `x0` (Euler, FLOW_STEPS), computed wherever the
    /// caller computes, are given to `measure_closed_form`.
    pub fn without_closed_form(n: usize) -> References {
        let data = Dataset::TwoMoons.sample(n, 0);
        let scale = metrics::data_scale(&data, 2);
        let held = Dataset::TwoMoons.sample(SAMPLES, 7);
        References {
            x0: Rng::new(31).normals(2 * SAMPLES),
            held_out: metrics::mean_nearest_distance(&data, 2, &held) / scale,
            closed_form: f32::NAN,
            data,
            scale,
        }
    }

    /// The closed form's distance, measured on its `samples`.
    pub fn measure_closed_form(&mut self, samples: &[f32]) {
        self.closed_form = self.distance(samples);
    }

    /// The mean distance of `samples` to the nearest training point, / the scale.
    pub fn distance(&self, samples: &[f32]) -> f32 {
        metrics::mean_nearest_distance(&self.data, 2, samples) / self.scale
    }
}

/// Trains a network of `width` on the references' data and measures its samples.
pub fn network_distance(r: &References, width: usize, steps: usize) -> f32 {
    let shape = MlpShape::new(2, width, 3);
    let params = mlp::train(&shape, &r.data, Target::Cfm, steps, LR, SEED);
    r.distance(&mlp::sample(&shape, &params, &r.x0, FLOW_STEPS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closed_form_copies_the_training_points() {
        for n in [10, 170] {
            let r = References::new(n);
            let copies = sampler::euler_sample(&r.data, 2, &r.x0, FLOW_STEPS, 0.0);
            let want = metrics::mean_nearest_distance(&r.data, 2, &copies) / r.scale;
            assert_eq!(r.closed_form, want, "n {n}");
            assert!(
                r.closed_form < 0.5 * r.held_out,
                "n {n}: {} against {}",
                r.closed_form,
                r.held_out
            );
            // Without the closed form's samples, the rest is already there.
            let first = References::without_closed_form(n);
            assert!(first.closed_form.is_nan());
            assert_eq!((first.data, first.x0), (r.data, r.x0));
            assert_eq!(first.held_out, r.held_out);
        }
    }

    #[test]
    fn wider_networks_and_fewer_points_come_closer_to_the_training_set() {
        // www/index.html, "A network cannot follow the closed form everywhere": with 10 points
        // the samples lie several times closer to the training points than fresh points do, and
        // a wider network closer still; with 500 they lie farther than fresh points; the closed
        // form's samples lie on them.
        let ten = References::new(10);
        let (narrow, wide) = (
            network_distance(&ten, 16, STEPS),
            network_distance(&ten, 128, STEPS),
        );
        eprintln!(
            "n 10: held out {}, closed form {}, width 16 {narrow}, width 128 {wide}",
            ten.held_out, ten.closed_form
        );
        assert!(ten.closed_form < 0.02 && wide < narrow && narrow < 0.7 * ten.held_out);
        assert!(wide < 0.3 * ten.held_out);
        let many = References::new(500);
        let d = network_distance(&many, 64, STEPS);
        eprintln!(
            "n 500: held out {}, closed form {}, width 64 {d}",
            many.held_out, many.closed_form
        );
        assert!(many.closed_form < many.held_out && d > 1.5 * many.held_out);
    }
}
