//! Every kernel on the device at hand against its CPU twin, with times: what `/gpu-check.html`
//! shows a maintainer on new hardware, and what the native tests require on lavapipe.

use super::trainer::{cpu_twin, GpuTrainer, TrainingPipelines};
use super::{ClosedFormPipeline, Gpu, GpuError, TrainingSet};
use crate::flow::training::TrainOptions;
use crate::flow::{self, alignment, closed_form, mlp, rng::Rng, sampler, Dataset};

/// One line of the report.
#[derive(Debug, Clone)]
pub struct KernelRow {
    pub kernel: &'static str,
    pub sizes: String,
    /// The worst error against the CPU twin (or its float64 reference), in `unit`.
    pub error: f64,
    pub tolerance: f64,
    pub unit: &'static str,
    /// Wall time of one call with readback, after a first call that compiled the pipelines.
    pub gpu_ms: f64,
    pub cpu_ms: f64,
    /// Why the GPU call failed, if it did.
    pub failure: Option<String>,
}

impl KernelRow {
    pub fn passed(&self) -> bool {
        self.failure.is_none() && self.error <= self.tolerance
    }
}

/// A clock in milliseconds (`performance.now()` in a page, `Instant` natively).
pub type Clock<'a> = &'a dyn Fn() -> f64;

struct Case {
    kernel: &'static str,
    sizes: String,
    tolerance: f64,
    unit: &'static str,
}

/// Times `gpu` (twice: the first call compiles) and `cpu`, and measures `error(gpu, cpu)`.
async fn row<G, C, E>(now: Clock<'_>, case: Case, mut gpu: G, cpu: C, error: E) -> KernelRow
where
    G: AsyncFnMut() -> Result<Vec<f32>, GpuError>,
    C: FnOnce() -> Vec<f32>,
    E: FnOnce(&[f32], &[f32]) -> f64,
{
    let start = now();
    let want = cpu();
    let cpu_ms = now() - start;
    let mut out = KernelRow {
        kernel: case.kernel,
        sizes: case.sizes,
        error: f64::NAN,
        tolerance: case.tolerance,
        unit: case.unit,
        gpu_ms: f64::NAN,
        cpu_ms,
        failure: None,
    };
    let got = match gpu().await {
        Ok(_) => {
            let start = now();
            let got = gpu().await;
            out.gpu_ms = now() - start;
            got
        }
        Err(e) => Err(e),
    };
    match got {
        Ok(got) if got.len() == want.len() => out.error = error(&got, &want),
        Ok(got) => {
            out.failure = Some(format!(
                "{} values where {} were due",
                got.len(),
                want.len()
            ))
        }
        Err(e) => out.failure = Some(e.to_string()),
    }
    if out.error.is_nan() && out.failure.is_none() {
        out.failure = Some("the error is NaN".into());
    }
    out
}

/// How far GPU training is from the CPU twin: the largest relative difference of a step's loss,
/// or of the whole update of the weights, ||(w_gpu - w0) - (w_cpu - w0)|| / ||w_cpu - w0||. Not
/// weight by weight: Adam moves a weight by about one learning rate whatever the size of its
/// gradient, so a gradient of 1e-9 that rounds to the other sign on another GPU moves that weight
/// the other way, while the update as a whole stays the same.
pub fn training_error(
    gpu_losses: &[f32],
    gpu_weights: &[f32],
    cpu_losses: &[f32],
    cpu_weights: &[f32],
    init: &[f32],
) -> f64 {
    let loss = gpu_losses
        .iter()
        .zip(cpu_losses)
        .map(|(&g, &c)| (g as f64 - c as f64).abs() / (c as f64).abs().max(1e-6))
        .fold(0.0, f64::max);
    let squares = |a: &[f32], b: &[f32]| -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
            .sum()
    };
    let update = (squares(gpu_weights, cpu_weights) / squares(cpu_weights, init).max(1e-30)).sqrt();
    let worst = loss.max(update);
    if worst.is_nan() || gpu_weights.len() != cpu_weights.len() {
        f64::INFINITY
    } else {
        worst
    }
}

/// The largest accepted `training_error`: a broken kernel is off by about 1.
pub const TRAINING_TOLERANCE: f64 = 0.02;

/// The largest |a_i - b_i|; infinite where either is NaN.
pub fn worst_abs(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = (x - y).abs() as f64;
            if d.is_nan() {
                f64::INFINITY
            } else {
                d
            }
        })
        .fold(0.0, f64::max)
}

