//! The network's samples on the GPU where it trains: `flow::sampler::HybridPath`'s twin. Each
//! Euler step is the network's forward pass (shaders/mlp_gemm.wgsl, on the trainer's own
//! parameter buffer: nothing is read back first) or, while t < tau, the closed form of a small
//! set (the fused closed-form kernel, a time per query); then shaders/mlp_path.wgsl adds dt u,
//! keeps the frame, and writes the next step's network input. Every step in one submission,
//! one readback.

use super::closed_form::{ClosedFormPipeline, VelocityBuffers};
use super::kernels::{bind, entry, whole};
use super::readback::{scoped, start_read};
use super::trainer::{storage, uniform, Gemm, GpuTrainer, Kernel, GEMM_TILE};
use super::{Gpu, GpuError};
use crate::flow::mlp::MlpShape;
use crate::flow::sampler::step_time;

/// One dispatch of shaders/mlp_path.wgsl (its `Step`).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PathStep {
    rows: u32,
    dim: u32,
    time_features: u32,
    apply: u32,
    dt: f32,
    t_next: f32,
    frame: u32,
    feature_row: u32,
}

const NO_FRAME: u32 = u32::MAX;

/// Rows of one forward pass of `velocity`: bounds its activations on the device.
const VELOCITY_ROWS: usize = 1 << 16;

impl GpuTrainer {
    /// u_theta(x, t) for every row of `x` at its time in `t`: the rows' inputs (time features
    /// computed here, as the CPU computes them) uploaded, the forward pass on the trainer's own
    /// parameters, one readback.
    /// Rows go a block at a time (at most VELOCITY_ROWS, and what one binding holds).
    pub async fn velocity(&self, gpu: &Gpu, x: &[f32], t: &[f32]) -> Result<Vec<f32>, GpuError> {
        let shape = self.shape;
        let rows = VELOCITY_ROWS
            .min(Forward::rows_that_fit(&shape, gpu))
            .max(1);
        let mut out = Vec::with_capacity(x.len());
        for (xs, ts) in x.chunks(rows * shape.dim).zip(t.chunks(rows)) {
            out.extend(self.velocity_block(gpu, xs, ts).await?);
        }
        Ok(out)
    }

    async fn velocity_block(&self, gpu: &Gpu, x: &[f32], t: &[f32]) -> Result<Vec<f32>, GpuError> {
        let shape = self.shape;
        let m = t.len();
        let mut input = vec![0.0; m * shape.input_size()];
        for (b, row) in input.chunks_exact_mut(shape.input_size()).enumerate() {
            shape.input_row(&x[b * shape.dim..(b + 1) * shape.dim], t[b], row);
        }
        let forward = Forward::new(self, gpu, m)?;
        gpu.queue
            .write_buffer(&forward.a[0], 0, bytemuck::cast_slice(&input));
        let result = submit_and_read(
            gpu,
            "network velocity",
            |pass| forward.record(self, pass),
            forward.output(),
            m * shape.dim,
        )
        .await;
        drop(forward);
        result
    }

