//! Shared by the native GPU tests: a device on whatever adapter this machine has, software ones
//! included (lavapipe on CI). Without one a test skips loudly; under CI=true it fails, so nothing passes unrun.

use fm_explainer::gpu::Gpu;

pub fn gpu() -> Option<Gpu> {
    match pollster::block_on(Gpu::request(true)) {
        Ok(gpu) => {
            eprintln!("GPU tests run on {} ({:?})", gpu.adapter, gpu.backend);
            Some(gpu)
        }
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but no GPU adapter: {e} (install mesa-vulkan-drivers)");
            }
            eprintln!("\n*** SKIPPING GPU TEST: {e} ***\n");
            None
        }
    }
}
