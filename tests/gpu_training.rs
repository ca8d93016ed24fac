//! The WGSL training step (batch, forward, loss, backward, Adam) against flow::mlp's CPU twin.

mod common;

use fm_explainer::flow::mlp::{MlpShape, Target};
use fm_explainer::flow::training::TrainOptions;
use fm_explainer::flow::Dataset;
use fm_explainer::gpu::trainer::{cpu_twin, GpuTrainer, TrainingPipelines};
use fm_explainer::gpu::ClosedFormPipeline;
use pollster::block_on;

fn compare(shape: MlpShape, batch: usize, steps: usize, target: Target) {
    let Some(gpu) = common::gpu() else { return };
    let data = Dataset::EightGaussians.sample(500, 1);
    let init = shape.init(2);
    let options = TrainOptions {
        batch,
        lr: 1e-3,
        seed: 3,
        target,
    };
    let mut trainer = GpuTrainer::new(
        &gpu,
        &ClosedFormPipeline::new(&gpu),
        &TrainingPipelines::new(&gpu),
        shape,
        &init,
        &data,
        options,
    )
    .unwrap();
    let gpu_losses = block_on(trainer.train(&gpu, steps)).unwrap();
    let gpu_params = block_on(trainer.parameters(&gpu)).unwrap();

    let (cpu_losses, params) = cpu_twin(&shape, &init, &data, &options, steps);
    for (k, (g, c)) in gpu_losses.iter().zip(&cpu_losses).enumerate() {
        assert!(
            (g - c).abs() <= 1e-4 * c.abs().max(1.0),
            "step {k}: GPU loss {g}, CPU {c}"
        );
    }
    let worst = gpu_params
        .iter()
        .zip(&params)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let moved = params
        .iter()
        .zip(&init)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("{target:?}, {shape:?}, batch {batch}, {steps} steps: losses {gpu_losses:?}; worst weight difference {worst:.2e} (weights moved up to {moved:.2e})");
    assert!(moved > 1e-3, "training did not move the weights");
    assert!(worst <= 1e-5, "GPU and CPU weights differ by {worst}");
}

#[test]
fn five_steps_match_the_cpu_twin() {
    compare(MlpShape::new(2, 32, 3), 64, 5, Target::Cfm);
}

#[test]
fn sizes_over_several_tiles_match_the_cpu_twin() {
    // Every product spans several 64 x 64 output tiles, with ragged edges (and the loss
    // several 1,024-value groups).
    compare(MlpShape::new(4, 130, 2), 300, 3, Target::Cfm);
}

#[test]
fn odd_sizes_match_the_cpu_twin() {
    // Sizes that are not multiples of the 16 x 16 tiles, one hidden layer.
    compare(MlpShape::new(3, 19, 1), 37, 5, Target::Cfm);
}

#[test]
fn efm_steps_match_the_cpu_twin() {
    // The EFM target comes from the closed-form kernel over the batch's x1 and 100 more points.
    compare(MlpShape::new(2, 32, 3), 64, 5, Target::Efm { samples: 100 });
}

#[test]
fn efm_odd_sizes_match_the_cpu_twin() {
    // dim 5 takes the tiled closed-form kernel; no extra points (the batch alone).
    compare(MlpShape::new(5, 19, 2), 37, 5, Target::Efm { samples: 0 });
}

#[test]
fn many_steps_per_submission_reduce_the_loss() {
    let Some(gpu) = common::gpu() else { return };
    let shape = MlpShape::new(2, 64, 2);
    let data = Dataset::EightGaussians.sample(2000, 4);
    let options = TrainOptions {
        batch: 256,
        lr: 2e-3,
        seed: 6,
        target: Target::Cfm,
    };
    let mut trainer = GpuTrainer::new(
        &gpu,
        &ClosedFormPipeline::new(&gpu),
        &TrainingPipelines::new(&gpu),
        shape,
        &shape.init(5),
        &data,
        options,
    )
    .unwrap();
    // 600 steps span three submissions (256 + 256 + 88).
    let losses = block_on(trainer.train(&gpu, 600)).unwrap();
    assert_eq!(losses.len(), 600);
    assert_eq!(trainer.step, 600);
    let early = losses[..50].iter().sum::<f32>() / 50.0;
    let late = losses[500..].iter().sum::<f32>() / 100.0;
    eprintln!("loss {early} -> {late}");
    assert!(late < 0.85 * early, "loss {early} -> {late}");
}

#[test]
fn oversized_trainers_are_refused_up_front() {
    let Some(gpu) = common::gpu() else { return };
    // 8192 rows x 8192 columns of f32 is 256 MiB: more than one binding holds by default.
    let shape = MlpShape::new(8192, 8, 1);
    let data = vec![0.0f32; 8192];
    let options = TrainOptions {
        batch: 8192,
        lr: 1e-3,
        seed: 0,
        target: Target::Cfm,
    };
    let err = GpuTrainer::new(
        &gpu,
        &ClosedFormPipeline::new(&gpu),
        &TrainingPipelines::new(&gpu),
        shape,
        &shape.init(0),
        &data,
        options,
    )
    .err()
    .expect("an oversized trainer was accepted");
    assert!(err.to_string().contains("exceeds one binding"), "{err}");
}