    /// The network's samples from `x0` in `steps` Euler steps from t = 0, along the closed form
    /// of `data` (n x dim) while t < tau and along the network after (tau = 0: the network's own
    /// flow, `data` unused); every step's positions (steps + 1 frames, x0 first) when
    /// `keep_frames`, else the last positions.
    pub async fn path(
        &self,
        gpu: &Gpu,
        closed_form: &ClosedFormPipeline,
        x0: &[f32],
        steps: usize,
        (data, tau): (&[f32], f32),
        keep_frames: bool,
    ) -> Result<Vec<f32>, GpuError> {
        let device = &gpu.device;
        let shape = self.shape;
        let dim = shape.dim;
        let m = x0.len() / dim;
        let dt = 1.0 / steps as f32;
        let times: Vec<f32> = (0..=steps).map(|k| step_time(0.0, dt, k)).collect();
        let by_network: Vec<bool> = times[..steps].iter().map(|&t| t >= tau).collect();
        if m == 0 || steps == 0 {
            return Ok(match keep_frames {
                true => x0.repeat(steps + 1),
                false => x0.to_vec(),
            });
        }
        let n = data.len() / dim;
        if n == 0 && by_network.contains(&false) {
            return Err(GpuError::TooLarge(
                "the closed-form steps (t < tau) need a training set; it is empty".into(),
            ));
        }
        let frame = m * dim;
        let frames_len = if keep_frames { (steps + 1) * frame } else { 1 };
        let biggest = frames_len.max(data.len()) as u64 * 4;
        let limit = device.limits().max_storage_buffer_binding_size;
        if biggest > limit {
            return Err(GpuError::TooLarge(format!(
                "{steps} steps of {m} rows kept, or a set of {} floats, need {biggest} bytes in \
                 one binding (it holds {limit})",
                data.len()
            )));
        }

        // The time features of every step's time, computed as the CPU computes them.
        let features: Vec<f32> = times
            .iter()
            .flat_map(|&t| {
                let mut row = vec![0.0; shape.input_size()];
                shape.input_row(&vec![0.0; dim], t, &mut row);
                row.split_off(dim)
            })
            .collect();

        let x = storage(device, "path positions", frame);
        gpu.queue.write_buffer(&x, 0, bytemuck::cast_slice(x0));
        let features_buf = storage(device, "path time features", features.len());
        gpu.queue
            .write_buffer(&features_buf, 0, bytemuck::cast_slice(&features));
        let frames = storage(device, "path frames", frames_len);
        let query_times = storage(device, "path times", m);
        let forward = Forward::new(self, gpu, m)?;
        // The closed form of `data` at the positions, each at its time, when a step needs it.
        let closed = match by_network.contains(&false) {
            true => {
                let reference = storage(device, "path closed-form set", data.len());
                gpu.queue
                    .write_buffer(&reference, 0, bytemuck::cast_slice(data));
                let out = storage(device, "path closed-form velocity", frame);
                let recorded = closed_form.record_velocity(
                    gpu,
                    VelocityBuffers {
                        reference: &reference,
                        n,
                        dim,
                        queries: &x,
                        times: &query_times,
                        out: &out,
                        m,
                    },
                );
                Some((recorded, reference, out))
            }
            false => None,
        };

        let bind = |pipeline: Kernel, entries: &[wgpu::BindGroupEntry]| {
            bind(
                device,
                "network path",
                &self.pipelines[pipeline].get_bind_group_layout(0),
                entries,
            )
        };

        // The path kernel's parameters, one aligned entry per dispatch: the first inputs (and
        // frame 0), then each step.
        let stride = device.limits().min_uniform_buffer_offset_alignment.max(32) as usize;
        let step_params: Vec<PathStep> = (0..=steps)
            .map(|k| PathStep {
                rows: m as u32,
                dim: dim as u32,
                time_features: shape.time_features as u32,
                apply: (k > 0) as u32,
                dt,
                t_next: times[k],
                frame: match keep_frames {
                    true => (k * frame) as u32,
                    false => NO_FRAME,
                },
                feature_row: k as u32,
            })
            .collect();
        let mut bytes = vec![0u8; stride * step_params.len()];
        for (k, p) in step_params.iter().enumerate() {
            bytes[k * stride..k * stride + std::mem::size_of::<PathStep>()]
                .copy_from_slice(bytemuck::bytes_of(p));
        }
        let step_uniforms = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("path steps"),
            size: bytes.len() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        gpu.queue.write_buffer(&step_uniforms, 0, &bytes);
        let path_group = |k: usize, velocity: &wgpu::Buffer| {
            bind(
                Kernel::PathStep,
                &[
                    entry(
                        0,
                        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &step_uniforms,
                            offset: (k * stride) as u64,
                            size: wgpu::BufferSize::new(std::mem::size_of::<PathStep>() as u64),
                        }),
                    ),
                    whole(1, velocity),
                    whole(2, &features_buf),
                    whole(3, &x),
                    whole(4, &forward.a[0]),
                    whole(5, &query_times),
                    whole(6, &frames),
                ],
            )
        };
        let groups = (m as u32).div_ceil(64);
        let path_workgroups = (groups.min(65_535), groups.div_ceil(65_535));
        let path_groups: Vec<wgpu::BindGroup> = (0..=steps)
            .map(|k| match k > 0 && !by_network[k - 1] {
                true => path_group(k, &closed.as_ref().expect("recorded above").2),
                false => path_group(k, forward.output()),
            })
            .collect();

        let path_step = |pass: &mut wgpu::ComputePass, k: usize| {
            pass.set_pipeline(&self.pipelines[Kernel::PathStep]);
            pass.set_bind_group(0, &path_groups[k], &[]);
            pass.dispatch_workgroups(path_workgroups.0, path_workgroups.1, 1);
        };
        let record = |pass: &mut wgpu::ComputePass| {
            path_step(pass, 0);
            for (k, &network) in by_network.iter().enumerate() {
                match (network, &closed) {
                    (true, _) | (false, None) => forward.record(self, pass),
                    (false, Some((recorded, _, _))) => recorded.record(pass),
                }
                path_step(pass, k + 1);
            }
        };
        let result = match keep_frames {
            true => submit_and_read(gpu, "network path", record, &frames, (steps + 1) * frame),
            false => submit_and_read(gpu, "network path", record, &x, frame),
        }
        .await;
        drop(closed.map(|(recorded, reference, out)| {
            reference.destroy();
            out.destroy();
            recorded
        }));
        drop(forward);
        for b in [&x, &features_buf, &frames, &query_times, &step_uniforms] {
            b.destroy();
        }
        result
    }
}

