//! The JS training API: `createTrainer(options)` and the `Trainer` it resolves to. Calls on one
//! trainer run one after another (each awaits the previous), so a page may fire them freely.

use super::api::{finite_result, hold, Held};
use super::args::{floats, number, optional_number};
use super::backend::backend;
use super::compute::{ComputeError, Network, Ready, Training};
use super::turns::pace;
use crate::flow::training::TrainOptions;
use crate::flow::{self, budget, error as check, mlp, FlowError};
use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use js_sys::{Object, Reflect};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

struct Inner {
    shape: mlp::MlpShape,
    options: TrainOptions,
    /// The training set (for the hybrid sampler's closed form); emptied by `free`.
    data: RefCell<Rc<Vec<f32>>>,
    /// The training set made ready for the closed form, once the hybrid sampler needs it.
    ready: RefCell<Option<Rc<Ready>>>,
    /// The trainer's memory, held against the budget of calls in flight until it is freed.
    held: RefCell<Option<Held>>,
    engine: RefCell<Option<Training>>,
    /// The last queued call; the next one starts when it ends.
    last: RefCell<Option<Shared<LocalBoxFuture<'static, ()>>>>,
}

/// A velocity network being trained (CFM or EFM) on the page's backend.
#[wasm_bindgen]
pub struct Trainer {
    inner: Rc<Inner>,
}

use crate::flow::training::FORWARD_ROWS;

/// Multiply-adds of one forward pass per row: one per weight.
fn forward_work(shape: &mlp::MlpShape) -> u64 {
    shape.parameter_count() as u64
}

/// Activations per row of a forward pass (each layer's input and pre-activation).
fn activation_width(shape: &mlp::MlpShape) -> u64 {
    shape
        .layers()
        .iter()
        .map(|&(n_in, n_out)| (n_in + n_out) as u64)
        .sum()
}

/// The parsed options, the training set still in JS memory, and the trainer's memory in floats.
type Parsed = (mlp::MlpShape, TrainOptions, super::args::Floats, u64);

/// `createTrainer`'s options, each read once from the caller's object (`plain_options`);
/// numbers are checked against their ranges after, so that every message names the option and
/// its range; `data` stays the caller's array until its size has passed the memory budget.
struct OptionsIn {
    data: JsValue,
    dim: Option<f64>,
    hidden: Option<f64>,
    depth: Option<f64>,
    batch: Option<f64>,
    lr: Option<f64>,
    seed: Option<f64>,
    target: TargetName,
    efm_samples: Option<f64>,
}

enum TargetName {
    Cfm,
    Efm,
}

/// The option names, as a page spells them.
const OPTION_NAMES: [&str; 9] = [
    "data",
    "dim",
    "hidden",
    "depth",
    "batch",
    "lr",
    "seed",
    "target",
    "efmSamples",
];

/// An option's number: None where it is absent (undefined or null: its default), else the
/// number it must be.
fn option_number(name: &'static str, value: &JsValue) -> Result<Option<f64>, FlowError> {
    match value.is_undefined() || value.is_null() {
        true => Ok(None),
        false => number(name, value).map(Some),
    }
}

#[wasm_bindgen]
extern "C" {
    /// `Object.keys`, catching what a hostile object's traps throw.
    #[wasm_bindgen(catch, js_namespace = Object, js_name = keys)]
    fn own_keys(object: &JsValue) -> Result<js_sys::Array, JsValue>;
}

/// The options as a plain object holding only the known options, read once each (a getter that
/// throws rejects the call instead of unwinding through the module); an unknown option (a typo)
/// is refused with the list of known ones.
fn plain_options(options: &JsValue) -> Result<Object, FlowError> {
    let unreadable = |_| FlowError::WrongType {
        name: "options",
        expected: "an object whose fields can be read",
    };
    for key in own_keys(options).map_err(unreadable)?.iter() {
        let key = key.as_string().unwrap_or_default();
        if !OPTION_NAMES.contains(&key.as_str()) {
            return Err(FlowError::OutOfRange {
                name: "options",
                expected: format!("an object with only {}", OPTION_NAMES.join(", ")),
                got: format!("an option {key:?}"),
            });
        }
    }
    let plain = Object::new();
    for name in OPTION_NAMES {
        let key = JsValue::from_str(name);
        let value = Reflect::get(options, &key).map_err(unreadable)?;
        if !value.is_undefined() {
            Reflect::set(&plain, &key, &value).map_err(unreadable)?;
        }
    }
    Ok(plain)
}

/// An integer option: `default` when absent, else a number in lo..=hi.
fn integer_option(
    name: &'static str,
    value: Option<f64>,
    default: f64,
    (lo, hi): (usize, usize),
) -> Result<usize, FlowError> {
    check::check_integer(name, value.unwrap_or(default), lo, hi)
}

