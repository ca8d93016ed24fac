//! The public JS API (camelCase). Every argument arrives as a `JsValue` and is validated here, so
//! a wrong type, a bad range or a NaN rejects the promise with an `Error` naming the argument,
//! and nothing can panic (a panic would poison the module for every figure on the page). Every
//! call's memory and work are checked against `flow::budget` from the arguments' sizes before
//! anything is copied into wasm memory.

use super::args::{floats, number, optional_number, Floats};
use super::backend::{backend, backend_now};
use super::compute::Ready;
use crate::flow::{self, budget, error as check, FlowError};
use js_sys::Float32Array;
use std::cell::Cell;
use wasm_bindgen::prelude::*;

thread_local! {
    /// Floats held by the calls (and trainers) not yet finished.
    static HELD: Cell<u64> = const { Cell::new(0) };
}

/// Floats reserved by one call or trainer until it is dropped: calls running side by side
/// cannot together take more than `budget::MAX_FLOATS_IN_FLIGHT`.
pub(super) struct Held(u64);

pub(super) fn hold(name: &'static str, floats: u64) -> Result<Held, FlowError> {
    budget::check_floats(name, floats)?;
    let held = HELD.with(Cell::get);
    if held.saturating_add(floats) > budget::MAX_FLOATS_IN_FLIGHT {
        return Err(FlowError::OverBudget {
            name,
            got: format!("{floats} floats while unfinished calls and live trainers hold {held}"),
            limit: format!(
                "{} floats for all of them together (await calls, free() trainers)",
                budget::MAX_FLOATS_IN_FLIGHT
            ),
        });
    }
    HELD.with(|h| h.set(held + floats));
    Ok(Held(floats))
}

impl Drop for Held {
    fn drop(&mut self) {
        HELD.with(|h| h.set(h.get().saturating_sub(self.0)));
    }
}

/// Floats held by unfinished calls and live trainers (for the leak tests).
/// The TypeScript declarations of what the functions take and return beyond wasm-bindgen's own
/// (the arguments arrive as `JsValue` and are checked here, so a wrong one rejects with a message
/// instead of trapping): the option and result objects, and the two calls with an optional last
/// argument.
#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Options of `createTrainer`; `data` holds n rows of `dim` numbers. */
export interface TrainerOptions {
    data: Float32Array;
    dim: number;
    /** Width of the hidden layers (default 128). */
    hidden?: number;
    /** Hidden layers (default 3). */
    depth?: number;
    /** Pairs per step (default 256). */
    batch?: number;
    /** Adam's learning rate, in (0, 1] (default 1e-3). */
    lr?: number;
    seed?: number;
    /** The regression target: x1 - x0 ("cfm", the default) or the closed form ("efm"). */
    target?: "cfm" | "efm";
    /** EFM: reference points beyond the batch (default 256). */
    efmSamples?: number;
}

/** A setting of a figure: an attribute of `<fm-figure>`, a control, a key in a shared link. */
export type SettingSpec =
    | { kind: "number"; key: string; label: string; min: number; max: number; step: number; default: number }
    | { kind: "choice"; key: string; label: string; options: { value: string; label: string }[]; default: string };

/** The figures that `mountFigure` and `<fm-figure name>` take (generated from src/catalog.rs). */
// generated:start
export type FigureName =
    | "noise-to-data"
    | "conditional-paths"
    | "velocity-field"
    | "memorization"
    | "stochastic-target"
    | "target-alignment"
    | "objective-gap"
    | "alignment-by-dimension"
    | "digit-memorization"
    | "cfm-vs-efm"
    | "model-capacity"
    | "hybrid-tau"
    | "new-digits";
// generated:end

/** A figure that `mountFigure` and `<fm-figure name>` take, and its settings. */
export interface FigureSpec {
    name: FigureName;
    settings: SettingSpec[];
}

/** A trainer's network and optimiser settings. */
export interface TrainerSettings {
    dim: number;
    hidden: number;
    depth: number;
    batch: number;
    lr: number;
    seed: number;
}

export interface Trainer {
    /** Euler from 0 to 1 in `steps` steps: the closed form of the data on [0, hybridTau), the network after. */
    sample(x0: Float32Array, steps: number, hybridTau?: number): Promise<Float32Array>;
}

/** Euler from `tStart` (default 0) to 1 in `steps` steps along the closed form of `data`. */
export function sampleClosedForm(data: Float32Array, dim: number, x0: Float32Array, steps: number, tStart?: number): Promise<Float32Array>;

/** The MNIST digits in [-1, 1]: n rows of dim = 784 pixels. */
export interface Digits {
    data: Float32Array;
    dim: number;
    n: number;
}

/** The GPU check run before the page trusted its GPU. */
export interface GpuCheck {
    ms: number;
    verdict: string;
}

