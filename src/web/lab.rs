//! The page's side of the digits lab (`crate::digits_lab`): one worker for the page, started by
//! the first figure that needs the digits' network, running its own module (digits-lab/, fetched
//! then, with the weights: the article's module never carries the network). Requests are typed
//! (`Request`), each reply goes to the call that waits for its ticket, and a worker that fails
//! fails every call waiting on it with the reason.

use crate::digits_lab::{decode, ticket_from, Reply, Request};
use futures_channel::mpsc;
use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use futures_util::StreamExt;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

/// The replies to a load (which has no ticket) come under this one.
const LOAD: u32 = u32::MAX;

/// The lab's worker and the calls waiting on it.
pub struct Lab {
    worker: web_sys::Worker,
    next: Cell<u32>,
    waiting: Rc<RefCell<HashMap<u32, mpsc::UnboundedSender<Reply>>>>,
    outbox: Rc<RefCell<Outbox>>,
    _on_message: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
}

/// The lab once loaded, and what it said of itself (`Reply::Loaded`).
pub type Loaded = (Rc<Lab>, Reply);
type Pending = Shared<LocalBoxFuture<'static, Result<Loaded, String>>>;

thread_local! {
    static LAB: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

/// The page's lab: started and loaded by the first caller (the weights and the digits fetched in
/// the worker), shared by every later one. A failed start is not kept: the next call tries again.
pub async fn lab() -> Result<Loaded, String> {
    let pending = LAB.with(|l| {
        l.borrow_mut()
            .get_or_insert_with(|| start().boxed_local().shared())
            .clone()
    });
    let result = pending.clone().await;
    if result.is_err() {
        forget(&pending);
    }
    result
}

/// Lets the page's lab go if it is still `pending` (not a newer start another caller made): the
/// next call starts a fresh worker.
fn forget(pending: &Pending) {
    LAB.with(|l| {
        let mut l = l.borrow_mut();
        if l.as_ref().is_some_and(|p| p.ptr_eq(pending)) {
            *l = None;
        }
    });
}

/// Requests not yet given to the worker. The worker answers one at a time and cannot hear a
/// cancellation while it computes, so the page gives it the next request only when it has
/// answered the last: a request whose caller has gone (a figure scrolled past and removed) is
/// dropped here instead of costing the worker seconds.
struct Outbox {
    worker: web_sys::Worker,
    queue: VecDeque<(u32, JsValue, Weak<()>)>,
    busy: bool,
}

impl Outbox {
    /// Gives the worker the next request whose caller still wants it, unless it is busy; the
    /// others go, their callers' replies closing.
    fn pump(&mut self, waiting: &RefCell<HashMap<u32, mpsc::UnboundedSender<Reply>>>) {
        while !self.busy {
            let Some((ticket, message, caller)) = self.queue.pop_front() else {
                return;
            };
            if caller.strong_count() == 0 {
                waiting.borrow_mut().remove(&ticket);
                continue;
            }
            match self.worker.post_message(&message) {
                Ok(()) => self.busy = true,
                Err(e) => {
                    if let Some(tx) = waiting.borrow_mut().remove(&ticket) {
                        let _ = tx.unbounded_send(Reply::Failed {
                            ticket: Some(ticket),
                            error: format!("the digits lab refused the request: {e:?}"),
                        });
                    }
                }
            }
        }
    }
}

/// Fails every call waiting on the lab with `error`.
fn fail_all(waiting: &RefCell<HashMap<u32, mpsc::UnboundedSender<Reply>>>, error: &str) {
    for (ticket, tx) in waiting.borrow_mut().drain() {
        let _ = tx.unbounded_send(Reply::Failed {
            ticket: Some(ticket),
            error: error.to_string(),
        });
    }
}

async fn start() -> Result<Loaded, String> {
    let worker = super::digits::new_lab_worker()
        .map_err(|e| format!("the digits lab's worker could not start: {e:?}"))?;
    let waiting: Rc<RefCell<HashMap<u32, mpsc::UnboundedSender<Reply>>>> = Rc::default();
    let outbox = Rc::new(RefCell::new(Outbox {
        worker: worker.clone(),
        queue: VecDeque::new(),
        busy: false,
    }));
    let inbox = waiting.clone();
    let next_out = outbox.clone();
    let on_message =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
            let reply = read_reply(event.data());
            let ticket = match &reply {
                Reply::Loaded { .. } => LOAD,
                Reply::Step { ticket, .. }
                | Reply::Sampled { ticket, .. }
                | Reply::Reference { ticket, .. }
                | Reply::Trained { ticket, .. }
                | Reply::Departure { ticket, .. } => *ticket,
                Reply::Failed { ticket, .. } => ticket.unwrap_or(LOAD),
            };
            let final_reply = !matches!(reply, Reply::Step { .. });
            let waiting = inbox.borrow().contains_key(&ticket);
            if let (Reply::Failed { error, .. }, false) = (&reply, waiting) {
                // A failure that names no call (the module broke while answering, or could not
                // read a request): no call can be told apart, so every one fails.
                fail_all(&inbox, error);
            } else {
                let mut waiting = inbox.borrow_mut();
                if let Some(tx) = waiting.get(&ticket) {
                    let _ = tx.unbounded_send(reply);
                }
                if final_reply {
                    waiting.remove(&ticket);
                }
            }
            if final_reply {
                let mut out = next_out.borrow_mut();
                out.busy = false;
                out.pump(&inbox);
            }
        });
    let inbox = waiting.clone();
    let errored = outbox.clone();
    let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
        let error = event
            .dyn_ref::<web_sys::ErrorEvent>()
            .map(|e| e.message())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "the digits lab's worker could not run".into());
        fail_all(&inbox, &error);
        errored.borrow_mut().queue.clear();
        // The worker may be gone: the next call starts a fresh one.
        if let Some(pending) = LAB.with(|l| l.borrow().clone()) {
            forget(&pending);
        }
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    let lab = Rc::new(Lab {
        worker,
        next: Cell::new(0),
        waiting,
        outbox,
        _on_message: on_message,
        _on_error: on_error,
    });
    let request = Request::Load {
        weights: super::digits::weights_url(),
        digits: super::digits::digits_url(),
    };
    let loading = Rc::new(());
    let mut replies = lab.send(LOAD, &request, Rc::downgrade(&loading))?;
    match replies.next().await {
        Some(loaded @ Reply::Loaded { .. }) => Ok((lab, loaded)),
        Some(Reply::Failed { error, .. }) => {
            lab.worker.terminate();
            Err(format!("the digits' network could not be loaded: {error}"))
        }
        _ => Err("the digits lab stopped before it loaded".into()),
    }
}

