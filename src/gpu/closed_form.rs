//! The fused closed-form kernel (`shaders/closed_form.wgsl`): velocities, and Euler sampling with
//! many steps per command submission and one readback at the end.

use super::kernels::{bind, entry, whole, window, Layout, Shader, Slot};
use super::readback::{scoped, start_read, PendingRead};
use super::{shaders, Gpu, GpuError};
use wgpu::util::DeviceExt;

/// Queries per workgroup of the tiled kernel (TQ in shaders/closed_form.wgsl).
const QUERIES_PER_WORKGROUP: usize = 32;
const MAX_WORKGROUPS: usize = 65_535;
/// Work per submission (multiply-adds): bounds how long one command buffer keeps the GPU busy,
/// so a long sampling run cannot trip the browser's GPU watchdog.
const WORK_PER_SUBMISSION: u64 = 4_000_000_000;
/// Steps whose uniform entries are held at once (one submission's at most).
const STEPS_PER_UNIFORM_BLOCK: usize = 256;
/// Workgroups a call aims to dispatch on a hardware GPU: enough for a discrete GPU's 50-150
/// compute units to hold several each, while a slot keeps at least one chunk of points.
pub const TARGET_WORKGROUPS: u64 = 512;
/// The same on a software adapter, whose workgroups run on a few CPU threads: more slots there
/// only add partial sums to write and merge.
pub const SOFTWARE_TARGET_WORKGROUPS: u64 = 32;
/// Points per slot at the least: one chunk of the tiled kernel.
const MIN_POINTS_PER_SLOT: u64 = 32;
/// The partial sums (slots x m x dim floats) stay within this many bytes (and one binding).
const PARTIAL_BYTES: u64 = 32 << 20;
/// The merge pass keeps one weight per slot in workgroup memory (closed_form_merge.wgsl).
const MAX_SLOTS: u64 = 1024;

const FLAG_FIRST: u32 = 1;
const FLAG_EULER: u32 = 4;
const FLAG_PER_QUERY_T: u32 = 8;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    k_begin: u32,
    k_end: u32,
    span: u32,
    dim: u32,
    m: u32,
    flags: u32,
    t: f32,
    dt: f32,
    slots: u32,
    _pad: [u32; 3],
}

/// Training points per slot per dispatch: chunks of the kernel's TK = 32 points, at most 32 of
/// them and about 16K dims x points of work per query (5 chunks at dim 3,072). Long dispatches
/// trip GPU watchdogs, and on llvmpipe ones past ~2,000 strips of 32 dims came back wrong.
fn points_per_dispatch(dim: u64) -> u64 {
    const TK: u64 = 32;
    TK * (16_384 / dim.max(1)).clamp(1, 32)
}

/// How one pass of the closed form over a training set is cut up: `query_tiles` x `slots`
/// workgroups per dispatch; slot y of a dispatch over points [k_begin, k_end) takes the `span`
/// points from k_begin + y span, and keeps its own softmax state across the dispatches; a merge
/// pass combines the slots (flash-decoding). Pure arithmetic in u64, so it is the same on wasm32.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub query_tiles: u32,
    pub slots: u32,
    pub span: u32,
    /// (slice, k_begin, k_end) of every dispatch of the first pass.
    pub dispatches: Vec<(usize, u32, u32)>,
    /// Workgroups of the merge pass, (x, y): one per query, or for dim <= 4 one per 64
    /// coordinates.
    pub merge_groups: (u32, u32),
}

impl Plan {
    /// `m` queries of dimension `dim` against a training set in slices of `slice_rows` points;
    /// the partial sums may take `partial_bytes` at most; `target` workgroups are wanted per
    /// dispatch where the work allows.
    pub fn new(m: u64, dim: u64, slice_rows: &[u32], partial_bytes: u64, target: u64) -> Plan {
        let per_workgroup = if dim <= SMALL_DIM as u64 {
            SMALL_QUERIES_PER_WORKGROUP as u64
        } else {
            QUERIES_PER_WORKGROUP as u64
        };
        let query_tiles = m.div_ceil(per_workgroup).max(1);
        let largest = slice_rows.iter().copied().max().unwrap_or(0) as u64;
        let by_memory = (partial_bytes / (4 * m * dim).max(1)).max(1);
        let wanted = target
            .div_ceil(query_tiles)
            .min(largest.div_ceil(MIN_POINTS_PER_SLOT))
            .min(by_memory)
            .clamp(1, MAX_SLOTS);
        let span = largest
            .div_ceil(wanted)
            .next_multiple_of(32)
            .min(points_per_dispatch(dim))
            .max(1);
        // No slot that would never get a point.
        let slots = wanted.min(largest.div_ceil(span)).max(1);
        let mut dispatches = Vec::new();
        for (s, &rows) in slice_rows.iter().enumerate() {
            let rows = rows as u64;
            let mut k = 0;
            while k < rows {
                let end = (k + slots * span).min(rows);
                dispatches.push((s, k as u32, end as u32));
                k = end;
            }
        }
        // One merge workgroup per query, or for small dims one invocation per coordinate.
        let groups = if dim <= SMALL_DIM as u64 {
            (m * dim).div_ceil(64).max(1)
        } else {
            m.max(1)
        };
        let x = groups.min(MAX_WORKGROUPS as u64);
        Plan {
            query_tiles: query_tiles as u32,
            slots: slots as u32,
            span: span as u32,
            dispatches,
            merge_groups: (x as u32, groups.div_ceil(x) as u32),
        }
    }

