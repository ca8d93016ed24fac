//! The native half of `cargo xtask bench`: the same WGSL kernels through wgpu's native backend
//! (Vulkan: a hardware GPU where there is one, lavapipe otherwise), timed per call with readback,
//! beside the CPU path (`flow::ClosedForm`, `flow::mlp`) on the same machine; and how many
//! workgroups each closed-form call dispatches, before (queries only, 16 per workgroup) and after
//! the split over the training points.
//!
//! `--plan` prints only the workgroup table (no adapter needed).

use fm_explainer::flow::digit_training::{self, DigitOptions, DigitTraining};
use fm_explainer::flow::mlp::{self, MlpShape, Target};
use fm_explainer::flow::training::TrainOptions;
use fm_explainer::flow::unet::{Unet, UnetShape};
use fm_explainer::flow::{rng::Rng, ClosedForm};
use fm_explainer::gpu::closed_form::{Plan, TARGET_WORKGROUPS};
use fm_explainer::gpu::digit_trainer::GpuDigitTraining;
use fm_explainer::gpu::trainer::{GpuTrainer, TrainingPipelines};
use fm_explainer::gpu::unet::{GpuUnet, UnetPipelines};
use fm_explainer::gpu::{ClosedFormPipeline, Gpu, TrainingSet};
use pollster::block_on;
use std::time::Instant;

