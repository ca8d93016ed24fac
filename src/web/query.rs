//! The page's address's switches, read in one place: `?backend=` (the backend, `backend.rs`),
//! `?workers=` (the compute workers, `pool/`) and the browser tests' `?gpu-check=`. A leaf: it
//! imports nothing of the page's, so every part of the page may read it.

/// The value of `key` in the page's query string. `?backend=cpu` forces the CPU path
/// (comparisons, benchmarks); `?backend=webgpu` takes a WebGPU adapter even when it is a software
/// one (testing the kernels in a browser without a GPU); `?workers=k` starts k compute workers.
pub(super) fn value(key: &str) -> Option<String> {
    let query = web_sys::window()?.location().search().ok()?;
    query
        .trim_start_matches('?')
        .split('&')
        .find_map(|p| p.strip_prefix(key)?.strip_prefix('=').map(str::to_string))
}

/// `?gpu-check=spoil` spoils one GPU result of the start-up check on purpose, and
/// `?gpu-check=hang` stands for a check that never finishes: the browser tests of the page's
/// declines (it computes on the CPU and says why).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum GpuCheckSwitch {
    Spoil,
    Hang,
}

impl GpuCheckSwitch {
    /// The switch in the page's address, if any.
    pub(super) fn from_page() -> Option<GpuCheckSwitch> {
        match value("gpu-check").as_deref() {
            Some("spoil") => Some(GpuCheckSwitch::Spoil),
            Some("hang") => Some(GpuCheckSwitch::Hang),
            _ => None,
        }
    }
}
