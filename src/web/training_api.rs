//! The JS training API: `createTrainer(options)` and the `Trainer` it resolves to. Calls on one
//! trainer run one after another (each awaits the previous), so a page may fire them freely.

use super::api::{float_array, number, optional_number};
use super::shared::{backend, pace};
use crate::flow::{self, error as check, mlp, FlowError};
use crate::gpu::backend::Training;
use crate::gpu::trainer::TrainOptions;
use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use js_sys::{Float32Array, Object, Reflect};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

struct Inner {
    shape: mlp::MlpShape,
    options: TrainOptions,
    data: Vec<f32>,
    engine: RefCell<Option<Training>>,
    /// The last queued call; the next one starts when it ends.
    last: RefCell<Option<Shared<LocalBoxFuture<'static, ()>>>>,
}

/// A velocity network being trained (CFM or EFM) on the page's backend.
#[wasm_bindgen]
pub struct Trainer {
    inner: Rc<Inner>,
}

fn option(options: &JsValue, name: &str) -> JsValue {
    Reflect::get(options, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// An integer option or argument: `default` when absent, else a number in lo..=hi.
fn integer(
    name: &'static str,
    value: JsValue,
    default: f64,
    (lo, hi): (usize, usize),
) -> Result<usize, FlowError> {
    check::check_integer(name, optional_number(name, &value, default)?, lo, hi)
}

fn parse(options: &JsValue) -> Result<(mlp::MlpShape, TrainOptions, Vec<f32>), FlowError> {
    if !options.is_object() {
        return Err(FlowError::WrongType {
            name: "options",
            expected: "an object such as { data, dim }",
        });
    }
    let dim = integer("dim", option(options, "dim"), f64::NAN, (1, check::MAX_DIM))?;
    let data = float_array("data", &option(options, "data"))?;
    check::check_rows("data", &data, dim)?;
    let hidden = integer("hidden", option(options, "hidden"), 128.0, (8, 1024))?;
    let depth = integer("depth", option(options, "depth"), 3.0, (1, 6))?;
    let batch = integer("batch", option(options, "batch"), 256.0, (1, 8192))?;
    let seed = integer("seed", option(options, "seed"), 0.0, (0, u32::MAX as usize))? as u32;
    let samples = integer(
        "efmSamples",
        option(options, "efmSamples"),
        256.0,
        (0, 8192),
    )?;
    let target = option(options, "target");
    let target = match target.as_string().as_deref() {
        _ if target.is_undefined() => mlp::Target::Cfm,
        Some("cfm") => mlp::Target::Cfm,
        Some("efm") => mlp::Target::Efm { samples },
        name => {
            return Err(FlowError::OutOfRange {
                name: "target",
                expected: "\"cfm\" or \"efm\"".into(),
                got: name.map_or_else(
                    || "a value that is not a string".into(),
                    |n| format!("{n:?}"),
                ),
            })
        }
    };
    let lr = option(options, "lr");
    let lr = if lr.is_undefined() {
        1e-3
    } else {
        lr.as_f64().unwrap_or(f64::NAN)
    };
    if !(lr > 0.0 && lr <= 1.0) {
        return Err(FlowError::OutOfRange {
            name: "lr",
            expected: "a number in (0, 1]".into(),
            got: format!("{lr}"),
        });
    }
    Ok((
        mlp::MlpShape::new(dim, hidden, depth),
        TrainOptions {
            batch,
            lr: lr as f32,
            seed,
            target,
        },
        data,
    ))
}

/// A trainer for `options` = { data, dim, hidden = 128, depth = 3, target = "cfm" | "efm",
/// efmSamples = 256 (EFM reference points beyond the batch), batch = 256, lr = 1e-3, seed = 0 }.
#[wasm_bindgen(js_name = createTrainer)]
pub async fn create_trainer(options: JsValue) -> Result<Trainer, JsError> {
    let (shape, options, data) = parse(&options)?;
    let engine = backend().await.training(shape, &data, options)?;
    Ok(Trainer {
        inner: Rc::new(Inner {
            shape,
            options,
            data,
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

    async fn params(&self) -> Result<Vec<f32>, JsError> {
        self.with_engine(async |engine: &mut Training| {
            Ok(backend().await.parameters(engine).await?)
        })
        .await
    }
}

#[wasm_bindgen]
impl Trainer {
    /// Runs `steps` (1..=100,000) optimisation steps; resolves to their losses.
    pub fn train(&self, steps: JsValue) -> js_sys::Promise {
        let steps = integer("steps", steps, f64::NAN, (1, 100_000));
        self.inner.queue(move |inner| {
            async move {
                let steps = steps?;
                let losses = inner
                    .with_engine(async |engine: &mut Training| {
                        Ok(backend().await.train(engine, steps, pace).await?)
                    })
                    .await?;
                Ok(Float32Array::from(&losses[..]))
            }
            .boxed_local()
        })
    }

    /// u_theta(x, t) for every row of `points` (m x dim), t in [0, 1].
    pub fn velocity(&self, points: JsValue, t: JsValue) -> js_sys::Promise {
        let dim = self.inner.shape.dim;
        let args = (|| {
            let points = float_array("points", &points)?;
            check::check_rows("points", &points, dim)?;
            Ok::<_, FlowError>((points, check::check_unit("t", number("t", &t)?)?))
        })();
        self.inner.queue(move |inner| {
            async move {
                let (points, t) = args?;
                let params = inner.params().await?;
                let (u, _) =
                    mlp::forward(&inner.shape, &params, &points, &vec![t; points.len() / dim]);
                Ok(Float32Array::from(&u[..]))
            }
            .boxed_local()
        })
    }

    /// Euler from 0 to 1 in `steps` steps: on [0, hybridTau) along the closed form u* of the
    /// training set, after that along the network.
    pub fn sample(&self, x0: JsValue, steps: JsValue, hybrid_tau: JsValue) -> js_sys::Promise {
        let dim = self.inner.shape.dim;
        let args = (|| {
            let x0 = float_array("x0", &x0)?;
            check::check_rows("x0", &x0, dim)?;
            let steps = check::check_steps(number("steps", &steps)?)?;
            let tau = optional_number("hybridTau", &hybrid_tau, 0.0)?;
            Ok::<_, FlowError>((x0, steps, check::check_unit("hybridTau", tau)?))
        })();
        self.inner.queue(move |inner| {
            async move {
                let (x0, steps, tau) = args?;
                let params = inner.params().await?;
                let x = flow::sampler::hybrid_sample(&inner.data, dim, &x0, steps, tau, |x, t| {
                    mlp::forward(&inner.shape, &params, x, &vec![t; x.len() / dim]).0
                });
                Ok(Float32Array::from(&x[..]))
            }
            .boxed_local()
        })
    }

    /// Releases the trainer's GPU buffers once the calls queued before it are done; later
    /// calls reject.
    pub fn free(&self) -> js_sys::Promise {
        self.inner.queue(|inner| {
            async move {
                inner.engine.borrow_mut().take();
                Ok(JsValue::UNDEFINED)
            }
            .boxed_local()
        })
    }

    /// The network's settings, as an object.
    #[wasm_bindgen(getter)]
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