"#;

/// Floats the calls in flight hold under the memory budget now.
pub(super) fn held_floats() -> u64 {
    HELD.with(Cell::get)
}

/// A training set argument: n x dim, checked for size only (copied later, under a budget).
fn training_set(data: &JsValue, dim: &JsValue) -> Result<(Floats, usize, u64), FlowError> {
    let dim = check::check_dim(number("dim", dim)?)?;
    let data = floats("data", data)?;
    let n = data.rows(dim)?;
    Ok((data, dim, n))
}

fn to_js(values: &[f32]) -> Float32Array {
    Float32Array::from(values)
}

/// A result handed back to the page: every value finite, or an error saying where float32 gave
/// out (finite inputs can still overflow: coordinates near 1e38, t a hair below 1, a network
/// trained with too large a step).
pub(super) fn finite_result(what: &'static str, values: &[f32]) -> Result<Float32Array, FlowError> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(to_js(values)),
        Some(index) => Err(FlowError::NotFinite { what, index }),
    }
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
#[wasm_bindgen(js_name = gpuCheck, unchecked_return_type = "GpuCheck | null")]
pub async fn gpu_check() -> JsValue {
    let _ = backend().await;
    match super::backend::gpu_check() {
        Some((ms, verdict)) => {
            let out = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&out, &"ms".into(), &ms.into());
            let _ = js_sys::Reflect::set(&out, &"verdict".into(), &verdict.into());
            out.into()
        }
        None => JsValue::NULL,
    }
}

/// A closed-form call's sizes checked and its memory held, then the page's backend.
async fn closed_form_call(
    cost: budget::ClosedFormCost,
    queries: &'static str,
    arrays: &[&Floats],
) -> Result<(Held, std::rc::Rc<crate::gpu::Backend>), JsError> {
    cost.check("data", queries)?;
    let held = hold(queries, cost.floats())?;
    Ok((held, backend_for(arrays).await?))
}

/// The page's backend for a call on `arrays`. While it is still being chosen (the start-up GPU
/// check takes seconds), the arrays are read through once for a NaN or an infinity first, so
/// that what the arguments alone decide is rejected at once rather than after the check. Once
/// the backend is chosen they are checked on their way to it, as every array is, and are not
/// read twice.
async fn backend_for(arrays: &[&Floats]) -> Result<std::rc::Rc<crate::gpu::Backend>, JsError> {
    if backend_now().is_none() {
        for array in arrays {
            array.check_finite_all().await?;
        }
    }
    Ok(backend().await)
}

/// u*(x, t) for every row of `points` (m x dim); returns m x dim.
#[wasm_bindgen(js_name = closedFormVelocity)]
pub async fn closed_form_velocity(
    #[wasm_bindgen(unchecked_param_type = "Float32Array")] data: JsValue,
    #[wasm_bindgen(unchecked_param_type = "number")] dim: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Float32Array")] points: JsValue,
    #[wasm_bindgen(unchecked_param_type = "number")] t: JsValue,
) -> Result<Float32Array, JsError> {
    let (data, dim, n) = training_set(&data, &dim)?;
    let points = floats("points", &points)?;
    let m = points.rows(dim)?;
    let t = check::check_t("t", number("t", &t)?)?;
    let cost = budget::ClosedFormCost {
        n,
        dim: dim as u64,
        m,
        evaluations: 1,
        out: m * dim as u64,
    };
    let (_held, backend) = closed_form_call(cost, "points", &[&data, &points]).await?;
    let set = Ready::from_js(&backend, &data, dim).await?;
    let points = points.copy().await?;
    let times = vec![t; m as usize];
    Ok(finite_result(
        "the velocity",
        &set.velocity_at(&points, &times).await?,
    )?)
}

/// lambda(x, t) for one point: the posterior over the n training points.
#[wasm_bindgen(js_name = posteriorWeights)]
pub async fn posterior_weights(
    #[wasm_bindgen(unchecked_param_type = "Float32Array")] data: JsValue,
    #[wasm_bindgen(unchecked_param_type = "number")] dim: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Float32Array")] point: JsValue,
    #[wasm_bindgen(unchecked_param_type = "number")] t: JsValue,
) -> Result<Float32Array, JsError> {
    let (data, dim, n) = training_set(&data, &dim)?;
    let point = floats("point", &point)?;
    if point.len != dim as u64 {
        return Err(FlowError::OutOfRange {
            name: "point",
            expected: format!("a Float32Array of length dim = {dim}"),
            got: format!("length {}", point.len),
        }
        .into());
    }
    let t = check::check_t("t", number("t", &t)?)?;
    let _held = hold("data", budget::product(&[n, dim as u64 + 1]))?;
    let (data, point) = (data.copy().await?, point.copy().await?);
    // One point against n: cheaper on the CPU than a GPU round trip.
    Ok(finite_result(
        "the weights",
        &flow::posterior_weights(&data, dim, &point, t),
    )?)
}

