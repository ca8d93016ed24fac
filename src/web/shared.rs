//! One compute backend per page, acquired once on first use and shared by every figure and by
//! the JS API. Without WebGPU it is the CPU path, with the reason kept for the page's note.

use crate::gpu::Backend;
use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use std::cell::RefCell;
use std::rc::Rc;

type Pending = Shared<LocalBoxFuture<'static, Rc<Backend>>>;

thread_local! {
    static BACKEND: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

/// The page's backend; concurrent callers await the same acquisition.
pub async fn backend() -> Rc<Backend> {
    let pending = BACKEND.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| {
                async {
                    let backend = if cpu_requested() {
                        Backend::Cpu {
                            reason: "the page asked for the CPU path with ?backend=cpu".into(),
                        }
                    } else {
                        Backend::acquire().await
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

/// `?backend=cpu` in the page's address forces the CPU path (comparisons, benchmarks).
fn cpu_requested() -> bool {
    web_sys::window()
        .and_then(|w| w.location().search().ok())
        .is_some_and(|q| {
            q.trim_start_matches('?')
                .split('&')
                .any(|p| p == "backend=cpu")
        })
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
