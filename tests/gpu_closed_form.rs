//! The WGSL closed-form kernel against the CPU reference in `flow`, on a real adapter.

mod common;

use fm_explainer::flow::{self, closed_form::max_relative_error, metrics, rng::Rng, Dataset};
use fm_explainer::gpu::{ClosedFormPipeline, TrainingSet};
use pollster::block_on;

const TIMES: [f32; 6] = [0.0, 0.25, 0.5, 0.75, 0.9, 0.99];

fn check(data: &[f32], dim: usize, points: &[f32], times: &[f32], slice_rows: Option<usize>) {
    let Some(gpu) = common::gpu() else { return };
    let pipeline = ClosedFormPipeline::new(&gpu);
    let set = match slice_rows {
        Some(rows) => TrainingSet::upload_in_slices(&gpu, data, dim, rows),
        None => TrainingSet::upload(&gpu, data, dim),
    }
    .unwrap();
    for &t in times {
        let got = block_on(pipeline.velocity(&gpu, &set, points, t)).unwrap();
        let reference = flow::closed_form_velocity_f64(data, dim, points, t as f64);
        let err = max_relative_error(&got, &reference, dim);
        eprintln!(
            "dim {dim}, n {}, m {}, t {t}: max relative error {err:.2e}",
            set.n,
            points.len() / dim
        );
        assert!(err < 1e-3, "dim {dim} t {t}: relative error {err}");
    }
}

/// Each query at its own t (the EFM target) against the f64 reference evaluated query by query.
fn check_per_query_times(data: &[f32], dim: usize, points: &[f32], slice_rows: Option<usize>) {
    let Some(gpu) = common::gpu() else { return };
    let pipeline = ClosedFormPipeline::new(&gpu);
    let set = match slice_rows {
        Some(rows) => TrainingSet::upload_in_slices(&gpu, data, dim, rows),
        None => TrainingSet::upload(&gpu, data, dim),
    }
    .unwrap();
    let m = points.len() / dim;
    let times: Vec<f32> = (0..m).map(|q| TIMES[q % TIMES.len()]).collect();
    let got = block_on(pipeline.velocity_at(&gpu, &set, points, &times)).unwrap();
    let reference: Vec<f64> = points
        .chunks_exact(dim)
        .zip(&times)
        .flat_map(|(x, &t)| flow::closed_form_velocity_f64(data, dim, x, t as f64))
        .collect();
    let err = max_relative_error(&got, &reference, dim);
    eprintln!(
        "per-query t, dim {dim}, n {}, m {m}: max relative error {err:.2e}",
        set.n
    );
    assert!(err < 1e-3, "per-query t, dim {dim}: relative error {err}");
    // The same queries at one shared t must not depend on which path computed them.
    let shared = block_on(pipeline.velocity(&gpu, &set, points, 0.5)).unwrap();
    let halves = block_on(pipeline.velocity_at(&gpu, &set, points, &vec![0.5; m])).unwrap();
    assert_eq!(
        shared, halves,
        "per-query t = 0.5 differs from t = 0.5 for all"
    );
}

#[test]
fn per_query_times_small_kernel() {
    let data = Dataset::EightGaussians.sample(700, 8);
    let points = Rng::new(9).normals(333 * 2);
    check_per_query_times(&data, 2, &points, Some(300));
}

#[test]
fn per_query_times_tiled_kernel() {
    let data = Rng::new(10).normals(1500 * 37);
    let points = Rng::new(11).normals(50 * 37);
    check_per_query_times(&data, 37, &points, Some(1000));
}

#[test]
fn tiny_inputs() {
    // n and m below one tile, odd sizes everywhere.
    let data = Rng::new(1).normals(7 * 3);
    let points = Rng::new(2).normals(5 * 3);
    check(&data, 3, &points, &TIMES, None);
}

#[test]
fn two_d_grid() {
    let data = Dataset::TwoMoons.sample(2000, 3);
    let points = Rng::new(4).normals(900 * 2);
    check(&data, 2, &points, &[0.0, 0.5, 0.9, 0.99, 0.999], None);
}

#[test]
fn sixty_four_d() {
    let data = Rng::new(5).normals(3000 * 64);
    let points = Rng::new(6).normals(64 * 64);
    check(&data, 64, &points, &TIMES, None);
}