/// An integer argument: `default` when undefined, else a number in lo..=hi.
fn integer(
    name: &'static str,
    value: JsValue,
    default: f64,
    (lo, hi): (usize, usize),
) -> Result<usize, FlowError> {
    check::check_integer(name, optional_number(name, &value, default)?, lo, hi)
}

fn parse(options: &JsValue) -> Result<Parsed, FlowError> {
    // An array is no options object, and listing a large typed array's keys (before refusing
    // them one by one) would hold the page's thread for seconds.
    if !options.is_object()
        || js_sys::Array::is_array(options)
        || js_sys::ArrayBuffer::is_view(options)
    {
        return Err(FlowError::WrongType {
            name: "options",
            expected: "an object such as { data, dim }",
        });
    }
    let plain = plain_options(options)?;
    let get = |name: &str| Reflect::get(&plain, &JsValue::from_str(name)).unwrap_or_default();
    // Only a string can name a target: anything else (a large typed array too) is refused
    // without being read.
    let target = get("target");
    // A name is short: a long string is refused without being copied into the module.
    let short = target
        .dyn_ref::<js_sys::JsString>()
        .filter(|name| name.length() <= 16)
        .map(String::from);
    let target = match short.as_deref() {
        None if target.is_undefined() || target.is_null() => TargetName::Cfm,
        None => {
            return Err(FlowError::WrongType {
                name: "target",
                expected: "\"cfm\" or \"efm\"",
            })
        }
        Some("cfm") => TargetName::Cfm,
        Some("efm") => TargetName::Efm,
        Some(other) => {
            return Err(FlowError::OutOfRange {
                name: "target",
                expected: "\"cfm\" or \"efm\"".into(),
                got: format!("{other:?}"),
            })
        }
    };
    let options = OptionsIn {
        data: get("data"),
        dim: option_number("dim", &get("dim"))?,
        hidden: option_number("hidden", &get("hidden"))?,
        depth: option_number("depth", &get("depth"))?,
        batch: option_number("batch", &get("batch"))?,
        lr: option_number("lr", &get("lr"))?,
        seed: option_number("seed", &get("seed"))?,
        target,
        efm_samples: option_number("efmSamples", &get("efmSamples"))?,
    };
    let dim = integer_option("dim", options.dim, f64::NAN, (1, check::MAX_DIM))?;
    let data = floats("data", &options.data)?;
    let n = data.rows(dim)?;
    let hidden = integer_option("hidden", options.hidden, 128.0, (8, 1024))?;
    let depth = integer_option("depth", options.depth, 3.0, (1, 6))?;
    let batch = integer_option("batch", options.batch, 256.0, (1, 8192))?;
    let seed = integer_option("seed", options.seed, 0.0, (0, u32::MAX as usize))? as u32;
    let samples = integer_option("efmSamples", options.efm_samples, 256.0, (0, 8192))?;
    let target = match options.target {
        TargetName::Cfm => mlp::Target::Cfm,
        TargetName::Efm => mlp::Target::Efm { samples },
    };
    let lr = options.lr.unwrap_or(1e-3);
    if !(lr > 0.0 && lr <= 1.0) {
        return Err(FlowError::OutOfRange {
            name: "lr",
            expected: "a number in (0, 1]".into(),
            got: format!("{lr}"),
        });
    }
    let shape = mlp::MlpShape::new(dim, hidden, depth);
    let options = TrainOptions {
        batch,
        lr: lr as f32,
        seed,
        target,
    };
    // The data is kept twice (the trainer's and its engine's copy); an EFM step also holds its
    // reference points.
    let memory = budget::trainer_floats(
        budget::product(&[2, n, dim as u64]),
        shape.parameter_count() as u64,
        batch as u64,
        activation_width(&shape),
        efm_reference_points(&options),
        dim as u64,
    );
    budget::check_floats("options", memory)?;
    Ok((shape, options, data, memory))
}

/// The points an EFM step's target is computed over (the batch and the extra samples); none
/// for CFM.
fn efm_reference_points(options: &TrainOptions) -> u64 {
    match options.target {
        mlp::Target::Cfm => 0,
        mlp::Target::Efm { samples } => (options.batch + samples) as u64,
    }
}

/// Multiply-adds of one training step.
fn step_work(shape: &mlp::MlpShape, options: &TrainOptions) -> u64 {
    budget::training_step_work(
        shape.parameter_count() as u64,
        options.batch as u64,
        efm_reference_points(options),
        shape.dim as u64,
    )
}