/// The options of the trainers that only evaluate their network (the sampling rows).
const EVAL: TrainOptions = TrainOptions {
    batch: 64,
    lr: 1e-3,
    seed: 5,
    target: mlp::Target::Cfm,
};

/// Every kernel, small and large, on `gpu`.
pub async fn run(gpu: &Gpu, now: Clock<'_>) -> Vec<KernelRow> {
    let closed_form = ClosedFormPipeline::new(gpu);
    let training = TrainingPipelines::new(gpu);
    let mut rows = Vec::new();

    // The closed form against the float64 reference: the register kernel (dim 2), the tiled one
    // (dim 64, and the digit figures' call: 4 queries over 10,000 of the MNIST size), and
    // per-query times (the EFM target's mode).
    for (kernel, n, dim, m, t) in [
        ("closed form, register kernel", 2000, 2, 900, 0.9f32),
        ("closed form, tiled kernel", 3000, 64, 64, 0.5),
        ("closed form, tiled kernel", 10_000, 784, 4, 0.5),
    ] {
        let data: Vec<f32> = Rng::new(1)
            .normals(n * dim)
            .iter()
            .map(|v| v.tanh())
            .collect();
        let points = Rng::new(2).normals(m * dim);
        let set = TrainingSet::upload(gpu, &data, dim);
        let reference = closed_form::closed_form_velocity_f64(&data, dim, &points, t as f64);
        let case = Case {
            kernel,
            sizes: format!("n {n}, dim {dim}, m {m}, t {t}"),
            tolerance: 1e-3,
            unit: "relative",
        };
        let cpu = flow::ClosedForm::new(&data, dim);
        rows.push(
            row(
                now,
                case,
                async || {
                    closed_form
                        .velocity(gpu, set.as_ref().map_err(Clone::clone)?, &points, t)
                        .await
                },
                || cpu.velocity(&points, t),
                |got, _| closed_form::max_relative_error(got, &reference, dim),
            )
            .await,
        );
    }
    {
        let (n, dim, m) = (1500, 37, 48);
        let data = Rng::new(3).normals(n * dim);
        let points = Rng::new(4).normals(m * dim);
        let times: Vec<f32> = (0..m).map(|q| [0.1, 0.5, 0.9, 0.99][q % 4]).collect();
        let set = TrainingSet::upload(gpu, &data, dim);
        let reference: Vec<f64> = points
            .chunks_exact(dim)
            .zip(&times)
            .flat_map(|(x, &t)| closed_form::closed_form_velocity_f64(&data, dim, x, t as f64))
            .collect();
        let cpu = flow::ClosedForm::new(&data, dim);
        let case = Case {
            kernel: "closed form, a t per query",
            sizes: format!("n {n}, dim {dim}, m {m}, t in 0.1..0.99"),
            tolerance: 1e-3,
            unit: "relative",
        };
        rows.push(
            row(
                now,
                case,
                async || {
                    let set = set.as_ref().map_err(Clone::clone)?;
                    closed_form.velocity_at(gpu, set, &points, &times).await
                },
                || cpu.velocity_at(&points, &times),
                |got, _| closed_form::max_relative_error(got, &reference, dim),
            )
            .await,
        );
    }

    // Euler sampling (all steps in one submission) and a trajectory (every step read back).
    for (kernel, n, dim, m, steps) in [
        ("Euler sampling", 50, 2, 1000, 100),
        ("Euler sampling", 300, 37, 40, 30),
        ("trajectory", 300, 37, 20, 12),
    ] {
        let data = if dim == 2 {
            Dataset::TwoMoons.sample(n, 5)
        } else {
            Rng::new(5).normals(n * dim)
        };
        let x0 = Rng::new(6).normals(m * dim);
        let set = TrainingSet::upload(gpu, &data, dim);
        let cpu = flow::ClosedForm::new(&data, dim);
        let dt = 1.0 / steps as f32;
        let case = Case {
            kernel,
            sizes: format!("n {n}, dim {dim}, m {m}, {steps} steps"),
            tolerance: 1e-3,
            unit: "absolute",
        };
        let record = kernel == "trajectory";
        rows.push(
            row(
                now,
                case,
                async || {
                    let set = set.as_ref().map_err(Clone::clone)?;
                    if record {
                        closed_form.trajectory(gpu, set, &x0, 0.0, dt, steps).await
                    } else {
                        closed_form.euler(gpu, set, &x0, 0.0, dt, steps).await
                    }
                },
                || {
                    // The pages' own driver, with a velocity that never waits: ready at once.
                    let steps =
                        sampler::euler_awaiting(&x0, 0.0, dt, steps, record, async |x, t| {
                            Ok::<_, std::convert::Infallible>(cpu.velocity(x, t))
                        });
                    let Some(Ok(x)) = futures_util::FutureExt::now_or_never(steps) else {
                        unreachable!("a velocity that never waits is ready at once")
                    };
                    x
                },
                worst_abs,
            )
            .await,
        );
    }

    // The alignment measurement: u* at each pair's x_t and t, then cosines with x1 - x0.
    {
        let (n, dim, pairs) = (2000, 49, 128);
        let data: Vec<f32> = Rng::new(7)
            .normals(n * dim)
            .iter()
            .map(|v| v.tanh())
            .collect();
        let times = [0.1f32, 0.5, 0.9];
        let q = alignment::alignment_queries(&data, dim, &times, pairs, 3);
        let set = TrainingSet::upload(gpu, &data, dim);
        let cpu = flow::ClosedForm::new(&data, dim);
        let case = Case {
            kernel: "alignment cosines",
            sizes: format!("n {n}, dim {dim}, {pairs} pairs x 3 times"),
            tolerance: 1e-3,
            unit: "absolute",
        };
        rows.push(
            row(
                now,
                case,
                async || {
                    let set = set.as_ref().map_err(Clone::clone)?;
                    let u = closed_form
                        .velocity_at(gpu, set, &q.points, &q.times)
                        .await?;
                    Ok(alignment::row_cosines(&u, &q.targets, dim))
                },
                || alignment::row_cosines(&cpu.velocity_at(&q.points, &q.times), &q.targets, dim),
                worst_abs,
            )
            .await,
        );
    }

    // Training steps: batch draw, GEMMs, loss, backward, Adam (and the closed form for EFM).
    for (kernel, target) in [
        ("training steps, CFM", mlp::Target::Cfm),
        ("training steps, EFM", mlp::Target::Efm { samples: 256 }),
    ] {
        let shape = mlp::MlpShape::new(2, 96, 3);
        let data = Dataset::EightGaussians.sample(1000, 8);
        let options = TrainOptions {
            batch: 256,
            lr: 1e-3,
            seed: 4,
            target,
        };
        let steps = 5;
        let case = Case {
            kernel,
            sizes: format!("MLP 3 x 96, batch 256, {steps} steps"),
            tolerance: TRAINING_TOLERANCE,
            unit: "relative",
        };
        let init = shape.init(9);
        rows.push(
            row(
                now,
                case,
                async || {
                    let mut trainer = GpuTrainer::new(
                        gpu,
                        &closed_form,
                        &training,
                        shape,
                        &init,
                        &data,
                        options,
                    )?;
                    let mut out = trainer.train(gpu, steps).await?;
                    out.extend(trainer.parameters(gpu).await?);
                    Ok(out)
                },
                || {
                    let (mut out, params) = cpu_twin(&shape, &init, &data, &options, steps);
                    out.extend(params);
                    out
                },
                |got, want| {
                    let (gl, gp) = got.split_at(steps);
                    let (cl, cp) = want.split_at(steps);
                    training_error(gl, gp, cl, cp, &init)
                },
            )
            .await,
        );
    }

    // The network's samples where it trains: forward passes (or, while t < tau, the closed form
    // of a small set) and Euler steps in one submission, against flow::sampler::HybridPath.
    for (kernel, dim, hidden, m, steps, tau, frames) in [
        ("network samples, hybrid", 2, 64, 300, 20, 0.4f32, true),
        ("network samples", 5, 96, 1000, 30, 0.0, false),
    ] {
        let shape = mlp::MlpShape::new(dim, hidden, 3);
        let data = match dim {
            2 => Dataset::TwoMoons.sample(50, 11),
            _ => Rng::new(11).normals(50 * dim),
        };
        let params = shape.init(12);
        let x0 = Rng::new(13).normals(m * dim);
        let case = Case {
            kernel,
            sizes: format!(
                "MLP 3 x {hidden}, dim {dim}, m {m}, {steps} steps, tau {tau}{}",
                if frames { ", every frame" } else { "" }
            ),
            tolerance: 1e-4,
            unit: "absolute",
        };
        let trainer = GpuTrainer::new(gpu, &closed_form, &training, shape, &params, &data, EVAL);
        rows.push(
            row(
                now,
                case,
                async || {
                    let trainer = trainer.as_ref().map_err(Clone::clone)?;
                    trainer
                        .path(gpu, &closed_form, &x0, steps, (&data, tau), frames)
                        .await
                },
                || {
                    let path = sampler::HybridPath::new(&data, dim, &x0, steps, tau, frames);
                    path.run(|x, t| mlp::forward(&shape, &params, x, &vec![t; x.len() / dim]).0)
                },
                worst_abs,
            )
            .await,
        );
    }
    // The network's velocity at rows each at its own time (trainer.velocity on the GPU).
    {
        let (dim, hidden, m) = (3, 128, 700);
        let shape = mlp::MlpShape::new(dim, hidden, 3);
        let data = Rng::new(14).normals(40 * dim);
        let params = shape.init(15);
        let x = Rng::new(16).normals(m * dim);
        let t: Vec<f32> = (0..m).map(|q| (q as f32 * 0.37).fract()).collect();
        let case = Case {
            kernel: "network velocity",
            sizes: format!("MLP 3 x {hidden}, dim {dim}, {m} rows, a t per row"),
            tolerance: 1e-4,
            unit: "absolute",
        };
        let trainer = GpuTrainer::new(gpu, &closed_form, &training, shape, &params, &data, EVAL);
        rows.push(
            row(
                now,
                case,
                async || {
                    let trainer = trainer.as_ref().map_err(Clone::clone)?;
                    trainer.velocity(gpu, &x, &t).await
                },
                || mlp::forward(&shape, &params, &x, &t).0,
                worst_abs,
            )
            .await,
        );
    }
    // The digits' U-Net natively only until a figure runs it: in the module it would take
    // 17 KB of the 400 KB (gzipped) budget for a network the page does not use yet.
    rows.push(unet_row(gpu, now).await);
    rows.push(unet_gradient_row(gpu, now).await);
    rows.push(unet_step_row(gpu, now).await);
    rows
}

