//! Inside a compute worker (www/worker.js): what it holds (training sets' slices, networks) and
//! the answer to each `Request` of the page. A malformed request is refused with the field it
//! got wrong; worker.js posts the error back, and the page's call fails with it.

use super::object;
use super::protocol::Request;
use crate::flow::sampler::HybridPath;
use crate::flow::training::CpuTraining;
use crate::flow::{ClosedForm, FlowError};
use js_sys::{Array, Float32Array, Reflect};
use std::cell::RefCell;
use std::collections::HashMap;
use wasm_bindgen::prelude::*;

thread_local! {
    /// The slices this worker holds by set id, or why one was refused.
    static SLICES: RefCell<HashMap<u32, Result<ClosedForm, FlowError>>> = RefCell::new(HashMap::new());
    /// In the training worker: its networks by id.
    static TRAINERS: RefCell<HashMap<u32, CpuTraining>> = RefCell::new(HashMap::new());
}

/// One message of the page's pool, answered with its buffers to transfer in `transfer`.
#[wasm_bindgen(js_name = poolWorkerMessage, skip_typescript)]
pub fn pool_worker_message(message: JsValue) -> Result<JsValue, JsError> {
    let request = Request::decode(&message)
        .map_err(|e| JsError::new(&format!("a malformed message to a compute worker: {e}")))?;
    let ticket = Reflect::get(&message, &"ticket".into()).unwrap_or_default();
    let done = |fields: &[(&str, JsValue)], transfer: Array| {
        let mut all = vec![
            ("op", JsValue::from("done")),
            ("ticket", ticket.clone()),
            ("transfer", transfer.into()),
        ];
        all.extend(fields.iter().cloned());
        Ok(object(&all).into())
    };
    // The network held under `set`, or an error saying there is none.
    let with_trainer = |set: u32, f: &mut dyn FnMut(&mut CpuTraining)| {
        TRAINERS.with(|t| match t.borrow_mut().get_mut(&set) {
            Some(training) => {
                f(training);
                Ok(())
            }
            None => Err(JsError::new("no such trainer")),
        })
    };
    match request {
        Request::Load {
            set,
            dim,
            first,
            data,
        } => {
            let data = data.to_vec();
            let slice = match data.iter().position(|v| !v.is_finite()) {
                Some(i) => Err(FlowError::NonFinite {
                    name: "data",
                    index: first as usize + i,
                }),
                None => Ok(ClosedForm::from_rows(data, dim as usize)),
            };
            SLICES.with(|s| s.borrow_mut().insert(set, slice));
            done(&[], Array::new())
        }
        Request::Partials { set, points, times } => {
            let (points, times) = (points.to_vec(), times.to_vec());
            let partials = SLICES.with(|s| match s.borrow().get(&set) {
                Some(Ok(slice)) => Ok(slice.partials_at(&points, &times)),
                Some(Err(refused)) => Err(Err(refused.to_string())),
                None => Err(Ok("no such training set")),
            });
            let partials = match partials {
                Ok(p) => p,
                // The caller's input: said as is, and marked so the page does not blame the pool.
                Err(Err(refused)) => {
                    return Ok(object(&[
                        ("op", "error".into()),
                        ("ticket", ticket),
                        ("input", true.into()),
                        ("error", refused.into()),
                    ])
                    .into())
                }
                Err(Ok(missing)) => return Err(JsError::new(missing)),
            };
            let arrays = [
                Float32Array::from(&partials.max[..]),
                Float32Array::from(&partials.sum[..]),
                Float32Array::from(&partials.weighted[..]),
            ];
            let transfer = Array::new();
            for a in &arrays {
                transfer.push(&a.buffer());
            }
            let [max, sum, weighted] = arrays;
            done(
                &[
                    ("max", max.into()),
                    ("sum", sum.into()),
                    ("weighted", weighted.into()),
                ],
                transfer,
            )
        }
        Request::Trainer {
            set,
            shape,
            options,
            data,
        } => {
            let training = CpuTraining::new(shape, data.to_vec(), options);
            TRAINERS.with(|t| t.borrow_mut().insert(set, training));
            done(&[], Array::new())
        }
        Request::Train { set, steps, params } => {
            let mut out = None;
            with_trainer(set, &mut |training| {
                let losses: Vec<f32> = (0..steps).map(|_| training.step()).collect();
                let params = params.then(|| Float32Array::from(&training.params[..]));
                out = Some((Float32Array::from(&losses[..]), params));
            })?;
            let (losses, params) = out.expect("set by with_trainer");
            let transfer = Array::of1(&losses.buffer());
            let mut fields = vec![("losses", JsValue::from(losses))];
            if let Some(p) = params {
                transfer.push(&p.buffer());
                fields.push(("params", p.into()));
            }
            done(&fields, transfer)
        }
        Request::Forward { set, points, times } => {
            let (points, times) = (points.to_vec(), times.to_vec());
            let mut velocity = Vec::new();
            with_trainer(set, &mut |training| {
                velocity = training.velocity(&points, &times)
            })?;
            let velocity = Float32Array::from(&velocity[..]);
            let transfer = Array::of1(&velocity.buffer());
            done(&[("velocity", velocity.into())], transfer)
        }
        Request::Path {
            set,
            points,
            data,
            steps,
            tau,
            frames,
        } => {
            let (x0, data) = (points.to_vec(), data.to_vec());
            let mut path = Vec::new();
            with_trainer(set, &mut |training| {
                let dim = training.shape.dim;
                let hybrid = HybridPath::new(&data, dim, &x0, steps as usize, tau, frames);
                path = hybrid.run(|x, t| training.velocity(x, &vec![t; x.len() / dim]));
            })?;
            let path = Float32Array::from(&path[..]);
            let transfer = Array::of1(&path.buffer());
            done(&[("path", path.into())], transfer)
        }
        Request::Trap => panic!("a trap asked for by a test"),
        Request::Held => {
            let held = SLICES.with(|s| s.borrow().len()) + TRAINERS.with(|t| t.borrow().len());
            done(&[("held", (held as f64).into())], Array::new())
        }
        Request::Drop { set } => {
            SLICES.with(|s| s.borrow_mut().remove(&set));
            TRAINERS.with(|t| t.borrow_mut().remove(&set));
            done(&[], Array::new())
        }
    }
}
