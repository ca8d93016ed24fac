//! A compute worker's module (www/worker.js): `fm_explainer::engine::Engine` behind one entry
//! point. Each message of the page is a job (`engine::wire`: its structure's bytes, its arrays
//! moved beside them); the answer goes back the same way, its arrays moved too. Its own module,
//! apart from the article's: the workers carry no DOM code and the page carries no worker's.
#![cfg(target_arch = "wasm32")]

use fm_explainer::engine::{wire, Answer, Engine, Envelope, Event, Job, Refusal};
use js_sys::Float32Array;
use std::cell::RefCell;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

thread_local! {
    static ENGINE: RefCell<Engine> = RefCell::new(Engine::new());
}

/// Posts `event`, its arrays moved. A post that fails throws: worker.js then says this worker
/// failed, and the page fails the calls waiting here rather than waiting for ever.
fn post(event: Event<Float32Array>) -> Result<(), JsValue> {
    let (head, arrays) = event.split();
    let (message, transfer) = wire::to_message(&head, arrays);
    let scope: web_sys::DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    scope.post_message_with_transfer(&message, &transfer)
}

fn malformed(ticket: Option<u32>, why: String) -> Event<Float32Array> {
    Event {
        ticket,
        outcome: Err(Refusal::Broken(format!(
            "a malformed message to a compute worker: {why}"
        ))),
    }
}

/// One message of the page: a job, answered when it has a ticket. A job whose arrays do not fit
/// it is refused under its ticket; a message with no readable ticket is refused under none, and
/// the page then fails every call waiting here.
#[wasm_bindgen(js_name = engineMessage)]
pub fn engine_message(message: JsValue) -> Result<(), JsValue> {
    console_error_panic_hook::set_once();
    let (head, arrays) = match wire::from_message::<Envelope<()>>(&message) {
        Ok(read) => read,
        Err(why) => return post(malformed(None, why)),
    };
    let ticket = head.ticket;
    let Envelope { ticket, job } = match head.join(arrays) {
        Ok(envelope) => envelope,
        Err(why) => return post(malformed(ticket, why)),
    };
    // A slice's array goes back once copied in, to be filled again by the next load.
    let spare = match &job {
        Job::Load { data, .. } => Some(data.clone()),
        _ => None,
    };
    let job = job.map(|array| array.to_vec());
    let outcome = ENGINE.with(|e| e.borrow_mut().answer(job));
    match (ticket, spare) {
        (Some(_), _) => post(Event {
            ticket,
            outcome: outcome.map(|a| a.map(|floats| Float32Array::from(&floats[..]))),
        }),
        (None, Some(array)) => post(Event {
            ticket: None,
            outcome: Ok(Answer::Spare(array)),
        }),
        // Loads and drops expect no answer: a refused one surfaces at the next query.
        (None, None) => Ok(()),
    }
}