/// Largest relative error accepted of the digits' U-Net's samples, and of a training step in
/// units of Adam's rate: the report's rows and the start-up check of a device that will run the
/// network (`canary::unet`) alike.
pub const UNET_TOLERANCE: f64 = 1e-4;
pub const UNET_STEP_TOLERANCE: f64 = 0.05;

/// The largest difference relative to `want`'s largest value (infinite where the lengths differ).
pub fn relative(got: &[f32], want: &[f32]) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    let scale = want.iter().fold(0.0f32, |s, v| s.max(v.abs())) as f64;
    worst_abs(got, want) / scale.max(1e-6)
}

/// `m` digits through `steps` Euler steps of the digits' U-Net (shaders/unet.wgsl), from the
/// comparison initialisation: every operation of the graph in each step.
pub struct UnetSamples {
    net: crate::flow::unet::Unet,
    params: Vec<f32>,
    x0: Vec<f32>,
    steps: usize,
}

impl UnetSamples {
    pub fn new(m: usize, steps: usize) -> UnetSamples {
        use crate::flow::unet::{Unet, UnetShape};
        let net = Unet::new(UnetShape::DIGITS);
        let params = net.init_for_comparison(17);
        let x0 = Rng::new(18).normals(m * net.shape.dim());
        UnetSamples {
            net,
            params,
            x0,
            steps,
        }
    }

