//! The digits lab's worker (www/digits-worker.js): a second WebAssembly module, fetched with the
//! network's weights only when a figure that runs the network nears the viewport. It loads
//! `fm_explainer::digits_lab::Lab` and answers the page's requests, one at a time, posting each
//! reply (and the steps of a sampling as they come) back to the page. The reader's own training
//! runs here too, a chunk per request, on a WebGPU device of the worker's own or on the CPU.
#![cfg(target_arch = "wasm32")]

use fm_explainer::digits_lab::{decode, encode, Lab, Reply, Request};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::JsError;
use wasm_bindgen_futures::JsFuture;

thread_local! {
    static LAB: RefCell<Option<Lab>> = const { RefCell::new(None) };
}

fn scope() -> web_sys::DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post(reply: &Reply) {
    // As bytes (`digits_lab::encode`), the buffer transferred rather than copied.
    let bytes = js_sys::Uint8Array::from(encode(reply).as_slice());
    let _ = scope().post_message_with_transfer(&bytes, &js_sys::Array::of1(&bytes.buffer()));
}

async fn fetch(url: &str) -> Result<Vec<u8>, String> {
    let why = |e: JsValue| {
        format!(
            "{url}: {}",
            e.as_string().unwrap_or_else(|| format!("{e:?}"))
        )
    };
    let response: web_sys::Response = JsFuture::from(scope().fetch_with_str(url))
        .await
        .map_err(why)?
        .unchecked_into();
    if !response.ok() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    let buffer = JsFuture::from(response.array_buffer().map_err(why)?)
        .await
        .map_err(why)?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// One message from the page: a `Request` (anything else is answered with `Failed`).
#[wasm_bindgen(js_name = labMessage)]
pub async fn lab_message(message: JsValue) {
    console_error_panic_hook::set_once();
    let request: Request = match message
        .dyn_ref::<js_sys::Uint8Array>()
        .ok_or_else(|| "not bytes".to_string())
        .and_then(|bytes| decode(&bytes.to_vec()))
    {
        Ok(r) => r,
        // No call can be told apart: the page fails every call waiting on the lab.
        Err(e) => {
            return post(&Reply::Failed {
                ticket: None,
                error: format!("not a request the digits lab knows: {e}"),
            })
        }
    };
    if let Request::Load { weights, digits } = request {
        let loaded = async {
            let (w, d) = (fetch(&weights).await?, fetch(&digits).await?);
            Lab::new(&w, &d).map_err(|e| e.to_string())
        }
        .await;
        let reply = match loaded {
            Ok(lab) => {
                let reply = lab.loaded();
                LAB.with(|l| *l.borrow_mut() = Some(lab));
                reply
            }
            Err(error) => Reply::Failed {
                ticket: None,
                error,
            },
        };
        return post(&reply);
    }
    // Out of its cell while the work awaits the device (requests come one at a time).
    let Some(mut lab) = LAB.with(|l| l.borrow_mut().take()) else {
        return post(&Reply::Failed {
            ticket: request.ticket(),
            error: "the digits lab is not loaded".into(),
        });
    };
    let reply = lab
        .answer_placed(request, |step| post(&step), js_sys::Date::now)
        .await;
    LAB.with(|l| *l.borrow_mut() = Some(lab));
    post(&reply);
}

/// Runs every WGSL kernel on a WebGPU device of its own (software adapters included) against
/// its CPU twin: `{ adapter, rows: [{ kernel, sizes, error, tolerance, unit, gpuMs, cpuMs,
/// passed, failure }] }`. What /gpu-check.html shows; rejects when there is no adapter at all.
/// Here, in the digits lab's module, rather than in the article's: only /gpu-check.html (and the
/// bench) runs it, and the U-Net's row comes with the network, which the article's module
/// does not carry.
#[wasm_bindgen(js_name = gpuKernelReport)]
pub async fn gpu_kernel_report() -> Result<JsValue, JsError> {
    let gpu = fm_explainer::gpu::Gpu::request(true).await?;
    let performance = web_sys::window().and_then(|w| w.performance());
    let now = move || performance.as_ref().map_or(0.0, |p| p.now());
    let rows = fm_explainer::gpu::kernel_report::run(&gpu, &now).await;
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

/// Trains the digits' U-Net on this browser's WebGPU device (software adapters included) for
/// one step, then times `steps` more: `[milliseconds, last loss]`. What `cargo xtask bench`
/// measures against TensorFlow.js's WebGPU backend running the same network's step. The batches
/// are drawn from `data` (rows of 784 pixels in [-1, 1]) as `cargo xtask train-digits` draws
/// them; the timed steps are submitted together and their losses read once, at the end.
#[wasm_bindgen(js_name = unetTrainingBench)]
pub async fn unet_training_bench(
    data: Vec<f32>,
    batch: u32,
    steps: u32,
) -> Result<js_sys::Array, JsError> {
    use fm_explainer::flow::digit_training::DigitOptions;
    use fm_explainer::flow::unet::UnetShape;
    use fm_explainer::gpu::digit_trainer::GpuDigitTraining;
    use fm_explainer::gpu::unet::UnetPipelines;
    let dim = UnetShape::DIGITS.dim();
    if batch == 0 || steps == 0 || data.is_empty() || !data.len().is_multiple_of(dim) {
        return Err(JsError::new(&format!(
            "batch and steps must be at least 1 and data whole rows of {dim} ({} values)",
            data.len()
        )));
    }
    let gpu = fm_explainer::gpu::Gpu::request(true).await?;
    let options = DigitOptions {
        batch: batch as usize,
        ..DigitOptions::SHIPPED
    };
    let mut training = GpuDigitTraining::new(&gpu, UnetShape::DIGITS, data, options)?;
    let pipelines = UnetPipelines::new(&gpu);
    let performance = web_sys::window().and_then(|w| w.performance());
    let now = move || performance.as_ref().map_or(0.0, |p| p.now());
    training.train_step(&gpu, &pipelines).await?;
    let start = now();
    let losses = training
        .train_steps(&gpu, &pipelines, steps as usize)
        .await?;
    let loss = losses[losses.len() - 1];
    let out = js_sys::Array::new();
    out.push(&(now() - start).into());
    out.push(&loss.into());
    Ok(out)
}

/// Samples `rows` digits in `steps` Euler steps with the U-Net (seeded weights: the time does not
/// depend on their values) on this browser's WebGPU device, once to compile, then timed:
/// milliseconds. What `cargo xtask bench` sets beside the lab's CPU path.
#[wasm_bindgen(js_name = unetSamplingBench)]
pub async fn unet_sampling_bench(rows: u32, steps: u32) -> Result<f64, JsError> {
    use fm_explainer::flow::rng::Rng;
    use fm_explainer::flow::unet::{Unet, UnetShape};
    use fm_explainer::gpu::unet::{GpuUnet, UnetPipelines};
    if rows == 0 || steps == 0 || rows > 256 || steps > 200 {
        return Err(JsError::new("rows must be in 1..=256 and steps in 1..=200"));
    }
    let gpu = fm_explainer::gpu::Gpu::request(true).await?;
    let net = Unet::new(UnetShape::DIGITS);
    let params = net.init_for_comparison(1);
    let noise = Rng::new(2).normals(rows as usize * net.shape.dim());
    let on_gpu = GpuUnet::new(&gpu, net, &params)?;
    let pipelines = UnetPipelines::new(&gpu);
    on_gpu.sample(&gpu, &pipelines, &noise, 1).await?;
    let performance = web_sys::window().and_then(|w| w.performance());
    let now = move || performance.as_ref().map_or(0.0, |p| p.now());
    let start = now();
    on_gpu
        .sample(&gpu, &pipelines, &noise, steps as usize)
        .await?;
    Ok(now() - start)
}
