//! The public JS API (camelCase). Every argument arrives as a `JsValue` and is validated here, so
//! a wrong type, a bad range or a NaN rejects the promise with an `Error` naming the argument,
//! and nothing can panic (a panic would poison the module for every figure on the page).

use super::shared::backend;
use crate::flow::{self, error as check, FlowError};
use js_sys::Float32Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

pub(super) fn float_array(name: &'static str, value: &JsValue) -> Result<Vec<f32>, FlowError> {
    value
        .dyn_ref::<Float32Array>()
        .map(Float32Array::to_vec)
        .ok_or(FlowError::WrongType {
            name,
            expected: "a Float32Array",
        })
}

pub(super) fn number(name: &'static str, value: &JsValue) -> Result<f64, FlowError> {
    value.as_f64().ok_or(FlowError::WrongType {
        name,
        expected: "a number",
    })
}

pub(super) fn optional_number(
    name: &'static str,
    value: &JsValue,
    default: f64,
) -> Result<f64, FlowError> {
    if value.is_undefined() {
        Ok(default)
    } else {
        number(name, value)
    }
}

/// A validated training set: n x dim, finite.
fn training_set(data: &JsValue, dim: &JsValue) -> Result<(Vec<f32>, usize), FlowError> {
    let dim = check::check_dim(number("dim", dim)?)?;
    let data = float_array("data", data)?;
    check::check_rows("data", &data, dim)?;
    Ok((data, dim))
}

fn to_js(values: &[f32]) -> Float32Array {
    Float32Array::from(values)
}

/// "webgpu" when a WebGPU device is in use, "cpu" otherwise.
#[wasm_bindgen(js_name = backendName)]
pub async fn backend_name() -> String {
    backend().await.name().to_string()
}

/// Why the CPU path is in use (empty with WebGPU).
#[wasm_bindgen(js_name = backendNote)]
pub async fn backend_note() -> String {
    match &*backend().await {
        crate::gpu::Backend::Cpu { reason, .. } => reason.clone(),
        crate::gpu::Backend::Gpu(_) => String::new(),
    }
}

/// The GPU check run before the page trusted its GPU: `{ ms, verdict }` ("passed: ..." or
/// "failed: ..."), or null when no GPU was checked (none, a CPU path asked for).
#[wasm_bindgen(js_name = gpuCheck)]
pub async fn gpu_check() -> JsValue {
    let _ = backend().await;
    match super::shared::gpu_check() {
        Some((ms, verdict)) => {
            let out = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&out, &"ms".into(), &ms.into());
            let _ = js_sys::Reflect::set(&out, &"verdict".into(), &verdict.into());
            out.into()
        }
        None => JsValue::NULL,
    }
}

/// Destroys the page's GPU device, as a driver reset or a GPU process crash would, so that tests
/// can check that the page carries on on the CPU. Resolves to false when there is no GPU device.
#[wasm_bindgen(js_name = loseGpuDeviceForTesting)]
pub async fn lose_gpu_device_for_testing() -> bool {
    super::shared::lose_device().await
}

/// Runs every WGSL kernel on a WebGPU device of its own (software adapters included) against
/// its CPU twin: `{ adapter, rows: [{ kernel, sizes, error, tolerance, unit, gpuMs, cpuMs,
/// passed, failure }] }`. What /gpu-check.html shows; rejects when there is no adapter at all.
#[wasm_bindgen(js_name = gpuKernelReport)]
pub async fn gpu_kernel_report() -> Result<JsValue, JsError> {
    let gpu = crate::gpu::Gpu::request(true).await?;
    let performance = web_sys::window().and_then(|w| w.performance());
    let now = move || performance.as_ref().map_or(0.0, |p| p.now());
    let rows = crate::gpu::kernel_report::run(&gpu, &now).await;
    let set = |o: &js_sys::Object, k: &str, v: JsValue| {
        let _ = js_sys::Reflect::set(o, &k.into(), &v);
    };
    let list = js_sys::Array::new();
    for r in &rows {
        let o = js_sys::Object::new();
        set(&o, "kernel", r.kernel.into());
        set(&o, "sizes", r.sizes.as_str().into());
        set(&o, "error", r.error.into());
        set(&o, "tolerance", r.tolerance.into());
        set(&o, "unit", r.unit.into());
        set(&o, "gpuMs", r.gpu_ms.into());
        set(&o, "cpuMs", r.cpu_ms.into());
        set(&o, "passed", r.passed().into());
        set(
            &o,
            "failure",
            r.failure.as_deref().map_or(JsValue::NULL, JsValue::from),
        );
        list.push(&o);
    }
    let out = js_sys::Object::new();
    let adapter = if gpu.adapter.is_empty() {
        "this browser's WebGPU adapter (its name withheld)".to_string()
    } else {
        gpu.adapter.clone()
    };
    set(&out, "adapter", adapter.into());
    set(&out, "rows", list.into());
    Ok(out.into())
}

