//! The one way results come back from the GPU, and the one way a stretch of GPU work is held to
//! account for its errors (`scoped`).

use super::GpuError;

/// Copies `len` f32 from `source` into a fresh staging buffer and reads it.
pub async fn read_f32(
    gpu: &super::Gpu,
    source: &wgpu::Buffer,
    len: usize,
) -> Result<Vec<f32>, GpuError> {
    start_read(gpu, source, len).finish(gpu).await
}

/// A copy submitted and a map requested, not yet awaited: work submitted after it runs on the GPU
/// while the caller waits for these values.
pub struct PendingRead {
    staging: wgpu::Buffer,
    done: futures_channel::oneshot::Receiver<Result<(), wgpu::BufferAsyncError>>,
}

/// Submits the copy of `len` f32 from `source` (ordered after everything submitted before) and
/// requests the map.
pub fn start_read(gpu: &super::Gpu, source: &wgpu::Buffer, len: usize) -> PendingRead {
    start_read_from(gpu, source, 0, len)
}

/// `start_read` of the `len` f32 from f32 `first` of `source` on.
pub fn start_read_from(
    gpu: &super::Gpu,
    source: &wgpu::Buffer,
    first: usize,
    len: usize,
) -> PendingRead {
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
    encoder.copy_buffer_to_buffer(source, (first * 4) as u64, &staging, 0, size);
    gpu.queue.submit([encoder.finish()]);
    let (tx, done) = futures_channel::oneshot::channel();
    staging
        .slice(..)
        .map_async(wgpu::MapMode::Read, move |result| {
            let _ = tx.send(result);
        });
    PendingRead { staging, done }
}

impl PendingRead {
    /// The values. The wait is a oneshot channel completed by `map_async`'s callback: in the
    /// browser the callback runs from the event loop, so blocking or busy-polling here would
    /// starve it. Natively nothing drives the callback unless we `poll` the device, hence the
    /// `cfg`.
    pub async fn finish(self, gpu: &super::Gpu) -> Result<Vec<f32>, GpuError> {
        #[cfg(not(target_arch = "wasm32"))]
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        #[cfg(target_arch = "wasm32")]
        let _ = gpu;
        let staging = self.staging;
        let mapped = self
            .done
            .await
            .map_err(|_| GpuError::Readback("the device was lost before the map completed".into()))
            .and_then(|r| r.map_err(|e| GpuError::Readback(e.to_string())));
        let values = mapped.and_then(|()| {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            // The view need not be 4-byte aligned (on the web it is a copied byte array).
            Ok(bytemuck::pod_collect_to_vec::<u8, f32>(&view))
        });
        if values.is_ok() {
            staging.unmap();
        }
        staging.destroy();
        values
    }
}

/// The errors a stretch of GPU work raised, to be awaited once its results are read.
pub struct Verdict {
    validation: std::pin::Pin<Box<dyn std::future::Future<Output = Option<wgpu::Error>>>>,
    oom: std::pin::Pin<Box<dyn std::future::Future<Output = Option<wgpu::Error>>>>,
}

/// Runs `work` (encoding, submissions, `start_read`s) inside a validation and an out-of-memory
/// error scope, pushed before it and popped right after it with no await in between: the scopes
/// are a stack shared by every task on the page, and figures compute concurrently. `work` must
/// not await; its verdict is awaited afterwards.
pub fn scoped<T>(device: &wgpu::Device, work: impl FnOnce() -> T) -> (T, Verdict) {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let value = work();
    // Popped in the order pushed back.
    let verdict = Verdict {
        validation: Box::pin(validation.pop()),
        oom: Box::pin(oom.pop()),
    };
    (value, verdict)
}

impl Verdict {
    /// The first error the work raised (a validation error before running out of memory).
    pub async fn check(self) -> Result<(), GpuError> {
        if let Some(error) = self.validation.await {
            return Err(GpuError::Validation(error.to_string()));
        }
        if let Some(error) = self.oom.await {
            return Err(GpuError::OutOfMemory(error.to_string()));
        }
        Ok(())
    }
}
