//! The digits' U-Net on the GPU: `flow::unet`'s graph run by shaders/unet.wgsl, one dispatch per
//! operation over a batch of images, every tensor of the batch in one arena buffer. `velocities`
//! is one forward pass; `sample` is a whole Euler integration in one submission (each step the
//! time features broadcast, the forward pass, then x += dt u), read back once; `loss_and_grad`
//! is the CFM loss and its gradient with respect to the parameters (shaders/unet_backward.wgsl:
//! the forward pass, the loss's gradient, then the graph in reverse, in one submission per block
//! of images, the blocks' gradients summed on the device).

use super::kernels::{bind, entry, whole, window, Layout, Shader, Slot};
use super::readback::{scoped, start_read_from};
use super::{shaders, Gpu, GpuError};
use crate::flow::sampler::step_time;
use crate::flow::unet::{Op, Unet};
use std::sync::Mutex;
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
    scratch: u32,
    _pad: [u32; 3],
}

/// The kernels of shaders/unet.wgsl, then those of shaders/unet_backward.wgsl, by entry point.
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
    Loss,
    ConvDx,
    ConvDw,
    ChannelSums,
    NormBack,
    SiluBack,
    LinearDx,
    LinearDw,
    AddSlice,
    PoolBack,
    UpBack,
    SumRows,
}

impl Kernel {
    const ALL: [Kernel; 23] = [
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
        Kernel::Loss,
        Kernel::ConvDx,
        Kernel::ConvDw,
        Kernel::ChannelSums,
        Kernel::NormBack,
        Kernel::SiluBack,
        Kernel::LinearDx,
        Kernel::LinearDw,
        Kernel::AddSlice,
        Kernel::PoolBack,
        Kernel::UpBack,
        Kernel::SumRows,
    ];

    /// Whether the kernel is unet_backward.wgsl's (its bindings: the forward tensors read, the
    /// gradients written).
    fn backward(self) -> bool {
        self as usize >= Kernel::Loss as usize
    }

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
            Kernel::Loss => "loss",
            Kernel::ConvDx => "conv_dx",
            Kernel::ConvDw => "conv_dw",
            Kernel::ChannelSums => "channel_sums",
            Kernel::NormBack => "norm_back",
            Kernel::SiluBack => "silu_back",
            Kernel::LinearDx => "linear_dx",
            Kernel::LinearDw => "linear_dw",
            Kernel::AddSlice => "add_slice",
            Kernel::PoolBack => "pool_back",
            Kernel::UpBack => "up_back",
            Kernel::SumRows => "sum_rows",
        }
    }
}

/// The most images of one training submission: a block of a batch's gradient stays a short
/// submission (a browser's or a driver's watchdog stops long ones on a small GPU).
const TRAINING_ROWS: usize = 64;

/// Bytes between two dispatches' `Args` in the uniform buffer (WebGPU's dynamic-offset alignment).
const ARGS_STRIDE: u64 = 256;
/// Output rows and columns of one `conv` workgroup.
const CONV_TILE: (u32, u32) = (32, 128);
/// Invocations of an element-wise workgroup, and the most workgroups along x.
const GROUP: u32 = 64;
const MAX_GROUPS_X: u32 = 65535;

/// The forward kernels' bindings: the dispatch's `Args` (at a dynamic offset), what it reads,
/// the arena it writes.
const FORWARD_SLOTS: &[Slot] = &[
    Slot::Uniform {
        dynamic: true,
        min_bytes: 0,
    },
    Slot::Read,
    Slot::Write,
];
/// The backward kernels': `Args`, the parameters, the target, the arena, the gradients.
const BACKWARD_SLOTS: &[Slot] = &[
    Slot::Uniform {
        dynamic: true,
        min_bytes: 0,
    },
    Slot::Read,
    Slot::Read,
    Slot::Write,
    Slot::Write,
];
const FORWARD: Shader = Shader {
    name: "unet.wgsl",
    source: shaders::UNET,
    layout: Layout::Fixed(FORWARD_SLOTS),
};
const BACKWARD: Shader = Shader {
    name: "unet_backward.wgsl",
    source: shaders::UNET_BACKWARD,
    layout: Layout::Fixed(BACKWARD_SLOTS),
};

/// The U-Net kernels on a device (compiled by their first caller, then shared), by `Kernel`.
pub struct UnetPipelines {
    layout: wgpu::BindGroupLayout,
    back_layout: wgpu::BindGroupLayout,
    pipelines: Vec<wgpu::ComputePipeline>,
}

