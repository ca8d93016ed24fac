//! The page's one way of asking a worker: a ticketed port. Each call gets a ticket and a stream of
//! the replies that name it (progress, then a last one); a worker that breaks (its module trapped,
//! it failed to start, its script threw) fails every call waiting on it with the reason and
//! answers nothing more; a call whose caller has gone before the worker took it is dropped
//! unsent. The compute pool's workers (`pool/`) and the digits lab's worker (`lab.rs`) speak
//! through it; what a message means is theirs (`Heard`, read by the function each gives, once a
//! message), and a reply is what that reader made of it, boxed (one type for every worker, so
//! that the port's code is in the page's module once; each caller takes back its own type).

use futures_channel::mpsc;
use js_sys::Array;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

/// The ticket of the worker's start (its first message's answer): never given to a call.
pub const START: u32 = 0;

/// A worker's answer as its reader made it out (`Heard::Reply`), or why there is none.
pub type Reply = Result<Box<dyn Any>, Failure>;

/// `reply` as the type its reader made (`T`), or why there is none.
pub fn taken<T: 'static>(reply: Reply) -> Result<T, Failure> {
    match reply?.downcast::<T>() {
        Ok(value) => Ok(*value),
        Err(_) => Err(Failure::Broken("a worker's reply of another kind".into())),
    }
}

/// Why a worker gave no answer.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The input was refused (a non-finite value in the data): the message is for the caller.
    Input(String),
    /// The worker could not compute (it failed to start, broke, or could not be reached).
    Broken(String),
}

/// What one message from the worker says, as its reader makes it out.
pub enum Heard {
    /// A reply to the call of `ticket`; `last` when no more follow.
    Reply {
        ticket: u32,
        last: bool,
        reply: Reply,
    },
    /// The worker can no longer be trusted (its module trapped, it failed to start, it could not
    /// read a message and no call can be told apart): every call waiting on it fails with this
    /// reason, and the port answers no call after.
    Broken(String),
    /// Nothing a call waits for.
    Nothing,
}

type Waiting = RefCell<HashMap<u32, mpsc::UnboundedSender<Reply>>>;

/// Messages not yet given to a worker that takes one at a time.
struct Outbox {
    /// One request at a time: the next goes when the last is answered (a worker that cannot
    /// hear a cancellation while it computes, so that a caller that has gone costs it nothing).
    one_at_a_time: bool,
    queue: VecDeque<(u32, JsValue, Array, Option<Weak<()>>)>,
    busy: bool,
}

struct Shared {
    worker: web_sys::Worker,
    waiting: Waiting,
    outbox: RefCell<Outbox>,
    broken: Cell<bool>,
}

/// The reply of a call that fails because of the worker.
fn fail(error: String) -> Reply {
    Err(Failure::Broken(error))
}

/// A worker and the calls waiting on it.
pub struct Port {
    shared: Rc<Shared>,
    next: Cell<u32>,
    _on_message: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
}

impl Shared {
    fn deliver(&self, ticket: u32, reply: Reply, last: bool) {
        let mut waiting = self.waiting.borrow_mut();
        if let Some(tx) = waiting.get(&ticket) {
            let _ = tx.unbounded_send(reply);
        }
        if last {
            waiting.remove(&ticket);
        }
    }

    fn fail_all(&self, error: &str) {
        let callers: Vec<_> = self.waiting.borrow_mut().drain().collect();
        for (_, tx) in callers {
            let _ = tx.unbounded_send(fail(error.to_string()));
        }
    }

    /// Gives the worker what waits, unless it takes one at a time and is busy; a message whose
    /// caller has gone is dropped, its stream closing.
    fn pump(&self) {
        loop {
            let next = {
                let mut out = self.outbox.borrow_mut();
                if out.one_at_a_time && out.busy {
                    return;
                }
                let Some(next) = out.queue.pop_front() else {
                    return;
                };
                next
            };
            let (ticket, message, transfer, caller) = next;
            if caller.is_some_and(|c| c.strong_count() == 0) {
                self.waiting.borrow_mut().remove(&ticket);
                continue;
            }
            match self.worker.post_message_with_transfer(&message, &transfer) {
                Ok(()) => self.outbox.borrow_mut().busy = true,
                Err(e) => self.deliver(
                    ticket,
                    fail(format!("the worker refused the message: {e:?}")),
                    true,
                ),
            }
        }
    }