    /// Workgroups of each first-pass dispatch.
    pub fn workgroups(&self) -> u64 {
        self.query_tiles as u64 * self.slots as u64
    }

    /// Floats of the partial sums.
    pub fn partial_floats(&self, m: u64, dim: u64) -> u64 {
        self.slots as u64 * m * dim
    }
}

/// Euler steps per command submission for `m` queries over `n` points of dimension `dim`, with
/// at most `work` multiply-adds per submission.
pub fn steps_per_submission(work: u64, m: u64, n: u64, dim: u64) -> u64 {
    (work / (m * n * dim).max(1)).max(1)
}

/// The workgroups a call on `gpu` aims for.
fn target_workgroups(gpu: &Gpu) -> u64 {
    if gpu.software {
        SOFTWARE_TARGET_WORKGROUPS
    } else {
        TARGET_WORKGROUPS
    }
}

/// The bytes of partial sums a call may use on `gpu`.
fn partial_budget(gpu: &Gpu) -> u64 {
    let limits = gpu.device.limits();
    PARTIAL_BYTES
        .min(limits.max_storage_buffer_binding_size)
        .min(limits.max_buffer_size)
}

/// A training set resident on the GPU, split into slices that each fit one storage binding.
pub struct TrainingSet {
    slices: Vec<(wgpu::Buffer, u32)>,
    pub dim: usize,
    pub n: usize,
    /// Which set this is, for the bind groups kept with the closed form's scratch buffers.
    id: u64,
}

/// The next `TrainingSet::id`.
static NEXT_SET_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn max_rows_per_binding(gpu: &Gpu, dim: usize) -> usize {
    let limits = gpu.device.limits();
    let bytes = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    (bytes / (4 * dim as u64)) as usize
}

impl TrainingSet {
    /// The number of points of each slice.
    pub fn slice_rows(&self) -> Vec<u32> {
        self.slices.iter().map(|(_, rows)| *rows).collect()
    }

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
        let set = Self::empty_in_slices(gpu, data.len() / dim, dim, rows)?;
        set.write(gpu, 0, data);
        Ok(set)
    }

    /// `upload` a piece of at most `piece_floats` at a time, awaiting `pause` after each: the
    /// browser copies what the queue writes on the page's thread (25 ms for the 31 MB of the
    /// digits in one write).
    pub async fn upload_paced<P, F>(
        gpu: &Gpu,
        data: &[f32],
        dim: usize,
        piece_floats: usize,
        mut pause: P,
    ) -> Result<TrainingSet, GpuError>
    where
        P: FnMut() -> F,
        F: std::future::Future<Output = ()>,
    {
        let set = Self::empty(gpu, data.len() / dim, dim)?;
        let piece = piece_floats.max(1);
        for (k, values) in data.chunks(piece).enumerate() {
            set.write(gpu, k * piece, values);
            pause().await;
        }
        Ok(set)
    }

    /// A set of n points whose values are still to be written (`write`): the caller may bring
    /// them a piece at a time from wherever they are.
    pub fn empty(gpu: &Gpu, n: usize, dim: usize) -> Result<TrainingSet, GpuError> {
        Self::empty_in_slices(gpu, n, dim, max_rows_per_binding(gpu, dim))
    }

    /// `empty` in slices of at most `rows` points (as `upload_in_slices`).
    pub fn empty_in_slices(
        gpu: &Gpu,
        n: usize,
        dim: usize,
        rows: usize,
    ) -> Result<TrainingSet, GpuError> {
        if rows == 0 {
            return Err(GpuError::TooLarge(format!(
                "one {dim}-dimensional point exceeds a binding"
            )));
        }
        let slices = (0..n)
            .step_by(rows)
            .enumerate()
            .map(|(i, first)| {
                let count = rows.min(n - first);
                let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("training set slice {i}")),
                    // Whole 16-byte words: the kernels also read it as vec4.
                    size: (count as u64 * dim as u64 * 4).next_multiple_of(16).max(16),
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                (buffer, count as u32)
            })
            .collect();
        let id = NEXT_SET_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(TrainingSet { slices, dim, n, id })
    }

    /// Writes `values` from float `first` of the set (row-major, across slices) through the
    /// queue, straight from wasm memory: one copy by the browser, where a buffer mapped at
    /// creation costs a second one in JS. The queue runs writes in order, before any later
    /// submission.
    pub fn write(&self, gpu: &Gpu, first: usize, values: &[f32]) {
        let mut at = first;
        let mut values = values;
        let mut start = 0;
        for (buffer, rows) in &self.slices {
            let len = *rows as usize * self.dim;
            let end = start + len;
            if at < end && !values.is_empty() {
                let take = values.len().min(end - at);
                let (here, rest) = values.split_at(take);
                let offset = ((at - start) * 4) as u64;
                gpu.queue
                    .write_buffer(buffer, offset, bytemuck::cast_slice(here));
                values = rest;
                at += take;
            }
            start = end;
        }
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
            t: crate::flow::sampler::step_time(t_start, dt, k),
            dt,
            euler: true,
        })
        .collect()
}

