//! The digits' U-Net on the GPU: `flow::unet`'s graph run by shaders/unet.wgsl, one dispatch per
//! operation over a batch of images, every tensor of the batch in one arena buffer. `velocities`
//! is one forward pass; `sample` is a whole Euler integration in one submission (each step the
//! time features broadcast, the forward pass, then x += dt u), read back once.

use super::readback::{scoped, start_read_from};
use super::{shaders, Gpu, GpuError};
use crate::flow::sampler::step_time;
use crate::flow::unet::{Op, Unet};
use wgpu::util::DeviceExt;

/// One dispatch's operands (shaders/unet.wgsl's `Args`).
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Args {
    rows: u32,
    input: u32,
    input_size: u32,
    second: u32,
    second_size: u32,
    output: u32,
    output_size: u32,
    w: u32,
    b: u32,
    cin: u32,
    cout: u32,
    k: u32,
    side: u32,
    groups: u32,
    feature_row: u32,
    dt: f32,
}

/// The kernels of shaders/unet.wgsl by entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    Conv,
    Norm,
    Silu,
    Linear,
    Add,
    AddChannels,
    Pool,
    Up,
    Concat,
    Time,
    Euler,
}

impl Kernel {
    const ALL: [Kernel; 11] = [
        Kernel::Conv,
        Kernel::Norm,
        Kernel::Silu,
        Kernel::Linear,
        Kernel::Add,
        Kernel::AddChannels,
        Kernel::Pool,
        Kernel::Up,
        Kernel::Concat,
        Kernel::Time,
        Kernel::Euler,
    ];

    fn entry(self) -> &'static str {
        match self {
            Kernel::Conv => "conv",
            Kernel::Norm => "norm",
            Kernel::Silu => "silu",
            Kernel::Linear => "linear",
            Kernel::Add => "add",
            Kernel::AddChannels => "add_channels",
            Kernel::Pool => "pool",
            Kernel::Up => "up",
            Kernel::Concat => "concat",
            Kernel::Time => "time",
            Kernel::Euler => "euler",
        }
    }
}

/// Bytes between two dispatches' `Args` in the uniform buffer (WebGPU's dynamic-offset alignment).
const ARGS_STRIDE: u64 = 256;
/// Output rows and columns of one `conv` workgroup.
const CONV_TILE: (u32, u32) = (32, 64);
/// Invocations of an element-wise workgroup, and the most workgroups along x.
const GROUP: u32 = 64;
const MAX_GROUPS_X: u32 = 65535;

/// The U-Net kernels, compiled once per device.
pub struct UnetPipelines {
    layout: wgpu::BindGroupLayout,
    pipelines: Vec<wgpu::ComputePipeline>,
}

impl UnetPipelines {
    pub fn new(gpu: &Gpu) -> UnetPipelines {
        let device = &gpu.device;
        let buffer = |binding, ty, dynamic: bool| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty,
                has_dynamic_offset: dynamic,
                min_binding_size: None,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("unet bindings"),
            entries: &[
                buffer(0, wgpu::BufferBindingType::Uniform, true),
                buffer(
                    1,
                    wgpu::BufferBindingType::Storage { read_only: true },
                    false,
                ),
                buffer(
                    2,
                    wgpu::BufferBindingType::Storage { read_only: false },
                    false,
                ),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("unet layout"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("unet.wgsl"),
            source: wgpu::ShaderSource::Wgsl(shaders::UNET.into()),
        });
        let pipelines = Kernel::ALL
            .iter()
            .map(|k| {
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(k.entry()),
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some(k.entry()),
                    compilation_options: Default::default(),
                    cache: None,
                })
            })
            .collect();
        UnetPipelines { layout, pipelines }
    }

    fn get(&self, kernel: Kernel) -> &wgpu::ComputePipeline {
        &self.pipelines[kernel as usize]
    }
}

/// A U-Net's weights on a device.
pub struct GpuUnet {
    pub net: Unet,
    params: wgpu::Buffer,
    /// The most images one submission computes (see `with_rows_per_submission`).
    most_rows: usize,
}

