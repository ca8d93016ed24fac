//! The page's side of the digits lab (`crate::digits_lab`): a worker for the page, started by
//! the first figure that needs the digits' network, running its own module (digits-lab/, fetched
//! then, with the weights: the article's module never carries the network), and beside it a
//! helper lab a core (`labs_wanted`), loaded from the same files, that take a share of each
//! sampling's rows (`Request::split`, merged back by `digits_lab::Merge`): the network's
//! samples come over every core. Requests are typed (`Request`) and go through the page's one
//! ticketed port (`port.rs`), one at a time a worker: a worker cannot hear a cancellation while
//! it computes, so a request whose caller has gone (a figure scrolled past and removed) is
//! dropped before it costs the worker seconds. A worker that breaks fails every call waiting on
//! it with the reason; the next call starts a fresh lab (or leaves a broken helper out).

use super::port::{taken, Failure, Heard, Port, START};
use crate::digits_lab::{decode, encode, Merge, Reply, Request};
use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use futures_util::stream::LocalBoxStream;
use futures_util::StreamExt;
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use wasm_bindgen::{JsCast, JsValue};

/// The most labs a page starts: each holds the 10,000 digits (31 MB as floats) and the network.
const MAX_LABS: usize = 3;

/// The lab's worker, its helpers, and the calls waiting on them.
pub struct Lab {
    port: Rc<Port>,
    /// The helper labs loaded so far (they load beside the first; a sampling asked before a
    /// helper is loaded goes without it).
    helpers: Rc<RefCell<Vec<Rc<Port>>>>,
}

/// A call's replies as they come, read from the workers' bytes.
pub type Replies = LocalBoxStream<'static, Reply>;

/// The lab once loaded, and what it said of itself (`Reply::Loaded`).
pub type Loaded = (Rc<Lab>, Reply);
type Pending = Shared<LocalBoxFuture<'static, Result<Loaded, String>>>;