/// The uniform entries of one step: one per first-pass dispatch of `plan`; the merge reuses the
/// last one (the first pass ignores EULER and dt).
fn step_params(plan: &Plan, dim: usize, m: usize, step: Step, per_query: bool) -> Vec<Params> {
    plan.dispatches
        .iter()
        .enumerate()
        .map(|(r, &(_, k_begin, k_end))| {
            let mut flags = if per_query { FLAG_PER_QUERY_T } else { 0 };
            if r == 0 {
                flags |= FLAG_FIRST;
            }
            if step.euler {
                flags |= FLAG_EULER;
            }
            Params {
                k_begin,
                k_end,
                span: plan.span,
                dim: dim as u32,
                m: m as u32,
                flags,
                t: step.t,
                dt: step.dt,
                slots: plan.slots,
                _pad: [0; 3],
            }
        })
        .collect()
}

/// `entries` laid out at the device's dynamic-offset alignment, and the stride between them.
fn pack_entries(device: &wgpu::Device, entries: &[Params]) -> (Vec<u8>, usize) {
    let size = std::mem::size_of::<Params>();
    let stride = (size as u64)
        .next_multiple_of(device.limits().min_uniform_buffer_offset_alignment as u64)
        as usize;
    let mut bytes = vec![0u8; stride * entries.len()];
    for (r, p) in entries.iter().enumerate() {
        bytes[r * stride..r * stride + size].copy_from_slice(bytemuck::bytes_of(p));
    }
    (bytes, stride)
}

/// One uniform buffer holding `entries` at the device's dynamic-offset alignment; returns it and
/// the stride between entries.
fn uniform_entries(
    device: &wgpu::Device,
    label: &str,
    entries: &[Params],
) -> (wgpu::Buffer, usize) {
    let (bytes, stride) = pack_entries(device, entries);
    let buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: &bytes,
        usage: wgpu::BufferUsages::UNIFORM,
    });
    (buffer, stride)
}

/// The closed-form kernels, which share one binding layout: two first passes, a tiled one
/// (workgroup memory, 16 queries per workgroup) for any dim and a register one (one query per
/// invocation) for dim <= SMALL_DIM, which the 2-D figures use, and the merge of their slots.
pub struct ClosedFormPipeline {
    tiled: wgpu::ComputePipeline,
    small: wgpu::ComputePipeline,
    merge: wgpu::ComputePipeline,
    merge_small: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    work_per_submission: u64,
    /// The buffers of the last call that fitted `KEPT_BYTES`, and their bind groups, for the next
    /// call (a figure asks the same question on every slider move).
    kept: std::cell::RefCell<Option<Scratch>>,
    kept_bytes: u64,
}

/// A call's scratch buffers are kept for the next call when they take at most this much: the
/// largest partial sums a call plans (`PARTIAL_BYTES`) plus the positions of a few thousand
/// 784-dimensional queries. A larger call (a big API request) frees its own when it ends, so a
/// page does not hold its peak for good.
const KEPT_BYTES: u64 = 48 << 20;
/// Training sets whose bind groups the kept scratch remembers (a figure may alternate two).
const KEPT_SETS: usize = 4;

/// Largest dim the register kernel handles (its accumulator is one vec4).
const SMALL_DIM: usize = 4;
const SMALL_QUERIES_PER_WORKGROUP: usize = 64;

fn scratch(device: &wgpu::Device, label: &str, floats: u64) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: floats.max(1) * 4,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    })
}

/// The buffers one bind group binds, besides the training set and the uniforms.
struct CallBuffers<'a> {
    queries: &'a wgpu::Buffer,
    out: &'a wgpu::Buffer,
    state: &'a wgpu::Buffer,
    times: &'a wgpu::Buffer,
    partial: &'a wgpu::Buffer,
}

/// One batch of a call: its queries (at most what one binding holds) and their times, run
/// through `schedule` over `set`, every step recorded when `record`.
struct Batch<'a> {
    set: &'a TrainingSet,
    queries: &'a [f32],
    schedule: &'a [Step],
    times: Option<&'a [f32]>,
    record: bool,
}

/// The bytes of each scratch buffer a call binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ScratchSizes {
    positions: u64,
    state: u64,
    partial: u64,
    times: u64,
    uniforms: u64,
}

impl ScratchSizes {
    fn holds(&self, need: &ScratchSizes) -> bool {
        self.positions >= need.positions
            && self.state >= need.state
            && self.partial >= need.partial
            && self.times >= need.times
            && self.uniforms >= need.uniforms
    }

