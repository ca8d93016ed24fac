//! What trained networks do that the closed form does not, on the CPU twin (smaller versions of
//! `cargo xtask quality`, which prints the full measurements).

use fm_explainer::flow::mlp::{self, MlpShape, Target};
use fm_explainer::flow::{metrics, rng::Rng, sampler, Dataset};

#[test]
fn cfm_and_efm_networks_generate_eight_gaussians_equally_well() {
    let train = Dataset::EightGaussians.sample(2000, 1);
    let test = Dataset::EightGaussians.sample(2000, 2);
    let x0 = Rng::new(3).normals(2 * 1000);
    let shape = MlpShape::new(2, 64, 3);
    let source = metrics::energy_distance(&x0, &test, 2);
    let floor = metrics::energy_distance(&train, &test, 2);
    let mut energies = Vec::new();
    for target in [Target::Cfm, Target::Efm { samples: 256 }] {
        let params = mlp::train(&shape, &train, target, 1500, 2e-3, 4);
        let samples = mlp::sample(&shape, &params, &x0, 50);
        energies.push(metrics::energy_distance(&samples, &test, 2));
    }
    let (cfm, efm) = (energies[0], energies[1]);
    eprintln!("energy distance to held-out: source {source:.4}, training set {floor:.4}, CFM {cfm:.4}, EFM {efm:.4}");
    assert!(
        floor < 0.01 * source,
        "training set {floor} vs source {source}"
    );
    for (name, e) in [("CFM", cfm), ("EFM", efm)] {
        assert!(e < 0.1 * source, "{name}: {e} vs the source's {source}");
    }
    // Removing the target's randomness does not make the samples worse.
    assert!(efm < 2.0 * cfm + 0.005, "EFM {efm} vs CFM {cfm}");
}

#[test]
fn a_small_network_does_not_memorize_twenty_points_the_closed_form_does() {
    let data = Dataset::TwoMoons.sample(20, 5);
    let x0 = Rng::new(6).normals(2 * 1000);
    let closed = sampler::euler_sample(&data, 2, &x0, 100, 0.0);
    let closed_fraction = metrics::memorized_fraction(&data, 2, &closed, 0.01);
    let shape = MlpShape::new(2, 32, 3);
    let params = mlp::train(&shape, &data, Target::Cfm, 1500, 2e-3, 7);
    let samples = mlp::sample(&shape, &params, &x0, 100);
    let network_fraction = metrics::memorized_fraction(&data, 2, &samples, 0.01);
    eprintln!("within 1% of the data scale of a training point: closed form {closed_fraction}, width 32 {network_fraction}");
    assert!(closed_fraction >= 0.98, "closed form {closed_fraction}");
    assert!(network_fraction < 0.5, "width 32 {network_fraction}");
    // The network's samples are not noise either: they lie closer to the moons the 20 points
    // came from than the source does, and closer to the training points.
    let moons = Dataset::TwoMoons.sample(2000, 8);
    let network = metrics::energy_distance(&samples, &moons, 2);
    let source = metrics::energy_distance(&x0, &moons, 2);
    let twenty = metrics::energy_distance(&data, &moons, 2);
    eprintln!("energy distance to 2,000 fresh moons points: network {network}, source {source}, the 20 points themselves {twenty}");
    assert!(network < source, "network {network} vs source {source}");
    let near = metrics::mean_nearest_distance(&data, 2, &samples);
    let near_source = metrics::mean_nearest_distance(&data, 2, &x0);
    assert!(
        near < 0.7 * near_source,
        "network {near} vs source {near_source}"
    );
}