#[test]
fn mnist_sized() {
    let data: Vec<f32> = Rng::new(7)
        .normals(10_000 * 784)
        .iter()
        .map(|v| v.tanh())
        .collect();
    let points = Rng::new(8).normals(64 * 784);
    check(&data, 784, &points, &TIMES, None);
}

#[test]
fn several_slices_match_one() {
    // 1,000 points in slices of 300 (4 dispatches, the last partial) carry the softmax state.
    let data = Rng::new(9).normals(1000 * 5);
    let points = Rng::new(10).normals(40 * 5);
    check(&data, 5, &points, &TIMES, Some(300));
}

#[test]
fn paced_upload_in_pieces_is_the_same_set() {
    // Pieces of 37 floats (not a whole number of rows of 6), a pause counted after each.
    let Some(gpu) = common::gpu() else { return };
    let pipeline = ClosedFormPipeline::new(&gpu);
    let (n, dim) = (501, 6);
    let data = Rng::new(13).normals(n * dim);
    let points = Rng::new(14).normals(20 * dim);
    let whole = TrainingSet::upload(&gpu, &data, dim).unwrap();
    let mut pauses = 0;
    let paced = block_on(TrainingSet::upload_paced(&gpu, &data, dim, 37, || {
        pauses += 1;
        std::future::ready(())
    }))
    .unwrap();
    assert_eq!(pauses, (n * dim).div_ceil(37));
    assert_eq!(paced.n, n);
    // Slices of 100 rows written in pieces of 37 floats, which straddle the slices' ends.
    let sliced = TrainingSet::upload_in_slices(&gpu, &data, dim, 100).unwrap();
    let pieces = TrainingSet::empty_in_slices(&gpu, n, dim, 100).unwrap();
    assert_eq!(pieces.slice_rows(), vec![100, 100, 100, 100, 100, 1]);
    for (k, piece) in data.chunks(37).enumerate() {
        pieces.write(&gpu, k * 37, piece);
    }
    for t in [0.0, 0.5, 0.9] {
        let a = block_on(pipeline.velocity(&gpu, &whole, &points, t)).unwrap();
        let b = block_on(pipeline.velocity(&gpu, &paced, &points, t)).unwrap();
        assert_eq!(a, b, "t {t}");
        let reference = flow::closed_form_velocity_f64(&data, dim, &points, t as f64);
        assert!(max_relative_error(&b, &reference, dim) < 1e-3);
        let c = block_on(pipeline.velocity(&gpu, &sliced, &points, t)).unwrap();
        let d = block_on(pipeline.velocity(&gpu, &pieces, &points, t)).unwrap();
        assert_eq!(c, d, "t {t}, in slices");
    }
}

#[test]
fn largest_training_set_in_six_bindings() {
    // 60,000 x 3,072 floats is 737 MB: six storage bindings of at most 128 MiB (the default).
    let (n, dim) = (60_000, 3072);
    let mut rng = Rng::new(11);
    let data: Vec<f32> = (0..n * dim)
        .map(|_| rng.uniform() as f32 * 2.0 - 1.0)
        .collect();
    let points = Rng::new(12).normals(16 * dim);
    check(&data, dim, &points, &[0.5], Some((128 << 20) / (4 * dim)));
}

#[test]
fn euler_sampler_matches_cpu_and_memorizes() {
    let Some(gpu) = common::gpu() else { return };
    let pipeline = ClosedFormPipeline::new(&gpu);
    let data = Dataset::TwoMoons.sample(50, 0);
    let x0 = Rng::new(13).normals(1000 * 2);
    let set = TrainingSet::upload(&gpu, &data, 2).unwrap();
    let got = block_on(pipeline.sample(&gpu, &set, &x0, 100, 0.0)).unwrap();
    let want = flow::euler_sample(&data, 2, &x0, 100, 0.0);
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "GPU and CPU Euler differ by {worst}");
    let scale = metrics::data_scale(&data, 2);
    let frac = metrics::fraction_below(&metrics::nearest_distances(&data, 2, &got), 0.01 * scale);
    eprintln!(
        "memorized: {:.1}% within 1% of the data scale",
        100.0 * frac
    );
    assert!(frac >= 0.98, "{frac}");
    // From t0 = 0.5 with multiple slices as well.
    let sliced = TrainingSet::upload_in_slices(&gpu, &data, 2, 16).unwrap();
    let got = block_on(pipeline.sample(&gpu, &sliced, &x0, 37, 0.5)).unwrap();
    let want = flow::euler_sample(&data, 2, &x0, 37, 0.5);
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "sliced GPU and CPU Euler differ by {worst}");
}