    fn max(&self, other: &ScratchSizes) -> ScratchSizes {
        ScratchSizes {
            positions: self.positions.max(other.positions),
            state: self.state.max(other.state),
            partial: self.partial.max(other.partial),
            times: self.times.max(other.times),
            uniforms: self.uniforms.max(other.uniforms),
        }
    }

    fn total(&self) -> u64 {
        2 * self.positions + self.state + self.partial + self.times + self.uniforms
    }
}

/// The buffers a call binds besides the training set: the positions (ping-pong), the slots'
/// softmax state and partial sums, the per-query times and the uniforms; with the bind groups
/// made for up to `KEPT_SETS` sets. Bound whole: the kernels read sizes from their uniforms,
/// never `arrayLength`, so a buffer larger than a call needs is harmless.
struct Scratch {
    positions: [wgpu::Buffer; 2],
    state: wgpu::Buffer,
    partial: wgpu::Buffer,
    times: wgpu::Buffer,
    uniforms: wgpu::Buffer,
    sizes: ScratchSizes,
    /// The bind groups of the last `KEPT_SETS` sets used, most recent last; parity p reads
    /// positions[p] and writes positions[1 - p].
    groups: Vec<SetGroups>,
}

/// A set's id and its bind groups over a scratch, [parity][slice].
type SetGroups = (u64, Vec<Vec<wgpu::BindGroup>>);

impl Scratch {
    fn new(device: &wgpu::Device, sizes: ScratchSizes) -> Scratch {
        let buffer = |label: &str, bytes: u64, usage: wgpu::BufferUsages| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes.max(4).next_multiple_of(4),
                usage,
                mapped_at_creation: false,
            })
        };
        let storage = wgpu::BufferUsages::STORAGE;
        let position_usage = storage | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        Scratch {
            positions: [
                buffer("closed form positions A", sizes.positions, position_usage),
                buffer("closed form positions B", sizes.positions, position_usage),
            ],
            state: buffer("closed form softmax state", sizes.state, storage),
            partial: buffer("closed form partial sums", sizes.partial, storage),
            times: buffer(
                "closed form query times",
                sizes.times,
                storage | wgpu::BufferUsages::COPY_DST,
            ),
            uniforms: buffer(
                "closed form params",
                sizes.uniforms.max(256),
                wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            ),
            sizes,
            groups: Vec::new(),
        }
    }

    /// Frees the buffers now (work already submitted with them still completes).
    fn destroy(&self) {
        for buffer in
            self.positions
                .iter()
                .chain([&self.state, &self.partial, &self.times, &self.uniforms])
        {
            buffer.destroy();
        }
    }
}

/// Where a call's scratch comes from: the pipeline's kept one, or its own (freed at its end).
enum ScratchUse<'a> {
    Kept(std::cell::RefMut<'a, Scratch>),
    Own(Box<Scratch>),
}

impl std::ops::Deref for ScratchUse<'_> {
    type Target = Scratch;
    fn deref(&self) -> &Scratch {
        match self {
            ScratchUse::Kept(s) => s,
            ScratchUse::Own(s) => s,
        }
    }
}

impl std::ops::DerefMut for ScratchUse<'_> {
    fn deref_mut(&mut self) -> &mut Scratch {
        match self {
            ScratchUse::Kept(s) => s,
            ScratchUse::Own(s) => s,
        }
    }
}

/// The closed form's bindings, shared by its three shaders: the parameters (one call's `Params`
/// at a dynamic offset), the data, the queries, the output, the softmax state, the times, the
/// partial sums and the slots' ranges.
const SLOTS: &[Slot] = &[
    Slot::Uniform {
        dynamic: true,
        min_bytes: std::mem::size_of::<Params>() as u64,
    },
    Slot::Read,
    Slot::Read,
    Slot::Write,
    Slot::Write,
    Slot::Read,
    Slot::Write,
    Slot::Read,
];

const TILED: Shader = Shader {
    name: "closed_form.wgsl",
    source: shaders::CLOSED_FORM,
    layout: Layout::Fixed(SLOTS),
};
const SMALL: Shader = Shader {
    name: "closed_form_small.wgsl",
    source: shaders::CLOSED_FORM_SMALL,
    layout: Layout::Fixed(SLOTS),
};
const MERGE: Shader = Shader {
    name: "closed_form_merge.wgsl",
    source: shaders::CLOSED_FORM_MERGE,
    layout: Layout::Fixed(SLOTS),
};

impl ClosedFormPipeline {
    /// The closed form's pipelines on `gpu` (compiled by its first caller, then shared).
    pub fn new(gpu: &Gpu) -> ClosedFormPipeline {
        let device = &gpu.device;
        let pipeline = |shader: &Shader, entry| gpu.kernels.pipeline(device, shader, entry);
        ClosedFormPipeline {
            tiled: pipeline(&TILED, "main"),
            small: pipeline(&SMALL, "main"),
            merge: pipeline(&MERGE, "main"),
            merge_small: pipeline(&MERGE, "per_coordinate"),
            layout: gpu.kernels.layout(device, SLOTS),
            work_per_submission: WORK_PER_SUBMISSION,
            kept: std::cell::RefCell::new(None),
            kept_bytes: KEPT_BYTES,
        }
    }

