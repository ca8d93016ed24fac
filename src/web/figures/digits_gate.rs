//! A figure's access to the page's MNIST digits (downloaded once for the page).

use super::widgets::Status;
use crate::web::controls::{self, JsResult};
use std::cell::RefCell;
use std::rc::Rc;
use web_sys::HtmlElement;

enum Gate {
    Idle,
    Loading,
    Ready(Rc<crate::web::digits::DigitSet>),
    Failed(String),
}

/// A figure's access to the page's MNIST digits: `poll` starts the shared download, shows its
/// progress in the figure's status line, and after a failure shows the error and a Retry button.
pub struct DigitsGate {
    state: Rc<RefCell<Gate>>,
    retry: HtmlElement,
}

impl DigitsGate {
    pub fn new(panel: &HtmlElement, listeners: &mut controls::Listeners) -> JsResult<DigitsGate> {
        let state = Rc::new(RefCell::new(Gate::Idle));
        let s = state.clone();
        let retry = controls::button(panel, listeners, "Retry the download", move || {
            *s.borrow_mut() = Gate::Idle;
        })?;
        retry.style().set_property("display", "none")?;
        Ok(DigitsGate { state, retry })
    }

    /// The digits once downloaded; until then None, with the status line kept current.
    pub fn poll(&self, status: &Status) -> Option<Rc<crate::web::digits::DigitSet>> {
        let mut state = self.state.borrow_mut();
        if !matches!(&*state, Gate::Ready(_)) {
            if let Some(d) = crate::web::digits::ready() {
                let _ = self.retry.style().set_property("display", "none");
                *state = Gate::Ready(d);
            }
        }
        match &*state {
            Gate::Ready(d) => return Some(d.clone()),
            Gate::Idle => {
                *state = Gate::Loading;
                let _ = self.retry.style().set_property("display", "none");
                let cell = self.state.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let result = crate::web::digits::load().await;
                    *cell.borrow_mut() = match result {
                        Ok(d) => Gate::Ready(d),
                        Err(e) => Gate::Failed(e),
                    };
                });
                status.set("Downloading the MNIST digits…");
            }
            Gate::Loading => {
                let (got, total) = crate::web::digits::progress();
                let mb = |b: f64| b / 1_048_576.0;
                if total > 0.0 {
                    status.set(&format!(
                        "Downloading the MNIST digits: {:.1} of {:.1} MB ({:.0}%)…",
                        mb(got),
                        mb(total),
                        100.0 * got / total
                    ));
                } else {
                    status.set(&format!("Downloading the MNIST digits: {:.1} MB…", mb(got)));
                }
            }
            Gate::Failed(e) => {
                status.error(&format!("{e}. Check the connection and retry."));
                let _ = self.retry.style().set_property("display", "");
            }
        }
        None
    }
}