/// u*(x, t) for every row of `points` (m x dim); returns m x dim.
#[wasm_bindgen(js_name = closedFormVelocity)]
pub async fn closed_form_velocity(
    data: JsValue,
    dim: JsValue,
    points: JsValue,
    t: JsValue,
) -> Result<Float32Array, JsError> {
    let (data, dim) = training_set(&data, &dim)?;
    let points = float_array("points", &points)?;
    check::check_rows("points", &points, dim)?;
    let t = check::check_t("t", number("t", &t)?)?;
    let backend = backend().await;
    let set = backend.prepare(&data, dim)?;
    Ok(to_js(&backend.velocity(&set, &points, t).await?))
}

/// lambda(x, t) for one point: the posterior over the n training points.
#[wasm_bindgen(js_name = posteriorWeights)]
pub async fn posterior_weights(
    data: JsValue,
    dim: JsValue,
    point: JsValue,
    t: JsValue,
) -> Result<Float32Array, JsError> {
    let (data, dim) = training_set(&data, &dim)?;
    let point = float_array("point", &point)?;
    if point.len() != dim {
        return Err(FlowError::OutOfRange {
            name: "point",
            expected: format!("a Float32Array of length dim = {dim}"),
            got: format!("length {}", point.len()),
        }
        .into());
    }
    check::check_rows("point", &point, dim)?;
    let t = check::check_t("t", number("t", &t)?)?;
    // One point against n: cheaper on the CPU than a GPU round trip.
    Ok(to_js(&flow::posterior_weights(&data, dim, &point, t)))
}

/// Euler from `tStart` (default 0) to 1 in `steps` equal steps with the closed-form velocity.
#[wasm_bindgen(js_name = sampleClosedForm)]
pub async fn sample_closed_form(
    data: JsValue,
    dim: JsValue,
    x0: JsValue,
    steps: JsValue,
    t_start: JsValue,
) -> Result<Float32Array, JsError> {
    let (data, dim) = training_set(&data, &dim)?;
    let x0 = float_array("x0", &x0)?;
    check::check_rows("x0", &x0, dim)?;
    let steps = check::check_steps(number("steps", &steps)?)?;
    let t0 = check::check_t("tStart", optional_number("tStart", &t_start, 0.0)?)?;
    let backend = backend().await;
    let set = backend.prepare(&data, dim)?;
    Ok(to_js(&backend.sample(&set, &x0, steps, t0).await?))
}

/// For each time and each of `pairs` seeded random pairs (x0 ~ N(0, I), x1 from `data`), the
/// cosine between u*(x_t, t) over the whole of `data` and x1 - x0: times.length x pairs values,
/// time-major. The same seed gives the same pairs.
#[wasm_bindgen(js_name = cosineAlignment)]
pub async fn cosine_alignment(
    data: JsValue,
    dim: JsValue,
    times: JsValue,
    pairs: JsValue,
    seed: JsValue,
) -> Result<Float32Array, JsError> {
    let (data, dim) = training_set(&data, &dim)?;
    let times = float_array("times", &times)?;
    if times.is_empty() {
        return Err(FlowError::Empty { name: "times" }.into());
    }
    for &t in &times {
        check::check_t("times", t as f64)?;
    }
    let pairs = check::check_integer("pairs", number("pairs", &pairs)?, 1, 65_536)?;
    let seed = check::check_integer("seed", number("seed", &seed)?, 0, u32::MAX as usize)? as u32;
    let backend = backend().await;
    let set = backend.prepare(&data, dim)?;
    let q = flow::alignment::alignment_queries(&data, dim, &times, pairs, seed);
    let cosines = backend
        .alignment_cosines(&set, &q, dim, super::shared::pace)
        .await?;
    Ok(to_js(&cosines))
}

/// The MNIST digits in [-1, 1]: { data: Float32Array (n x 784), dim: 784, n }.
#[wasm_bindgen(js_name = loadDigits)]
pub async fn load_digits() -> Result<JsValue, JsError> {
    let digits = super::digits::load().await.map_err(|e| JsError::new(&e))?;
    let result = js_sys::Object::new();
    let set = |key: &str, value: JsValue| js_sys::Reflect::set(&result, &key.into(), &value);
    set("data", to_js(&digits.full).into()).map_err(|_| JsError::new("loadDigits: no object"))?;
    set("dim", (crate::flow::digits::PIXELS as f64).into())
        .map_err(|_| JsError::new("loadDigits: no object"))?;
    set("n", (digits.n as f64).into()).map_err(|_| JsError::new("loadDigits: no object"))?;
    Ok(result.into())
}
