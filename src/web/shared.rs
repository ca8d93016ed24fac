//! One compute backend per page, acquired once on first use and shared by every figure and by
//! the JS API. Without WebGPU it is the CPU path, with the reason kept for the page's note.

use crate::gpu::Backend;
use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

type Pending = Shared<LocalBoxFuture<'static, Rc<Backend>>>;

thread_local! {
    static BACKEND: RefCell<Option<Pending>> = const { RefCell::new(None) };
    static LAST_TURN: Cell<f64> = const { Cell::new(f64::NEG_INFINITY) };
}

/// The page's backend; concurrent callers await the same acquisition.
pub async fn backend() -> Rc<Backend> {
    let pending = BACKEND.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| {
                async {
                    let requested = requested_backend();
                    let backend = if requested.as_deref() == Some("cpu") {
                        Backend::Cpu {
                            why: crate::gpu::backend::CpuWhy::Requested,
                            reason: "the page asked for the CPU path with ?backend=cpu".into(),
                        }
                    } else {
                        Backend::acquire(requested.as_deref() == Some("webgpu")).await
                    };
                    if let Backend::Gpu(b) = &backend {
                        b.gpu.device.on_uncaptured_error(std::sync::Arc::new(|e| {
                            web_sys::console::error_1(&format!("WebGPU error: {e}").into());
                        }));
                    }
                    Rc::new(backend)
                }
                .boxed_local()
                .shared()
            })
            .clone()
    });
    pending.await
}

/// `?backend=cpu` in the page's address forces the CPU path (comparisons, benchmarks);
/// `?backend=webgpu` takes a WebGPU adapter even when it is a software one (testing the
/// kernels in a browser without a GPU).
fn requested_backend() -> Option<String> {
    let query = web_sys::window()?.location().search().ok()?;
    query
        .trim_start_matches('?')
        .split('&')
        .find_map(|p| p.strip_prefix("backend=").map(str::to_string))
}

/// Gives the event loop a turn: long CPU work awaits this now and then so the page stays
/// responsive.
pub async fn yield_to_page() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback(&resolve);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Work between two turns that `pace` gives the page: well under one frame's budget of input
/// latency, long enough that the turns themselves cost little.
const PACE_MS: f64 = 25.0;

fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or(0.0)
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
