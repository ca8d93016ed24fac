//! The fused closed-form kernel (`shaders/closed_form.wgsl`): velocities, and Euler sampling with
//! many steps per command submission and one readback at the end.

use super::{readback::read_f32, shaders, Gpu, GpuError};
use wgpu::util::DeviceExt;

const QUERIES_PER_WORKGROUP: usize = 16;
const MAX_WORKGROUPS: usize = 65_535;
/// Work per submission (multiply-adds): bounds how long one command buffer keeps the GPU busy,
/// so a long sampling run cannot trip the browser's GPU watchdog.
const WORK_PER_SUBMISSION: f64 = 4.0e9;

const FLAG_FIRST: u32 = 1;
const FLAG_LAST: u32 = 2;
const FLAG_EULER: u32 = 4;
const FLAG_PER_QUERY_T: u32 = 8;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    k_begin: u32,
    k_end: u32,
    dim: u32,
    m: u32,
    flags: u32,
    t: f32,
    dt: f32,
    _pad: u32,
}

/// Training points per dispatch: chunks of the kernel's TK = 32 points, at most 32 of them and
/// about 16K dims x points of work per query (5 chunks at dim 3,072). Long dispatches trip GPU
/// watchdogs, and on llvmpipe ones past ~2,000 strips of 32 dims came back wrong.
fn points_per_dispatch(dim: usize) -> u32 {
    const TK: usize = 32;
    (TK * (16_384 / dim).clamp(1, 32)) as u32
}

/// The (first point, end point) of every dispatch over `n` points of dimension `dim`.
fn point_ranges(dim: usize, n: u32) -> Vec<(u32, u32)> {
    let span = points_per_dispatch(dim);
    let mut ranges = Vec::new();
    let mut k = 0;
    while k < n {
        let end = (k + span).min(n);
        ranges.push((k, end));
        k = end;
    }
    ranges
}

/// The (slice, first point, end point) of every dispatch that makes up one pass over the set.
fn dispatch_ranges(set: &TrainingSet) -> Vec<(usize, u32, u32)> {
    set.slices
        .iter()
        .enumerate()
        .flat_map(|(s, (_, n_slice))| {
            point_ranges(set.dim, *n_slice)
                .into_iter()
                .map(move |(a, b)| (s, a, b))
        })
        .collect()
}

/// A training set resident on the GPU, split into slices that each fit one storage binding.
pub struct TrainingSet {
    slices: Vec<(wgpu::Buffer, u32)>,
    pub dim: usize,
    pub n: usize,
}

fn max_rows_per_binding(gpu: &Gpu, dim: usize) -> usize {
    let limits = gpu.device.limits();
    let bytes = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    (bytes / (4 * dim as u64)) as usize
}

impl TrainingSet {
    pub fn upload(gpu: &Gpu, data: &[f32], dim: usize) -> Result<TrainingSet, GpuError> {
        Self::upload_in_slices(gpu, data, dim, max_rows_per_binding(gpu, dim))
    }

    /// Uploads in slices of at most `rows` points. `upload` picks the largest slice one binding
    /// holds; smaller slices exercise the multi-dispatch path on small inputs (tests).
    pub fn upload_in_slices(
        gpu: &Gpu,
        data: &[f32],
        dim: usize,
        rows: usize,
    ) -> Result<TrainingSet, GpuError> {
        if rows == 0 {
            return Err(GpuError::TooLarge(format!(
                "one {dim}-dimensional point exceeds a binding"
            )));
        }
        let slices = data
            .chunks(rows * dim)
            .enumerate()
            .map(|(i, chunk)| {
                // Written through the queue straight from wasm memory: one copy by the browser,
                // where a buffer mapped at creation costs a second one in JS (tens of ms on the
                // main thread for the 31 MB of the digits).
                let bytes: &[u8] = bytemuck::cast_slice(chunk);
                let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("training set slice {i}")),
                    size: bytes.len().max(4) as u64,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                gpu.queue.write_buffer(&buffer, 0, bytes);
                (buffer, (chunk.len() / dim) as u32)
            })
            .collect();
        Ok(TrainingSet {
            slices,
            dim,
            n: data.len() / dim,
        })
    }
}

