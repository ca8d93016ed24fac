//! Turns for the page: long work on the page's thread (or a worker's) awaits these between
//! pieces, so that input and frames are never held back for long.

use std::cell::Cell;

thread_local! {
    static LAST_TURN: Cell<f64> = const { Cell::new(f64::NEG_INFINITY) };
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// The global `setTimeout`: the page's, or a worker's (which has no `window`).
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, ms: i32) -> wasm_bindgen::JsValue;
    /// The global `performance.now()`, in a page or a worker.
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

pub(super) async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, ms);
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Gives the event loop a turn: long CPU work awaits this now and then so the page stays
/// responsive.
pub async fn yield_to_page() {
    sleep(0).await
}

/// Work between two turns that `pace` gives the page: well under one frame's budget of input
/// latency, long enough that the turns themselves cost little.
const PACE_MS: f64 = 10.0;

pub fn now_ms() -> f64 {
    performance_now()
}

/// For long computations cut into small pieces: awaited after every piece, it gives the page a
/// turn only once PACE_MS has passed since the last one, and that turn is a fresh task (a
/// message to itself) rather than a timer, which browsers delay by 4 ms when nested.
pub async fn pace() {
    if now_ms() - LAST_TURN.get() < PACE_MS {
        return;
    }
    match web_sys::MessageChannel::new() {
        Ok(channel) => {
            let promise = js_sys::Promise::new(&mut |resolve, _| {
                channel.port1().set_onmessage(Some(&resolve));
            });
            let _ = channel.port2().post_message(&wasm_bindgen::JsValue::NULL);
            let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
            channel.port1().set_onmessage(None);
        }
        Err(_) => yield_to_page().await,
    }
    LAST_TURN.set(now_ms());
}