impl UnetPipelines {
    pub fn new(gpu: &Gpu) -> UnetPipelines {
        let device = &gpu.device;
        let pipelines = Kernel::ALL
            .iter()
            .map(|k| {
                let shader = if k.backward() { &BACKWARD } else { &FORWARD };
                gpu.kernels.pipeline(device, shader, k.entry())
            })
            .collect();
        UnetPipelines {
            layout: gpu.kernels.layout(device, FORWARD_SLOTS),
            back_layout: gpu.kernels.layout(device, BACKWARD_SLOTS),
            pipelines,
        }
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
    /// A training block's arena and tensor gradients, kept from block to block and step to step
    /// (grown when a block needs more): a pair made for each block had a fast GPU allocate and
    /// clear hundreds of megabytes a step, and steps submitted together held a pair each until
    /// they ran. The queue orders a block's writes after the work submitted before them.
    training: Mutex<Option<(wgpu::Buffer, wgpu::Buffer)>>,
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

/// Every dispatch's `Args`, ARGS_STRIDE apart, in one uniform buffer.
fn uniforms(device: &wgpu::Device, dispatches: &[Dispatch]) -> wgpu::Buffer {
    let mut bytes = vec![0u8; dispatches.len().max(1) * ARGS_STRIDE as usize];
    for (k, d) in dispatches.iter().enumerate() {
        let at = k * ARGS_STRIDE as usize;
        bytes[at..at + std::mem::size_of::<Args>()].copy_from_slice(bytemuck::bytes_of(&d.args));
    }
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("unet args"),
        contents: &bytes,
        usage: wgpu::BufferUsages::UNIFORM,
    })
}

/// A bind group of `layout`: the dispatches' `Args` at binding 0 (one dispatch's at a time, its
/// offset dynamic), then `buffers` whole at bindings 1, 2, ...
fn bind_group(
    device: &wgpu::Device,
    layout: &wgpu::BindGroupLayout,
    label: &str,
    uniform: &wgpu::Buffer,
    buffers: &[&wgpu::Buffer],
) -> wgpu::BindGroup {
    let args = entry(0, window(uniform, std::mem::size_of::<Args>() as u64));
    let entries: Vec<wgpu::BindGroupEntry> = std::iter::once(args)
        .chain(
            buffers
                .iter()
                .zip(1..)
                .map(|(buffer, binding)| whole(binding, buffer)),
        )
        .collect();
    bind(device, label, layout, &entries)
}

/// `dispatches` recorded in one compute pass of `encoder`, dispatch k reading the uniform's
/// `Args` k, through the bind group `group` picks for its kernel.
fn record<'a>(
    encoder: &mut wgpu::CommandEncoder,
    label: &str,
    pipelines: &UnetPipelines,
    dispatches: &[Dispatch],
    group: impl Fn(Kernel) -> &'a wgpu::BindGroup,
) {
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    });
    for (k, d) in dispatches.iter().enumerate() {
        pass.set_pipeline(pipelines.get(d.kernel));
        pass.set_bind_group(0, group(d.kernel), &[(k as u64 * ARGS_STRIDE) as u32]);
        pass.dispatch_workgroups(d.groups.0, d.groups.1, 1);
    }
}

/// Pixels of the batch per split of a convolution's weight gradient: enough splits that the
/// product fills a large GPU (about 512 workgroups), each at least 256 pixels.
fn dw_chunk(pixels: usize, tiles: usize) -> usize {
    let splits = 512usize
        .div_ceil(tiles.max(1))
        .clamp(1, (pixels / 256).max(1));
    pixels.div_ceil(splits).next_multiple_of(16)
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
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            });
        Ok(GpuUnet {
            net,
            params,
            most_rows: usize::MAX,
            training: Mutex::new(None),
        })
    }

    /// The parameters' buffer (a trainer updates it in place).
    pub fn params(&self) -> &wgpu::Buffer {
        &self.params
    }

    /// At most `rows` images a submission, below what one binding and one dispatch would hold:
    /// shorter submissions (a sampling awaits each, so a page can show progress between them; a
    /// watchdog stops long ones on a small GPU).
    pub fn with_rows_per_submission(mut self, rows: usize) -> GpuUnet {
        self.most_rows = rows.max(1);
        self
    }

    /// Images of a batch that fit one binding (with room for `feature_rows` time features), one
    /// convolution dispatch (at most 65,535 workgroups of CONV_TILE.1 pixels along x) and one
    /// dispatch of a workgroup per image, and the submission's own cap.
    pub fn rows_that_fit(&self, gpu: &Gpu, feature_rows: usize) -> usize {
        let limit = gpu.device.limits().max_storage_buffer_binding_size as usize / 4;
        let per_image: usize = self.net.tensor_sizes().iter().sum();
        let features = feature_rows * self.net.shape.time_features;
        let by_dispatch = MAX_GROUPS_X as usize * CONV_TILE.1 as usize / self.net.shape.dim();
        (limit.saturating_sub(features) / per_image)
            .min(by_dispatch)
            .min(self.most_rows)
            .min(MAX_GROUPS_X as usize)
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
            let uniform = uniforms(device, dispatches);
            let group = bind_group(
                device,
                &pipelines.layout,
                "unet",
                &uniform,
                &[&self.params, &buffer],
            );
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("unet"),
            });
            record(&mut encoder, "unet", pipelines, dispatches, |_| &group);
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

