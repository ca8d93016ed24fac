//! Training the digits' U-Net on the GPU: `flow::digit_training::DigitTraining`'s twin. Each step
//! draws its batch on the host (the same draws, from the seed and the step's number), computes
//! the gradient on the device (`GpuUnet::submit_gradient`), then clips it, takes Adam's step and
//! updates the weights' moving average there (shaders/unet_update.wgsl). The weights never leave
//! the device until asked for.

use super::kernels::{bind, whole, Layout, Shader, Slot};
use super::readback::{scoped, start_read_from};
use super::unet::{GpuUnet, Terms, UnetPipelines};
use super::{shaders, Gpu, GpuError};
use crate::flow::digit_training::{ema_decay, step_batch, step_rate, DigitOptions};
use crate::flow::unet::{Unet, UnetShape};
use std::sync::Arc;
use wgpu::util::DeviceExt;

/// shaders/unet_update.wgsl's `Update`.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Update {
    count: u32,
    partials: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    c1: f32,
    c2: f32,
    clip: f32,
    decay: f32,
    _pad: [u32; 2],
}

/// Parameters summed by one `squares` workgroup.
const PER_PARTIAL: usize = 1024;
/// Invocations of an `update` workgroup, and the most workgroups along x.
const WIDE: usize = 256;
const MAX_GROUPS_X: usize = 65535;

/// A run of the digits' network's training on one device: the network, Adam's moments and the
/// weights' average on the device, the training digits on the host.
pub struct GpuDigitTraining {
    pub unet: GpuUnet,
    pub options: DigitOptions,
    /// Steps taken.
    pub step: u32,
    data: Arc<[f32]>,
    grads: wgpu::Buffer,
    ema: wgpu::Buffer,
    uniform: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    pipelines: [wgpu::ComputePipeline; 3],
    /// Adam's moments and the norm's partial sums: held by the bind group, kept for `Drop`.
    _state: [wgpu::Buffer; 3],
}

/// The update's bindings: its `Update`, the gradient, the parameters, Adam's moments, the
/// weights' average and the norm's partial sums.
const UPDATE_SLOTS: &[Slot] = &[
    Slot::Uniform {
        dynamic: false,
        min_bytes: 0,
    },
    Slot::Read,
    Slot::Write,
    Slot::Write,
    Slot::Write,
    Slot::Write,
    Slot::Write,
];
const UPDATE: Shader = Shader {
    name: "unet_update.wgsl",
    source: shaders::UNET_UPDATE,
    layout: Layout::Fixed(UPDATE_SLOTS),
};