/// One dispatch: its kernel, its operands, its workgroups.
struct Dispatch {
    kernel: Kernel,
    args: Args,
    groups: (u32, u32),
}

/// Where every tensor of a batch of `rows` images lives in the arena, and where the time
/// features of every step are.
struct Arena {
    rows: usize,
    base: Vec<usize>,
    features: usize,
    len: usize,
}

impl Arena {
    fn new(net: &Unet, rows: usize, feature_rows: usize) -> Arena {
        let mut base = Vec::with_capacity(net.tensor_sizes().len());
        let mut at = 0;
        for &size in net.tensor_sizes() {
            base.push(at);
            at += rows * size;
        }
        let features = at;
        Arena {
            rows,
            base,
            features,
            len: features + feature_rows * net.shape.time_features,
        }
    }
}

/// Workgroups for `count` element-wise invocations: x up to the limit, the rest along y.
fn elementwise(count: usize) -> (u32, u32) {
    let groups = (count as u32).div_ceil(GROUP).max(1);
    if groups <= MAX_GROUPS_X {
        (groups, 1)
    } else {
        (MAX_GROUPS_X, groups.div_ceil(MAX_GROUPS_X))
    }
}

impl GpuUnet {
    pub fn new(gpu: &Gpu, net: Unet, params: &[f32]) -> Result<GpuUnet, GpuError> {
        if params.len() != net.parameter_count() {
            return Err(GpuError::TooLarge(format!(
                "{} parameters for a network of {}",
                params.len(),
                net.parameter_count()
            )));
        }
        let params = gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("unet parameters"),
                contents: bytemuck::cast_slice(params),
                usage: wgpu::BufferUsages::STORAGE,
            });
        Ok(GpuUnet {
            net,
            params,
            most_rows: usize::MAX,
        })
    }

    /// At most `rows` images a submission, below what one binding and one dispatch would hold:
    /// shorter submissions, between which a page can show progress or draw a frame.
    pub fn with_rows_per_submission(mut self, rows: usize) -> GpuUnet {
        self.most_rows = rows.max(1);
        self
    }

    /// Images of a batch that fit one binding (with room for `feature_rows` time features) and
    /// one convolution dispatch (at most 65,535 workgroups of CONV_TILE.1 pixels along x), and
    /// the submission's own cap.
    pub fn rows_that_fit(&self, gpu: &Gpu, feature_rows: usize) -> usize {
        let limit = gpu.device.limits().max_storage_buffer_binding_size as usize / 4;
        let per_image: usize = self.net.tensor_sizes().iter().sum();
        let features = feature_rows * self.net.shape.time_features;
        let by_dispatch = MAX_GROUPS_X as usize * CONV_TILE.1 as usize / self.net.shape.dim();
        (limit.saturating_sub(features) / per_image)
            .min(by_dispatch)
            .min(self.most_rows)
    }

    /// The dispatches of one forward pass over the arena's rows (tensor 1 already holds the time
    /// features).
    fn forward(&self, arena: &Arena, out: &mut Vec<Dispatch>) {
        let sizes = self.net.tensor_sizes();
        let rows = arena.rows;
        for (k, op) in self.net.ops().iter().enumerate() {
            let o = k + 2;
            let mut args = Args {
                rows: rows as u32,
                output: arena.base[o] as u32,
                output_size: sizes[o] as u32,
                ..Args::default()
            };
            let input = |t: usize, args: &mut Args| {
                args.input = arena.base[t] as u32;
                args.input_size = sizes[t] as u32;
            };
            let second = |t: usize, args: &mut Args| {
                args.second = arena.base[t] as u32;
                args.second_size = sizes[t] as u32;
            };
            let all = elementwise(rows * sizes[o]);
            let (kernel, groups) = match *op {
                Op::Conv {
                    input: t,
                    cin,
                    cout,
                    k,
                    side,
                    w,
                    b,
                } => {
                    input(t, &mut args);
                    (args.cin, args.cout, args.k, args.side) =
                        (cin as u32, cout as u32, k as u32, side as u32);
                    (args.w, args.b) = (w as u32, b as u32);
                    let columns = (rows * side * side) as u32;
                    (
                        Kernel::Conv,
                        (
                            columns.div_ceil(CONV_TILE.1),
                            (cout as u32).div_ceil(CONV_TILE.0),
                        ),
                    )
                }
                Op::Norm {
                    input: t,
                    c,
                    side,
                    groups,
                    gamma,
                    beta,
                } => {
                    input(t, &mut args);
                    (args.cin, args.side, args.groups) = (c as u32, side as u32, groups as u32);
                    (args.w, args.b) = (gamma as u32, beta as u32);
                    (Kernel::Norm, (groups as u32, rows as u32))
                }
                Op::Silu { input: t } => {
                    input(t, &mut args);
                    (Kernel::Silu, all)
                }
                Op::Linear {
                    input: t,
                    nin,
                    nout,
                    w,
                    b,
                } => {
                    input(t, &mut args);
                    (args.cin, args.cout, args.w, args.b) =
                        (nin as u32, nout as u32, w as u32, b as u32);
                    (Kernel::Linear, all)
                }
                Op::Add { a, b } => {
                    input(a, &mut args);
                    second(b, &mut args);
                    (Kernel::Add, all)
                }
                Op::AddChannels {
                    input: t,
                    per_channel,
                    side,
                    ..
                } => {
                    input(t, &mut args);
                    second(per_channel, &mut args);
                    args.side = side as u32;
                    (Kernel::AddChannels, all)
                }
                Op::Pool { input: t, side, .. } => {
                    input(t, &mut args);
                    args.side = side as u32;
                    (Kernel::Pool, all)
                }
                Op::Up { input: t, side, .. } => {
                    input(t, &mut args);
                    args.side = side as u32;
                    (Kernel::Up, all)
                }
                Op::Concat { a, b } => {
                    input(a, &mut args);
                    second(b, &mut args);
                    (Kernel::Concat, all)
                }
            };
            out.push(Dispatch {
                kernel,
                args,
                groups,
            });
        }
    }

    /// The time features of row `row` of the features region broadcast into tensor 1.
    fn time(&self, arena: &Arena, row: usize) -> Dispatch {
        let tf = self.net.shape.time_features;
        Dispatch {
            kernel: Kernel::Time,
            args: Args {
                rows: arena.rows as u32,
                input: arena.features as u32,
                output: arena.base[1] as u32,
                output_size: tf as u32,
                feature_row: row as u32,
                ..Args::default()
            },
            groups: elementwise(arena.rows * tf),
        }
    }

    /// Records `dispatches` in one pass over `arena`, submits it, and reads back `len` floats
    /// from offset 0 of the arena (the images) or of the last tensor (the velocities).
    async fn run(
        &self,
        gpu: &Gpu,
        pipelines: &UnetPipelines,
        arena: &Arena,
        upload: &[(usize, &[f32])],
        dispatches: &[Dispatch],
        (from, len): (usize, usize),
    ) -> Result<Vec<f32>, GpuError> {
        let device = &gpu.device;
        let (pending, verdict) = scoped(device, || {
            let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("unet arena"),
                size: (arena.len.max(1) * 4).next_multiple_of(16) as u64,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            for &(at, values) in upload {
                gpu.queue
                    .write_buffer(&buffer, (at * 4) as u64, bytemuck::cast_slice(values));
            }
            let mut uniforms = vec![0u8; dispatches.len().max(1) * ARGS_STRIDE as usize];
            for (k, d) in dispatches.iter().enumerate() {
                let at = k * ARGS_STRIDE as usize;
                uniforms[at..at + std::mem::size_of::<Args>()]
                    .copy_from_slice(bytemuck::bytes_of(&d.args));
            }
            let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("unet args"),
                contents: &uniforms,
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("unet"),
                layout: &pipelines.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &uniform,
                            offset: 0,
                            size: wgpu::BufferSize::new(std::mem::size_of::<Args>() as u64),
                        }),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: self.params.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: buffer.as_entire_binding(),
                    },
                ],
            });
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("unet"),
            });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("unet"),
                    timestamp_writes: None,
                });
                for (k, d) in dispatches.iter().enumerate() {
                    pass.set_pipeline(pipelines.get(d.kernel));
                    pass.set_bind_group(0, &bind_group, &[(k as u64 * ARGS_STRIDE) as u32]);
                    pass.dispatch_workgroups(d.groups.0, d.groups.1, 1);
                }
            }
            gpu.queue.submit([encoder.finish()]);
            let pending = start_read_from(gpu, &buffer, from, len);
            buffer.destroy();
            uniform.destroy();
            pending
        });
        let values = pending.finish(gpu).await;
        verdict.check().await?;
        values
    }

    /// u_theta(x, t) for every image (row) of `x` at one time `t`.
    pub async fn velocities(
        &self,
        gpu: &Gpu,
        pipelines: &UnetPipelines,
        x: &[f32],
        t: f32,
    ) -> Result<Vec<f32>, GpuError> {
        let dim = self.net.shape.dim();
        assert!(
            x.len().is_multiple_of(dim),
            "{} values are not whole images of {dim}",
            x.len()
        );
        let features = self.net.time_features(t);
        let rows = self.rows_that_fit(gpu, 1).max(1);
        let mut out = Vec::with_capacity(x.len());
        for block in x.chunks(rows * dim) {
            let arena = Arena::new(&self.net, block.len() / dim, 1);
            let mut dispatches = vec![self.time(&arena, 0)];
            self.forward(&arena, &mut dispatches);
            let last = *arena.base.last().expect("tensors");
            out.extend(
                self.run(
                    gpu,
                    pipelines,
                    &arena,
                    &[(0, block), (arena.features, &features)],
                    &dispatches,
                    (last, block.len()),
                )
                .await?,
            );
        }
        Ok(out)
    }

    /// The network's Euler samples from the noises `x0` (rows), `steps` steps from t = 0 to 1
    /// (`flow::digit_training::sample`'s twin), in one submission per block of rows.
    pub async fn sample(
        &self,
        gpu: &Gpu,
        pipelines: &UnetPipelines,
        x0: &[f32],
        steps: usize,
    ) -> Result<Vec<f32>, GpuError> {
        let dim = self.net.shape.dim();
        assert!(
            x0.len().is_multiple_of(dim),
            "{} values are not whole images of {dim}",
            x0.len()
        );
        let dt = 1.0 / steps as f32;
        let features: Vec<f32> = (0..steps)
            .flat_map(|k| self.net.time_features(step_time(0.0, dt, k)))
            .collect();
        let rows = self.rows_that_fit(gpu, steps).max(1);
        let mut out = Vec::with_capacity(x0.len());
        for block in x0.chunks(rows * dim) {
            let arena = Arena::new(&self.net, block.len() / dim, steps);
            let last = *arena.base.last().expect("tensors");
            let mut dispatches = Vec::new();
            for k in 0..steps {
                dispatches.push(self.time(&arena, k));
                self.forward(&arena, &mut dispatches);
                dispatches.push(Dispatch {
                    kernel: Kernel::Euler,
                    args: Args {
                        rows: arena.rows as u32,
                        output: 0,
                        output_size: dim as u32,
                        second: last as u32,
                        second_size: dim as u32,
                        dt,
                        ..Args::default()
                    },
                    groups: elementwise(block.len()),
                });
            }
            out.extend(
                self.run(
                    gpu,
                    pipelines,
                    &arena,
                    &[(0, block), (arena.features, &features)],
                    &dispatches,
                    (0, block.len()),
                )
                .await?,
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::wgsl_layout::wgsl_layout;

    #[test]
    fn args_match_the_kernel_s_struct() {
        wgsl_layout!(
            Args,
            shaders::UNET,
            "Args",
            [
                rows: u32,
                input: u32,
                input_size: u32,
                second: u32,
                second_size: u32,
                output: u32,
                output_size: u32,
                w: u32,
                b: u32,
                cin: u32,
                cout: u32,
                k: u32,
                side: u32,
                groups: u32,
                feature_row: u32,
                dt: f32,
            ]
        );
    }
}