/// The calls the issue names: the benchmark's, the digit figure's, the alignment figure's.
const CASES: [(&str, usize, usize, usize); 3] = [
    ("benchmark", 64, 10_000, 784),
    ("digit figure", 4, 10_000, 784),
    ("alignment figure", 2_560, 10_000, 784),
];
const RUNS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<F: FnMut()>(mut f: F) -> f64 {
    f();
    median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

fn main() {
    println!("## Closed-form workgroups per call on a hardware GPU (first pass; the merge pass adds one per query)");
    println!(
        "{:<18} {:>6} {:>7} {:>5} {:>8} {:>8} {:>6} {:>6}",
        "call", "m", "n", "dim", "before", "after", "slots", "span"
    );
    for (name, m, n, dim) in CASES {
        // The default binding (128 MiB) holds the 10,000 digits in one slice.
        let plan = Plan::new(
            m as u64,
            dim as u64,
            &[n as u32],
            32 << 20,
            TARGET_WORKGROUPS,
        );
        println!(
            "{name:<18} {m:>6} {n:>7} {dim:>5} {:>8} {:>8} {:>6} {:>6}",
            m.div_ceil(16),
            plan.workgroups(),
            plan.slots,
            plan.span
        );
    }
    if std::env::args().any(|a| a == "--plan") {
        return;
    }

    let gpu = match block_on(Gpu::request(true)) {
        Ok(gpu) => gpu,
        Err(e) => {
            println!("\nno adapter, no timings: {e}");
            return;
        }
    };
    println!(
        "\n## Wall time per call with readback, median of {RUNS}: {} ({:?}) against the CPU path",
        gpu.adapter, gpu.backend
    );
    let pipeline = ClosedFormPipeline::new(&gpu);
    let data: Vec<f32> = Rng::new(1)
        .normals(10_000 * 784)
        .iter()
        .map(|v| v.tanh())
        .collect();
    let set = TrainingSet::upload(&gpu, &data, 784).expect("upload");
    let cpu = ClosedForm::new(&data, 784);
    println!(
        "{:<34} {:>10} {:>10} {:>8}",
        "call", "GPU ms", "CPU ms", "CPU/GPU"
    );
    for (name, m, _, dim) in CASES {
        let points = Rng::new(2).normals(m * dim);
        let g = time(|| {
            block_on(pipeline.velocity(&gpu, &set, &points, 0.5)).expect("velocity");
        });
        let c = time(|| {
            cpu.velocity(&points, 0.5);
        });
        println!(
            "{:<34} {g:>10.1} {c:>10.1} {:>8.2}",
            format!("closed form, {name} (m {m})"),
            c / g
        );
    }
    let x0 = Rng::new(3).normals(4 * 784);
    let g = time(|| {
        block_on(pipeline.trajectory(&gpu, &set, &x0, 0.0, 1.0 / 40.0, 40)).expect("trajectory");
    });
    let c = time(|| {
        let mut x = x0.clone();
        for k in 0..40 {
            let t = fm_explainer::flow::sampler::step_time(0.0, 1.0 / 40.0, k);
            x = fm_explainer::flow::sampler::euler_range(&x, t, 1.0 / 40.0, 1, |x, t| {
                cpu.velocity(x, t)
            });
        }
    });
    println!(
        "{:<34} {g:>10.1} {c:>10.1} {:>8.2}",
        "trajectory, 40 steps (m 4)",
        c / g
    );

    // Training: the browser bench's MLP (3 x 256 SiLU on 2-D data, batch 1,024, CFM).
    let shape = MlpShape::new(2, 256, 3);
    let moons: Vec<f32> = data[..2 * 2000].to_vec();
    let options = TrainOptions {
        batch: 1024,
        lr: 1e-3,
        seed: 1,
        target: Target::Cfm,
    };
    let steps = 20;
    let mut trainer = GpuTrainer::new(
        &gpu,
        &pipeline,
        &TrainingPipelines::new(&gpu),
        shape,
        &shape.init(1),
        &moons,
        options,
    )
    .expect("trainer");
    let g = time(|| {
        block_on(trainer.train(&gpu, steps)).expect("train");
    });
    let mut params = shape.init(1);
    let mut adam = mlp::Adam::new(params.len(), options.lr);
    let c = time(|| {
        for _ in 0..steps {
            mlp::train_step(&shape, &mut params, &mut adam, &moons, 1024, 1, Target::Cfm);
        }
    });
    println!(
        "{:<34} {:>10.1} {:>10.1} {:>8.2}   (steps/s: GPU {:.1}, CPU {:.1})",
        format!("training, {steps} steps"),
        g,
        c,
        c / g,
        steps as f64 * 1e3 / g,
        steps as f64 * 1e3 / c
    );

    // The digits' U-Net: 16 digits (the figure's) and 256 (the measures'), 20 Euler steps, on
    // the GPU in one submission per binding-sized block, against the CPU twin on one thread.
    let net = Unet::new(UnetShape::DIGITS);
    let params = net.init_for_comparison(1);
    let pipelines = UnetPipelines::new(&gpu);
    let on_gpu = GpuUnet::new(&gpu, net.clone(), &params).expect("U-Net weights");
    // A software adapter takes minutes for 256 digits (lavapipe: about a second a pass of 16).
    let sizes: &[usize] = if gpu.software { &[16] } else { &[16, 256] };
    for &m in sizes {
        let x0 = Rng::new(4).normals(m * net.shape.dim());
        let g = time(|| {
            block_on(on_gpu.sample(&gpu, &pipelines, &x0, 20)).expect("U-Net samples");
        });
        // The CPU twin on 16 digits, scaled (it is linear in the digits).
        let c = time(|| {
            digit_training::sample(&net, &params, &x0[..16 * net.shape.dim()], 20);
        }) * m as f64
            / 16.0;
        println!(
            "{:<34} {g:>10.1} {c:>10.1} {:>8.2}",
            format!("U-Net samples, 20 steps (m {m})"),
            c / g
        );
    }

    // A training step of the digits' U-Net (the gradient, clipping, Adam, the average) at the
    // page's batches, on random images: the time does not depend on their values.
    let data = Rng::new(5).normals(1_000 * net.shape.dim());
    let batches: &[usize] = if gpu.software { &[4] } else { &[4, 64] };
    for &batch in batches {
        let options = DigitOptions {
            batch,
            ..DigitOptions::SHIPPED
        };
        let mut on_gpu = GpuDigitTraining::new(&gpu, UnetShape::DIGITS, data.clone(), options)
            .expect("U-Net training");
        let g = time(|| {
            block_on(on_gpu.train_step(&gpu, &pipelines)).expect("a training step");
        });
        let mut on_cpu = DigitTraining::new(UnetShape::DIGITS, data.clone(), options);
        let c = time(|| {
            on_cpu.train_step();
        });
        println!(
            "{:<34} {g:>10.1} {c:>10.1} {:>8.2}   (steps/s: GPU {:.2}, CPU {:.2})",
            format!("U-Net training step (batch {batch})"),
            c / g,
            1e3 / g,
            1e3 / c
        );
    }
}
