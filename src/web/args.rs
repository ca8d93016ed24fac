//! Arguments from JS, read without running the caller's code: Float32Arrays recognised by the
//! engine's own getters and brought into the module in pieces, numbers.

use super::turns::pace;
use crate::flow::FlowError;
use js_sys::Float32Array;
use wasm_bindgen::prelude::*;

/// A Float32Array argument, still in JS memory: its size is known before it is copied.
pub struct Floats {
    name: &'static str,
    array: Float32Array,
    pub len: u64,
}

pub fn floats(name: &'static str, value: &JsValue) -> Result<Floats, FlowError> {
    let wrong = FlowError::WrongType {
        name,
        expected: "a Float32Array",
    };
    let array = VIEW.with(|view| view.float32(value)).ok_or(wrong)?;
    Ok(Floats {
        name,
        len: array.length() as u64,
        array,
    })
}

/// The typed-array getters as the engine defines them on `%TypedArray%.prototype`, read once.
/// `instanceof Float32Array` and the `length` property can both be faked (a Proxy of a
/// Float32Array, a subclass or an own property with a throwing getter, a DataView given
/// Float32Array's prototype), and a getter that throws inside the module would unwind through
/// it. These getters read internal slots instead: `Symbol.toStringTag`'s answers
/// "Float32Array" for a real one only, and undefined (never an exception) for anything else.
struct TypedArrayView {
    tag: js_sys::Function,
    buffer: js_sys::Function,
    byte_offset: js_sys::Function,
    length: js_sys::Function,
}

thread_local! {
    static VIEW: TypedArrayView = TypedArrayView::read();
}

impl TypedArrayView {
    fn read() -> Self {
        let float32 = js_sys::Object::get_prototype_of(&Float32Array::new_with_length(0).into());
        let typed_array = js_sys::Object::get_prototype_of(&float32).into();
        let getter = |key: &JsValue| {
            intrinsic_getter(&typed_array, key)
                .expect("%TypedArray%.prototype has its standard getters")
        };
        Self {
            tag: getter(&js_sys::Symbol::to_string_tag().into()),
            buffer: getter(&"buffer".into()),
            byte_offset: getter(&"byteOffset".into()),
            length: getter(&"length".into()),
        }
    }

    /// A fresh Float32Array over the same memory as `value` (no copy) when `value` is a real
    /// Float32Array; `None` for anything else, without calling any of `value`'s own code.
    fn float32(&self, value: &JsValue) -> Option<Float32Array> {
        if !value.is_object() || self.tag.call0(value).ok()?.as_string()? != "Float32Array" {
            return None;
        }
        let length = self.length.call0(value).ok()?.as_f64()? as u32;
        if length == 0 {
            // A detached buffer reports length 0, and a view on it cannot be made.
            return Some(Float32Array::new_with_length(0));
        }
        let buffer = self.buffer.call0(value).ok()?;
        let offset = self.byte_offset.call0(value).ok()?.as_f64()? as u32;
        Some(Float32Array::new_with_byte_offset_and_length(
            &buffer, offset, length,
        ))
    }
}

impl Floats {
    /// The caller's array itself (no copy).
    pub fn array(&self) -> &Float32Array {
        &self.array
    }

    /// The number of `dim`-rows, once the length is checked (non-empty, a multiple of dim).
    pub fn rows(&self, dim: usize) -> Result<u64, FlowError> {
        if self.len == 0 {
            return Err(FlowError::Empty { name: self.name });
        }
        if !self.len.is_multiple_of(dim as u64) {
            return Err(FlowError::NotMultipleOfDim {
                name: self.name,
                len: self.len as usize,
                dim,
            });
        }
        Ok(self.len / dim as u64)
    }

    /// Copies the values into wasm memory (call once the budget allows it) and checks that they
    /// are finite, in one go.
    pub fn copy_now(&self) -> Result<Vec<f32>, FlowError> {
        let values = self.array.to_vec();
        self.check_finite(&values, 0)?;
        Ok(values)
    }

    /// `copy_now` for arrays of any size: brought into wasm memory and checked in pieces of
    /// COPY_FLOATS with turns for the page between them (a copy taken at once in JS, to be free
    /// of the caller's later changes, was itself a 40 ms task for 31 MB). The README asks
    /// callers not to change an array until the call settles.
    pub async fn copy(&self) -> Result<Vec<f32>, FlowError> {
        if self.len as usize <= COPY_FLOATS {
            return self.copy_now();
        }
        let mut values = Vec::with_capacity(self.len as usize);
        self.pieces(COPY_FLOATS, |_, piece| values.extend_from_slice(piece))
            .await?;
        Ok(values)
    }

    /// Every value checked to be finite, read in pieces of COPY_FLOATS; nothing is kept.
    pub async fn check_finite_all(&self) -> Result<(), FlowError> {
        self.pieces(COPY_FLOATS, |_, _| {}).await
    }

    /// The values `piece` floats at a time, each piece read through one buffer of wasm memory,
    /// checked to be finite and handed to `take` with the index of its first value; a turn for
    /// the page after each piece when there are several. Stops at the first non-finite value.
    pub async fn pieces(
        &self,
        piece: usize,
        mut take: impl FnMut(usize, &[f32]),
    ) -> Result<(), FlowError> {
        let len = self.len as usize;
        let mut buffer = vec![0.0; piece.min(len)];
        for start in (0..len).step_by(piece) {
            let values = &mut buffer[..piece.min(len - start)];
            self.read(start, values)?;
            take(start, values);
            if len > piece {
                pace().await;
            }
        }
        Ok(())
    }

    /// The values from index `start` into `out` (as many as it holds), checked to be finite.
    pub fn read(&self, start: usize, out: &mut [f32]) -> Result<(), FlowError> {
        let end = start + out.len();
        self.array.subarray(start as u32, end as u32).copy_to(out);
        self.check_finite(out, start)
    }

    fn check_finite(&self, values: &[f32], first: usize) -> Result<(), FlowError> {
        match values.iter().position(|v| !v.is_finite()) {
            Some(i) => Err(FlowError::NonFinite {
                name: self.name,
                index: first + i,
            }),
            None => Ok(()),
        }
    }
}

/// Floats brought into wasm memory between two turns of the page (4 MB, a few ms).
const COPY_FLOATS: usize = 1 << 20;

pub fn number(name: &'static str, value: &JsValue) -> Result<f64, FlowError> {
    value.as_f64().ok_or(FlowError::WrongType {
        name,
        expected: "a number",
    })
}

pub fn optional_number(
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

/// The getter the engine defines for `key` on the prototype `proto`, to call on values a page
/// hands in: it reads an internal slot, so neither a Proxy nor an own property nor a subclass can
/// change its answer, and on a value without that slot it throws (which `Function::call0`
/// catches) instead of running the page's code inside the module.
pub(super) fn intrinsic_getter(
    proto: &wasm_bindgen::JsValue,
    key: &wasm_bindgen::JsValue,
) -> Option<js_sys::Function> {
    use wasm_bindgen::JsCast;
    let descriptor =
        js_sys::Object::get_own_property_descriptor(proto.dyn_ref::<js_sys::Object>()?, key);
    js_sys::Reflect::get(&descriptor, &"get".into())
        .ok()?
        .dyn_into()
        .ok()
}