    /// Multiply-adds per command submission (default 4e9). Smaller values cut Euler runs into
    /// more submissions; the tests use it to check that the cut changes nothing.
    pub fn set_work_per_submission(&mut self, work: u64) {
        self.work_per_submission = work.max(1);
    }

    /// The most a call's scratch may take and still be kept for the next call (default
    /// `KEPT_BYTES`); the tests lower it to see calls alternate between kept and own buffers.
    pub fn set_kept_bytes(&mut self, bytes: u64) {
        self.kept_bytes = bytes;
    }

    /// The plan of a call with `m` queries over `set` on `gpu`.
    pub fn plan(gpu: &Gpu, set: &TrainingSet, m: usize) -> Plan {
        Plan::new(
            m as u64,
            set.dim as u64,
            &set.slice_rows(),
            partial_budget(gpu),
            target_workgroups(gpu),
        )
    }

    fn first_pass(&self, dim: usize) -> &wgpu::ComputePipeline {
        if dim <= SMALL_DIM {
            &self.small
        } else {
            &self.tiled
        }
    }

    fn merge_pass(&self, dim: usize) -> &wgpu::ComputePipeline {
        if dim <= SMALL_DIM {
            &self.merge_small
        } else {
            &self.merge
        }
    }

    /// The bind groups of `set` over `scratch`: [parity][slice].
    fn bind_groups(
        &self,
        device: &wgpu::Device,
        set: &TrainingSet,
        scratch: &Scratch,
    ) -> Vec<Vec<wgpu::BindGroup>> {
        (0..2)
            .map(|p| {
                let b = CallBuffers {
                    queries: &scratch.positions[p],
                    out: &scratch.positions[1 - p],
                    state: &scratch.state,
                    // Read only by calls with a t per query (FLAG_PER_QUERY_T).
                    times: &scratch.times,
                    partial: &scratch.partial,
                };
                set.slices
                    .iter()
                    .map(|(data, _)| self.bind_group(device, &scratch.uniforms, data, &b))
                    .collect()
            })
            .collect()
    }

    /// The one bind group of the closed form's layout.
    fn bind_group(
        &self,
        device: &wgpu::Device,
        uniforms: &wgpu::Buffer,
        data: &wgpu::Buffer,
        b: &CallBuffers,
    ) -> wgpu::BindGroup {
        bind(
            device,
            "closed form bind group",
            &self.layout,
            &[
                entry(0, window(uniforms, std::mem::size_of::<Params>() as u64)),
                whole(1, data),
                whole(2, b.queries),
                whole(3, b.out),
                whole(4, b.state),
                whole(5, b.times),
                whole(6, b.partial),
                // The training set again, read as vec4 (closed_form_bindings.wgsl).
                whole(7, data),
            ],
        )
    }