/// What `record` puts in one compute pass, submitted; then `len` floats of `out` read back, or
/// the submission's validation or out-of-memory error.
async fn submit_and_read(
    gpu: &Gpu,
    label: &str,
    record: impl FnOnce(&mut wgpu::ComputePass),
    out: &wgpu::Buffer,
    len: usize,
) -> Result<Vec<f32>, GpuError> {
    let (read, verdict) = scoped(&gpu.device, || {
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(label),
                timestamp_writes: None,
            });
            record(&mut pass);
        }
        gpu.queue.submit([encoder.finish()]);
        start_read(gpu, out, len)
    });
    let result = read.finish(gpu).await;
    verdict.check().await?;
    result
}

/// The forward pass over m rows: its activations and its bound GEMM dispatches
/// (shaders/mlp_gemm.wgsl), the input in `a[0]`, the velocity in `output()`.
struct Forward {
    a: Vec<wgpu::Buffer>,
    z: Vec<wgpu::Buffer>,
    others: Vec<wgpu::Buffer>,
    dispatches: Vec<(wgpu::BindGroup, (u32, u32))>,
}

impl Forward {
    /// The most rows whose widest activations (or inputs) one storage binding holds.
    fn rows_that_fit(shape: &MlpShape, gpu: &Gpu) -> usize {
        let widest = shape
            .layers()
            .iter()
            .map(|&(_, o)| o)
            .fold(shape.input_size(), usize::max);
        let limit = gpu.device.limits().max_storage_buffer_binding_size;
        (limit / (4 * widest as u64)) as usize
    }

    fn new(trainer: &GpuTrainer, gpu: &Gpu, m: usize) -> Result<Forward, GpuError> {
        let device = &gpu.device;
        let shape = trainer.shape;
        let layers = shape.layers();
        if m > Self::rows_that_fit(&shape, gpu) {
            return Err(GpuError::TooLarge(format!(
                "{m} rows of a network with {} inputs and width {} exceed one binding",
                shape.input_size(),
                shape.hidden
            )));
        }
        let dummy_read = storage(device, "unused (read)", 1);
        let mut a = vec![storage(device, "network input", m * shape.input_size())];
        let mut z = Vec::new();
        for (l, &(_, n_out)) in layers.iter().enumerate() {
            z.push(storage(device, &format!("network z{l}"), m * n_out));
            a.push(storage(device, &format!("network a{}", l + 1), m * n_out));
        }
        let mut others = vec![dummy_read];
        let mut dispatches = Vec::new();
        for l in 0..layers.len() {
            let g = Gemm::forward(&shape, l, m);
            let cfg = uniform(device, "network gemm config", &g);
            let entries = [
                (0, &cfg),
                (1, &trainer.params),
                (2, &a[l]),
                (3, &others[0]),
                (4, &z[l]),
                (5, &a[l + 1]),
            ]
            .map(|(binding, buffer)| whole(binding, buffer));
            let group = bind(
                device,
                "network gemm",
                &trainer.pipelines[Kernel::Gemm].get_bind_group_layout(0),
                &entries,
            );
            dispatches.push((
                group,
                (g.cols.div_ceil(GEMM_TILE), g.rows.div_ceil(GEMM_TILE)),
            ));
            others.push(cfg);
        }
        Ok(Forward {
            a,
            z,
            others,
            dispatches,
        })
    }

    fn record(&self, trainer: &GpuTrainer, pass: &mut wgpu::ComputePass) {
        pass.set_pipeline(&trainer.pipelines[Kernel::Gemm]);
        for (group, (wx, wy)) in &self.dispatches {
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(*wx, *wy, 1);
        }
    }

    /// The last layer's output: the velocity.
    fn output(&self) -> &wgpu::Buffer {
        self.z.last().expect("an MLP has an output layer")
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        for b in self.a.iter().chain(&self.z).chain(&self.others) {
            b.destroy();
        }
    }
}

#[cfg(test)]
#[test]
fn path_step_matches_the_kernels_struct() {
    super::wgsl_layout::wgsl_layout!(PathStep, super::shaders::MLP_PATH, "Step",
        [rows: u32, dim: u32, time_features: u32, apply: u32, dt: f32, t_next: f32, frame: u32, feature_row: u32]);
}