impl Drop for TrainingSet {
    fn drop(&mut self) {
        for (buffer, _) in &self.slices {
            buffer.destroy();
        }
    }
}

/// One integration step (or a plain velocity evaluation when `euler` is false).
#[derive(Clone, Copy)]
struct Step {
    t: f32,
    dt: f32,
    euler: bool,
}

fn euler_schedule(t_start: f32, dt: f32, steps: usize) -> Vec<Step> {
    (0..steps)
        .map(|k| Step {
            t: t_start + k as f32 * dt,
            dt,
            euler: true,
        })
        .collect()
}

/// The two closed-form kernels, which share one binding layout: a tiled one (workgroup memory,
/// 16 queries per workgroup) for any dim, and a register one (one query per invocation) for
/// dim <= SMALL_DIM, which the 2-D figures use.
pub struct ClosedFormPipeline {
    tiled: wgpu::ComputePipeline,
    small: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    /// Bound as `times` when every query shares one t.
    no_times: wgpu::Buffer,
}

/// Largest dim the register kernel handles (its accumulator is one vec4).
const SMALL_DIM: usize = 4;
const SMALL_QUERIES_PER_WORKGROUP: usize = 64;

fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

impl ClosedFormPipeline {
    pub fn new(gpu: &Gpu) -> ClosedFormPipeline {
        let device = &gpu.device;
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("closed form bindings"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: true,
                        min_binding_size: wgpu::BufferSize::new(
                            std::mem::size_of::<Params>() as u64
                        ),
                    },
                    count: None,
                },
                storage_entry(1, true),
                storage_entry(2, true),
                storage_entry(3, false),
                storage_entry(4, false),
                storage_entry(5, true),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("closed form layout"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = |label: &str, source: &str| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        ClosedFormPipeline {
            tiled: pipeline("closed_form.wgsl", shaders::CLOSED_FORM),
            small: pipeline("closed_form_small.wgsl", shaders::CLOSED_FORM_SMALL),
            layout,
            no_times: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("closed form: one t for all"),
                size: 4,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            }),
        }
    }

    /// u*(x, t) for every row of `points`; the result is m x dim.
    pub async fn velocity(
        &self,
        gpu: &Gpu,
        set: &TrainingSet,
        points: &[f32],
        t: f32,
    ) -> Result<Vec<f32>, GpuError> {
        let step = Step {
            t,
            dt: 0.0,
            euler: false,
        };
        self.run(gpu, set, points, &[step], None, false).await
    }

    /// u*(x_q, t_q) for every row of `points`, each at its own time `times[q]`.
    pub async fn velocity_at(
        &self,
        gpu: &Gpu,
        set: &TrainingSet,
        points: &[f32],
        times: &[f32],
    ) -> Result<Vec<f32>, GpuError> {
        let step = Step {
            t: 0.0,
            dt: 0.0,
            euler: false,
        };
        self.run(gpu, set, points, &[step], Some(times), false)
            .await
    }

    /// Euler from t0 to 1 in `steps` equal steps on left endpoints (t = 1 is never evaluated).
    pub async fn sample(
        &self,
        gpu: &Gpu,
        set: &TrainingSet,
        x0: &[f32],
        steps: usize,
        t0: f32,
    ) -> Result<Vec<f32>, GpuError> {
        self.euler(gpu, set, x0, t0, (1.0 - t0) / steps as f32, steps)
            .await
    }

    /// `steps` Euler steps of size `dt` from `t_start`, encoded back to back.
    pub async fn euler(
        &self,
        gpu: &Gpu,
        set: &TrainingSet,
        x0: &[f32],
        t_start: f32,
        dt: f32,
        steps: usize,
    ) -> Result<Vec<f32>, GpuError> {
        self.run(
            gpu,
            set,
            x0,
            &euler_schedule(t_start, dt, steps),
            None,
            false,
        )
        .await
    }

    /// Like `euler`, but returns the positions after every step (steps x m x dim, step-major),
    /// still from one submission and one readback: what an animation needs.
    pub async fn trajectory(
        &self,
        gpu: &Gpu,
        set: &TrainingSet,
        x0: &[f32],
        t_start: f32,
        dt: f32,
        steps: usize,
    ) -> Result<Vec<f32>, GpuError> {
        let bytes = (steps * x0.len() * 4) as u64;
        if bytes > gpu.device.limits().max_buffer_size {
            return Err(GpuError::TooLarge(format!(
                "a trajectory of {steps} steps of {} values ({bytes} bytes)",
                x0.len()
            )));
        }
        self.run(
            gpu,
            set,
            x0,
            &euler_schedule(t_start, dt, steps),
            None,
            true,
        )
        .await
    }

    /// Runs `schedule` on every query (at `times`, one per query, when given); with `record`,
    /// returns every step's positions.
    async fn run(
        &self,
        gpu: &Gpu,
        set: &TrainingSet,
        queries: &[f32],
        schedule: &[Step],
        times: Option<&[f32]>,
        record: bool,
    ) -> Result<Vec<f32>, GpuError> {
        let dim = set.dim;
        let batch =
            (max_rows_per_binding(gpu, dim) / 64 * 64).min(MAX_WORKGROUPS * QUERIES_PER_WORKGROUP);
        if batch == 0 {
            return Err(GpuError::TooLarge(format!(
                "64 points of dim {dim} exceed a binding"
            )));
        }
        if record && queries.len() > batch * dim {
            return Err(GpuError::TooLarge(format!(
                "trajectories are limited to {batch} points of dim {dim}"
            )));
        }
        let mut out = Vec::with_capacity(queries.len());
        for (c, chunk) in queries.chunks(batch * dim).enumerate() {
            let times = times.map(|t| &t[c * batch..c * batch + chunk.len() / dim]);
            out.extend(
                self.run_batch(gpu, set, chunk, schedule, times, record)
                    .await?,
            );
        }
        Ok(out)
    }

    async fn run_batch(
        &self,
        gpu: &Gpu,
        set: &TrainingSet,
        queries: &[f32],
        schedule: &[Step],
        times: Option<&[f32]>,
        record: bool,
    ) -> Result<Vec<f32>, GpuError> {
        let device = &gpu.device;
        // Error scopes are a stack shared by every task on the page: push and pop with no await
        // in between (figures compute concurrently), and await the verdict afterwards.
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let dim = set.dim;
        let m = queries.len() / dim;
        let position_usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        let positions = [
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("closed form positions A"),
                contents: bytemuck::cast_slice(queries),
                usage: position_usage,
            }),
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("closed form positions B"),
                size: (queries.len() * 4) as u64,
                usage: position_usage,
                mapped_at_creation: false,
            }),
        ];
        let state = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("closed form softmax state"),
            size: (m * 2 * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let times_buffer = times.map(|times| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("closed form query times"),
                contents: bytemuck::cast_slice(times),
                usage: wgpu::BufferUsages::STORAGE,
            })
        });
        let times_binding = times_buffer.as_ref().unwrap_or(&self.no_times);

        // One uniform entry per (step, dispatch), addressed by dynamic offset.
        let stride = (std::mem::size_of::<Params>() as u64)
            .next_multiple_of(device.limits().min_uniform_buffer_offset_alignment as u64);
        let ranges = dispatch_ranges(set);
        let per_step = ranges.len();
        let mut uniform_bytes = vec![0u8; stride as usize * schedule.len() * per_step];
        for (k, step) in schedule.iter().enumerate() {
            for (r, &(_, k_begin, k_end)) in ranges.iter().enumerate() {
                let mut flags = if times.is_some() { FLAG_PER_QUERY_T } else { 0 };
                if r == 0 {
                    flags |= FLAG_FIRST;
                }
                if r + 1 == per_step {
                    flags |= FLAG_LAST;
                    if step.euler {
                        flags |= FLAG_EULER;
                    }
                }
                let params = Params {
                    k_begin,
                    k_end,
                    dim: dim as u32,
                    m: m as u32,
                    flags,
                    t: step.t,
                    dt: step.dt,
                    _pad: 0,
                };
                let at = (k * per_step + r) * stride as usize;
                uniform_bytes[at..at + std::mem::size_of::<Params>()]
                    .copy_from_slice(bytemuck::bytes_of(&params));
            }
        }
        let uniforms = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("closed form params"),
            contents: &uniform_bytes,
            usage: wgpu::BufferUsages::UNIFORM,
        });

        // Bind groups for each (parity, slice): parity p reads positions[p], writes positions[1-p].
        let bind_groups: Vec<Vec<wgpu::BindGroup>> = (0..2)
            .map(|p| {
                set.slices
                    .iter()
                    .map(|(data, _)| {
                        device.create_bind_group(&wgpu::BindGroupDescriptor {
                            label: Some("closed form bind group"),
                            layout: &self.layout,
                            entries: &[
                                wgpu::BindGroupEntry {
                                    binding: 0,
                                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                        buffer: &uniforms,
                                        offset: 0,
                                        size: wgpu::BufferSize::new(
                                            std::mem::size_of::<Params>() as u64
                                        ),
                                    }),
                                },
                                wgpu::BindGroupEntry {
                                    binding: 1,
                                    resource: data.as_entire_binding(),
                                },
                                wgpu::BindGroupEntry {
                                    binding: 2,
                                    resource: positions[p].as_entire_binding(),
                                },
                                wgpu::BindGroupEntry {
                                    binding: 3,
                                    resource: positions[1 - p].as_entire_binding(),
                                },
                                wgpu::BindGroupEntry {
                                    binding: 4,
                                    resource: state.as_entire_binding(),
                                },
                                wgpu::BindGroupEntry {
                                    binding: 5,
                                    resource: times_binding.as_entire_binding(),
                                },
                            ],
                        })
                    })
                    .collect()
            })
            .collect();

        let (kernel, per_workgroup) = if dim <= SMALL_DIM {
            (&self.small, SMALL_QUERIES_PER_WORKGROUP)
        } else {
            (&self.tiled, QUERIES_PER_WORKGROUP)
        };
        let workgroups = m.div_ceil(per_workgroup) as u32;
        let frame_bytes = (queries.len() * 4) as u64;
        let frames = record.then(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("closed form trajectory"),
                size: frame_bytes * schedule.len() as u64,
                usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        let work_per_step = (m * set.n * dim) as f64;
        let steps_per_submission = ((WORK_PER_SUBMISSION / work_per_step) as usize).max(1);
        for (group, steps) in schedule.chunks(steps_per_submission).enumerate() {
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("closed form steps"),
            });
            // One pass for all the steps, or, when recording, one pass per step followed by a
            // copy of its result into the trajectory.
            let passes: Vec<std::ops::Range<usize>> = if record {
                (0..steps.len()).map(|j| j..j + 1).collect()
            } else {
                std::iter::once(0..steps.len()).collect()
            };
            for pass_steps in passes {
                {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("closed form pass"),
                        timestamp_writes: None,
                    });
                    pass.set_pipeline(kernel);
                    for j in pass_steps.clone() {
                        let k = group * steps_per_submission + j;
                        for (r, &(s, _, _)) in ranges.iter().enumerate() {
                            let offset = ((k * per_step + r) as u64 * stride) as u32;
                            pass.set_bind_group(0, &bind_groups[k % 2][s], &[offset]);
                            pass.dispatch_workgroups(workgroups, 1, 1);
                        }
                    }
                }
                if let Some(frames) = &frames {
                    let k = group * steps_per_submission + pass_steps.start;
                    encoder.copy_buffer_to_buffer(
                        &positions[(k + 1) % 2],
                        0,
                        frames,
                        k as u64 * frame_bytes,
                        frame_bytes,
                    );
                }
            }
            gpu.queue.submit([encoder.finish()]);
        }
        let validation = scope.pop();
        let result = match &frames {
            Some(frames) => read_f32(gpu, frames, queries.len() * schedule.len()).await,
            None => read_f32(gpu, &positions[schedule.len() % 2], queries.len()).await,
        };
        if let Some(error) = validation.await {
            return Err(GpuError::Validation(error.to_string()));
        }
        for buffer in positions
            .iter()
            .chain([&state, &uniforms])
            .chain(frames.as_ref())
            .chain(times_buffer.as_ref())
        {
            buffer.destroy();
        }
        result
    }
}

