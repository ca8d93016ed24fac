//! The page's side of the digits lab (`crate::digits_lab`): one worker for the page, started by
//! the first figure that needs the digits' network, running its own module (digits-lab/, fetched
//! then, with the weights: the article's module never carries the network). Requests are typed
//! (`Request`) and go through the page's one ticketed port (`port.rs`), one at a time: the worker
//! cannot hear a cancellation while it computes, so a request whose caller has gone (a figure
//! scrolled past and removed) is dropped before it costs the worker seconds. A worker that breaks
//! fails every call waiting on it with the reason, and the next call starts a fresh one.

use super::port::{taken, Failure, Heard, Port, START};
use crate::digits_lab::{decode, encode, Reply, Request};
use futures_channel::mpsc;
use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use futures_util::StreamExt;
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use wasm_bindgen::{JsCast, JsValue};

/// The lab's worker and the calls waiting on it.
pub struct Lab {
    port: Port,
}

/// A call's replies as they come, read from the worker's bytes.
pub type Replies = futures_util::stream::Map<
    mpsc::UnboundedReceiver<super::port::Reply>,
    fn(super::port::Reply) -> Reply,
>;

/// The lab once loaded, and what it said of itself (`Reply::Loaded`).
pub type Loaded = (Rc<Lab>, Reply);
type Pending = Shared<LocalBoxFuture<'static, Result<Loaded, String>>>;

thread_local! {
    static LAB: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

/// The page's lab: started and loaded by the first caller (the weights and the digits fetched in
/// the worker), shared by every later one. A failed start is not kept, nor a lab whose worker
/// broke: the next call starts a fresh one.
pub async fn lab() -> Result<Loaded, String> {
    let pending = LAB.with(|l| {
        let mut l = l.borrow_mut();
        let broken = l
            .as_ref()
            .and_then(|p| p.peek())
            .is_some_and(|r| r.as_ref().is_ok_and(|(lab, _)| lab.port.is_broken()));
        if broken {
            *l = None;
        }
        l.get_or_insert_with(|| start().boxed_local().shared())
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

/// What a message from the lab's worker says: a reply in bytes (`digits_lab::encode`), or, from
/// the worker's script when the module itself failed (a trap), `{ failed: { error } }`.
fn read(data: JsValue) -> Heard {
    let Some(bytes) = data.dyn_ref::<js_sys::Uint8Array>() else {
        let failed = js_sys::Reflect::get(&data, &"failed".into()).unwrap_or_default();
        let error = js_sys::Reflect::get(&failed, &"error".into())
            .ok()
            .and_then(|e| e.as_string())
            .unwrap_or_else(|| "the digits lab answered something unknown".into());
        return Heard::Broken(error);
    };
    let reply = match decode::<Reply>(&bytes.to_vec()) {
        Ok(reply) => reply,
        Err(e) => return Heard::Broken(format!("the digits lab answered something unknown: {e}")),
    };
    let (ticket, last) = match &reply {
        Reply::Loaded { .. } => (START, true),
        Reply::Step { ticket, .. } => (*ticket, false),
        Reply::Sampled { ticket, .. }
        | Reply::Reference { ticket, .. }
        | Reply::Trained { ticket, .. }
        | Reply::Departure { ticket, .. }
        | Reply::Failed {
            ticket: Some(ticket),
            ..
        } => (*ticket, true),
        // A failure that names no call (a load that failed, a request it could not read): no
        // call can be told apart, so every one fails.
        Reply::Failed {
            ticket: None,
            error,
        } => return Heard::Broken(error.clone()),
    };
    Heard::Reply {
        ticket,
        last,
        reply: Ok(Box::new(reply)),
    }
}

/// A reply as the port hands it on (read once, by `read`), or why the worker gave none.
fn reply(heard: super::port::Reply) -> Reply {
    taken(heard).unwrap_or_else(
        |(Failure::Input(error) | Failure::Broken(error))| Reply::Failed {
            ticket: None,
            error,
        },
    )
}

/// A request as the worker reads it: bytes (`digits_lab::encode`), their buffer moved.
fn bytes(request: &Request) -> (JsValue, js_sys::Array) {
    let bytes = js_sys::Uint8Array::from(encode(request).as_slice());
    let transfer = js_sys::Array::of1(&bytes.buffer());
    (bytes.into(), transfer)
}

async fn start() -> Result<Loaded, String> {
    let worker = super::digits::new_lab_worker()
        .map_err(|e| format!("the digits lab's worker could not start: {e:?}"))?;
    let lab = Rc::new(Lab {
        port: Port::new(worker, read, true),
    });
    let request = Request::Load {
        weights: super::digits::weights_url(),
        digits: super::digits::digits_url(),
    };
    let mut replies = lab
        .port
        .ask(START, None, bytes(&request))
        .map(reply as fn(_) -> _);
    match replies.next().await {
        Some(loaded @ Reply::Loaded { .. }) => Ok((lab, loaded)),
        Some(Reply::Failed { error, .. }) => {
            Err(format!("the digits' network could not be loaded: {error}"))
        }
        _ => Err("the digits lab stopped before it loaded".into()),
    }
}

impl Lab {
    /// Sends a request (its ticket set here) for `caller` and returns its replies as they
    /// come: `Step`s, then one final reply; none (the stream ends) if `caller` is dropped before
    /// the worker takes the request.
    pub fn ask(&self, caller: Weak<()>, request: impl FnOnce(u32) -> Request) -> Replies {
        let ticket = self.port.ticket();
        self.port
            .ask(ticket, Some(caller), bytes(&request(ticket)))
            .map(reply as fn(_) -> _)
    }
}
