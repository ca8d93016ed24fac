//! The page's one compute backend, acquired once on first use and shared by every figure and by
//! the JS API: the GPU once its start-up check passes, else the CPU path with the reason kept for
//! the page's note; switched to the CPU when the device is lost. Where each computation then runs
//! (the GPU, the compute workers, this thread) is `compute`'s to say.

use super::turns::{now_ms, sleep};
use crate::gpu::backend::CpuWhy;
use crate::gpu::canary::Spoil;
use crate::gpu::Backend;
use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use std::cell::RefCell;
use std::rc::Rc;

type Pending = Shared<LocalBoxFuture<'static, Rc<Backend>>>;

thread_local! {
    static BACKEND: RefCell<Option<Pending>> = const { RefCell::new(None) };
    /// What the GPU check found at start: its time in ms and its verdict.
    static CHECK: RefCell<Option<(f64, String)>> = const { RefCell::new(None) };
    /// What the figures used while the GPU check ran, once they needed one.
    static PROVISIONAL: RefCell<Option<Rc<Backend>>> = const { RefCell::new(None) };
    /// Called when the page's backend changes after start (the GPU check passed after the
    /// figures started on the CPU, or a lost device).
    static ON_CHANGE: RefCell<Vec<fn()>> = const { RefCell::new(Vec::new()) };
}

/// The longest the GPU check may take at start (pipelines compile in it) before the page gives up
/// on the GPU: a device that hangs is declined like one that computes wrongly.
const CHECK_TIMEOUT_MS: i32 = 10_000;

/// The page's backend; concurrent callers await the same acquisition.
pub async fn backend() -> Rc<Backend> {
    let pending = BACKEND.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| acquire().boxed_local().shared())
            .clone()
    });
    pending.await
}

/// What the figures compute on now: the page's backend once it is chosen and, until then, the
/// CPU path. The start-up GPU check takes seconds (4-6 s on a software adapter, pipelines
/// compiling on a hardware one), and a reader with a GPU should see the figures as soon as a
/// reader without one: the figures start on the CPU, and when the check passes the page moves
/// them to the GPU (`on_backend_change`, as after a device loss but the other way). The JS API
/// waits for the choice instead (`backend`): its answers say where they were computed.
pub fn figure_backend() -> Rc<Backend> {
    if let Some(chosen) = backend_now() {
        return chosen;
    }
    PROVISIONAL.with(|p| {
        if let Some(cpu) = p.borrow().as_ref() {
            return cpu.clone();
        }
        let cpu = Rc::new(Backend::Cpu {
            why: CpuWhy::Checking,
            reason: "the figures start on the CPU while the GPU is checked".into(),
        });
        *p.borrow_mut() = Some(cpu.clone());
        // Once the choice is made: figures that started on the CPU move to a GPU.
        wasm_bindgen_futures::spawn_local(async {
            if let Backend::Gpu(_) = &*backend().await {
                for f in ON_CHANGE.with(|c| c.borrow().clone()) {
                    f();
                }
            }
        });
        cpu
    })
}

/// The page's backend if it is already chosen, without waiting (None while the GPU check runs).
pub fn backend_now() -> Option<Rc<Backend>> {
    BACKEND.with(|cell| cell.borrow().as_ref().and_then(|p| p.peek().cloned()))
}

async fn acquire() -> Rc<Backend> {
    let requested = super::query::value("backend");
    if requested.as_deref() == Some("cpu") {
        return Rc::new(Backend::Cpu {
            why: CpuWhy::Requested,
            reason: "the page asked for the CPU path with ?backend=cpu".into(),
        });
    }
    let backend = Backend::acquire(requested.as_deref() == Some("webgpu")).await;
    if !matches!(backend, Backend::Gpu(_)) {
        return Rc::new(backend);
    }
    // Before any figure uses the GPU, a few milliseconds of every kernel against the CPU twin
    // (spoilt or hung on purpose only by the browser tests' switch, `query::GpuCheckSwitch`).
    let switch = super::query::GpuCheckSwitch::from_page();
    let spoil = match switch {
        Some(super::query::GpuCheckSwitch::Spoil) => Spoil::ClosedForm,
        _ => Spoil::None,
    };
    let start = now_ms();
    let verdict = {
        let check = match switch {
            Some(super::query::GpuCheckSwitch::Hang) => {
                futures_util::future::pending().boxed_local()
            }
            _ => backend.verify(spoil).boxed_local(),
        };
        match futures_util::future::select(check, sleep(CHECK_TIMEOUT_MS).boxed_local()).await {
            futures_util::future::Either::Left((verdict, _)) => Some(verdict),
            futures_util::future::Either::Right(_) => None,
        }
    };
    let ms = now_ms() - start;
    let failure = match verdict {
        Some(Ok(report)) => {
            let text = format!("passed: {report:?}");
            web_sys::console::info_1(&format!("GPU check in {ms:.0} ms, {text}").into());
            CHECK.with(|c| *c.borrow_mut() = Some((ms, text)));
            None
        }
        Some(Err(e)) => Some(e.to_string()),
        None => Some(format!(
            "the GPU check did not finish within {} s",
            CHECK_TIMEOUT_MS / 1000
        )),
    };
    if let Some(why) = failure {
        web_sys::console::warn_1(&format!("GPU declined after {ms:.0} ms: {why}").into());
        CHECK.with(|c| *c.borrow_mut() = Some((ms, format!("failed: {why}"))));
        return Rc::new(Backend::Cpu {
            why: CpuWhy::CheckFailed,
            reason: why,
        });
    }
    if let Backend::Gpu(b) = &backend {
        let device = &b.gpu.device;
        device.on_uncaptured_error(std::sync::Arc::new(|e| {
            web_sys::console::error_1(&format!("WebGPU error: {e}").into());
        }));
        device.set_device_lost_callback(|reason, message| {
            device_lost(format!("{reason:?}: {message}"));
        });
    }
    Rc::new(backend)
}

/// The GPU device is gone: the page computes on the CPU from now on, its note says so, and
/// whoever registered with `on_backend_change` (the page, which remounts its figures) carries on.
fn device_lost(detail: String) {
    let current = backend_now();
    // A GPU backend the page already replaced or declined may report its loss too.
    let Some(gpu) = current.as_deref().and_then(Backend::gpu) else {
        return;
    };
    // What was made on it (figures' sets, the API's trainers) refuses work from now on.
    gpu.mark_lost();
    web_sys::console::warn_1(&format!("WebGPU device lost ({detail}); using the CPU").into());
    let cpu = Rc::new(Backend::Cpu {
        why: CpuWhy::DeviceLost,
        reason: format!("the WebGPU device was lost ({detail})"),
    });
    BACKEND.with(|cell| {
        *cell.borrow_mut() = Some(futures_util::future::ready(cpu).boxed_local().shared())
    });
    for f in ON_CHANGE.with(|c| c.borrow().clone()) {
        f();
    }
}

/// Calls `f` whenever the page's backend changes after it was first acquired.
pub fn on_backend_change(f: fn()) {
    ON_CHANGE.with(|c| c.borrow_mut().push(f));
}

/// The GPU check's time in ms and verdict, once it ran.
pub fn gpu_check() -> Option<(f64, String)> {
    CHECK.with(|c| c.borrow().clone())
}

/// Destroys the page's GPU device as a driver reset would (browser tests of device loss);
/// false when the page has no GPU device.
pub async fn lose_device() -> bool {
    match &*backend().await {
        Backend::Gpu(b) => {
            b.gpu.device.destroy();
            true
        }
        Backend::Cpu { .. } => false,
    }
}
