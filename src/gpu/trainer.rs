//! Training of the velocity MLP on the GPU (CFM or EFM target): batches drawn on the device, the
//! EFM target by the fused closed-form kernel, forward, loss, backward and Adam for many steps
//! per command submission, and one readback of the losses per submission. The parameter layout is flow::mlp's, so the CPU twin can be compared weight by
//! weight.

use super::closed_form::{ClosedFormPipeline, RecordedVelocity, VelocityBuffers};
use super::kernels::{bind, whole, Layout, Shader};
use super::readback::{read_f32, scoped, start_read, PendingRead, Verdict};
use super::{shaders, Gpu, GpuError};
use crate::flow::mlp::{MlpShape, Target};
use crate::flow::training::TrainOptions;
use wgpu::util::DeviceExt;

/// Steps encoded per submission (the losses buffer holds one value per step).
const STEPS_PER_SUBMISSION: usize = 256;
/// Output rows and columns of one GEMM workgroup (shaders/mlp_gemm.wgsl).
pub(super) const GEMM_TILE: u32 = 64;
/// The training kernels by name: each is one pipeline of `TrainingPipelines`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kernel {
    /// Draws the batch (x0, x1, t) and builds x_t, the inputs and the CFM target.
    Batch,
    /// The register-blocked GEMM of the forward and backward passes.
    Gemm,
    /// The loss's partial sums, then their total.
    Loss,
    LossTotal,
    /// The Adam update, then the step counter.
    Adam,
    Advance,
    /// One Euler step of a network's (or the hybrid model's) path.
    PathStep,
}