/// A message from the worker: a reply in bytes (`digits_lab::encode`), or, from the worker's script
/// when the module itself failed, `{ failed: { ticket, error } }`.
fn read_reply(data: JsValue) -> Reply {
    if let Some(bytes) = data.dyn_ref::<js_sys::Uint8Array>() {
        return decode(&bytes.to_vec()).unwrap_or_else(|e| Reply::Failed {
            ticket: None,
            error: format!("the digits lab answered something unknown: {e}"),
        });
    }
    let failed = js_sys::Reflect::get(&data, &"failed".into()).unwrap_or_default();
    let field = |name: &str| js_sys::Reflect::get(&failed, &name.into()).ok();
    Reply::Failed {
        ticket: field("ticket")
            .and_then(|t| t.as_f64())
            .and_then(|t| ticket_from(t, LOAD)),
        error: field("error")
            .and_then(|e| e.as_string())
            .unwrap_or_else(|| "the digits lab answered something unknown".into()),
    }
}

impl Lab {
    /// Queues a request for the worker (`pump`): given to it when it is free and if `caller`
    /// still lives.
    fn send(
        &self,
        ticket: u32,
        request: &Request,
        caller: Weak<()>,
    ) -> Result<mpsc::UnboundedReceiver<Reply>, String> {
        let message = serde_wasm_bindgen::to_value(request).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::unbounded();
        self.waiting.borrow_mut().insert(ticket, tx);
        let mut out = self.outbox.borrow_mut();
        // Requests whose callers went while they waited go now, not only when reached.
        out.queue.retain(|(ticket, _, caller)| {
            let alive = caller.strong_count() > 0;
            if !alive {
                self.waiting.borrow_mut().remove(ticket);
            }
            alive
        });
        out.queue.push_back((ticket, message, caller));
        out.pump(&self.waiting);
        Ok(rx)
    }

    /// Sends a request (its ticket set here) for `caller` and returns its replies as they
    /// come: `Step`s, then one final reply; none (the stream ends) if `caller` is dropped before
    /// the worker takes the request.
    pub fn ask(
        &self,
        caller: Weak<()>,
        request: impl FnOnce(u32) -> Request,
    ) -> Result<mpsc::UnboundedReceiver<Reply>, String> {
        let ticket = self.next.get();
        self.next.set(ticket.wrapping_add(1) % LOAD);
        self.send(ticket, &request(ticket), caller)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}