    /// The scratch for a call that needs `need`: the kept one, grown if it is too small, when
    /// `need` fits `KEPT_BYTES` and no call holds it; otherwise a scratch of the call's own.
    /// Taken and released within one synchronous stretch (see `submit`).
    fn scratch(&self, device: &wgpu::Device, need: ScratchSizes) -> ScratchUse<'_> {
        if need.total() <= self.kept_bytes {
            if let Ok(mut kept) = self.kept.try_borrow_mut() {
                if !kept.as_ref().is_some_and(|s| s.sizes.holds(&need)) {
                    let grown = kept.as_ref().map_or(need, |s| s.sizes.max(&need));
                    let sizes = if grown.total() <= self.kept_bytes {
                        grown
                    } else {
                        need
                    };
                    if let Some(old) = kept.take() {
                        old.destroy();
                    }
                    *kept = Some(Scratch::new(device, sizes));
                }
                if let Ok(scratch) = std::cell::RefMut::filter_map(kept, Option::as_mut) {
                    return ScratchUse::Kept(scratch);
                }
            }
        }
        ScratchUse::Own(Box::new(Scratch::new(device, need)))
    }

    /// Encodes one step of `plan`: the first-pass dispatches over every slice, then the merge.
    /// `groups[s]` is the bind group of slice s; `offsets` the step's uniform offsets.
    fn encode_step(
        &self,
        pass: &mut wgpu::ComputePass,
        plan: &Plan,
        dim: usize,
        groups: &[wgpu::BindGroup],
        offsets: &[u32],
    ) {
        pass.set_pipeline(self.first_pass(dim));
        for (&(s, _, _), &offset) in plan.dispatches.iter().zip(offsets) {
            pass.set_bind_group(0, &groups[s], &[offset]);
            pass.dispatch_workgroups(plan.query_tiles, plan.slots, 1);
        }
        pass.set_pipeline(self.merge_pass(dim));
        pass.set_bind_group(0, &groups[0], &[*offsets.last().unwrap_or(&0)]);
        pass.dispatch_workgroups(plan.merge_groups.0, plan.merge_groups.1, 1);
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
        let bytes = steps as u64 * x0.len() as u64 * 4;
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
            let batch = Batch {
                set,
                queries: chunk,
                schedule,
                times: times.map(|t| &t[c * batch..c * batch + chunk.len() / dim]),
                record,
            };
            out.extend(self.run_batch(gpu, &batch).await?);
        }
        Ok(out)
    }

    async fn run_batch(&self, gpu: &Gpu, batch: &Batch<'_>) -> Result<Vec<f32>, GpuError> {
        let ((read, own, frames), verdict) = scoped(&gpu.device, || self.submit(gpu, batch));
        let result = read.finish(gpu).await;
        if let Some(scratch) = &own {
            scratch.destroy();
        }
        if let Some(frames) = &frames {
            frames.destroy();
        }
        if let Err(error) = verdict.check().await {
            // The kept scratch may be what failed (out of memory when it grew): make the next
            // call start afresh rather than meet the same invalid buffers.
            if own.is_none() {
                if let Some(scratch) = self.kept.borrow_mut().take() {
                    scratch.destroy();
                }
            }
            return Err(error);
        }
        result
    }

    /// Writes the call's inputs, encodes and submits every step and the readback copy, with no
    /// await: the kept scratch is used and released in this one stretch, and a later call's
    /// writes to it are ordered after this call's work on the queue. Returns the pending read,
    /// the call's own scratch (if it did not use the kept one) and its trajectory buffer, both
    /// to free once read.
    fn submit(
        &self,
        gpu: &Gpu,
        batch: &Batch<'_>,
    ) -> (PendingRead, Option<Box<Scratch>>, Option<wgpu::Buffer>) {
        let &Batch {
            set,
            queries,
            schedule,
            times,
            record,
        } = batch;
        let device = &gpu.device;
        let dim = set.dim;
        let m = queries.len() / dim;
        let plan = Self::plan(gpu, set, m);

        // One uniform entry per (step, dispatch) of one submission, addressed by dynamic offset,
        // rewritten before each submission (queue writes are ordered with submissions): memory
        // stays bounded however many steps a call asks for.
        let per_step = plan.dispatches.len();
        let per_submission =
            (steps_per_submission(self.work_per_submission, m as u64, set.n as u64, dim as u64)
                as usize)
                .min(STEPS_PER_UNIFORM_BLOCK)
                .min(schedule.len())
                .max(1);
        let entries_of = |steps: &[Step]| -> Vec<Params> {
            steps
                .iter()
                .flat_map(|&step| step_params(&plan, dim, m, step, times.is_some()))
                .collect()
        };
        let (first_entries, stride) = pack_entries(
            device,
            &entries_of(&schedule[..per_submission.min(schedule.len())]),
        );
        let need = ScratchSizes {
            positions: (queries.len() * 4) as u64,
            state: 2 * plan.slots as u64 * m as u64 * 4,
            partial: plan.partial_floats(m as u64, dim as u64) * 4,
            times: times.map_or(0, |t| (t.len() * 4) as u64),
            uniforms: first_entries.len() as u64,
        };
        let mut scratch = self.scratch(device, need);
        gpu.queue
            .write_buffer(&scratch.positions[0], 0, bytemuck::cast_slice(queries));
        if let Some(times) = times {
            gpu.queue
                .write_buffer(&scratch.times, 0, bytemuck::cast_slice(times));
        }
        match scratch.groups.iter().position(|(id, _)| *id == set.id) {
            Some(at) => {
                let groups = scratch.groups.remove(at);
                scratch.groups.push(groups);
            }
            None => {
                let groups = self.bind_groups(device, set, &scratch);
                if scratch.groups.len() == KEPT_SETS {
                    scratch.groups.remove(0);
                }
                scratch.groups.push((set.id, groups));
            }
        }
        let bind_groups = &scratch.groups.last().expect("just pushed").1;

        let frame_bytes = (queries.len() * 4) as u64;
        let frames = record.then(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("closed form trajectory"),
                size: frame_bytes * schedule.len() as u64,
                usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        let mut first_entries = Some(first_entries);
        for (group, steps) in schedule.chunks(per_submission).enumerate() {
            let bytes = first_entries
                .take()
                .unwrap_or_else(|| pack_entries(device, &entries_of(steps)).0);
            gpu.queue.write_buffer(&scratch.uniforms, 0, &bytes);
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
                    for j in pass_steps.clone() {
                        let k = group * per_submission + j;
                        let offsets: Vec<u32> = (0..per_step)
                            .map(|r| ((j * per_step + r) * stride) as u32)
                            .collect();
                        self.encode_step(&mut pass, &plan, dim, &bind_groups[k % 2], &offsets);
                    }
                }
                if let Some(frames) = &frames {
                    let k = group * per_submission + pass_steps.start;
                    encoder.copy_buffer_to_buffer(
                        &scratch.positions[(k + 1) % 2],
                        0,
                        frames,
                        k as u64 * frame_bytes,
                        frame_bytes,
                    );
                }
            }
            gpu.queue.submit([encoder.finish()]);
        }
        let read = match &frames {
            Some(frames) => start_read(gpu, frames, queries.len() * schedule.len()),
            None => start_read(gpu, &scratch.positions[schedule.len() % 2], queries.len()),
        };
        let own = match scratch {
            ScratchUse::Own(scratch) => Some(scratch),
            ScratchUse::Kept(_) => None,
        };
        (read, own, frames)
    }
}