/// Where a training block's buffers hold what: the forward tensors (the arena's layout, no time
/// features region), the targets after them; in the gradient buffer, every tensor's gradient at
/// the same offsets, each image's loss after them, then the scratch region.
struct TrainLayout {
    arena: Arena,
    target: usize,
    losses: usize,
    scratch: usize,
    grad_len: usize,
}

/// A batch's terms of the CFM loss: rows of `x` and `target` (a time each in `t`), the sum of
/// their squared differences scaled by `scale`.
#[derive(Clone, Copy)]
pub struct Terms<'a> {
    pub x: &'a [f32],
    pub t: &'a [f32],
    pub target: &'a [f32],
    pub scale: f32,
}

impl GpuUnet {
    /// The dispatches of the loss's gradient and the backward pass over `layout`'s rows, the
    /// loss scaled by `scale`; returns them with the scratch floats they need.
    fn backward(&self, layout: &TrainLayout, scale: f32, out: &mut Vec<Dispatch>) -> usize {
        let sizes = self.net.tensor_sizes();
        let arena = &layout.arena;
        let rows = arena.rows;
        let base = &arena.base;
        let last = base.len() - 1;
        let dim = self.net.shape.dim();
        let scratch = layout.scratch as u32;
        let mut most = 0usize;
        let at = |t: usize| (base[t] as u32, sizes[t] as u32);
        out.push(Dispatch {
            kernel: Kernel::Loss,
            args: Args {
                rows: rows as u32,
                output: base[last] as u32,
                output_size: dim as u32,
                second: layout.target as u32,
                dt: scale,
                scratch: layout.losses as u32,
                ..Args::default()
            },
            groups: (rows as u32, 1),
        });
        // grad[input] += grad[source][second..second + count] for every image.
        let slice =
            |input: usize, (source, source_size): (u32, u32), second: usize, count: usize| {
                let (i, i_size) = at(input);
                Dispatch {
                    kernel: Kernel::AddSlice,
                    args: Args {
                        rows: rows as u32,
                        input: i,
                        input_size: i_size,
                        output: source,
                        output_size: source_size,
                        second: second as u32,
                        cout: count as u32,
                        ..Args::default()
                    },
                    groups: elementwise(rows * count),
                }
            };
        // grads[w..w + count] += the sum of `parts` rows of the scratch region.
        let sum_rows = |w: usize, parts: usize, count: usize, from: u32| Dispatch {
            kernel: Kernel::SumRows,
            args: Args {
                rows: parts as u32,
                w: w as u32,
                cout: count as u32,
                scratch: from,
                ..Args::default()
            },
            groups: elementwise(count),
        };
        for (k, op) in self.net.ops().iter().enumerate().rev() {
            let o = k + 2;
            let mut args = Args {
                rows: rows as u32,
                output: base[o] as u32,
                output_size: sizes[o] as u32,
                scratch,
                ..Args::default()
            };
            match *op {
                Op::Conv {
                    input,
                    cin,
                    cout,
                    k,
                    side,
                    w,
                    b,
                } => {
                    (args.input, args.input_size) = at(input);
                    (args.cin, args.cout, args.k, args.side) =
                        (cin as u32, cout as u32, k as u32, side as u32);
                    (args.w, args.b) = (w as u32, b as u32);
                    let pixels = rows * side * side;
                    let depth = cin * k * k;
                    out.push(Dispatch {
                        kernel: Kernel::ChannelSums,
                        args,
                        groups: elementwise(rows * cout),
                    });
                    out.push(sum_rows(b, rows, cout, scratch));
                    let tiles = (
                        (depth as u32).div_ceil(CONV_TILE.1),
                        (cout as u32).div_ceil(CONV_TILE.0),
                    );
                    let chunk = dw_chunk(pixels, (tiles.0 * tiles.1) as usize);
                    let splits = pixels.div_ceil(chunk);
                    most = most.max(rows * cout).max(splits * cout * depth);
                    out.push(Dispatch {
                        kernel: Kernel::ConvDw,
                        args: Args {
                            feature_row: chunk as u32,
                            ..args
                        },
                        groups: (tiles.0, tiles.1 * splits as u32),
                    });
                    out.push(sum_rows(w, splits, cout * depth, scratch));
                    // The image's and the time features' gradients are not needed.
                    if input >= 2 {
                        out.push(Dispatch {
                            kernel: Kernel::ConvDx,
                            args,
                            groups: (
                                (pixels as u32).div_ceil(CONV_TILE.1),
                                (cin as u32).div_ceil(CONV_TILE.0),
                            ),
                        });
                    }
                }
                Op::Norm {
                    input,
                    c,
                    side,
                    groups,
                    gamma,
                    beta,
                } => {
                    (args.input, args.input_size) = at(input);
                    (args.cin, args.side, args.groups) = (c as u32, side as u32, groups as u32);
                    args.w = gamma as u32;
                    most = most.max(2 * rows * c);
                    out.push(Dispatch {
                        kernel: Kernel::NormBack,
                        args,
                        groups: (groups as u32, rows as u32),
                    });
                    out.push(sum_rows(gamma, rows, c, scratch));
                    out.push(sum_rows(beta, rows, c, scratch + (rows * c) as u32));
                }
                Op::Silu { input } => {
                    (args.input, args.input_size) = at(input);
                    out.push(Dispatch {
                        kernel: Kernel::SiluBack,
                        args,
                        groups: elementwise(rows * sizes[input]),
                    });
                }
                Op::Linear {
                    input,
                    nin,
                    nout,
                    w,
                    b,
                } => {
                    (args.input, args.input_size) = at(input);
                    (args.cin, args.cout, args.w, args.b) =
                        (nin as u32, nout as u32, w as u32, b as u32);
                    out.push(Dispatch {
                        kernel: Kernel::LinearDw,
                        args,
                        groups: elementwise(nout * nin + nout),
                    });
                    if input >= 2 {
                        out.push(Dispatch {
                            kernel: Kernel::LinearDx,
                            args,
                            groups: elementwise(rows * nin),
                        });
                    }
                }
                Op::Add { a, b } => {
                    out.push(slice(a, at(o), 0, sizes[o]));
                    out.push(slice(b, at(o), 0, sizes[o]));
                }
                Op::AddChannels {
                    input,
                    per_channel,
                    c,
                    side,
                } => {
                    out.push(slice(input, at(o), 0, sizes[o]));
                    (args.cout, args.side) = (c as u32, side as u32);
                    most = most.max(rows * c);
                    out.push(Dispatch {
                        kernel: Kernel::ChannelSums,
                        args,
                        groups: elementwise(rows * c),
                    });
                    out.push(slice(per_channel, (scratch, c as u32), 0, c));
                }
                Op::Pool { input, side, .. } | Op::Up { input, side, .. } => {
                    (args.input, args.input_size) = at(input);
                    args.side = side as u32;
                    let kernel = if matches!(op, Op::Pool { .. }) {
                        Kernel::PoolBack
                    } else {
                        Kernel::UpBack
                    };
                    out.push(Dispatch {
                        kernel,
                        args,
                        groups: elementwise(rows * sizes[input]),
                    });
                }
                Op::Concat { a, b } => {
                    out.push(slice(a, at(o), 0, sizes[a]));
                    out.push(slice(b, at(o), sizes[a], sizes[b]));
                }
            }
        }
        most
    }