#[test]
fn trajectory_records_every_step_of_one_submission() {
    let Some(gpu) = common::gpu() else { return };
    let pipeline = ClosedFormPipeline::new(&gpu);
    let data = Dataset::Spirals.sample(300, 1);
    let x0 = Rng::new(14).normals(200 * 2);
    let set = TrainingSet::upload_in_slices(&gpu, &data, 2, 128).unwrap();
    let (t_start, dt, steps) = (0.2f32, 0.02f32, 12);
    let frames = block_on(pipeline.trajectory(&gpu, &set, &x0, t_start, dt, steps)).unwrap();
    assert_eq!(frames.len(), steps * x0.len());
    let mut x = x0.clone();
    for (k, frame) in frames.chunks(x0.len()).enumerate() {
        let t = flow::sampler::step_time(t_start, dt, k);
        x = flow::sampler::euler_range(&x, t, dt, 1, |x, t| {
            flow::closed_form_velocity(&data, 2, x, t)
        });
        let worst = frame
            .iter()
            .zip(&x)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "step {k}: GPU and CPU differ by {worst}");
    }
    let last = block_on(pipeline.euler(&gpu, &set, &x0, t_start, dt, steps)).unwrap();
    assert_eq!(&frames[(steps - 1) * x0.len()..], &last[..]);
}

fn worst_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}

#[test]
fn few_queries_split_over_the_points() {
    // m < 16 (one query tile, mostly padding), n not a multiple of any slot or chunk size: the
    // points are spread over many slots and merged with log-sum-exp weights.
    let data = Rng::new(21).normals(1001 * 37);
    let points = Rng::new(22).normals(5 * 37);
    check(&data, 37, &points, &TIMES, None);
    check(&data, 37, &points, &[0.5, 0.99], Some(333));
    let data = Dataset::Rings.sample(1001, 23);
    let points = Rng::new(24).normals(3 * 2);
    check(&data, 2, &points, &TIMES, None);
    check(&data, 2, &points, &[0.5, 0.99], Some(333));
}

#[test]
fn high_dimensional_euler_and_trajectory_ping_pong() {
    let Some(gpu) = common::gpu() else { return };
    let pipeline = ClosedFormPipeline::new(&gpu);
    let dim = 37;
    let data = Rng::new(25).normals(700 * dim);
    let x0 = Rng::new(26).normals(20 * dim);
    let set = TrainingSet::upload_in_slices(&gpu, &data, dim, 300).unwrap();
    let (t_start, dt, steps) = (0.1f32, 0.07f32, 9);
    let frames = block_on(pipeline.trajectory(&gpu, &set, &x0, t_start, dt, steps)).unwrap();
    let mut x = x0.clone();
    for (k, frame) in frames.chunks(x0.len()).enumerate() {
        let t = flow::sampler::step_time(t_start, dt, k);
        x = flow::sampler::euler_range(&x, t, dt, 1, |x, t| {
            flow::closed_form_velocity(&data, dim, x, t)
        });
        let worst = worst_difference(frame, &x);
        assert!(worst < 1e-3, "step {k}: GPU and CPU differ by {worst}");
    }
    let last = block_on(pipeline.euler(&gpu, &set, &x0, t_start, dt, steps)).unwrap();
    assert_eq!(&frames[(steps - 1) * x0.len()..], &last[..]);
}