impl Drop for ClosedFormPipeline {
    fn drop(&mut self) {
        if let Some(scratch) = self.kept.get_mut() {
            scratch.destroy();
        }
    }
}

/// u*(x_q, t_q) of fixed GPU buffers, bound once and recorded into any compute pass: the EFM
/// trainer evaluates it on every step's fresh batch without leaving the pass.
pub struct RecordedVelocity {
    first: wgpu::ComputePipeline,
    merge: wgpu::ComputePipeline,
    plan: Plan,
    bind_group: wgpu::BindGroup,
    uniforms: wgpu::Buffer,
    state: wgpu::Buffer,
    partial: wgpu::Buffer,
    offsets: Vec<u32>,
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
        let plan = Plan::new(
            b.m as u64,
            b.dim as u64,
            &[b.n as u32],
            partial_budget(gpu),
            target_workgroups(gpu),
        );
        let step = Step {
            t: 0.0,
            dt: 0.0,
            euler: false,
        };
        let params = step_params(&plan, b.dim, b.m, step, true);
        let (uniforms, stride) = uniform_entries(device, "recorded velocity params", &params);
        let state = scratch(
            device,
            "recorded velocity softmax state",
            2 * plan.slots as u64 * b.m as u64,
        );
        let partial = scratch(
            device,
            "recorded velocity partial sums",
            plan.partial_floats(b.m as u64, b.dim as u64),
        );
        let bind_group = self.bind_group(
            device,
            &uniforms,
            b.reference,
            &CallBuffers {
                queries: b.queries,
                out: b.out,
                state: &state,
                times: b.times,
                partial: &partial,
            },
        );
        RecordedVelocity {
            first: self.first_pass(b.dim).clone(),
            merge: self.merge_pass(b.dim).clone(),
            offsets: (0..params.len()).map(|r| (r * stride) as u32).collect(),
            plan,
            bind_group,
            uniforms,
            state,
            partial,
        }
    }
}

impl RecordedVelocity {
    pub fn record(&self, pass: &mut wgpu::ComputePass) {
        pass.set_pipeline(&self.first);
        for &offset in &self.offsets {
            pass.set_bind_group(0, &self.bind_group, &[offset]);
            pass.dispatch_workgroups(self.plan.query_tiles, self.plan.slots, 1);
        }
        pass.set_pipeline(&self.merge);
        pass.set_bind_group(0, &self.bind_group, &[*self.offsets.last().unwrap_or(&0)]);
        pass.dispatch_workgroups(self.plan.merge_groups.0, self.plan.merge_groups.1, 1);
    }
}

