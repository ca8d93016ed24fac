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

use std::cell::RefCell;

/// One binding of a fixed layout, at the index of its place in the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// A device's compiled kernels. A few dozen at most, so the caches are lists searched in order
/// (smaller code in the page's module than hash maps, and as fast at this size).
#[derive(Default)]
pub struct Kernels {
    inner: RefCell<Cache>,
}

#[derive(Default)]
struct Cache {
    modules: Vec<(&'static str, wgpu::ShaderModule)>,
    layouts: Vec<(&'static [Slot], wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    pipelines: Vec<(&'static str, &'static str, wgpu::ComputePipeline)>,
}

impl Cache {
    /// The layouts of `slots`, made at their first use.
    fn fixed(
        &mut self,
        device: &wgpu::Device,
        slots: &'static [Slot],
    ) -> (wgpu::BindGroupLayout, wgpu::PipelineLayout) {
        if let Some((_, group, pipeline)) = self.layouts.iter().find(|l| l.0 == slots) {
            return (group.clone(), pipeline.clone());
        }
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
        self.layouts.push((slots, group.clone(), pipeline.clone()));
        (group, pipeline)
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
        let mut cache = self.inner.borrow_mut();
        let key = (shader.name, entry);
        if let Some((.., p)) = cache.pipelines.iter().find(|p| (p.0, p.1) == key) {
            return p.clone();
        }
        let layout = match shader.layout {
            Layout::Derived => None,
            Layout::Fixed(slots) => Some(cache.fixed(device, slots).1),
        };
        let at = match cache.modules.iter().position(|m| m.0 == shader.name) {
            Some(at) => at,
            None => {
                let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(shader.name),
                    source: wgpu::ShaderSource::Wgsl(shader.source.into()),
                });
                cache.modules.push((shader.name, module));
                cache.modules.len() - 1
            }
        };
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(shader.name),
            layout: layout.as_ref(),
            module: &cache.modules[at].1,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        cache.pipelines.push((shader.name, entry, pipeline.clone()));
        pipeline
    }

    /// The bind group layout of `slots` (shared by every shader laid out with them). A derived
    /// layout is the pipeline's own: `pipeline.get_bind_group_layout(0)`.
    pub fn layout(&self, device: &wgpu::Device, slots: &'static [Slot]) -> wgpu::BindGroupLayout {
        self.inner.borrow_mut().fixed(device, slots).0
    }

    /// Pipelines compiled on this device so far (a second request of one compiles nothing).
    pub fn compiled(&self) -> usize {
        self.inner.borrow().pipelines.len()
    }
}

/// A bind group of `layout` with `entries` (binding, resource): the one way the crate binds.
pub fn bind(
    device: &wgpu::Device,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    entries: &[wgpu::BindGroupEntry<'_>],
) -> wgpu::BindGroup {
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries,
    })
}

/// Binding `binding` to `resource`.
pub fn entry(binding: u32, resource: wgpu::BindingResource<'_>) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry { binding, resource }
}

/// Binding `binding` to the whole of `buffer`.
pub fn whole(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    entry(binding, buffer.as_entire_binding())
}

/// The first `bytes` of `buffer`, from its start: a uniform read at a dynamic offset.
pub fn window(buffer: &wgpu::Buffer, bytes: u64) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer,
        offset: 0,
        size: wgpu::BufferSize::new(bytes),
    })
}