impl Kernel {
    /// Every kernel, in the order `TrainingPipelines` holds them.
    const ALL: [Kernel; 7] = [
        Kernel::Batch,
        Kernel::Gemm,
        Kernel::Loss,
        Kernel::LossTotal,
        Kernel::Adam,
        Kernel::Advance,
        Kernel::PathStep,
    ];
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BatchConfig {
    seed: u32,
    n: u32,
    dim: u32,
    rows: u32,
    time_features: u32,
    efm_rows: u32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct Gemm {
    pub(super) mode: u32,
    pub(super) rows: u32,
    pub(super) cols: u32,
    pub(super) inner: u32,
    pub(super) w_off: u32,
    pub(super) b_off: u32,
    pub(super) fan_in: u32,
    pub(super) silu: u32,
}

impl Gemm {
    /// Layer `l`'s forward product over `rows` rows: Z = A W^T + b, SiLU but at the output.
    pub(super) fn forward(shape: &MlpShape, l: usize, rows: usize) -> Gemm {
        let layers = shape.layers();
        let (n_in, n_out) = layers[l];
        let w_off = shape.offsets()[l];
        Gemm {
            mode: FORWARD,
            rows: rows as u32,
            cols: n_out as u32,
            inner: n_in as u32,
            w_off: w_off as u32,
            b_off: (w_off + n_in * n_out) as u32,
            fan_in: n_in as u32,
            silu: (l + 1 < layers.len()) as u32,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LossConfig {
    count: u32,
    batch: u32,
    groups: u32,
    _pad: u32,
}

/// Values of the loss per workgroup of its first pass (shaders/mlp_loss.wgsl).
const LOSS_PER_GROUP: usize = 1024;

/// The training kernels, compiled once per device and shared by every trainer on it (a clone
/// shares the pipelines), looked up by `Kernel`.
#[derive(Clone)]
pub struct TrainingPipelines {
    pipelines: Vec<wgpu::ComputePipeline>,
}

impl std::ops::Index<Kernel> for TrainingPipelines {
    type Output = wgpu::ComputePipeline;
    fn index(&self, kernel: Kernel) -> &wgpu::ComputePipeline {
        &self.pipelines[kernel as usize]
    }
}

/// The MLP's shaders; each entry point's bindings are derived from its own use.
const fn derived(name: &'static str, source: &'static str) -> Shader {
    Shader {
        name,
        source,
        layout: Layout::Derived,
    }
}
const BATCH: Shader = derived("mlp_batch.wgsl", shaders::MLP_BATCH);
const GEMM: Shader = derived("mlp_gemm.wgsl", shaders::MLP_GEMM);
const LOSS: Shader = derived("mlp_loss.wgsl", shaders::MLP_LOSS);
const ADAM: Shader = derived("mlp_adam.wgsl", shaders::MLP_ADAM);
const PATH: Shader = derived("mlp_path.wgsl", shaders::MLP_PATH);

impl Kernel {
    /// The shader and entry point of the kernel.
    fn source(self) -> (&'static Shader, &'static str) {
        match self {
            Kernel::Batch => (&BATCH, "main"),
            Kernel::Gemm => (&GEMM, "main"),
            Kernel::Loss => (&LOSS, "partial"),
            Kernel::LossTotal => (&LOSS, "finish"),
            Kernel::Adam => (&ADAM, "main"),
            Kernel::Advance => (&ADAM, "advance"),
            Kernel::PathStep => (&PATH, "main"),
        }
    }
}

impl TrainingPipelines {
    /// The training kernels on `gpu` (compiled by its first caller, then shared).
    pub fn new(gpu: &Gpu) -> TrainingPipelines {
        let pipelines = Kernel::ALL
            .iter()
            .map(|&kernel| {
                let (shader, entry) = kernel.source();
                gpu.kernels.pipeline(&gpu.device, shader, entry)
            })
            .collect();
        TrainingPipelines { pipelines }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AdamConfig {
    count: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    _pad: [u32; 3],
}

const FORWARD: u32 = 0;
const BACK_INPUT: u32 = 1;
const WEIGHT_GRAD: u32 = 2;

/// A submission of training steps whose losses are on their way back.
struct InFlight {
    losses: PendingRead,
    verdict: Verdict,
}

/// The CPU twin of `steps` steps of a `GpuTrainer` with `options` from `init`: the losses and the
/// parameters afterwards (what the GPU's are compared with).
pub fn cpu_twin(
    shape: &MlpShape,
    init: &[f32],
    data: &[f32],
    options: &TrainOptions,
    steps: usize,
) -> (Vec<f32>, Vec<f32>) {
    let mut params = init.to_vec();
    let mut adam = crate::flow::mlp::Adam::new(params.len(), options.lr);
    let losses = (0..steps)
        .map(|_| {
            crate::flow::mlp::train_step(
                shape,
                &mut params,
                &mut adam,
                data,
                options.batch,
                options.seed,
                options.target,
            )
        })
        .collect();
    (losses, params)
}

/// One dispatch of a training step, with everything bound.
struct Dispatch {
    pipeline: Kernel,
    bind_group: wgpu::BindGroup,
    workgroups: (u32, u32),
}

pub struct GpuTrainer {
    pub shape: MlpShape,
    pub options: TrainOptions,
    pub(super) params: wgpu::Buffer,
    losses: wgpu::Buffer,
    counter: wgpu::Buffer,
    pub(super) pipelines: TrainingPipelines,
    step_dispatches: Vec<Dispatch>,
    /// The EFM target, evaluated between the batch draw (dispatch 0) and the forward pass.
    efm: Option<RecordedVelocity>,
    buffers: Vec<wgpu::Buffer>,
    /// Optimisation steps taken so far (the Adam step and the batch stream's counter).
    pub step: u32,
}

pub(super) fn storage(device: &wgpu::Device, label: &str, floats: usize) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        // Whole 16-byte words: the closed-form kernels read the EFM reference set as vec4.
        size: (floats.max(1) * 4).next_multiple_of(16) as u64,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

pub(super) fn uniform<T: bytemuck::Pod>(
    device: &wgpu::Device,
    label: &str,
    value: &T,
) -> wgpu::Buffer {
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytemuck::bytes_of(value),
        usage: wgpu::BufferUsages::UNIFORM,
    })
}

impl GpuTrainer {
    /// Uploads `params` (flow::mlp layout) and `data` (n x dim) and builds every buffer and bind
    /// group of a training step once, on the device's shared `kernels` (and, for the EFM target,
    /// `closed_form` pipelines).
    pub fn new(
        gpu: &Gpu,
        closed_form: &ClosedFormPipeline,
        kernels: &TrainingPipelines,
        shape: MlpShape,
        params: &[f32],
        data: &[f32],
        options: TrainOptions,
    ) -> Result<GpuTrainer, GpuError> {
        let device = &gpu.device;
        let limit = device.limits().max_storage_buffer_binding_size;
        if (data.len() * 4) as u64 > limit {
            return Err(GpuError::TooLarge(format!(
                "a training set of {} bytes (one binding holds {limit})",
                data.len() * 4
            )));
        }
        let count = shape.parameter_count();
        let batch = options.batch;
        let layers = shape.layers();
        let widest = layers.iter().map(|&(i, o)| i.max(o)).max().unwrap_or(0);
        let efm_rows = match options.target {
            Target::Cfm => 0,
            Target::Efm { samples } => batch + samples,
        };
        let biggest = (batch * widest).max(count).max(efm_rows * shape.dim) as u64 * 4;
        if biggest > limit {
            return Err(GpuError::TooLarge(format!(
                "a batch of {batch} rows of width {widest} ({biggest} bytes) exceeds one binding ({limit})"
            )));
        }
        let offsets = shape.offsets();

        let pipelines = kernels.clone();

        let params_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("mlp parameters"),
            contents: bytemuck::cast_slice(params),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        });
        let data_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("mlp training set"),
            contents: bytemuck::cast_slice(data),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let grads = storage(device, "mlp gradients", count);
        let adam_m = storage(device, "adam m", count);
        let adam_v = storage(device, "adam v", count);
        let target = storage(device, "cfm target", batch * shape.dim);
        let losses = storage(device, "losses", STEPS_PER_SUBMISSION);
        let counter = storage(device, "step counter", 2);
        // EFM: the batch's x_t and t (the closed form's queries) and its reference set; one
        // float each (never read) for CFM, as writable bindings must not alias.
        let efm = efm_rows > 0;
        let queries = storage(
            device,
            "efm queries",
            if efm { batch * shape.dim } else { 1 },
        );
        let times = storage(device, "efm times", if efm { batch } else { 1 });
        let reference = storage(device, "efm reference", efm_rows * shape.dim);
        let dummy_read = storage(device, "unused (read)", 1);
        let dummy_rw = storage(device, "unused (write)", 1);
        // a[0] is the input; a[l + 1] = act(z[l]); delta[l] = dL/dz[l].
        let mut a = vec![storage(device, "mlp input", batch * shape.input_size())];
        let mut z = Vec::new();
        let mut delta = Vec::new();
        for (l, &(_, n_out)) in layers.iter().enumerate() {
            z.push(storage(device, &format!("z{l}"), batch * n_out));
            a.push(storage(device, &format!("a{}", l + 1), batch * n_out));
            delta.push(storage(device, &format!("delta{l}"), batch * n_out));
        }

        let bind = |pipeline: Kernel, label: &str, entries: &[(u32, &wgpu::Buffer)]| {
            let entries: Vec<wgpu::BindGroupEntry> = entries
                .iter()
                .map(|&(binding, buffer)| whole(binding, buffer))
                .collect();
            bind(
                device,
                label,
                &pipelines[pipeline].get_bind_group_layout(0),
                &entries,
            )
        };
        let mut uniforms = Vec::new();
        let mut dispatches = Vec::new();

        let cfg = uniform(
            device,
            "batch config",
            &BatchConfig {
                seed: options.seed,
                n: (data.len() / shape.dim) as u32,
                dim: shape.dim as u32,
                rows: batch as u32,
                time_features: shape.time_features as u32,
                efm_rows: efm_rows as u32,
                _pad: [0; 2],
            },
        );
        dispatches.push(Dispatch {
            pipeline: Kernel::Batch,
            bind_group: bind(
                Kernel::Batch,
                "batch",
                &[
                    (0, &cfg),
                    (1, &data_buf),
                    (2, &a[0]),
                    (3, &target),
                    (4, &counter),
                    (5, &queries),
                    (6, &times),
                    (7, &reference),
                ],
            ),
            workgroups: ((batch.max(efm_rows) as u32).div_ceil(64), 1),
        });
        let efm = efm.then(|| {
            closed_form.record_velocity(
                gpu,
                VelocityBuffers {
                    reference: &reference,
                    n: efm_rows,
                    dim: shape.dim,
                    queries: &queries,
                    times: &times,
                    out: &target,
                    m: batch,
                },
            )
        });
        uniforms.push(cfg);

        let mut gemm = |g: Gemm,
                        x: &wgpu::Buffer,
                        y: &wgpu::Buffer,
                        out: &wgpu::Buffer,
                        out2: &wgpu::Buffer| {
            let cfg = uniform(device, "gemm config", &g);
            let d = Dispatch {
                pipeline: Kernel::Gemm,
                bind_group: bind(
                    Kernel::Gemm,
                    "gemm",
                    &[
                        (0, &cfg),
                        (1, &params_buf),
                        (2, x),
                        (3, y),
                        (4, out),
                        (5, out2),
                    ],
                ),
                workgroups: (g.cols.div_ceil(GEMM_TILE), g.rows.div_ceil(GEMM_TILE)),
            };
            uniforms.push(cfg);
            d
        };
        let last = layers.len() - 1;
        for l in 0..layers.len() {
            let g = Gemm::forward(&shape, l, batch);
            dispatches.push(gemm(g, &a[l], &dummy_read, &z[l], &a[l + 1]));
        }
        let loss_count = batch * shape.dim;
        let loss_groups = loss_count.div_ceil(LOSS_PER_GROUP) as u32;
        let loss_partials = storage(device, "loss partial sums", loss_groups as usize);
        let loss_cfg = uniform(
            device,
            "loss config",
            &LossConfig {
                count: loss_count as u32,
                batch: batch as u32,
                groups: loss_groups,
                _pad: 0,
            },
        );
        let loss_dispatches = [
            Dispatch {
                pipeline: Kernel::Loss,
                bind_group: bind(
                    Kernel::Loss,
                    "loss",
                    &[
                        (0, &loss_cfg),
                        (1, &z[last]),
                        (2, &target),
                        (3, &delta[last]),
                        (6, &loss_partials),
                    ],
                ),
                workgroups: (loss_groups, 1),
            },
            Dispatch {
                pipeline: Kernel::LossTotal,
                bind_group: bind(
                    Kernel::LossTotal,
                    "loss total",
                    &[
                        (0, &loss_cfg),
                        (4, &losses),
                        (5, &counter),
                        (6, &loss_partials),
                    ],
                ),
                workgroups: (1, 1),
            },
        ];
        let mut backward = Vec::new();
        for l in (0..layers.len()).rev() {
            let (n_in, n_out) = layers[l];
            let w_off = offsets[l] as u32;
            let b_off = (offsets[l] + n_in * n_out) as u32;
            let g = Gemm {
                mode: WEIGHT_GRAD,
                rows: n_out as u32,
                cols: n_in as u32 + 1,
                inner: batch as u32,
                w_off,
                b_off,
                fan_in: n_in as u32,
                silu: 0,
            };
            backward.push(gemm(g, &delta[l], &a[l], &grads, &dummy_rw));
            if l > 0 {
                let g = Gemm {
                    mode: BACK_INPUT,
                    rows: batch as u32,
                    cols: n_in as u32,
                    inner: n_out as u32,
                    w_off,
                    b_off,
                    fan_in: n_in as u32,
                    silu: 1,
                };
                backward.push(gemm(g, &delta[l], &z[l - 1], &delta[l - 1], &dummy_rw));
            }
        }
        dispatches.extend(loss_dispatches);
        uniforms.push(loss_cfg);
        dispatches.extend(backward);

        let adam_cfg = uniform(
            device,
            "adam config",
            &AdamConfig {
                count: count as u32,
                lr: options.lr,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                _pad: [0; 3],
            },
        );
        let groups = (count as u32).div_ceil(256);
        dispatches.push(Dispatch {
            pipeline: Kernel::Adam,
            bind_group: bind(
                Kernel::Adam,
                "adam",
                &[
                    (0, &adam_cfg),
                    (1, &grads),
                    (2, &params_buf),
                    (3, &adam_m),
                    (4, &adam_v),
                    (5, &counter),
                ],
            ),
            workgroups: (groups.min(65_535), groups.div_ceil(65_535)),
        });
        uniforms.push(adam_cfg);
        dispatches.push(Dispatch {
            pipeline: Kernel::Advance,
            bind_group: bind(Kernel::Advance, "advance", &[(6, &counter)]),
            workgroups: (1, 1),
        });

        let mut buffers = vec![
            loss_partials,
            data_buf,
            grads,
            adam_m,
            adam_v,
            target,
            dummy_read,
            dummy_rw,
            queries,
            times,
            reference,
        ];
        buffers.extend(a);
        buffers.extend(z);
        buffers.extend(delta);
        buffers.extend(uniforms);
        Ok(GpuTrainer {
            shape,
            options,
            params: params_buf,
            losses,
            counter,
            pipelines,
            step_dispatches: dispatches,
            efm,
            buffers,
            step: 0,
        })
    }

    /// Runs `steps` optimisation steps; returns their losses (before each update). Each
    /// submission of up to 256 steps is encoded and submitted before the previous one's losses
    /// are awaited, so the GPU never waits for the readback.
    pub async fn train(&mut self, gpu: &Gpu, steps: usize) -> Result<Vec<f32>, GpuError> {
        let mut all = Vec::with_capacity(steps);
        let mut left = steps;
        let mut in_flight = None;
        while left > 0 {
            let chunk = left.min(STEPS_PER_SUBMISSION);
            let submitted = self.submit(gpu, chunk);
            if let Some(previous) = in_flight.replace(submitted) {
                all.extend(Self::collect(gpu, previous).await?);
            }
            self.step += chunk as u32;
            left -= chunk;
        }
        if let Some(last) = in_flight {
            all.extend(Self::collect(gpu, last).await?);
        }
        Ok(all)
    }

    /// Encodes and submits `chunk` steps and the copy of their losses.
    fn submit(&self, gpu: &Gpu, chunk: usize) -> InFlight {
        let (losses, verdict) = scoped(&gpu.device, || self.encode_and_submit(gpu, chunk));
        InFlight { losses, verdict }
    }

    fn encode_and_submit(&self, gpu: &Gpu, chunk: usize) -> PendingRead {
        gpu.queue.write_buffer(
            &self.counter,
            0,
            bytemuck::cast_slice(&[self.step, self.step]),
        );
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("mlp training steps"),
            });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("mlp training pass"),
                timestamp_writes: None,
            });
            for _ in 0..chunk {
                for (k, d) in self.step_dispatches.iter().enumerate() {
                    pass.set_pipeline(&self.pipelines[d.pipeline]);
                    pass.set_bind_group(0, &d.bind_group, &[]);
                    pass.dispatch_workgroups(d.workgroups.0, d.workgroups.1, 1);
                    if k == 0 {
                        if let Some(efm) = &self.efm {
                            efm.record(&mut pass);
                        }
                    }
                }
            }
        }
        gpu.queue.submit([encoder.finish()]);
        start_read(gpu, &self.losses, chunk)
    }

    async fn collect(gpu: &Gpu, in_flight: InFlight) -> Result<Vec<f32>, GpuError> {
        let losses = in_flight.losses.finish(gpu).await;
        in_flight.verdict.check().await?;
        losses
    }

    /// The current parameters (flow::mlp layout).
    pub async fn parameters(&self, gpu: &Gpu) -> Result<Vec<f32>, GpuError> {
        read_f32(gpu, &self.params, self.shape.parameter_count()).await
    }
}

impl Drop for GpuTrainer {
    fn drop(&mut self) {
        for b in self
            .buffers
            .iter()
            .chain([&self.params, &self.losses, &self.counter])
        {
            b.destroy();
        }
    }
}

#[cfg(test)]
#[test]
fn configs_match_the_kernels_structs() {
    use super::shaders::{MLP_ADAM, MLP_BATCH, MLP_GEMM, MLP_LOSS};
    use super::wgsl_layout::wgsl_layout;
    wgsl_layout!(BatchConfig, MLP_BATCH, "Config",
        [seed: u32, n: u32, dim: u32, rows: u32, time_features: u32, efm_rows: u32]);
    wgsl_layout!(Gemm, MLP_GEMM, "Gemm",
        [mode: u32, rows: u32, cols: u32, inner: u32, w_off: u32, b_off: u32, fan_in: u32, silu: u32]);
    wgsl_layout!(LossConfig, MLP_LOSS, "Loss", [count: u32, batch: u32, groups: u32]);
    wgsl_layout!(AdamConfig, MLP_ADAM, "Adam", [count: u32, lr: f32, beta1: f32, beta2: f32, eps: f32]);
}
