//! The start-up check of a GPU (gpu::canary) passes on a working adapter and declines one whose
//! results are spoiled.

mod common;

use fm_explainer::gpu::canary::{self, Spoil, CLOSED_FORM_TOLERANCE};
use fm_explainer::gpu::trainer::TrainingPipelines;
use fm_explainer::gpu::{ClosedFormPipeline, GpuError};
use pollster::block_on;

#[test]
fn a_working_adapter_passes() {
    let Some(gpu) = common::gpu() else { return };
    let pipeline = ClosedFormPipeline::new(&gpu);
    let start = std::time::Instant::now();
    let report = block_on(canary::run(
        &gpu,
        &pipeline,
        &TrainingPipelines::new(&gpu),
        Spoil::None,
    ))
    .unwrap();
    eprintln!("canary in {:?}: {report:?}", start.elapsed());
    assert_eq!(report.closed_form.len(), 2);
    for &(dim, err) in &report.closed_form {
        assert!(err < CLOSED_FORM_TOLERANCE / 10.0, "dim {dim}: {err}");
    }
    assert!(report.training < 1e-3, "{report:?}");
}

#[test]
fn a_spoiled_result_is_declined() {
    let Some(gpu) = common::gpu() else { return };
    let pipeline = ClosedFormPipeline::new(&gpu);
    match block_on(canary::run(
        &gpu,
        &pipeline,
        &TrainingPipelines::new(&gpu),
        Spoil::ClosedForm,
    )) {
        Err(GpuError::Canary(why)) => assert!(why.contains("dim 37"), "{why}"),
        other => panic!("expected a canary failure, got {other:?}"),
    }
}

#[test]
fn the_unet_check_passes_on_a_working_adapter() {
    let Some(gpu) = common::gpu() else { return };
    let start = std::time::Instant::now();
    block_on(canary::unet(&gpu)).unwrap();
    eprintln!("the U-Net's check in {:?}", start.elapsed());
}