/// A trainer for `options` = { data, dim, hidden = 128, depth = 3, target = "cfm" | "efm",
/// efmSamples = 256 (EFM reference points beyond the batch), batch = 256, lr = 1e-3, seed = 0 }.
#[wasm_bindgen(js_name = createTrainer)]
pub async fn create_trainer(
    #[wasm_bindgen(unchecked_param_type = "TrainerOptions")] options: JsValue,
) -> Result<Trainer, JsError> {
    let (shape, options, data, memory) = parse(&options)?;
    let held = hold("options", memory)?;
    let data = data.copy().await?;
    let engine = Training::start(&*backend().await, shape, &data, options).await?;
    Ok(Trainer {
        inner: Rc::new(Inner {
            shape,
            options,
            data: RefCell::new(Rc::new(data)),
            ready: RefCell::new(None),
            held: RefCell::new(Some(held)),
            engine: RefCell::new(Some(engine)),
            last: RefCell::new(None),
        }),
    })
}

impl Inner {
    /// Runs `work` after every call queued before it.
    fn queue<F, T>(self: &Rc<Self>, work: F) -> js_sys::Promise
    where
        F: FnOnce(Rc<Inner>) -> LocalBoxFuture<'static, Result<T, JsError>> + 'static,
        T: Into<JsValue> + 'static,
    {
        let previous = self.last.borrow_mut().take();
        let (done_tx, done_rx) = futures_channel::oneshot::channel::<()>();
        let next = async move {
            let _ = done_rx.await;
        }
        .boxed_local()
        .shared();
        *self.last.borrow_mut() = Some(next);
        let inner = self.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            if let Some(previous) = previous {
                previous.await;
            }
            let result = work(inner).await;
            let _ = done_tx.send(());
            result.map(Into::into).map_err(JsValue::from)
        })
    }

    /// Takes the engine out for the duration of one queued call (calls never overlap), so no
    /// borrow is held across an await, and puts it back afterwards.
    async fn with_engine<T>(
        &self,
        work: impl AsyncFnOnce(&mut Training) -> Result<T, JsError>,
    ) -> Result<T, JsError> {
        let Some(mut engine) = self.engine.borrow_mut().take() else {
            return Err(JsError::new("this trainer was freed"));
        };
        let result = work(&mut engine).await;
        *self.engine.borrow_mut() = Some(engine);
        result
    }
}

/// The paper's hybrid model (flow::sampler::hybrid_sample's steps): Euler from 0 to 1, along the
/// closed form of the trainer's data while t < tau and along the network after. A network on the
/// GPU samples there in one submission; otherwise both where the page computes (the closed form
/// on the GPU or split over the workers, the network in its worker), so that the page's thread
/// only adds dt u.
async fn hybrid_sample(
    inner: &Inner,
    network: &Network<'_>,
    x0: Vec<f32>,
    steps: usize,
    tau: f32,
) -> Result<Vec<f32>, ComputeError> {
    if let Network::Gpu(..) = network {
        let data = inner.data.borrow().clone();
        return network.path(&x0, steps, (&data, tau), false).await;
    }
    let dim = inner.shape.dim;
    let m = x0.len() / dim;
    let backend = backend().await;
    let dt = 1.0 / steps as f32;
    flow::sampler::euler_awaiting(&x0, 0.0, dt, steps, false, async |x, t| {
        let times = vec![t; m];
        let u = if t < tau {
            let cached = inner.ready.borrow().clone();
            let data = inner.data.borrow().clone();
            let ready = Ready::cached(&backend, cached, &data, dim).await?;
            *inner.ready.borrow_mut() = Some(ready.clone());
            ready.velocity_at(x, &times).await?
        } else {
            network.velocity(x, &times).await?
        };
        pace().await;
        Ok(u)
    })
    .await
}

#[wasm_bindgen]
impl Trainer {
    /// Runs `steps` (1..=100,000) optimisation steps; resolves to their losses.
    #[wasm_bindgen(unchecked_return_type = "Promise<Float32Array>")]
    pub fn train(
        &self,
        #[wasm_bindgen(unchecked_param_type = "number")] steps: JsValue,
    ) -> js_sys::Promise {
        let steps = integer("steps", steps, f64::NAN, (1, 100_000)).and_then(|steps| {
            let work = step_work(&self.inner.shape, &self.inner.options);
            budget::check_work("steps", budget::product(&[steps as u64, work]))?;
            Ok(steps)
        });
        self.inner.queue(move |inner| {
            async move {
                let steps = steps?;
                let losses = inner
                    .with_engine(async |engine: &mut Training| {
                        Ok(engine.train(steps, false).await?.0)
                    })
                    .await?;
                Ok(finite_result("the loss", &losses)?)
            }
            .boxed_local()
        })
    }