#[test]
fn a_call_split_over_several_submissions() {
    let Some(gpu) = common::gpu() else { return };
    let mut pipeline = ClosedFormPipeline::new(&gpu);
    let dim = 6;
    let data = Rng::new(27).normals(400 * dim);
    let x0 = Rng::new(28).normals(30 * dim);
    let set = TrainingSet::upload(&gpu, &data, dim).unwrap();
    let whole = block_on(pipeline.sample(&gpu, &set, &x0, 25, 0.0)).unwrap();
    // Three steps' work per submission: 9 submissions.
    pipeline.set_work_per_submission(3 * 30 * 400 * dim as u64);
    let split = block_on(pipeline.sample(&gpu, &set, &x0, 25, 0.0)).unwrap();
    assert_eq!(whole, split);
    let frames = block_on(pipeline.trajectory(&gpu, &set, &x0, 0.0, 0.04, 25)).unwrap();
    assert_eq!(&frames[24 * x0.len()..], &split[..]);
    let want = flow::euler_sample(&data, dim, &x0, 25, 0.0);
    let worst = worst_difference(&split, &want);
    assert!(worst < 1e-3, "GPU and CPU Euler differ by {worst}");
}

#[test]
fn no_step_lands_on_t_one() {
    // Summed in f32 these grids reach t = 1 exactly, where u* is infinite.
    let Some(gpu) = common::gpu() else { return };
    let pipeline = ClosedFormPipeline::new(&gpu);
    for dim in [2, 9] {
        let data = Rng::new(29).normals(50 * dim);
        let x0 = Rng::new(30).normals(8 * dim);
        let set = TrainingSet::upload(&gpu, &data, dim).unwrap();
        for (t0, steps) in [(0.9999f32, 10_000), (0.999_999, 100), (0.999_999_9, 7)] {
            let got = block_on(pipeline.sample(&gpu, &set, &x0, steps, t0)).unwrap();
            assert!(got.iter().all(|v| v.is_finite()), "dim {dim} {t0} {steps}");
            let want = flow::euler_sample(&data, dim, &x0, steps, t0);
            assert!(
                want.iter().all(|v| v.is_finite()),
                "CPU: dim {dim} {t0} {steps}"
            );
        }
    }
}

#[test]
fn a_long_run_reuses_one_bounded_block_of_uniforms() {
    // 600 steps: the uniform block (256 steps at most) is rewritten between submissions; the
    // result matches the CPU's Euler and the trajectory's last frame.
    let Some(gpu) = common::gpu() else { return };
    let pipeline = ClosedFormPipeline::new(&gpu);
    let dim = 3;
    let data = Rng::new(31).normals(120 * dim);
    let x0 = Rng::new(32).normals(20 * dim);
    let set = TrainingSet::upload(&gpu, &data, dim).unwrap();
    let steps = 600;
    let got = block_on(pipeline.sample(&gpu, &set, &x0, steps, 0.0)).unwrap();
    let want = flow::euler_sample(&data, dim, &x0, steps, 0.0);
    let worst = worst_difference(&got, &want);
    assert!(worst < 2e-3, "GPU and CPU Euler differ by {worst}");
    let dt = 1.0 / steps as f32;
    let frames = block_on(pipeline.trajectory(&gpu, &set, &x0, 0.0, dt, steps)).unwrap();
    assert_eq!(&frames[(steps - 1) * x0.len()..], &got[..]);
    // A step in the middle of the second block matches the CPU run stopped there.
    let k = 300;
    let mid = flow::sampler::euler_range(&x0, 0.0, dt, k, |x, t| {
        flow::closed_form_velocity(&data, dim, x, t)
    });
    let worst = worst_difference(&frames[(k - 1) * x0.len()..k * x0.len()], &mid);
    assert!(worst < 2e-3, "step {k}: GPU and CPU differ by {worst}");
}