/// Euler from `tStart` (default 0) to 1 in `steps` equal steps with the closed-form velocity.
#[wasm_bindgen(js_name = sampleClosedForm, skip_typescript)]
pub async fn sample_closed_form(
    data: JsValue,
    dim: JsValue,
    x0: JsValue,
    steps: JsValue,
    t_start: JsValue,
) -> Result<Float32Array, JsError> {
    let (data, dim, n) = training_set(&data, &dim)?;
    let x0 = floats("x0", &x0)?;
    let m = x0.rows(dim)?;
    let steps = check::check_steps(number("steps", &steps)?)?;
    let t0 = check::check_t("tStart", optional_number("tStart", &t_start, 0.0)?)?;
    let cost = budget::ClosedFormCost {
        n,
        dim: dim as u64,
        m,
        evaluations: steps as u64,
        out: m * dim as u64,
    };
    let (_held, backend) = closed_form_call(cost, "x0", &[&x0, &data]).await?;
    let x0 = x0.copy().await?;
    let set = Ready::from_js(&backend, &data, dim).await?;
    Ok(finite_result(
        "the samples",
        &set.sample(&x0, steps, t0).await?,
    )?)
}

/// Queries per block of an alignment call: the times are taken a few at a time, so that at most
/// about this many floats of queries exist at once.
const ALIGNMENT_BLOCK_FLOATS: u64 = 1 << 22;

/// For each time and each of `pairs` seeded random pairs (x0 ~ N(0, I), x1 from `data`), the
/// cosine between u*(x_t, t) over the whole of `data` and x1 - x0: times.length x pairs values,
/// time-major. The same seed gives the same pairs.
#[wasm_bindgen(js_name = cosineAlignment)]
pub async fn cosine_alignment(
    #[wasm_bindgen(unchecked_param_type = "Float32Array")] data: JsValue,
    #[wasm_bindgen(unchecked_param_type = "number")] dim: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Float32Array")] times: JsValue,
    #[wasm_bindgen(unchecked_param_type = "number")] pairs: JsValue,
    #[wasm_bindgen(unchecked_param_type = "number")] seed: JsValue,
) -> Result<Float32Array, JsError> {
    let (data, dim, n) = training_set(&data, &dim)?;
    let times = floats("times", &times)?;
    let count = times.rows(1)?;
    let pairs = check::check_integer("pairs", number("pairs", &pairs)?, 1, 65_536)?;
    let seed = check::check_integer("seed", number("seed", &seed)?, 0, u32::MAX as usize)? as u32;
    // The pairs (x0, x1, targets) and one block of queries (points, targets, velocities) exist
    // at once, besides the data and the cosines.
    let pair_floats = budget::product(&[pairs as u64, dim as u64]);
    let per_block = (ALIGNMENT_BLOCK_FLOATS / pair_floats.max(1)).clamp(1, count);
    let cost = budget::ClosedFormCost {
        n,
        dim: dim as u64,
        m: budget::product(&[count, pairs as u64]),
        evaluations: 1,
        out: 0,
    };
    cost.check("data", "times")?;
    let floats_needed = budget::product(&[2, n, dim as u64])
        .saturating_add(budget::product(&[3, pair_floats]))
        .saturating_add(budget::product(&[3, per_block, pair_floats]))
        .saturating_add(budget::product(&[2, count, pairs as u64]));
    let _held = hold("times", floats_needed)?;
    let times = times.copy().await?;
    for &t in &times {
        check::check_t("times", t as f64)?;
    }
    let backend = backend_for(&[&data]).await?;
    // Only the drawn rows are read here; the set goes to the workers straight from the
    // caller's array (or is copied for the backend).
    let q = flow::alignment::alignment_pairs_of(n as usize, dim, pairs, seed, |i, x1| {
        let start = x1.len();
        x1.resize(start + dim, 0.0);
        data.array()
            .subarray((i * dim) as u32, ((i + 1) * dim) as u32)
            .copy_to(&mut x1[start..]);
    });
    let set = Ready::from_js(&backend, &data, dim).await?;
    let mut cosines = Vec::with_capacity(times.len() * pairs);
    for block in times.chunks(per_block as usize) {
        let queries = q.queries(block);
        let u = set.velocity_at(&queries.points, &queries.times).await?;
        cosines.extend(flow::alignment::row_cosines(&u, &queries.targets, dim));
    }
    Ok(finite_result("the cosines", &cosines)?)
}

/// The MNIST digits in [-1, 1]: { data: Float32Array (n x 784), dim: 784, n }.
#[wasm_bindgen(js_name = loadDigits, unchecked_return_type = "Digits")]
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
