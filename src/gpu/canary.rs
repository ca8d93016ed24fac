//! A few milliseconds of every kind of work on the device at hand, compared with the CPU twin in
//! `flow`, before a page trusts a GPU with its figures: a driver that miscompiles a kernel or
//! races where the specification says it may is declined like a missing GPU.

use super::kernel_report::{training_error, TRAINING_TOLERANCE};
use super::trainer::{cpu_twin, GpuTrainer, TrainingPipelines};
use super::{ClosedFormPipeline, Gpu, GpuError, TrainingSet};
use crate::flow::training::TrainOptions;
use crate::flow::{self, mlp, rng::Rng};

/// Largest relative error of a closed-form row accepted (the native kernel tests hold 1e-3 on
/// every size; the canary's sizes come out near 1e-6 on software adapters).
pub const CLOSED_FORM_TOLERANCE: f64 = 1e-3;

/// What the canary measured.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryReport {
    /// (dim, worst relative error) of each closed-form case.
    pub closed_form: Vec<(usize, f64)>,
    /// The training steps' `kernel_report::training_error`.
    pub training: f64,
}

/// How the canary's GPU results are spoiled on purpose (tests of the decline path only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spoil {
    None,
    /// One closed-form value is moved by 5% of its row's length.
    ClosedForm,
}

/// The cases: 64 queries against 512 points at dims 37 (tiled kernel) and 2 (register kernel),
/// each query at one of t = 0.1, 0.9, 0.999; two CFM training steps of a small MLP.
pub async fn run(
    gpu: &Gpu,
    closed_form: &ClosedFormPipeline,
    training: &TrainingPipelines,
    spoil: Spoil,
) -> Result<CanaryReport, GpuError> {
    const TIMES: [f32; 3] = [0.1, 0.9, 0.999];
    let mut report = CanaryReport {
        closed_form: Vec::new(),
        training: 0.0,
    };
    for (case, dim) in [37usize, 2].into_iter().enumerate() {
        let data: Vec<f32> = Rng::new(40 + case as u64)
            .normals(512 * dim)
            .iter()
            .map(|v| v.tanh())
            .collect();
        let points = Rng::new(50 + case as u64).normals(64 * dim);
        let times: Vec<f32> = (0..64).map(|q| TIMES[q % TIMES.len()]).collect();
        let set = TrainingSet::upload(gpu, &data, dim)?;
        let mut got = closed_form.velocity_at(gpu, &set, &points, &times).await?;
        if spoil == Spoil::ClosedForm {
            let norm = got[..dim].iter().map(|v| v * v).sum::<f32>().sqrt();
            got[0] += 0.05 * norm;
        }
        // Row errors are relative to the largest rows of their own t: |u*| grows like
        // 1 / (1 - t), and rows at t = 0.999 would hide an error at t = 0.1.
        let mut err = 0.0f64;
        for (g, &t) in TIMES.iter().enumerate() {
            let rows: Vec<usize> = (g..64).step_by(TIMES.len()).collect();
            let pick = |v: &[f32]| -> Vec<f32> {
                rows.iter()
                    .flat_map(|&q| v[q * dim..(q + 1) * dim].to_vec())
                    .collect()
            };
            let reference: Vec<f64> = rows
                .iter()
                .flat_map(|&q| {
                    let x = &points[q * dim..(q + 1) * dim];
                    flow::closed_form_velocity_f64(&data, dim, x, t as f64)
                })
                .collect();
            err = err.max(flow::closed_form::max_relative_error(
                &pick(&got),
                &reference,
                dim,
            ));
        }
        if !within(err, CLOSED_FORM_TOLERANCE) {
            return Err(GpuError::Canary(format!(
                "the closed form at dim {dim} is off by {err:.1e} (relative; at most \
                 {CLOSED_FORM_TOLERANCE:.0e} expected)"
            )));
        }
        report.closed_form.push((dim, err));
    }

    let shape = mlp::MlpShape::new(2, 32, 2);
    let data = flow::Dataset::TwoMoons.sample(256, 7);
    let init = shape.init(8);
    let options = TrainOptions {
        batch: 64,
        lr: 1e-3,
        seed: 9,
        target: mlp::Target::Cfm,
    };
    let mut trainer = GpuTrainer::new(gpu, closed_form, training, shape, &init, &data, options)?;
    let losses = trainer.train(gpu, 2).await?;
    let weights = trainer.parameters(gpu).await?;
    let (cpu_losses, params) = cpu_twin(&shape, &init, &data, &options, 2);
    let err = training_error(&losses, &weights, &cpu_losses, &params, &init);
    if !within(err, TRAINING_TOLERANCE) {
        return Err(GpuError::Canary(format!(
            "two training steps are off by {err:.1e} (relative; at most {TRAINING_TOLERANCE:.0e} \
             expected): losses {losses:?} where the CPU has {cpu_losses:?}"
        )));
    }
    report.training = err;
    Ok(report)
}

/// `value <= limit`, false for NaN: a NaN result fails the check.
fn within<T: PartialOrd>(value: T, limit: T) -> bool {
    matches!(
        value.partial_cmp(&limit),
        Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
    )
}

/// The digits' U-Net on the device that will run it (the digits lab's worker asks for a device of
/// its own): two Euler steps of two digits, every operation of the network's graph in each, and
/// one training step of a batch of two, against flow::unet at the kernel report's tolerances.
/// Run after `run`, so that a device that computes the network has passed the page's start-up
/// check and this one.
pub async fn unet(gpu: &Gpu) -> Result<(), GpuError> {
    use super::kernel_report::{relative, UnetSamples, UnetStep};
    use super::kernel_report::{UNET_STEP_TOLERANCE, UNET_TOLERANCE};
    let pipelines = super::unet::UnetPipelines::new(gpu);
    let samples = UnetSamples::new(2, 2);
    let network = samples.network(gpu)?;
    let err = relative(
        &samples.gpu(&network, gpu, &pipelines).await?,
        &samples.cpu(),
    );
    if !within(err, UNET_TOLERANCE) {
        return Err(GpuError::Canary(format!(
            "the digits' network is off by {err:.1e} (relative; at most {UNET_TOLERANCE:.0e} \
             expected)"
        )));
    }
    let step = UnetStep::new(8, 23);
    let err = step.error(&step.gpu(gpu, &pipelines).await?, &step.cpu());
    if !within(err, UNET_STEP_TOLERANCE) {
        return Err(GpuError::Canary(format!(
            "a training step of the digits' network is off by {err:.1e} of Adam's rate (at most \
             {UNET_STEP_TOLERANCE} expected)"
        )));
    }
    Ok(())
}