#[test]
fn kept_scratch_buffers_give_every_call_the_bits_of_a_fresh_pipeline() {
    // One pipeline answers calls of growing and shrinking sizes, on five sets in turn (one more
    // than it keeps bind groups for), with one t and with a t per query, recording or not; with
    // its keep limit lowered, the largest calls take buffers of their own. Each answer is the
    // one a fresh pipeline gives, bit for bit.
    let Some(gpu) = common::gpu() else { return };
    let dim = 8;
    let sizes = [300, 70, 50, 40, 90];
    let data: Vec<Vec<f32>> = sizes
        .iter()
        .enumerate()
        .map(|(s, &n)| Rng::new(40 + s as u64).normals(n * dim))
        .collect();
    let sets: Vec<TrainingSet> = data
        .iter()
        .enumerate()
        .map(|(s, d)| match s {
            1 => TrainingSet::upload_in_slices(&gpu, d, dim, 32),
            _ => TrainingSet::upload(&gpu, d, dim),
        })
        .collect::<Result<_, _>>()
        .unwrap();
    let mut kept = ClosedFormPipeline::new(&gpu);
    // About 20 queries' scratch over set 0: its 64- and 200-query calls use their own.
    kept.set_kept_bytes(20 * dim as u64 * 4 * 40);
    // (set, queries, a t per query, recorded), and what the kept scratch does.
    let calls: [(usize, usize, bool, bool); 16] = [
        (0, 4, false, false),  // made
        (0, 4, false, false),  // the same set's bind groups again
        (1, 4, true, false),   // grown for the times
        (0, 2, false, false),  // set 0's groups, found second in line
        (1, 16, false, true),  // grown for the positions
        (0, 16, false, false), // grown for set 0's partial sums and state alone (more slots)
        (0, 64, false, false), // its own
        (1, 2, true, false),
        (0, 200, true, false), // its own
        (2, 4, false, false),
        (3, 4, true, false),
        (4, 4, false, false), // a fifth set: set 0's groups are dropped
        (0, 4, false, false), // and made again
        (1, 16, true, false),
        (3, 2, false, false),
        (1, 20, false, true),
    ];
    for (k, &(s, m, per_query, record)) in calls.iter().enumerate() {
        let points = Rng::new(50 + k as u64).normals(m * dim);
        let times: Vec<f32> = (0..m).map(|q| TIMES[q % TIMES.len()]).collect();
        let ask = |pipeline: &ClosedFormPipeline| {
            block_on(async {
                match (per_query, record) {
                    (true, _) => pipeline.velocity_at(&gpu, &sets[s], &points, &times).await,
                    (false, true) => {
                        pipeline
                            .trajectory(&gpu, &sets[s], &points, 0.0, 0.25, 3)
                            .await
                    }
                    (false, false) => pipeline.velocity(&gpu, &sets[s], &points, 0.6).await,
                }
            })
            .unwrap()
        };
        let fresh = ask(&ClosedFormPipeline::new(&gpu));
        assert_eq!(ask(&kept), fresh, "call {k}: set {s}, {m} queries");
        assert!(fresh.iter().all(|v| v.is_finite()), "call {k}");
    }
}

/// One cache of kernels per device: a second closed-form pipeline, training pipelines and U-Net
/// pipelines compile nothing, and a set made ready for one pipeline answers through another
/// (their bind groups share one layout).
#[test]
fn a_device_compiles_each_kernel_once() {
    use fm_explainer::gpu::trainer::TrainingPipelines;
    use fm_explainer::gpu::unet::UnetPipelines;
    let Some(gpu) = common::gpu() else { return };
    assert_eq!(gpu.kernels.compiled(), 0);
    let first = ClosedFormPipeline::new(&gpu);
    let closed_form = gpu.kernels.compiled();
    assert_eq!(closed_form, 4, "tiled, small, merge, merge per coordinate");
    let second = ClosedFormPipeline::new(&gpu);
    let _ = TrainingPipelines::new(&gpu);
    let training = gpu.kernels.compiled();
    assert_eq!(training, closed_form + 7, "the MLP's seven kernels");
    let _ = TrainingPipelines::new(&gpu);
    let _ = UnetPipelines::new(&gpu);
    let unet = gpu.kernels.compiled();
    assert!(
        unet > training + 10,
        "the U-Net's kernels: {}",
        unet - training
    );
    let _ = UnetPipelines::new(&gpu);
    assert_eq!(gpu.kernels.compiled(), unet, "nothing compiled twice");
    let data = Dataset::TwoMoons.sample(300, 1);
    let points = Rng::new(2).normals(2 * 50);
    let set = TrainingSet::upload(&gpu, &data, 2).unwrap();
    let a = block_on(first.velocity(&gpu, &set, &points, 0.5)).unwrap();
    let b = block_on(second.velocity(&gpu, &set, &points, 0.5)).unwrap();
    assert_eq!(a, b);
    let reference = flow::closed_form_velocity_f64(&data, 2, &points, 0.5);
    assert!(max_relative_error(&b, &reference, 2) < 1e-3);
}