impl GpuDigitTraining {
    /// A run from the seeded initialisation (`DigitTraining::new`'s) on `train` (rows of the
    /// net's images, in [-1, 1]).
    pub fn new(
        gpu: &Gpu,
        shape: UnetShape,
        train: impl Into<Arc<[f32]>>,
        options: DigitOptions,
    ) -> Result<GpuDigitTraining, GpuError> {
        let net = Unet::new(shape);
        let params = net.init(options.seed);
        let count = params.len();
        let unet = GpuUnet::new(gpu, net, &params)?;
        let device = &gpu.device;
        let zeros = |label| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: (count * 4).next_multiple_of(16) as u64,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let grads = zeros("digit training gradient");
        let m = zeros("digit training adam m");
        let v = zeros("digit training adam v");
        let ema = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("digit training average"),
            contents: bytemuck::cast_slice(&params),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        });
        let norm = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("digit training norm"),
            size: ((count.div_ceil(PER_PARTIAL) + 1) * 4).next_multiple_of(16) as u64,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("digit training update"),
            size: std::mem::size_of::<Update>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bind_group = bind(
            device,
            "digit training update",
            &gpu.kernels.layout(device, UPDATE_SLOTS),
            &[
                (0, &uniform),
                (1, &grads),
                (2, unet.params()),
                (3, &m),
                (4, &v),
                (5, &ema),
                (6, &norm),
            ]
            .map(|(binding, buffer)| whole(binding, buffer)),
        );
        let pipelines = ["squares", "total", "update"]
            .map(|entry| gpu.kernels.pipeline(device, &UPDATE, entry));
        Ok(GpuDigitTraining {
            unet,
            options,
            step: 0,
            data: train.into(),
            grads,
            ema,
            uniform,
            bind_group,
            pipelines,
            _state: [m, v, norm],
        })
    }

    /// The same run with each step's gradient computed `rows` images a submission at most (as
    /// `GpuUnet::with_rows_per_submission`).
    pub fn with_rows_per_submission(mut self, rows: usize) -> GpuDigitTraining {
        self.unet = self.unet.with_rows_per_submission(rows);
        self
    }

    /// One step (`DigitTraining::train_step`'s twin): the batch's loss before it (the mean over
    /// rows and pixels).
    pub async fn train_step(
        &mut self,
        gpu: &Gpu,
        pipelines: &UnetPipelines,
    ) -> Result<f32, GpuError> {
        Ok(self.train_steps(gpu, pipelines, 1).await?[0])
    }

    /// `steps` steps submitted at once, their losses (as `train_step`'s) read back together at
    /// the end: the device never waits on the page between them.
    pub async fn train_steps(
        &mut self,
        gpu: &Gpu,
        pipelines: &UnetPipelines,
        steps: usize,
    ) -> Result<Vec<f32>, GpuError> {
        let dim = self.unet.net.shape.dim();
        let rows = self.options.batch;
        if rows == 0 {
            return Err(GpuError::Validation("a training batch of 0 images".into()));
        }
        if steps == 0 {
            return Ok(Vec::new());
        }
        let device = &gpu.device;
        let losses = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("digit training losses"),
            size: (steps * rows * 4).next_multiple_of(16).max(16) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let (pending, verdict) = scoped(device, || {
            for k in 0..steps {
                let batch = step_batch(&self.data, dim, &self.options, self.step);
                let mut clear = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("digit training clear"),
                });
                clear.clear_buffer(&self.grads, 0, None);
                gpu.queue.submit([clear.finish()]);
                self.unet.submit_gradient(
                    gpu,
                    pipelines,
                    &self.grads,
                    Terms {
                        x: &batch.x,
                        t: &batch.t,
                        target: &batch.target,
                        scale: 1.0 / (rows * dim) as f32,
                    },
                    (&losses, k * rows),
                )?;
                self.update(gpu);
                self.step += 1;
            }
            let pending = start_read_from(gpu, &losses, 0, steps * rows);
            losses.destroy();
            Ok(pending)
        });
        let values = match pending {
            Ok(pending) => pending.finish(gpu).await,
            Err(e) => Err(e),
        };
        verdict.check().await?;
        Ok(values?.chunks(rows).map(|step| step.iter().sum()).collect())
    }

    /// Clipping, Adam and the average from the gradient in `grads`, at this step's rate.
    fn update(&self, gpu: &Gpu) {
        let o = &self.options;
        let count = self.unet.net.parameter_count();
        let partials = count.div_ceil(PER_PARTIAL);
        let (beta1, beta2) = (0.9f32, 0.999f32);
        let t = (self.step + 1) as i32;
        let update = Update {
            count: count as u32,
            partials: partials as u32,
            lr: step_rate(o, self.step),
            beta1,
            beta2,
            eps: 1e-8,
            c1: 1.0 - beta1.powi(t),
            c2: 1.0 - beta2.powi(t),
            clip: o.clip,
            decay: ema_decay(o, self.step),
            _pad: [0; 2],
        };
        gpu.queue
            .write_buffer(&self.uniform, 0, bytemuck::bytes_of(&update));
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("digit training update"),
            });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("digit training update"),
                timestamp_writes: None,
            });
            pass.set_bind_group(0, &self.bind_group, &[]);
            let groups = count.div_ceil(WIDE);
            for (pipeline, (x, y)) in self.pipelines.iter().zip([
                (partials, 1),
                (1, 1),
                (groups.min(MAX_GROUPS_X), groups.div_ceil(MAX_GROUPS_X)),
            ]) {
                pass.set_pipeline(pipeline);
                pass.dispatch_workgroups(x as u32, y as u32, 1);
            }
        }
        gpu.queue.submit([encoder.finish()]);
    }

    /// The weights and their moving average, read back.
    pub async fn weights(&self, gpu: &Gpu) -> Result<(Vec<f32>, Vec<f32>), GpuError> {
        let count = self.unet.net.parameter_count();
        let (pending, verdict) = scoped(&gpu.device, || {
            (
                start_read_from(gpu, self.unet.params(), 0, count),
                start_read_from(gpu, &self.ema, 0, count),
            )
        });
        let (params, ema) = (pending.0.finish(gpu).await, pending.1.finish(gpu).await);
        verdict.check().await?;
        Ok((params?, ema?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::wgsl_layout::wgsl_layout;

    #[test]
    fn update_matches_the_kernel_s_struct() {
        wgsl_layout!(
            Update,
            shaders::UNET_UPDATE,
            "Update",
            [
                count: u32,
                partials: u32,
                lr: f32,
                beta1: f32,
                beta2: f32,
                eps: f32,
                c1: f32,
                c2: f32,
                clip: f32,
                decay: f32,
            ]
        );
    }
}