thread_local! {
    static LAB: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

/// The page's lab: started and loaded by the first caller (the weights and the digits fetched in
/// the worker), shared by every later one; with its helpers where that caller's samplings split
/// (`split`: on the CPU; a GPU is one device however many labs ask it). A failed start is not
/// kept, nor a lab whose worker broke: the next call starts a fresh one.
pub async fn lab(split: bool) -> Result<Loaded, String> {
    let pending = LAB.with(|l| {
        let mut l = l.borrow_mut();
        let broken = l
            .as_ref()
            .and_then(|p| p.peek())
            .is_some_and(|r| r.as_ref().is_ok_and(|(lab, _)| lab.port.is_broken()));
        if broken {
            *l = None;
        }
        l.get_or_insert_with(|| start(split).boxed_local().shared())
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

/// Labs the page asks for: `?labs=k` (1..=MAX_LABS, for benchmarks and tests), else one per
/// core the browser reports, at most MAX_LABS.
fn labs_wanted() -> usize {
    let asked = super::query::value("labs")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|k| (1..=MAX_LABS).contains(k));
    let cores = web_sys::window()
        .map(|w| w.navigator().hardware_concurrency() as usize)
        .unwrap_or(1);
    asked.unwrap_or(cores.clamp(1, MAX_LABS))
}

/// A lab's worker started and loaded: its port, and what it said of itself.
async fn loaded_port() -> Result<(Port, Reply), String> {
    let worker = super::digits::new_lab_worker()
        .map_err(|e| format!("the digits lab's worker could not start: {e:?}"))?;
    let port = Port::new(worker, read, true);
    let request = Request::Load {
        weights: super::digits::weights_url(),
        digits: super::digits::digits_url(),
    };
    let mut replies = port.ask(START, None, bytes(&request)).map(reply);
    match replies.next().await {
        Some(loaded @ Reply::Loaded { .. }) => Ok((port, loaded)),
        Some(Reply::Failed { error, .. }) => {
            Err(format!("the digits' network could not be loaded: {error}"))
        }
        _ => Err("the digits lab stopped before it loaded".into()),
    }
}

/// How long the first lab, once loaded, waits for its helpers to load (they load side by side
/// with it, in about the same time): a helper later than this joins for later samplings.
const HELPERS_WAIT_MS: i32 = 2_000;

async fn start(split: bool) -> Result<Loaded, String> {
    // The helpers start with the first lab, so that its first sampling is split too; a helper
    // that loads once its lab has gone goes with it.
    let helpers: Rc<RefCell<Vec<Rc<Port>>>> = Rc::default();
    let (settled, mut settling) = futures_channel::mpsc::unbounded::<()>();
    let count = if split { labs_wanted() - 1 } else { 0 };
    for _ in 0..count {
        let joins = Rc::downgrade(&helpers);
        let settled = settled.clone();
        wasm_bindgen_futures::spawn_local(async move {
            match loaded_port().await {
                Ok((port, _)) => {
                    if let Some(helpers) = joins.upgrade() {
                        helpers.borrow_mut().push(Rc::new(port));
                    }
                }
                // The samplings go on over the labs that loaded.
                Err(e) => web_sys::console::info_1(
                    &format!("a helper of the digits lab did not load: {e}").into(),
                ),
            }
            let _ = settled.unbounded_send(());
        });
    }
    let (port, loaded) = loaded_port().await?;
    let all_settled = async move {
        for _ in 0..count {
            let _ = settling.next().await;
        }
    };
    futures_util::future::select(
        all_settled.boxed_local(),
        super::turns::sleep(HELPERS_WAIT_MS).boxed_local(),
    )
    .await;
    Ok((
        Rc::new(Lab {
            port: Rc::new(port),
            helpers,
        }),
        loaded,
    ))
}

impl Lab {
    /// Sends a request (its ticket set here) for `caller` and returns its replies as they
    /// come: `Step`s, then one final reply; none (the stream ends) if `caller` is dropped before
    /// the worker takes the request. A sampling that splits (`Request::split`) goes to this lab
    /// and its helpers, a share of its rows to each, and its replies come merged.
    pub fn ask(&self, caller: Weak<()>, request: impl FnOnce(u32) -> Request) -> Replies {
        let ticket = self.port.ticket();
        let whole = request(ticket);
        let helpers: Vec<Rc<Port>> = {
            let mut helpers = self.helpers.borrow_mut();
            helpers.retain(|h| !h.is_broken());
            helpers.clone()
        };
        let ports: Vec<&Port> = std::iter::once(&*self.port)
            .chain(helpers.iter().map(|h| &**h))
            .collect();
        let tickets: Vec<u32> = std::iter::once(ticket)
            .chain(helpers.iter().map(|h| h.ticket()))
            .collect();
        let Some(parts) = whole.split(&tickets) else {
            return self
                .port
                .ask(ticket, Some(caller), bytes(&whole))
                .map(reply)
                .boxed_local();
        };
        // Every part's replies into one channel, named by the part, as they come. A helper that
        // breaks hands its rows to the first lab (once), so that a worker the sampling could do
        // without does not fail it.
        let (heard, merged) = futures_channel::mpsc::unbounded();
        let count = parts.len();
        for (k, part) in parts.into_iter().enumerate() {
            let mut replies = ports[k].ask(tickets[k], Some(caller.clone()), bytes(&part));
            let (heard, first, caller) = (heard.clone(), self.port.clone(), caller.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let mut part = part;
                let mut handed = k == 0;
                while let Some(r) = replies.next().await {
                    if !handed && matches!(r, Err(Failure::Broken(_))) {
                        handed = true;
                        let ticket = first.ticket();
                        part.set_ticket(ticket);
                        replies = first.ask(ticket, Some(caller.clone()), bytes(&part));
                        continue;
                    }
                    let _ = heard.unbounded_send((k, r));
                }
            });
        }
        let mut merge = Merge::new(ticket, count);
        merged
            .filter_map(move |(k, r)| std::future::ready(merge.take(k, reply(r))))
            .boxed_local()
    }
}
