//! The training issue's quality measurements, on the CPU twin (`cargo xtask quality`):
//!
//! 1. 8 Gaussians, 2,000 training points and 2,000 held out: the energy distance of 2,000
//!    samples to the held-out set for networks trained with CFM and with EFM, for the closed
//!    form, for the source N(0, I) and for the training set itself.
//! 2. 20 training points: the fraction of 1,000 samples within 1% of the data's scale of a
//!    training point, for the closed form and for networks of width 32 and 256.
//! 3. The hybrid model's tau curve for one trained network (40 two-moons points).
//! 4. On the MNIST digits: the share of pairs with cos(u*, x1 - x0) > 0.9 per resolution and t,
//!    from the CPU twin beside a float64 reference.
//!
//! tests/quality.rs checks smaller versions of 1 and 2 in the test suite; `--quick` runs
//! shorter trainings here.

use fm_explainer::flow::mlp::{self, MlpShape, Target};
use fm_explainer::flow::{metrics, rng::Rng, sampler, Dataset};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let steps = if quick { 1500 } else { 5000 };
    let started = std::time::Instant::now();

    println!("## Quality on 8 Gaussians (2,000 training points, 2,000 held out, 2,000 samples)");
    println!("training: MLP 3 x 128 SiLU, batch 256, Adam lr 2e-3, {steps} steps; Euler 100 steps");
    let train_set = Dataset::EightGaussians.sample(2000, 1);
    let test_set = Dataset::EightGaussians.sample(2000, 2);
    let x0 = Rng::new(3).normals(2 * 2000);
    let shape = MlpShape::new(2, 128, 3);
    let mut rows = vec![
        (
            "source N(0, I)",
            metrics::energy_distance(&x0, &test_set, 2),
        ),
        (
            "training set",
            metrics::energy_distance(&train_set, &test_set, 2),
        ),
        (
            "closed form u*",
            metrics::energy_distance(
                &sampler::euler_sample(&train_set, 2, &x0, 100, 0.0),
                &test_set,
                2,
            ),
        ),
    ];
    for (label, target) in [
        ("network, CFM target", Target::Cfm),
        (
            "network, EFM target (M = 256)",
            Target::Efm { samples: 256 },
        ),
    ] {
        let params = mlp::train(&shape, &train_set, target, steps, 2e-3, 4);
        let samples = mlp::sample(&shape, &params, &x0, 100);
        rows.push((label, metrics::energy_distance(&samples, &test_set, 2)));
    }
    println!("| samples | energy distance to held-out |\n|---|---|");
    for (label, e) in &rows {
        println!("| {label} | {e:.4} |");
    }

    println!("\n## Memorization with 20 training points (two moons; 1,000 samples)");
    let small = Dataset::TwoMoons.sample(20, 5);
    let scale = metrics::data_scale(&small, 2);
    let x0 = Rng::new(6).normals(2 * 1000);
    let memorized = |samples: &[f32]| metrics::memorized_fraction(&small, 2, samples, 0.01);
    println!(
        "| sampler | within 1% of the data scale ({:.3}) of a training point |\n|---|---|",
        0.01 * scale
    );
    let closed = sampler::euler_sample(&small, 2, &x0, 100, 0.0);
    println!(
        "| closed form u* (Euler, 100 steps) | {:.3} |",
        memorized(&closed)
    );
    for width in [32, 256] {
        let shape = MlpShape::new(2, width, 3);
        let params = mlp::train(&shape, &small, Target::Cfm, steps, 2e-3, 7);
        let samples = mlp::sample(&shape, &params, &x0, 100);
        println!(
            "| network 3 x {width}, CFM, {steps} steps | {:.3} |",
            memorized(&samples)
        );
    }

    println!("\n## Hybrid model: u* on [0, tau), then the network (40 two-moons points)");
    let train_set = Dataset::TwoMoons.sample(40, 0);
    let test_set = Dataset::TwoMoons.sample(1000, 99);
    let shape = MlpShape::new(2, 64, 3);
    let params = mlp::train(&shape, &train_set, Target::Cfm, steps, 2e-3, 1);
    let x0 = Rng::new(21).normals(2 * 1000);
    println!("| tau | energy distance to held-out | mean distance to nearest training point |\n|---|---|---|");
    for k in 0..=10 {
        let tau = k as f32 / 10.0;
        let samples = sampler::hybrid_sample(&train_set, 2, &x0, 100, tau, |x, t| {
            mlp::forward(&shape, &params, x, &vec![t; x.len() / 2]).0
        });
        println!(
            "| {tau:.1} | {:.4} | {:.4} |",
            metrics::energy_distance(&samples, &test_set, 2),
            metrics::mean_nearest_distance(&train_set, 2, &samples)
        );
    }
    alignment_table();
    println!("\n({:.0} s)", started.elapsed().as_secs_f64());
}

/// The high-dimension measurement on the packed digits (www/assets/digits.bin): the share of 256
/// pairs with cos(u*, x1 - x0) > 0.9 per resolution and t, from the f32 CPU twin beside a
/// float64 reference on the same pairs.
fn alignment_table() {
    use fm_explainer::flow::{alignment, closed_form_velocity_f64, digits};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www/assets/digits.bin");
    let Ok(bytes) = std::fs::read(&path) else {
        println!("\n(no {}: run node tools/pack-digits.mjs)", path.display());
        return;
    };
    let full = digits::unpack(&bytes)
        .expect("a valid digits asset")
        .signed();
    let times: Vec<f32> = (0..10).map(|k| k as f32 / 10.0).collect();
    let pairs = 256;
    println!("\n## Share of 256 pairs with cos(u*, x1 - x0) > 0.9 on 10,000 MNIST digits (seed 2)");
    println!(
        "| dim | {} |",
        times
            .iter()
            .map(|t| format!("t={t:.1}"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(times.len()));
    for &(factor, dim) in &digits::POOLINGS {
        let data = digits::pool(&full, digits::SIDE, factor);
        let ours = alignment::cosine_alignment(&data, dim, &times, pairs, 2);
        let q = alignment::alignment_queries(&data, dim, &times, pairs, 2);
        let share = |c: &[f32]| c.iter().filter(|&&v| v > 0.9).count() as f32 / pairs as f32;
        let mut cells = Vec::new();
        for (k, &t) in times.iter().enumerate() {
            let rows = k * pairs..(k + 1) * pairs;
            let reference: Vec<f32> = closed_form_velocity_f64(
                &data,
                dim,
                &q.points[rows.start * dim..rows.end * dim],
                t as f64,
            )
            .iter()
            .map(|&v| v as f32)
            .collect();
            let theirs = alignment::row_cosines(
                &reference,
                &q.targets[rows.start * dim..rows.end * dim],
                dim,
            );
            cells.push(format!("{:.3} / {:.3}", share(&ours[rows]), share(&theirs)));
        }
        println!("| {dim} | {} |", cells.join(" | "));
    }
    println!("(each cell: f32 CPU twin / float64 reference)");
}
