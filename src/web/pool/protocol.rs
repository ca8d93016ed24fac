//! What the page asks of a compute worker, as one typed message. The page builds a `Request` and
//! `encode`s it into a plain object (with the buffers it may move); the worker `decode`s it back
//! and refuses, with the field's name, anything malformed: a missing or mistyped field is an
//! error, never a default.
//!
//! Written by hand rather than through serde: the arrays travel as Float32Arrays whose buffers
//! are moved between threads (serde_wasm_bindgen would copy them element by element into JS
//! arrays), and the module's weight has a budget that a serde layer would take a share of.

use crate::flow::mlp::{MlpShape, Target};
use crate::flow::training::TrainOptions;
use js_sys::{Array, Float32Array, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

/// One request to a compute worker. `set` names what the worker holds: a training set's slice
/// or a network.
pub enum Request {
    /// Hold rows of a training set (n x dim, `data`), whose first value is value `first` of the
    /// whole set (so that a refused value is reported at its index in the whole).
    Load {
        set: u32,
        dim: u32,
        first: u32,
        data: Float32Array,
    },
    /// The softmax state of a held slice at the rows of `points`, each at its time.
    Partials {
        set: u32,
        points: Float32Array,
        times: Float32Array,
    },
    /// A network of `shape`, to train on `data` with `options`.
    Trainer {
        set: u32,
        shape: MlpShape,
        options: TrainOptions,
        data: Float32Array,
    },
    /// `steps` training steps: their losses, and the parameters after them when `params`.
    Train { set: u32, steps: u32, params: bool },
    /// The network's velocity at the rows of `points`, each at its time.
    Forward {
        set: u32,
        points: Float32Array,
        times: Float32Array,
    },
    /// The network's samples from `points` (flow::sampler::HybridPath along the closed form of
    /// `data` while t < tau), every step's positions when `frames`.
    Path {
        set: u32,
        points: Float32Array,
        data: Float32Array,
        steps: u32,
        tau: f32,
        frames: bool,
    },
    /// How many sets and networks the worker holds (the leak test).
    Held,
    /// Forget what is held under `set`.
    Drop { set: u32 },
    /// Panic inside the module (the test that a broken worker is replaced).
    Trap,
}

impl Request {
    /// The message to post, and the buffers of its arrays (to move them rather than copy; a
    /// caller that keeps an array posts without them).
    pub fn encode(&self) -> (Object, Array) {
        let o = Object::new();
        let put = |k: &str, v: JsValue| {
            let _ = Reflect::set(&o, &k.into(), &v);
        };
        let transfer = Array::new();
        let array = |k: &str, a: &Float32Array| {
            put(k, a.into());
            transfer.push(&a.buffer());
        };
        let rows = |set: u32, points: &Float32Array, times: &Float32Array| {
            put("set", set.into());
            array("points", points);
            array("times", times);
        };
        let op = match self {
            Request::Load {
                set,
                dim,
                first,
                data,
            } => {
                put("set", (*set).into());
                put("dim", (*dim).into());
                put("first", (*first).into());
                array("data", data);
                "load"
            }
            Request::Partials { set, points, times } => {
                rows(*set, points, times);
                "partials"
            }
            Request::Forward { set, points, times } => {
                rows(*set, points, times);
                "forward"
            }
            Request::Trainer {
                set,
                shape,
                options,
                data,
            } => {
                put("set", (*set).into());
                put("dim", (shape.dim as u32).into());
                put("hidden", (shape.hidden as u32).into());
                put("depth", (shape.depth as u32).into());
                put("timeFeatures", (shape.time_features as u32).into());
                put("batch", (options.batch as u32).into());
                put("lr", options.lr.into());
                put("seed", options.seed.into());
                let (efm, samples) = match options.target {
                    Target::Cfm => (false, 0),
                    Target::Efm { samples } => (true, samples as u32),
                };
                put("efm", efm.into());
                put("samples", samples.into());
                array("data", data);
                "trainer"
            }
            Request::Train { set, steps, params } => {
                put("set", (*set).into());
                put("steps", (*steps).into());
                put("params", (*params).into());
                "train"
            }
            Request::Path {
                set,
                points,
                data,
                steps,
                tau,
                frames,
            } => {
                put("set", (*set).into());
                array("points", points);
                array("data", data);
                put("steps", (*steps).into());
                put("tau", (*tau).into());
                put("frames", (*frames).into());
                "path"
            }
            Request::Held => "held",
            Request::Drop { set } => {
                put("set", (*set).into());
                "drop"
            }
            Request::Trap => "trap",
        };
        put("op", op.into());
        (o, transfer)
    }

    /// The request `message` encodes, or what is wrong with it (the field and what it must be).
    pub fn decode(message: &JsValue) -> Result<Request, String> {
        let m = Fields(message);
        Ok(match m.text("op")?.as_str() {
            "load" => Request::Load {
                set: m.uint("set")?,
                dim: match m.uint("dim")? {
                    0 => return Err("dim must be at least 1".into()),
                    dim => dim,
                },
                first: m.uint("first")?,
                data: m.floats("data")?,
            },
            "partials" => Request::Partials {
                set: m.uint("set")?,
                points: m.floats("points")?,
                times: m.floats("times")?,
            },
            "forward" => Request::Forward {
                set: m.uint("set")?,
                points: m.floats("points")?,
                times: m.floats("times")?,
            },
            "trainer" => Request::Trainer {
                set: m.uint("set")?,
                shape: MlpShape {
                    dim: m.uint("dim")? as usize,
                    hidden: m.uint("hidden")? as usize,
                    depth: m.uint("depth")? as usize,
                    time_features: m.uint("timeFeatures")? as usize,
                },
                options: TrainOptions {
                    batch: m.uint("batch")? as usize,
                    lr: m.float("lr")?,
                    seed: m.uint("seed")?,
                    target: match m.flag("efm")? {
                        true => Target::Efm {
                            samples: m.uint("samples")? as usize,
                        },
                        false => Target::Cfm,
                    },
                },
                data: m.floats("data")?,
            },
            "train" => Request::Train {
                set: m.uint("set")?,
                steps: m.uint("steps")?,
                params: m.flag("params")?,
            },
            "path" => Request::Path {
                set: m.uint("set")?,
                points: m.floats("points")?,
                data: m.floats("data")?,
                steps: m.uint("steps")?,
                tau: m.float("tau")?,
                frames: m.flag("frames")?,
            },
            "held" => Request::Held,
            "drop" => Request::Drop {
                set: m.uint("set")?,
            },
            "trap" => Request::Trap,
            other => return Err(format!("unknown op \"{other}\"")),
        })
    }
}

/// A message's fields, each read strictly.
struct Fields<'a>(&'a JsValue);

impl Fields<'_> {
    fn get(&self, key: &str) -> JsValue {
        Reflect::get(self.0, &key.into()).unwrap_or_default()
    }

    fn text(&self, key: &str) -> Result<String, String> {
        self.get(key)
            .as_string()
            .ok_or_else(|| format!("{key} must be a string"))
    }

    fn uint(&self, key: &str) -> Result<u32, String> {
        match self.get(key).as_f64() {
            Some(v) if v >= 0.0 && v <= u32::MAX as f64 && v.fract() == 0.0 => Ok(v as u32),
            _ => Err(format!("{key} must be an integer in 0..=4294967295")),
        }
    }

    fn float(&self, key: &str) -> Result<f32, String> {
        match self.get(key).as_f64() {
            Some(v) if v.is_finite() => Ok(v as f32),
            _ => Err(format!("{key} must be a finite number")),
        }
    }

    fn flag(&self, key: &str) -> Result<bool, String> {
        self.get(key)
            .as_bool()
            .ok_or_else(|| format!("{key} must be true or false"))
    }

    fn floats(&self, key: &str) -> Result<Float32Array, String> {
        self.get(key)
            .dyn_into::<Float32Array>()
            .map_err(|_| format!("{key} must be a Float32Array"))
    }
}