/// u*(x_q, t_q) of fixed GPU buffers, bound once and recorded into any compute pass: the EFM
/// trainer evaluates it on every step's fresh batch without leaving the pass.
pub struct RecordedVelocity {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    uniforms: wgpu::Buffer,
    state: wgpu::Buffer,
    offsets: Vec<u32>,
    workgroups: u32,
}

/// The buffers of a `RecordedVelocity`: `reference` holds n x dim points, `queries` m x dim,
/// `times` m values; the velocities go to `out` (m x dim).
pub struct VelocityBuffers<'a> {
    pub reference: &'a wgpu::Buffer,
    pub n: usize,
    pub dim: usize,
    pub queries: &'a wgpu::Buffer,
    pub times: &'a wgpu::Buffer,
    pub out: &'a wgpu::Buffer,
    pub m: usize,
}

impl ClosedFormPipeline {
    pub fn record_velocity(&self, gpu: &Gpu, b: VelocityBuffers) -> RecordedVelocity {
        let device = &gpu.device;
        let size = std::mem::size_of::<Params>();
        let stride = (size as u64)
            .next_multiple_of(device.limits().min_uniform_buffer_offset_alignment as u64)
            as usize;
        let ranges = point_ranges(b.dim, b.n as u32);
        let mut bytes = vec![0u8; stride * ranges.len()];
        for (r, &(k_begin, k_end)) in ranges.iter().enumerate() {
            let mut flags = FLAG_PER_QUERY_T;
            if r == 0 {
                flags |= FLAG_FIRST;
            }
            if r + 1 == ranges.len() {
                flags |= FLAG_LAST;
            }
            let params = Params {
                k_begin,
                k_end,
                dim: b.dim as u32,
                m: b.m as u32,
                flags,
                t: 0.0,
                dt: 0.0,
                _pad: 0,
            };
            bytes[r * stride..r * stride + size].copy_from_slice(bytemuck::bytes_of(&params));
        }
        let uniforms = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("recorded velocity params"),
            contents: &bytes,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let state = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("recorded velocity softmax state"),
            size: (b.m.max(1) * 2 * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        fn entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
            wgpu::BindGroupEntry {
                binding,
                resource: buffer.as_entire_binding(),
            }
        }
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("recorded velocity"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &uniforms,
                        offset: 0,
                        size: wgpu::BufferSize::new(size as u64),
                    }),
                },
                entry(1, b.reference),
                entry(2, b.queries),
                entry(3, b.out),
                entry(4, &state),
                entry(5, b.times),
            ],
        });
        let (pipeline, per_workgroup) = if b.dim <= SMALL_DIM {
            (&self.small, SMALL_QUERIES_PER_WORKGROUP)
        } else {
            (&self.tiled, QUERIES_PER_WORKGROUP)
        };
        RecordedVelocity {
            pipeline: pipeline.clone(),
            bind_group,
            uniforms,
            state,
            offsets: (0..ranges.len()).map(|r| (r * stride) as u32).collect(),
            workgroups: b.m.div_ceil(per_workgroup) as u32,
        }
    }
}

impl RecordedVelocity {
    pub fn record(&self, pass: &mut wgpu::ComputePass) {
        pass.set_pipeline(&self.pipeline);
        for &offset in &self.offsets {
            pass.set_bind_group(0, &self.bind_group, &[offset]);
            pass.dispatch_workgroups(self.workgroups, 1, 1);
        }
    }
}

impl Drop for RecordedVelocity {
    fn drop(&mut self) {
        self.uniforms.destroy();
        self.state.destroy();
    }
}
