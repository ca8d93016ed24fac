//! What /gpu-check.html shows, natively: every kernel against its CPU twin on this machine's
//! adapter (lavapipe on CI), and every row within its tolerance.

mod common;

use fm_explainer::gpu::kernel_report;
use pollster::block_on;

#[test]
fn every_kernel_matches_its_cpu_twin() {
    let Some(gpu) = common::gpu() else { return };
    let start = std::time::Instant::now();
    let now = move || start.elapsed().as_secs_f64() * 1e3;
    let rows = block_on(kernel_report::run(&gpu, &now));
    assert!(rows.len() >= 10, "{} rows", rows.len());
    for r in &rows {
        eprintln!(
            "{:<30} {:<38} error {:.2e} {} (at most {:.0e}); GPU {:.1} ms, CPU {:.1} ms{}",
            r.kernel,
            r.sizes,
            r.error,
            r.unit,
            r.tolerance,
            r.gpu_ms,
            r.cpu_ms,
            r.failure
                .as_deref()
                .map(|f| format!("; FAILED: {f}"))
                .unwrap_or_default()
        );
    }
    let failed: Vec<_> = rows.iter().filter(|r| !r.passed()).collect();
    assert!(failed.is_empty(), "{failed:?}");
}