    /// The network on the device (its weights uploaded: not part of a timing).
    pub fn network(&self, gpu: &Gpu) -> Result<super::unet::GpuUnet, GpuError> {
        super::unet::GpuUnet::new(gpu, self.net.clone(), &self.params)
    }

    /// The samples of `network` (`network()`'s) on the device.
    pub async fn gpu(
        &self,
        network: &super::unet::GpuUnet,
        gpu: &Gpu,
        pipelines: &super::unet::UnetPipelines,
    ) -> Result<Vec<f32>, GpuError> {
        network.sample(gpu, pipelines, &self.x0, self.steps).await
    }

    pub fn cpu(&self) -> Vec<f32> {
        crate::flow::digit_training::sample(&self.net, &self.params, &self.x0, self.steps)
    }
}

/// One training step of the digits' U-Net (the gradient, then shaders/unet_update.wgsl's
/// clipping, Adam and average) on `rows` digit-like rows (seeded by `seed`), batch 2, against
/// `DigitTraining`'s from the same initialisation and batch.
pub struct UnetStep {
    data: Vec<f32>,
    options: crate::flow::digit_training::DigitOptions,
}

impl UnetStep {
    const SHAPE: crate::flow::unet::UnetShape = crate::flow::unet::UnetShape::DIGITS;

    pub fn new(rows: usize, seed: u64) -> UnetStep {
        let data = Rng::new(seed)
            .normals(rows * Self::SHAPE.dim())
            .iter()
            .map(|v| v.clamp(-1.0, 1.0))
            .collect();
        let options = crate::flow::digit_training::DigitOptions {
            batch: 2,
            warmup: 1,
            ..crate::flow::digit_training::DigitOptions::SHIPPED
        };
        UnetStep { data, options }
    }