    fn heard(&self, heard: Heard) {
        let answered = match heard {
            Heard::Nothing => return,
            Heard::Reply {
                ticket,
                last,
                reply,
            } => {
                // Answers computed after a break come from a module whose state is lost.
                let reply = match self.broken.get() {
                    true => fail("the worker broke before it answered".into()),
                    false => reply,
                };
                self.deliver(ticket, reply, last);
                last
            }
            Heard::Broken(error) => {
                self.broken.set(true);
                self.outbox.borrow_mut().queue.clear();
                self.fail_all(&error);
                return;
            }
        };
        if answered {
            self.outbox.borrow_mut().busy = false;
            self.pump();
        }
    }
}

impl Port {
    /// A port to `worker`, whose messages `read` makes out. `one_at_a_time`: see `Outbox`.
    pub fn new(
        worker: web_sys::Worker,
        read: impl Fn(JsValue) -> Heard + 'static,
        one_at_a_time: bool,
    ) -> Port {
        let shared = Rc::new(Shared {
            worker,
            waiting: RefCell::new(HashMap::new()),
            outbox: RefCell::new(Outbox {
                one_at_a_time,
                queue: VecDeque::new(),
                busy: false,
            }),
            broken: Cell::new(false),
        });
        let on = Rc::downgrade(&shared);
        let on_message =
            Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
                if let Some(shared) = on.upgrade() {
                    shared.heard(read(e.data()));
                }
            });
        let on = Rc::downgrade(&shared);
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            // The worker's script failed to load or threw: every call waiting on it fails.
            let error = event
                .dyn_ref::<web_sys::ErrorEvent>()
                .map(|e| e.message())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "the worker could not run".into());
            if let Some(shared) = on.upgrade() {
                shared.broken.set(true);
                shared.outbox.borrow_mut().queue.clear();
                shared.fail_all(&error);
            }
        });
        shared
            .worker
            .set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        shared
            .worker
            .set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Port {
            shared,
            next: Cell::new(START + 1),
            _on_message: on_message,
            _on_error: on_error,
        }
    }

    /// A ticket no call of this port holds, for the next `ask` (its message may carry it).
    pub fn ticket(&self) -> u32 {
        let ticket = self.next.get();
        self.next.set(ticket.checked_add(1).unwrap_or(START + 1));
        ticket
    }

    /// Asks the worker `message` (with the buffers it moves) under `ticket` (`ticket()`, or
    /// `START` for the worker's start) for `caller` (None: a caller that never goes); the
    /// replies that name the ticket come on the stream, which ends after the last (or at once,
    /// if `caller` went before the worker took the message).
    pub fn ask(
        &self,
        ticket: u32,
        caller: Option<Weak<()>>,
        (message, transfer): (JsValue, Array),
    ) -> mpsc::UnboundedReceiver<Reply> {
        let (tx, rx) = mpsc::unbounded();
        let shared = &self.shared;
        if shared.broken.get() {
            let _ = tx.unbounded_send(fail("the worker broke and answers no more".into()));
            return rx;
        }
        shared.waiting.borrow_mut().insert(ticket, tx);
        {
            let mut out = shared.outbox.borrow_mut();
            // Calls whose callers went while they waited go now, not only when reached.
            let waiting = &shared.waiting;
            out.queue.retain(|(ticket, _, _, caller)| {
                let alive = caller.as_ref().is_none_or(|c| c.strong_count() > 0);
                if !alive {
                    waiting.borrow_mut().remove(ticket);
                }
                alive
            });
            out.queue.push_back((ticket, message, transfer, caller));
        }
        shared.pump();
        rx
    }

    /// Gives the worker `message` (its `transfer` buffers moved), expecting no reply: a failed
    /// post surfaces at the next call.
    pub fn post(&self, message: &JsValue, transfer: &Array) {
        let _ = self
            .shared
            .worker
            .post_message_with_transfer(message, transfer);
    }

    /// Whether the worker broke (its calls fail; start another).
    pub fn is_broken(&self) -> bool {
        self.shared.broken.get()
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.shared.worker.terminate();
    }
}
