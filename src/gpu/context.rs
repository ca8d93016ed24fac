//! The only place that asks for an adapter. Everything else takes `&Gpu` (device and queue).

/// Why the GPU path could not run. Shown to readers as is.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GpuError {
    #[error("no WebGPU adapter is available ({0})")]
    NoAdapter(String),
    #[error(
        "the only WebGPU adapter is a software one ({0}), slower than the page's own CPU path"
    )]
    SoftwareAdapter(String),
    #[error("the WebGPU device could not be created: {0}")]
    Device(String),
    #[error("a GPU command failed: {0}")]
    Validation(String),
    #[error("the GPU ran out of memory: {0}")]
    OutOfMemory(String),
    #[error("the GPU's results disagree with the CPU's: {0}")]
    Canary(String),
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
    #[error("reading results back from the GPU failed: {0}")]
    Readback(String),
    #[error("the input is too large for this GPU: {0}")]
    TooLarge(String),
}

/// A device and its queue, shared by every figure on a page.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    /// The adapter's name; browsers often leave it empty for privacy.
    pub adapter: String,
    pub backend: wgpu::Backend,
    /// A software adapter (SwiftShader, llvmpipe): its "GPU" is a few CPU threads.
    pub software: bool,
    /// Its compiled kernels (`kernels::Kernels`), shared by everything that computes on it.
    pub kernels: super::kernels::Kernels,
}

impl Gpu {
    /// Asks the platform for an adapter and a device with WebGPU's default limits. A software
    /// adapter (the browser's fallback adapter, or llvmpipe natively) is refused unless
    /// `accept_software`: it runs the kernels on the CPU, 10-100 times slower than the crate's
    /// own CPU path (measured with SwiftShader), so it is only worth it to test the kernels.
    pub async fn request(accept_software: bool) -> Result<Gpu, GpuError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        if info.device_type == wgpu::DeviceType::Cpu && !accept_software {
            let name = if info.name.is_empty() {
                "fallback adapter".to_string()
            } else {
                info.name
            };
            return Err(GpuError::SoftwareAdapter(name));
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("fm-explainer device"),
                required_limits: required_limits(&adapter.limits()),
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::Device(e.to_string()))?;
        Ok(Gpu {
            device,
            queue,
            software: info.device_type == wgpu::DeviceType::Cpu,
            adapter: info.name,
            backend: info.backend,
            kernels: Default::default(),
        })
    }
}

/// WebGPU's defaults, but the adapter's own storage-binding and buffer sizes: a training set in
/// fewer, larger bindings means fewer dispatches (the defaults are 128 MiB and 256 MiB, where
/// discrete GPUs offer gigabytes). Capped at 2 GiB so that every index into a binding, counted in
/// f32 in the kernels' u32 arithmetic, stays far from overflow.
pub fn required_limits(adapter: &wgpu::Limits) -> wgpu::Limits {
    const CAP: u64 = 2 << 30;
    let mut limits = wgpu::Limits::default().using_resolution(adapter.clone());
    limits.max_storage_buffer_binding_size = adapter.max_storage_buffer_binding_size.min(CAP);
    limits.max_buffer_size = adapter.max_buffer_size.min(CAP);
    limits
}