    /// The weights after the step on the device.
    pub async fn gpu(
        &self,
        gpu: &Gpu,
        pipelines: &super::unet::UnetPipelines,
    ) -> Result<Vec<f32>, GpuError> {
        let mut training = super::digit_trainer::GpuDigitTraining::new(
            gpu,
            Self::SHAPE,
            self.data.clone(),
            self.options,
        )?;
        training.train_step(gpu, pipelines).await?;
        Ok(training.weights(gpu).await?.0)
    }

    /// The weights after the step on the CPU twin.
    pub fn cpu(&self) -> Vec<f32> {
        let mut training = crate::flow::digit_training::DigitTraining::new(
            Self::SHAPE,
            self.data.clone(),
            self.options,
        );
        training.train_step();
        training.params
    }

    /// The weights' largest difference, in units of Adam's rate (Adam divides each gradient by
    /// its size, so a near-zero gradient's float32 rounding shows as a fraction of the rate).
    pub fn error(&self, got: &[f32], want: &[f32]) -> f64 {
        match got.len() == want.len() {
            true => worst_abs(got, want) / self.options.lr as f64,
            false => f64::INFINITY,
        }
    }
}

/// A training step of the digits' U-Net (`UnetStep`) on 16 rows.
async fn unet_step_row(gpu: &Gpu, now: Clock<'_>) -> KernelRow {
    let step = UnetStep::new(16, 22);
    let case = Case {
        kernel: "digits' U-Net training step",
        sizes: format!("batch {}, clipping, Adam, average", step.options.batch),
        tolerance: UNET_STEP_TOLERANCE,
        unit: "of Adam's rate",
    };
    let pipelines = super::unet::UnetPipelines::new(gpu);
    row(
        now,
        case,
        async || step.gpu(gpu, &pipelines).await,
        || step.cpu(),
        |got, want| step.error(got, want),
    )
    .await
}

/// The U-Net's CFM loss gradient (shaders/unet_backward.wgsl): a forward pass, the loss's
/// gradient and the backward pass over a few digits at different times, against flow::unet.
async fn unet_gradient_row(gpu: &Gpu, now: Clock<'_>) -> KernelRow {
    use super::unet::{GpuUnet, UnetPipelines};
    use crate::flow::unet::{Unet, UnetShape};
    let m = 4;
    let net = Unet::new(UnetShape::DIGITS);
    let params = net.init_for_comparison(19);
    let mut rng = Rng::new(20);
    let x = rng.normals(m * net.shape.dim());
    let target = rng.normals(m * net.shape.dim());
    let t: Vec<f32> = (0..m).map(|b| (b as f32 + 0.5) / m as f32).collect();
    let case = Case {
        kernel: "digits' U-Net loss gradient",
        sizes: format!("{} parameters, {m} digits", params.len()),
        tolerance: 2e-5,
        unit: "relative",
    };
    let pipelines = UnetPipelines::new(gpu);
    let on_gpu = GpuUnet::new(gpu, net.clone(), &params);
    row(
        now,
        case,
        async || {
            let on_gpu = on_gpu.as_ref().map_err(Clone::clone)?;
            Ok(on_gpu
                .loss_and_grad(gpu, &pipelines, &x, &t, &target)
                .await?
                .1)
        },
        || net.loss_and_grad(&params, &x, &t, &target).1,
        |got, want| {
            let scale = want.iter().fold(0.0f32, |s, v| s.max(v.abs())) as f64;
            worst_abs(got, want) / scale.max(1e-6)
        },
    )
    .await
}

/// The digits' U-Net's samples (`UnetSamples`): 4 digits, 3 steps, against flow::unet.
async fn unet_row(gpu: &Gpu, now: Clock<'_>) -> KernelRow {
    let (m, steps) = (4, 3);
    let samples = UnetSamples::new(m, steps);
    let case = Case {
        kernel: "digits' U-Net samples",
        sizes: format!(
            "{} parameters, {m} digits, {steps} steps",
            samples.params.len()
        ),
        tolerance: UNET_TOLERANCE,
        unit: "relative",
    };
    let pipelines = super::unet::UnetPipelines::new(gpu);
    let network = samples.network(gpu);
    row(
        now,
        case,
        async || {
            let network = network.as_ref().map_err(Clone::clone)?;
            samples.gpu(network, gpu, &pipelines).await
        },
        || samples.cpu(),
        relative,
    )
    .await
}
