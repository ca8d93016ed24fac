//! Shared by the native GPU tests: a device on whatever adapter this machine has, software ones
//! included (lavapipe, which `cargo xtask test` installs). Without one a GPU test fails, so
//! nothing passes unrun; a runner that has no GPU on purpose says so with `FM_NO_GPU=1`, and then
//! each GPU test skips loudly.

use fm_explainer::gpu::Gpu;

pub fn gpu() -> Option<Gpu> {
    match pollster::block_on(Gpu::request(true)) {
        Ok(gpu) => {
            eprintln!("GPU tests run on {} ({:?})", gpu.adapter, gpu.backend);
            Some(gpu)
        }
        Err(e) if std::env::var("FM_NO_GPU").is_ok_and(|v| v == "1") => {
            eprintln!("\n*** SKIPPING GPU TEST (FM_NO_GPU=1): {e} ***\n");
            None
        }
        Err(e) => panic!(
            "no GPU adapter: {e}. Install a Vulkan driver (Debian: mesa-vulkan-drivers, as \
             `cargo xtask test` does), or set FM_NO_GPU=1 to skip the GPU tests on purpose"
        ),
    }
}
