//! Every compute pipeline of a device, compiled once and kept: one cache keyed by (shader, entry
//! point), held by the `Gpu` it belongs to, and one helper that binds buffers to a kernel. The
//! closed form, the MLP's training and paths, the U-Net and its training all take their
//! pipelines here, so a device compiles each kernel once however many sets, trainers and
//! networks use it, and adding a kernel is its shader (`shaders.rs`), its host code and its twin
//! test.
//!
//! A shader says how its bind group 0 is laid out (`Layout`): fixed (every entry point of the
//! shader shares it, and shaders with the same slots share one layout object, so a bind group
//! made for one serves the others) or derived by the device from the entry point's own use.

use std::collections::HashMap;
use std::sync::Mutex;

/// One binding of a fixed layout, at the index of its place in the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// A uniform buffer of at least `min_bytes` (0: any), at a dynamic offset where `dynamic`.
    Uniform { dynamic: bool, min_bytes: u64 },
    /// A storage buffer the kernel only reads.
    Read,
    /// A storage buffer the kernel writes.
    Write,
}

/// How a shader's bind group 0 is laid out.
#[derive(Clone, Copy, Debug)]
pub enum Layout {
    /// Derived by the device from each entry point's bindings.
    Derived,
    /// Binding k is `slots[k]`, for every entry point of the shader.
    Fixed(&'static [Slot]),
}

/// A WGSL module: its name (labels and the cache's key), its source and its bindings' layout.
#[derive(Clone, Copy, Debug)]
pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
    pub layout: Layout,
}

/// A device's compiled kernels. Lock order: one lock, never held across another call.
#[derive(Default)]
pub struct Kernels {
    inner: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    modules: HashMap<&'static str, wgpu::ShaderModule>,
    layouts: HashMap<&'static [Slot], (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    pipelines: HashMap<(&'static str, &'static str), wgpu::ComputePipeline>,
    /// Pipelines compiled so far (the tests' count: a second request compiles nothing).
    compiled: usize,
}

impl Cache {
    fn fixed(
        &mut self,
        device: &wgpu::Device,
        slots: &'static [Slot],
    ) -> &(wgpu::BindGroupLayout, wgpu::PipelineLayout) {
        self.layouts.entry(slots).or_insert_with(|| {
            let entries: Vec<wgpu::BindGroupLayoutEntry> = slots
                .iter()
                .zip(0..)
                .map(|(slot, binding)| wgpu::BindGroupLayoutEntry {
                    binding,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: match slot {
                            Slot::Uniform { .. } => wgpu::BufferBindingType::Uniform,
                            Slot::Read => wgpu::BufferBindingType::Storage { read_only: true },
                            Slot::Write => wgpu::BufferBindingType::Storage { read_only: false },
                        },
                        has_dynamic_offset: matches!(slot, Slot::Uniform { dynamic: true, .. }),
                        min_binding_size: match slot {
                            Slot::Uniform { min_bytes, .. } => wgpu::BufferSize::new(*min_bytes),
                            _ => None,
                        },
                    },
                    count: None,
                })
                .collect();
            let group = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("kernel bindings"),
                entries: &entries,
            });
            let pipeline = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("kernel layout"),
                bind_group_layouts: &[Some(&group)],
                immediate_size: 0,
            });
            (group, pipeline)
        })
    }
}

impl Kernels {
    /// The pipeline of `shader`'s `entry` on `device`, compiled at its first request.
    pub fn pipeline(
        &self,
        device: &wgpu::Device,
        shader: &Shader,
        entry: &'static str,
    ) -> wgpu::ComputePipeline {
        let mut cache = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.pipelines.get(&(shader.name, entry)) {
            return p.clone();
        }
        let module = cache
            .modules
            .entry(shader.name)
            .or_insert_with(|| {
                device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(shader.name),
                    source: wgpu::ShaderSource::Wgsl(shader.source.into()),
                })
            })
            .clone();
        let layout = match shader.layout {
            Layout::Derived => None,
            Layout::Fixed(slots) => Some(cache.fixed(device, slots).1.clone()),
        };
        let label = format!("{} {entry}", shader.name);
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: layout.as_ref(),
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        cache.compiled += 1;
        cache
            .pipelines
            .insert((shader.name, entry), pipeline.clone());
        pipeline
    }

    /// The bind group layout of `slots` (shared by every shader laid out with them). A derived
    /// layout is the pipeline's own: `pipeline.get_bind_group_layout(0)`.
    pub fn layout(&self, device: &wgpu::Device, slots: &'static [Slot]) -> wgpu::BindGroupLayout {
        let mut cache = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        cache.fixed(device, slots).0.clone()
    }

    /// Pipelines compiled on this device so far.
    pub fn compiled(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .compiled
    }
}

/// A bind group of `layout` with `entries` (binding, resource): the one way the crate binds.
pub fn bind(
    device: &wgpu::Device,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    entries: &[(u32, wgpu::BindingResource<'_>)],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry> = entries
        .iter()
        .map(|(binding, resource)| wgpu::BindGroupEntry {
            binding: *binding,
            resource: resource.clone(),
        })
        .collect();
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &entries,
    })
}

/// The first `bytes` of `buffer`, from its start: a uniform read at a dynamic offset.
pub fn window(buffer: &wgpu::Buffer, bytes: u64) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer,
        offset: 0,
        size: wgpu::BufferSize::new(bytes),
    })
}
