//! The one way results come back from the GPU.

use super::GpuError;

/// Copies `len` f32 from `source` into a fresh staging buffer and reads it.
///
/// The wait is a oneshot channel completed by `map_async`'s callback: in the browser the callback
/// runs from the event loop, so blocking or busy-polling here would starve it. Natively nothing
/// drives the callback unless we `poll` the device, hence the `cfg`.
pub async fn read_f32(
    gpu: &super::Gpu,
    source: &wgpu::Buffer,
    len: usize,
) -> Result<Vec<f32>, GpuError> {
    let size = (len * 4) as u64;
    let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback staging"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = gpu
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("readback copy"),
        });
    encoder.copy_buffer_to_buffer(source, 0, &staging, 0, size);
    gpu.queue.submit([encoder.finish()]);

    let (tx, rx) = futures_channel::oneshot::channel();
    staging
        .slice(..)
        .map_async(wgpu::MapMode::Read, move |result| {
            let _ = tx.send(result);
        });
    #[cfg(not(target_arch = "wasm32"))]
    gpu.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| GpuError::Readback(e.to_string()))?;
    rx.await
        .map_err(|_| GpuError::Readback("the device was lost before the map completed".into()))?
        .map_err(|e| GpuError::Readback(e.to_string()))?;
    let values = {
        let view = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        // The view need not be 4-byte aligned (on the web it is a copied byte array).
        bytemuck::pod_collect_to_vec::<u8, f32>(&view)
    };
    staging.unmap();
    staging.destroy();
    Ok(values)
}
