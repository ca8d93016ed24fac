//! What the browser tests reach into, in one place: the module's only test-only exports and its
//! one test switch. Each answers a question a test cannot ask from outside (what the module's
//! memory, its budgets and its workers hold; what happens when a worker traps or the GPU device
//! is lost). None changes what a reader's page computes unless it is called. The one test switch
//! of the page's address, `?gpu-check=`, is read with the others in `query.rs`.

use wasm_bindgen::prelude::wasm_bindgen;

/// Bytes allocated by the module and not yet freed (for the leak tests; the linear memory itself
/// only grows, so it shows the high-water mark, not what is live).
#[wasm_bindgen(js_name = wasmHeapBytesForTesting)]
pub fn wasm_heap_bytes_for_testing() -> f64 {
    super::ALLOCATOR.allocated() as f64
}

/// The module's linear memory in bytes (it grows, never shrinks; for the leak tests).
#[wasm_bindgen(js_name = wasmMemoryBytesForTesting)]
pub fn wasm_memory_bytes_for_testing() -> f64 {
    (core::arch::wasm32::memory_size(0) * 65_536) as f64
}

/// Floats the API's calls in flight hold under the memory budget (for the leak tests).
#[wasm_bindgen(js_name = heldFloatsForTesting)]
pub fn held_floats_for_testing() -> f64 {
    super::api::held_floats() as f64
}

/// What the pool's workers hold now (training sets' slices and networks): for the leak test.
#[wasm_bindgen(js_name = workersHoldingForTesting)]
pub async fn workers_holding_for_testing() -> f64 {
    super::pool::workers_holding().await
}

/// Makes the first compute worker trap (a Rust panic inside it), for the test that the pool
/// replaces it; resolves to the error its call got.
#[wasm_bindgen(js_name = computeWorkerTrapForTesting, skip_typescript)]
pub async fn compute_worker_trap_for_testing() -> String {
    super::pool::trap_compute_worker().await
}

/// Makes the training worker trap (a Rust panic inside it), for the test that its networks are
/// rebuilt; resolves to the error its call got.
#[wasm_bindgen(js_name = trainingWorkerTrapForTesting, skip_typescript)]
pub async fn training_worker_trap_for_testing() -> String {
    super::pool::trap_training_worker().await
}

/// Destroys the page's GPU device, as a driver reset or a GPU process crash would, so that tests
/// can check that the page carries on on the CPU. Resolves to false when there is no GPU device.
#[wasm_bindgen(js_name = loseGpuDeviceForTesting)]
pub async fn lose_gpu_device_for_testing() -> bool {
    super::backend::lose_device().await
}
