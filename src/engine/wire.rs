//! Messages as they cross between the page and a compute worker: a JS array whose first element
//! is the structure's bytes (`encode`) and the rest the bulk arrays, in the order `split` gives.

use super::protocol::{decode, encode};
use js_sys::{Array, Float32Array, Uint8Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};

/// The message of `head` and its `arrays`, and every buffer in it to move rather than copy.
pub fn to_message<T: Serialize>(head: &T, arrays: Vec<Float32Array>) -> (JsValue, Array) {
    let bytes = Uint8Array::from(encode(head).as_slice());
    let transfer = Array::of1(&bytes.buffer());
    let message = Array::of1(&bytes);
    for array in arrays {
        transfer.push(&array.buffer());
        message.push(&array);
    }
    (message.into(), transfer)
}

/// A message's structure and arrays; an error for anything else.
pub fn from_message<T: for<'a> Deserialize<'a>>(
    message: &JsValue,
) -> Result<(T, Vec<Float32Array>), String> {
    let parts = message.dyn_ref::<Array>().ok_or("not an array")?;
    let bytes = parts
        .get(0)
        .dyn_into::<Uint8Array>()
        .map_err(|_| "no bytes before the arrays")?;
    let head = decode(&bytes.to_vec())?;
    let arrays = (1..parts.length())
        .map(|i| {
            parts
                .get(i)
                .dyn_into::<Float32Array>()
                .map_err(|_| format!("part {i} is not a Float32Array"))
        })
        .collect::<Result<_, _>>()?;
    Ok((head, arrays))
}