    /// u_theta(x, t) for every row of `points` (m x dim), t in [0, 1].
    #[wasm_bindgen(unchecked_return_type = "Promise<Float32Array>")]
    pub fn velocity(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Float32Array")] points: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] t: JsValue,
    ) -> js_sys::Promise {
        let shape = self.inner.shape;
        let args = (|| {
            let points = floats("points", &points)?;
            let m = points.rows(shape.dim)?;
            let t = check::check_unit("t", number("t", &t)?)?;
            budget::check_work("points", budget::product(&[m, forward_work(&shape)]))?;
            let rows = m.min(FORWARD_ROWS as u64);
            let memory = budget::product(&[3, m, shape.dim as u64])
                .saturating_add(budget::product(&[rows, activation_width(&shape)]))
                .saturating_add(shape.parameter_count() as u64);
            let held = hold("points", memory)?;
            Ok::<_, FlowError>((points.copy_now()?, t, held))
        })();
        self.inner.queue(move |inner| {
            async move {
                let (points, t, _held) = args?;
                let times = vec![t; points.len() / inner.shape.dim];
                let u = inner
                    .with_engine(async |engine: &mut Training| {
                        Ok(engine.network().velocity(&points, &times).await?)
                    })
                    .await?;
                Ok(finite_result("the velocity", &u)?)
            }
            .boxed_local()
        })
    }

    /// Euler from 0 to 1 in `steps` steps: on [0, hybridTau) along the closed form u* of the
    /// training set, after that along the network.
    #[wasm_bindgen(skip_typescript)]
    pub fn sample(&self, x0: JsValue, steps: JsValue, hybrid_tau: JsValue) -> js_sys::Promise {
        let (shape, dim) = (self.inner.shape, self.inner.shape.dim);
        let n = (self.inner.data.borrow().len() / dim) as u64;
        let args = (|| {
            let x0 = floats("x0", &x0)?;
            let m = x0.rows(dim)?;
            let steps = check::check_steps(number("steps", &steps)?)?;
            let tau = optional_number("hybridTau", &hybrid_tau, 0.0)?;
            let tau = check::check_unit("hybridTau", tau)?;
            // Every step is either the closed form (2 n m dim) or the network; counted as the
            // dearer of the two.
            let per_step = budget::product(&[2, n, m, dim as u64])
                .max(budget::product(&[m, forward_work(&shape)]));
            budget::check_work("x0", budget::product(&[steps as u64, per_step]))?;
            let rows = m.min(FORWARD_ROWS as u64);
            let memory = budget::product(&[4, m, dim as u64])
                .saturating_add(budget::product(&[2, n, dim as u64]))
                .saturating_add(budget::product(&[rows, activation_width(&shape)]))
                .saturating_add(shape.parameter_count() as u64);
            let held = hold("x0", memory)?;
            Ok::<_, FlowError>((x0.copy_now()?, steps, tau, held))
        })();
        self.inner.queue(move |inner| {
            async move {
                let (x0, steps, tau, _held) = args?;
                let x = inner
                    .with_engine(async |engine: &mut Training| {
                        Ok(hybrid_sample(&inner, &engine.network(), x0, steps, tau).await?)
                    })
                    .await?;
                Ok(finite_result("the samples", &x)?)
            }
            .boxed_local()
        })
    }

    /// Releases the trainer once the calls queued before it are done: its GPU buffers, its
    /// copy of the data, its parameters and its share of the memory budget; later calls reject.
    /// (This is the class's only `free`: it replaces the one wasm-bindgen generates, which
    /// would drop the trainer under its queued calls. What stays is a handle of a few bytes,
    /// released with the JS object.)
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn free(&self) -> js_sys::Promise {
        self.inner.queue(|inner| {
            async move {
                inner.engine.borrow_mut().take();
                inner.ready.borrow_mut().take();
                inner.held.borrow_mut().take();
                inner.data.replace(Rc::default());
                Ok(JsValue::UNDEFINED)
            }
            .boxed_local()
        })
    }

    /// The network's settings, as an object.
    #[wasm_bindgen(getter, unchecked_return_type = "TrainerSettings")]
    pub fn settings(&self) -> JsValue {
        let o = Object::new();
        let s = &self.inner.shape;
        for (k, v) in [
            ("dim", s.dim as f64),
            ("hidden", s.hidden as f64),
            ("depth", s.depth as f64),
            ("batch", self.inner.options.batch as f64),
            ("lr", self.inner.options.lr as f64),
            ("seed", self.inner.options.seed as f64),
        ] {
            let _ = Reflect::set(&o, &k.into(), &v.into());
        }
        o.into()
    }
}