    /// The training blocks' arena (at least `arena_len` floats) and tensor gradients (at least
    /// `grad_len`): the kept pair, or a larger one that replaces it.
    fn training_buffers(
        &self,
        device: &wgpu::Device,
        arena_len: usize,
        grad_len: usize,
    ) -> (wgpu::Buffer, wgpu::Buffer) {
        let bytes = |len: usize| (len.max(1) * 4).next_multiple_of(16) as u64;
        let mut kept = self.training.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((arena, grad)) = kept.as_ref() {
            if arena.size() >= bytes(arena_len) && grad.size() >= bytes(grad_len) {
                return (arena.clone(), grad.clone());
            }
        }
        let sized = |label, len: usize, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes(len),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | usage,
                mapped_at_creation: false,
            })
        };
        let (arena_len, grad_len) = match kept.as_ref() {
            Some((arena, grad)) => (
                arena_len.max(arena.size() as usize / 4),
                grad_len.max(grad.size() as usize / 4),
            ),
            None => (arena_len, grad_len),
        };
        let pair = (
            sized(
                "unet training arena",
                arena_len,
                wgpu::BufferUsages::empty(),
            ),
            sized(
                "unet tensor gradients",
                grad_len,
                wgpu::BufferUsages::COPY_SRC,
            ),
        );
        *kept = Some(pair.clone());
        pair
    }

    /// The layout of a training block of `rows` images.
    fn train_layout(&self, rows: usize) -> TrainLayout {
        let arena = Arena::new(&self.net, rows, 0);
        let target = arena.features;
        let losses = arena.features;
        let scratch = losses + rows;
        TrainLayout {
            arena,
            target,
            losses,
            scratch,
            grad_len: scratch,
        }
    }

    /// Images of a training block that fit one binding: the gradient buffer holds the tensors'
    /// gradients and the scratch region (at most a few times one image's tensors).
    pub fn training_rows_that_fit(&self, gpu: &Gpu) -> usize {
        let limit = gpu.device.limits().max_storage_buffer_binding_size as usize / 4;
        let per_image: usize = self.net.tensor_sizes().iter().sum();
        let by_dispatch = MAX_GROUPS_X as usize * CONV_TILE.1 as usize / self.net.shape.dim();
        // The scratch region's largest use, a convolution's split weight gradients, grows with
        // the splits (at most 512 tiles' worth) rather than with the rows: a fixed allowance.
        let allowance = 4 * self.net.parameter_count();
        (limit.saturating_sub(allowance) / (2 * per_image + 1))
            .min(by_dispatch)
            .min(self.most_rows)
            .min(TRAINING_ROWS)
            .min(MAX_GROUPS_X as usize)
    }

    /// The CFM loss mean_b ||u_theta(x_b, t_b) - target_b||^2 over a batch (rows of `x` and
    /// `target`, a time each) and its gradient with respect to the parameters:
    /// `flow::unet::Unet::loss_and_grad`'s twin.
    pub async fn loss_and_grad(
        &self,
        gpu: &Gpu,
        pipelines: &UnetPipelines,
        x: &[f32],
        t: &[f32],
        target: &[f32],
    ) -> Result<(f32, Vec<f32>), GpuError> {
        let dim = self.net.shape.dim();
        assert!(
            x.len() == t.len() * dim && target.len() == x.len(),
            "{} times for {} values and {} targets of {dim}",
            t.len(),
            x.len(),
            target.len()
        );
        let device = &gpu.device;
        let count = self.net.parameter_count();
        let grads = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("unet parameter gradients"),
            size: (count * 4).next_multiple_of(16) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let loss = self
            .add_gradient(gpu, pipelines, &grads, x, t, target, 1.0 / t.len() as f32)
            .await?;
        let (pending, verdict) = scoped(device, || {
            let pending = start_read_from(gpu, &grads, 0, count);
            grads.destroy();
            pending
        });
        let values = pending.finish(gpu).await;
        verdict.check().await?;
        Ok((loss, values?))
    }

    /// `scale` x sum_b ||u_theta(x_b, t_b) - target_b||^2 over the rows given (returned), its
    /// gradient added to `grads` (a buffer of the parameters' length, on this device).
    #[allow(clippy::too_many_arguments)]
    pub async fn add_gradient(
        &self,
        gpu: &Gpu,
        pipelines: &UnetPipelines,
        grads: &wgpu::Buffer,
        x: &[f32],
        t: &[f32],
        target: &[f32],
        scale: f32,
    ) -> Result<f32, GpuError> {
        let device = &gpu.device;
        let losses = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("unet losses"),
            size: (t.len().max(1) * 4).next_multiple_of(16) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let (pending, verdict) = scoped(device, || {
            let submitted = self.submit_gradient(
                gpu,
                pipelines,
                grads,
                Terms {
                    x,
                    t,
                    target,
                    scale,
                },
                (&losses, 0),
            );
            let pending = submitted.map(|()| start_read_from(gpu, &losses, 0, t.len()));
            losses.destroy();
            pending
        });
        let values = match pending {
            Ok(pending) => pending.finish(gpu).await,
            Err(e) => Err(e),
        };
        verdict.check().await?;
        Ok(values?.iter().sum())
    }

    /// Submits `add_gradient`'s work without waiting for it: image b's loss term lands in
    /// `losses.0` at float `losses.1 + b`, so that a run of training steps reads every step's
    /// loss at once (a read a step made a fast GPU wait on the page at every step).
    pub fn submit_gradient(
        &self,
        gpu: &Gpu,
        pipelines: &UnetPipelines,
        grads: &wgpu::Buffer,
        terms: Terms<'_>,
        losses: (&wgpu::Buffer, usize),
    ) -> Result<(), GpuError> {
        let Terms {
            x,
            t,
            target,
            scale,
        } = terms;
        let dim = self.net.shape.dim();
        let device = &gpu.device;
        let rows = self.training_rows_that_fit(gpu).max(1);
        for (block, (x, t)) in x.chunks(rows * dim).zip(t.chunks(rows)).enumerate() {
            let target = &target[block * rows * dim..][..x.len()];
            let features: Vec<f32> = t.iter().flat_map(|&t| self.net.time_features(t)).collect();
            let layout = self.train_layout(t.len());
            let mut dispatches = Vec::new();
            self.forward(&layout.arena, &mut dispatches);
            let scratch = self.backward(&layout, scale, &mut dispatches);
            let limit = device.limits().max_storage_buffer_binding_size as usize / 4;
            if layout.grad_len + scratch > limit {
                return Err(GpuError::TooLarge(format!(
                    "the gradients of {} images need {} floats, over one binding's {limit}",
                    t.len(),
                    layout.grad_len + scratch
                )));
            }
            let (arena, grad) =
                self.training_buffers(device, layout.target + x.len(), layout.grad_len + scratch);
            for (at, values) in [
                (0, x),
                (layout.arena.base[1], &features[..]),
                (layout.target, target),
            ] {
                gpu.queue
                    .write_buffer(&arena, (at * 4) as u64, bytemuck::cast_slice(values));
            }
            let uniform = uniforms(device, &dispatches);
            let forward = bind_group(
                device,
                &pipelines.layout,
                "unet forward",
                &uniform,
                &[&self.params, &arena],
            );
            let backward = bind_group(
                device,
                &pipelines.back_layout,
                "unet backward",
                &uniform,
                &[&self.params, &arena, &grad, grads],
            );
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("unet gradient"),
            });
            // Every tensor's gradient starts at zero (the kernels add to them).
            encoder.clear_buffer(&grad, 0, None);
            record(
                &mut encoder,
                "unet gradient",
                pipelines,
                &dispatches,
                |kernel| {
                    if kernel.backward() {
                        &backward
                    } else {
                        &forward
                    }
                },
            );
            encoder.copy_buffer_to_buffer(
                &grad,
                (layout.losses * 4) as u64,
                losses.0,
                ((losses.1 + block * rows) * 4) as u64,
                (t.len() * 4) as u64,
            );
            gpu.queue.submit([encoder.finish()]);
            uniform.destroy();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::wgsl_layout::wgsl_layout;

    #[test]
    fn args_match_the_kernels_structs() {
        for source in [shaders::UNET, shaders::UNET_BACKWARD] {
            wgsl_layout!(
                Args,
                source,
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
                    scratch: u32,
                ]
            );
        }
    }

    #[test]
    fn weight_gradients_split_to_fill_a_large_gpu() {
        // The digits' widest convolution at a batch of 64: 2 x 5 tiles of the 64 x 576 weights.
        let pixels = 64 * 14 * 14;
        let tiles =
            64usize.div_ceil(CONV_TILE.0 as usize) * 576usize.div_ceil(CONV_TILE.1 as usize);
        assert_eq!(tiles, 10);
        let chunk = dw_chunk(pixels, tiles);
        let splits = pixels.div_ceil(chunk);
        assert!(chunk.is_multiple_of(16) && chunk >= 256);
        assert!((448..=576).contains(&(splits * tiles)), "{splits} splits");
        // A small batch is not split below 256 pixels a split.
        assert_eq!(dw_chunk(300, 1), 304);
    }
}
