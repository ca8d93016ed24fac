//! Mounts every `[data-figure]` element of the page, drives one requestAnimationFrame loop for
//! the visible figures, and pauses figures that are off-screen or in a hidden tab.

use super::controls::{document, JsResult};
use super::figures::{self, Figure};
use super::shared::backend;
use crate::gpu::Backend;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Element, IntersectionObserver, IntersectionObserverEntry};

struct Mounted {
    root: Element,
    figure: Box<dyn Figure>,
    on_screen: bool,
}

#[derive(Default)]
struct Page {
    figures: Vec<Mounted>,
    tab_visible: bool,
}

thread_local! {
    static PAGE: RefCell<Page> = const { RefCell::new(Page { figures: Vec::new(), tab_visible: true }) };
}

#[wasm_bindgen(start)]
pub fn start() -> Result<(), JsValue> {
    console_error_panic_hook::set_once();
    let roots = document().query_selector_all("[data-figure]")?;
    if roots.length() == 0 {
        return Ok(()); // a page that only imports the JS API
    }
    for i in 0..roots.length() {
        let Some(root) = roots.item(i).and_then(|n| n.dyn_into::<Element>().ok()) else {
            continue;
        };
        let name = root.get_attribute("data-figure").unwrap_or_default();
        root.set_inner_html("");
        match figures::create(&name, &root) {
            Ok(figure) => PAGE.with(|p| {
                p.borrow_mut().figures.push(Mounted {
                    root,
                    figure,
                    on_screen: false,
                })
            }),
            Err(e) => show_error(&root, &e),
        }
    }
    observe_visibility()?;
    show_backend_note();
    start_animation_loop()
}

/// An error inside the figure's own box; the rest of the page keeps working.
fn show_error(root: &Element, error: &JsValue) {
    let text = error.as_string().unwrap_or_else(|| format!("{error:?}"));
    let p = document().create_element("p");
    if let Ok(p) = p {
        p.set_class_name("figure-status figure-error");
        p.set_text_content(Some(&format!("This figure cannot run: {text}")));
        let _ = root.append_child(&p);
    }
}

fn set_visibility(page: &mut Page) {
    let tab = page.tab_visible;
    for m in &mut page.figures {
        m.figure.set_visible(tab && m.on_screen);
    }
}

fn observe_visibility() -> JsResult<()> {
    let on_intersect = Closure::<dyn FnMut(js_sys::Array)>::new(|entries: js_sys::Array| {
        PAGE.with(|p| {
            let mut page = p.borrow_mut();
            for entry in entries.iter() {
                let entry: IntersectionObserverEntry = entry.unchecked_into();
                let target = entry.target();
                for m in page.figures.iter_mut().filter(|m| m.root == target) {
                    m.on_screen = entry.is_intersecting();
                }
            }
            set_visibility(&mut page);
        })
    });
    let options = web_sys::IntersectionObserverInit::new();
    // Start a little before a figure scrolls in, so it is ready when seen.
    options.set_root_margin("200px 0px");
    let observer =
        IntersectionObserver::new_with_options(on_intersect.as_ref().unchecked_ref(), &options)?;
    PAGE.with(|p| {
        for m in &p.borrow().figures {
            observer.observe(&m.root);
        }
    });
    // Page-lifetime listeners: the page owns them until it is unloaded.
    on_intersect.forget();

    let doc = document();
    let on_visibility = Closure::<dyn FnMut()>::new(move || {
        let hidden = document().hidden();
        PAGE.with(|p| {
            let mut page = p.borrow_mut();
            page.tab_visible = !hidden;
            set_visibility(&mut page);
        })
    });
    doc.add_event_listener_with_callback(
        "visibilitychange",
        on_visibility.as_ref().unchecked_ref(),
    )?;
    on_visibility.forget();
    Ok(())
}

/// Fills `#backend-note` with what the figures run on; without WebGPU the note says why.
fn show_backend_note() {
    wasm_bindgen_futures::spawn_local(async {
        let backend = backend().await;
        let Some(note) = document().get_element_by_id("backend-note") else {
            return;
        };
        match &*backend {
            Backend::Gpu(b) => {
                note.set_class_name("backend-note backend-gpu");
                let text = if b.gpu.adapter.is_empty() {
                    "Figures compute on your GPU through WebGPU.".to_string()
                } else {
                    format!(
                        "Figures compute on your GPU through WebGPU ({}).",
                        b.gpu.adapter
                    )
                };
                note.set_text_content(Some(&text));
            }
            Backend::Cpu { reason } => {
                note.set_class_name("backend-note backend-cpu");
                note.set_text_content(Some(&format!(
                    "WebGPU is not available in this browser ({reason}), so the figures compute \
                     on the CPU in WebAssembly: the same results, more slowly."
                )));
            }
        }
    });
}

fn start_animation_loop() -> JsResult<()> {
    type Tick = Closure<dyn FnMut(f64)>;
    let tick: Rc<RefCell<Option<Tick>>> = Rc::new(RefCell::new(None));
    let again = tick.clone();
    *tick.borrow_mut() = Some(Closure::new(move |now: f64| {
        PAGE.with(|p| {
            let mut page = p.borrow_mut();
            let tab = page.tab_visible;
            for m in page.figures.iter_mut().filter(|m| m.on_screen && tab) {
                m.figure.frame(now);
            }
        });
        if let Some(f) = again.borrow().as_ref() {
            request_frame(f);
        }
    }));
    if let Some(f) = tick.borrow().as_ref() {
        request_frame(f);
    }
    Ok(())
}

fn request_frame(f: &Closure<dyn FnMut(f64)>) {
    if let Some(w) = web_sys::window() {
        let _ = w.request_animation_frame(f.as_ref().unchecked_ref());
    }
}