impl Drop for RecordedVelocity {
    fn drop(&mut self) {
        for buffer in [&self.uniforms, &self.state, &self.partial] {
            buffer.destroy();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two calls submitted before either is read share the kept scratch: the first call's
    /// readback copy is on the queue before the second call writes its queries, so each call
    /// reads its own answer, whichever is read first.
    #[test]
    fn calls_submitted_back_to_back_each_read_their_own_answer() {
        let gpu = match pollster::block_on(Gpu::request(true)) {
            Ok(gpu) => gpu,
            Err(e) if std::env::var("FM_NO_GPU").is_ok_and(|v| v == "1") => {
                eprintln!("\n*** SKIPPING GPU TEST (FM_NO_GPU=1): {e} ***\n");
                return;
            }
            Err(e) => panic!("no GPU adapter: {e} (FM_NO_GPU=1 skips the GPU tests on purpose)"),
        };
        let dim = 8;
        let data = crate::flow::rng::Rng::new(7).normals(100 * dim);
        let set = TrainingSet::upload(&gpu, &data, dim).unwrap();
        let pipeline = ClosedFormPipeline::new(&gpu);
        let points: Vec<Vec<f32>> = (0..2)
            .map(|k| crate::flow::rng::Rng::new(8 + k).normals(4 * dim))
            .collect();
        let schedule = [Step {
            t: 0.5,
            dt: 0.0,
            euler: false,
        }];
        let batch = |queries| Batch {
            set: &set,
            queries,
            schedule: &schedule,
            times: None,
            record: false,
        };
        let (read_a, own_a, _) = pipeline.submit(&gpu, &batch(&points[0]));
        let (read_b, own_b, _) = pipeline.submit(&gpu, &batch(&points[1]));
        assert!(
            own_a.is_none() && own_b.is_none(),
            "both use the kept scratch"
        );
        let b = pollster::block_on(read_b.finish(&gpu)).unwrap();
        let a = pollster::block_on(read_a.finish(&gpu)).unwrap();
        let fresh = ClosedFormPipeline::new(&gpu);
        for (got, queries) in [(a, &points[0]), (b, &points[1])] {
            let want = pollster::block_on(fresh.velocity(&gpu, &set, queries, 0.5)).unwrap();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn the_benchmark_call_fills_a_large_gpu() {
        // m = 64 queries over the 10,000 digits: 4 query tiles, one dispatch per pass before.
        let plan = Plan::new(64, 784, &[10_000], PARTIAL_BYTES, TARGET_WORKGROUPS);
        assert!(plan.workgroups() >= 256, "{plan:?}");
        assert!(plan.partial_floats(64, 784) * 4 <= PARTIAL_BYTES);
        // The digit figure's 4 queries: one query tile, so the points carry the parallelism.
        let plan = Plan::new(4, 784, &[10_000], PARTIAL_BYTES, TARGET_WORKGROUPS);
        assert!(plan.workgroups() >= 256, "{plan:?}");
        // The alignment figure's 2,560 queries need no split to fill a GPU, and get few slots.
        let plan = Plan::new(2560, 784, &[10_000], PARTIAL_BYTES, TARGET_WORKGROUPS);
        assert!(plan.workgroups() >= 320, "{plan:?}");
        assert!(plan.partial_floats(2560, 784) * 4 <= PARTIAL_BYTES);
    }

    #[test]
    fn every_point_is_covered_once() {
        for (m, dim, slices) in [
            (4u64, 784u64, vec![10_000u32]),
            (1, 2, vec![7]),
            (333, 2, vec![300, 300, 100]),
            (50, 37, vec![1000, 500]),
            (16, 3072, vec![10_922; 6]),
            (1_000_000, 3072, vec![10_922]),
        ] {
            for target in [TARGET_WORKGROUPS, SOFTWARE_TARGET_WORKGROUPS] {
                check_coverage(m, dim, &slices, target);
            }
        }
    }

    fn check_coverage(m: u64, dim: u64, slices: &[u32], target: u64) {
        let plan = Plan::new(m, dim, slices, PARTIAL_BYTES, target);
        for (s, &rows) in slices.iter().enumerate() {
            let mut covered = vec![0u32; rows as usize];
            for &(_, a, b) in plan.dispatches.iter().filter(|d| d.0 == s) {
                for slot in 0..plan.slots {
                    let lo = (a + slot * plan.span).min(b);
                    let hi = (lo + plan.span).min(b);
                    for c in &mut covered[lo as usize..hi as usize] {
                        *c += 1;
                    }
                }
            }
            assert!(covered.iter().all(|&c| c == 1), "{m} {dim} {slices:?}");
        }
        assert!(plan.span as u64 <= points_per_dispatch(dim));
        assert!(plan.slots >= 1 && plan.slots as u64 <= MAX_SLOTS);
        // With one slot the partials are one m x dim block (the caller keeps that within a
        // binding); with more, within the budget.
        assert!(plan.slots == 1 || plan.partial_floats(m, dim) * 4 <= PARTIAL_BYTES);
        let merged = plan.merge_groups.0 as u64 * plan.merge_groups.1 as u64;
        let due = if dim <= SMALL_DIM as u64 {
            (m * dim).div_ceil(64)
        } else {
            m
        };
        assert!(merged >= due && merged < due + plan.merge_groups.0 as u64);
        assert!(plan.merge_groups.0 as usize <= MAX_WORKGROUPS);
    }

    #[test]
    fn a_software_adapter_gets_few_slots() {
        // A few CPU threads run a software adapter's workgroups: slots beyond them only add
        // partial sums to write and merge.
        let plan = Plan::new(
            64,
            784,
            &[10_000],
            PARTIAL_BYTES,
            SOFTWARE_TARGET_WORKGROUPS,
        );
        assert!(
            plan.workgroups() <= 2 * SOFTWARE_TARGET_WORKGROUPS,
            "{plan:?}"
        );
        assert!(plan.slots > 1, "{plan:?}");
    }

    #[test]
    fn work_sizes_are_64_bit() {
        // 548 queries x 10,000 digits x 784 is above 2^32: a 32-bit product (usize on wasm32)
        // wrapped, splitting the submissions wrongly.
        let (m, n, dim) = (548u64, 10_000u64, 784u64);
        assert!(m * n * dim > u32::MAX as u64);
        let work = WORK_PER_SUBMISSION;
        assert_eq!(steps_per_submission(work, m, n, dim), 1);
        assert_eq!(steps_per_submission(work, 64, n, dim), 7);
        assert_eq!(steps_per_submission(work, 4, 10, 2), 50_000_000);
        let plan = Plan::new(548, dim, &[10_000], PARTIAL_BYTES, TARGET_WORKGROUPS);
        assert!(plan.partial_floats(548, dim) > 0);
        // A partial buffer above 4 GiB is never planned, however many queries.
        let plan = Plan::new(1 << 20, 3072, &[60_000], PARTIAL_BYTES, TARGET_WORKGROUPS);
        assert_eq!(plan.slots, 1);
    }
}

#[cfg(test)]
#[test]
fn params_match_the_kernels_struct() {
    super::wgsl_layout::wgsl_layout!(Params, super::shaders::CLOSED_FORM_BINDINGS, "Params",
        [k_begin: u32, k_end: u32, span: u32, dim: u32, m: u32, flags: u32, t: f32, dt: f32, slots: u32]);
}
