//! Mounts every `[data-figure]` element of the page (and, through `mountFigure`, the
//! `<fm-figure>` elements of embed.js), drives one requestAnimationFrame loop for the visible
//! figures, and pauses figures that are off-screen or in a hidden tab.

use super::backend::backend;
use super::controls::{document, JsResult};
use super::figures::{self, Figure};
use super::settings::{apply_setting, control_value, setting_control};
use crate::gpu::backend::CpuWhy;
use crate::gpu::Backend;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Element, IntersectionObserver, IntersectionObserverEntry};

struct Mounted {
    root: Element,
    name: String,
    figure: Box<dyn Figure>,
    on_screen: bool,
}

#[derive(Default)]
struct Page {
    figures: Vec<Mounted>,
    tab_visible: bool,
    /// The figure that goes first in the next frame (they take turns, see FRAME_BUDGET_MS).
    first: usize,
    /// What tells the loop which figures are on screen: made with the first figure.
    observer: Option<IntersectionObserver>,
}

/// Main-thread time a frame gives the figures' drawing: once spent, the figures after wait for
/// the next frame to draw (they still animate and start their jobs). Figures take turns going
/// first, so one that draws slowly delays the others by a frame, never for good, and a frame in
/// which several figures come into view at once does not draw them all in one task.
const FRAME_BUDGET_MS: f64 = 8.0;

thread_local! {
    static PAGE: RefCell<Page> = const { RefCell::new(Page { figures: Vec::new(), tab_visible: true, first: 0, observer: None }) };
}

#[wasm_bindgen(start)]
pub fn start() -> Result<(), JsValue> {
    console_error_panic_hook::set_once();
    // In a worker (a page's own, importing the module for its API) there is no page to mount
    // figures in.
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return Ok(());
    };
    let roots = document.query_selector_all("[data-figure]")?;
    let roots: Vec<Element> = (0..roots.length())
        .filter_map(|i| roots.item(i).and_then(|n| n.dyn_into::<Element>().ok()))
        .collect();
    // The figures within a screen of the viewport first (a reader who followed a link to a
    // section sees its figure first), then the others in the article's order.
    let screen = web_sys::window()
        .and_then(|w| w.inner_height().ok())
        .and_then(|h| h.as_f64())
        .unwrap_or(800.0);
    let (near, far): (Vec<Element>, Vec<Element>) = roots.into_iter().partition(|root| {
        let rect = root.get_bounding_client_rect();
        rect.bottom() > -screen && rect.top() < 2.0 * screen
    });
    // One figure a task: mounting the twelve in one task (controls, canvases, first settings)
    // was a 500 ms task on a phone-class CPU, during which the page could not answer the reader.
    in_turn(near.into_iter().chain(far).collect(), mount_one);
    Ok(())
}

/// Runs `each` on `roots` one a task, the page taking a turn between two.
fn in_turn(roots: Vec<Element>, each: fn(Element)) {
    wasm_bindgen_futures::spawn_local(async move {
        for (i, root) in roots.into_iter().enumerate() {
            if i > 0 {
                super::turns::yield_to_page().await;
            }
            each(root);
        }
    });
}

/// Builds the figure that `root` names in it, or shows why it cannot.
fn mount_one(root: Element) {
    let name = root.get_attribute("data-figure").unwrap_or_default();
    root.set_inner_html("");
    let mounted = figures::create(&name, &root).and_then(|figure| {
        register(root.clone(), &name, figure)?;
        super::share::add(&name, &root, DRAWING)?;
        super::share::link(&name, &root)
    });
    if let Err(e) = mounted {
        show_error(&root, &e);
    }
}

/// Adds a mounted figure to the page's loop, starting the loop, the visibility tracking and
/// the backend note with the first one (a page that only imports the JS API gets none).
fn register(root: Element, name: &str, figure: Box<dyn Figure>) -> JsResult<()> {
    let observer = |p: &RefCell<Page>| p.borrow().observer.clone();
    if PAGE.with(observer).is_none() {
        follow_color_scheme()?;
        let observer = observe_visibility()?;
        PAGE.with(|p| p.borrow_mut().observer = Some(observer));
        show_backend_note();
        super::backend::on_backend_change(|| {
            show_backend_note();
            if matches!(
                super::backend::backend_now().as_deref(),
                Some(Backend::Gpu(_))
            ) {
                remount_each_in_turn();
            } else {
                remount_all();
            }
        });
        start_animation_loop()?;
    }
    if let Some(observer) = PAGE.with(observer) {
        observer.observe(&root);
    }
    PAGE.with(|p| {
        p.borrow_mut().figures.push(Mounted {
            root,
            name: name.to_string(),
            figure,
            on_screen: false,
        })
    });
    Ok(())
}

/// Every figure `mountFigure` and `<fm-figure>` take, with its settings (kind, range or options,
/// default), in the article's order: `src/catalog.rs`, as the controls are built from it.
#[wasm_bindgen(js_name = figures, unchecked_return_type = "FigureSpec[]")]
pub fn figure_specs() -> Result<JsValue, JsError> {
    let specs: Vec<_> = crate::catalog::FIGURES.iter().map(|f| f.view()).collect();
    serde_wasm_bindgen::to_value(&specs).map_err(|e| JsError::new(&e.to_string()))
}

/// A figure mounted by `mountFigure` (the `<fm-figure>` element of embed.js).
#[wasm_bindgen]
pub struct FigureHandle {
    root: Element,
    spec: &'static crate::catalog::FigureSpec,
}

/// Builds figure `name` inside `root` and runs it like the article's figures (same GPU device,
/// same animation loop). An unknown name rejects with the list of valid ones.
#[wasm_bindgen(js_name = mountFigure)]
pub fn mount_figure(
    #[wasm_bindgen(unchecked_param_type = "Element")] root: JsValue,
    #[wasm_bindgen(unchecked_param_type = "FigureName")] name: JsValue,
) -> Result<FigureHandle, JsError> {
    console_error_panic_hook::set_once();
    let root = element(&root)
        .ok_or_else(|| JsError::new("root must be an Element (the figure's container)"))?;
    let name = short_string("name", &name)?;
    root.set_inner_html("");
    let figure = figures::create(&name, &root)
        .map_err(|e| JsError::new(&e.as_string().unwrap_or_else(|| format!("{e:?}"))))?;
    let spec = crate::catalog::figure(&name).ok_or_else(|| JsError::new("not in the catalogue"))?;
    register(root.clone(), &name, figure).map_err(|e| JsError::new(&format!("{e:?}")))?;
    super::share::add(&name, &root, DRAWING).map_err(|e| JsError::new(&format!("{e:?}")))?;
    Ok(FigureHandle { root, spec })
}

/// `value` as an Element if it is a real one: `instanceof` also holds for a Proxy of an element,
/// on which every DOM method then throws inside the module. Read through `Node.prototype`'s own
/// `nodeType` getter (none in a worker, which has no DOM), looked up at each call: a figure is
/// made a few times a page.
fn element(value: &JsValue) -> Option<Element> {
    let proto = js_sys::Reflect::get(&js_sys::global(), &"Node".into())
        .and_then(|node| js_sys::Reflect::get(&node, &"prototype".into()))
        .ok()?;
    let getter = super::args::intrinsic_getter(&proto, &"nodeType".into())?;
    let node_type = getter.call0(value).ok()?.as_f64()?;
    (node_type == 1.0).then(|| value.clone().unchecked_into())
}

/// The longest name, key or value the figure handles take: anything longer is no setting.
const MAX_STRING: u32 = 256;

/// A string argument of at most MAX_STRING UTF-16 units, checked before it is copied into the
/// module (a page may hand in anything, a string of a gigabyte included).
fn short_string(name: &str, value: &JsValue) -> Result<String, JsError> {
    let s = value
        .dyn_ref::<js_sys::JsString>()
        .ok_or_else(|| JsError::new(&format!("{name} must be a string")))?;
    if s.length() > MAX_STRING {
        return Err(JsError::new(&format!(
            "{name} must be a string of at most {MAX_STRING} characters, got {}",
            s.length()
        )));
    }
    Ok(String::from(s))
}

#[wasm_bindgen]
impl FigureHandle {
    /// Changes setting `key` (an embedded figure's attribute) as its control would.
    pub fn set(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string | number")] value: JsValue,
    ) -> Result<(), JsError> {
        let (key, value) = (short_string("key", &key)?, short_string("value", &value)?);
        apply_setting(&self.root, self.spec.name, &key, &value).map_err(|e| JsError::new(&e))
    }

    /// The current value of setting `key`, if the figure has it.
    pub fn get(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue,
    ) -> Option<String> {
        let key = short_string("key", &key).ok()?;
        setting_control(&self.root, &key).map(|c| control_value(&c))
    }

    /// The figure's settings, e.g. "t: a number in [0, 0.999] (step 0.001)".
    pub fn describe(&self) -> Vec<String> {
        self.spec.settings.iter().map(|s| s.describe()).collect()
    }

    /// Keeps the figure's settings in the page's address under `key` and applies those already
    /// there (call it after the element's attributes are applied: a shared link wins).
    pub fn link(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue,
    ) -> Result<(), JsError> {
        let key = short_string("key", &key)?;
        super::share::link(&key, &self.root).map_err(|e| JsError::new(&format!("{e:?}")))
    }

    /// Draws the figure again now (after its theme changed).
    pub fn redraw(&self) {
        redraw_now(&self.root);
    }

    /// Stops the figure (the element left the page).
    pub fn remove(&self) {
        if let Some(observer) = PAGE.with(|p| p.borrow().observer.clone()) {
            observer.unobserve(&self.root);
        }
        PAGE.with(|p| p.borrow_mut().figures.retain(|m| m.root != self.root));
        super::share::forget(&self.root);
    }
}

/// Builds every figure again, with the settings it shows now, after the page's backend changed
/// (a lost GPU device): work in flight on the old backend is dropped with the old figure, and a
/// training figure starts its run again. The download bar and the address links, which live on
/// the figure's root, stay.
fn remount_all() {
    for root in mounted_roots() {
        remount(root);
    }
}

/// The same, one figure a task (`in_turn`), those on screen first: for the move to the GPU once
/// its check passed, when what the figures prepared on the CPU path stays valid meanwhile (after a
/// device loss, what they prepared on the lost device is not, and every figure is rebuilt at
/// once).
fn remount_each_in_turn() {
    let mut roots = mounted_roots();
    let on_screen = |root: &Element| {
        PAGE.with(|p| {
            p.borrow()
                .figures
                .iter()
                .any(|m| &m.root == root && m.on_screen)
        })
    };
    roots.sort_by_key(|root| !on_screen(root));
    in_turn(roots, remount);
}

fn mounted_roots() -> Vec<Element> {
    PAGE.with(|p| p.borrow().figures.iter().map(|m| m.root.clone()).collect())
}

/// Builds the figure in `root` again, with the settings it showed (nothing when it was removed
/// from the page meanwhile).
fn remount(root: Element) {
    let root = &root;
    let Some(name) = PAGE.with(|p| {
        p.borrow()
            .figures
            .iter()
            .find(|m| &m.root == root)
            .map(|m| m.name.clone())
    }) else {
        return;
    };
    let name = name.as_str();
    let values = super::settings::setting_values(root);
    let tools = root.query_selector(":scope > .figure-tools").ok().flatten();
    let mut next = root.first_element_child();
    while let Some(child) = next {
        next = child.next_element_sibling();
        if Some(&child) != tools.as_ref() {
            child.remove();
        }
    }
    let figure = match figures::create(name, root) {
        Ok(f) => f,
        Err(e) => {
            show_error(root, &e);
            return;
        }
    };
    let old = PAGE.with(|p| {
        let mut page = p.borrow_mut();
        let tab_visible = page.tab_visible;
        let m = page.figures.iter_mut().find(|m| &m.root == root)?;
        let mut figure = figure;
        figure.set_visible(m.on_screen && tab_visible);
        Some(std::mem::replace(&mut m.figure, figure))
    });
    // Dropped outside the page's borrow: a figure detaches its listeners when dropped.
    drop(old);
    for (key, value) in values {
        if let Err(e) = apply_setting(root, name, &key, &value) {
            web_sys::console::warn_1(&format!("{name}: {e}").into());
        }
    }
    if let Some(tools) = tools {
        let _ = root.append_child(&tools);
    }
}

/// Draws the figure in `root` right now (its next frame, out of turn): what "Download SVG"
/// captures.
/// What the downloads of `share` draw and read.
const DRAWING: super::share::Drawing = super::share::Drawing {
    redraw: redraw_now,
    csv: figure_csv,
};

pub(super) fn redraw_now(root: &Element) {
    let now = web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now());
    PAGE.with(|p| {
        let mut page = p.borrow_mut();
        for m in page.figures.iter_mut().filter(|m| &m.root == root) {
            m.figure.set_visible(true);
            m.figure.frame(now, true);
        }
        set_visibility(&mut page);
    });
}

/// The CSV of the figure in `root`, if it has data yet.
pub(super) fn figure_csv(root: &Element) -> Option<String> {
    PAGE.with(|p| {
        p.borrow()
            .figures
            .iter()
            .find(|m| &m.root == root)
            .and_then(|m| m.figure.csv())
    })
}

/// An error inside the figure's own box; the rest of the page keeps working.
fn show_error(root: &Element, error: &JsValue) {
    let text = error.as_string().unwrap_or_else(|| format!("{error:?}"));
    let p = document().create_element("p");
    if let Ok(p) = p {
        p.set_class_name("figure-status figure-error");
        // Held to two lines on a phone until tapped, like the status line (figures.css).
        let _ = p.set_attribute("tabindex", "0");
        p.set_text_content(Some(&format!("This figure cannot run: {text}")));
        let _ = root.append_child(&p);
    }
}

/// Charts follow the reader's light or dark preference, now and when it changes.
fn follow_color_scheme() -> JsResult<()> {
    let Some(query) = web_sys::window()
        .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten())
    else {
        return Ok(());
    };
    crate::charts::palette::set_dark(query.matches());
    let q = query.clone();
    let on_change = Closure::<dyn FnMut()>::new(move || {
        crate::charts::palette::set_dark(q.matches());
        // Figures redraw when told their visibility (each marks itself for drawing).
        PAGE.with(|p| set_visibility(&mut p.borrow_mut()));
    });
    query.add_event_listener_with_callback("change", on_change.as_ref().unchecked_ref())?;
    on_change.forget();
    Ok(())
}

fn set_visibility(page: &mut Page) {
    let tab = page.tab_visible;
    for m in &mut page.figures {
        m.figure.set_visible(tab && m.on_screen);
    }
}

fn observe_visibility() -> JsResult<IntersectionObserver> {
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
    Ok(observer)
}

/// Fills `#backend-note` with what the figures run on; without WebGPU the note says why.
fn show_backend_note() {
    if super::backend::backend_now().is_none() {
        if let Some(note) = document().get_element_by_id("backend-note") {
            note.set_class_name("backend-note backend-checking");
            note.set_text_content(Some(
                "The figures start on the CPU while a quick check of your GPU runs.",
            ));
        }
    }
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
            Backend::Cpu { why, reason } => {
                note.set_class_name("backend-note backend-cpu");
                let text = match why {
                    CpuWhy::SoftwareAdapter => {
                        "This browser's only WebGPU adapter is a software one that runs on the \
                         CPU, so the figures compute in WebAssembly instead, which is faster \
                         here. Add ?backend=webgpu to the address to use WebGPU anyway."
                    }
                    CpuWhy::NoWebGpu => {
                        "WebGPU is not available in this browser, so the figures compute on the \
                         CPU in WebAssembly: the same results, more slowly."
                    }
                    CpuWhy::Requested => {
                        "The address asks for the CPU path (?backend=cpu), so the figures compute \
                         in WebAssembly."
                    }
                    CpuWhy::CheckFailed => {
                        "Your GPU's results did not match the page's CPU reference in a quick \
                         check, so the figures compute on the CPU in WebAssembly instead."
                    }
                    CpuWhy::DeviceLost => {
                        "The browser lost the GPU device the figures were using, so they now \
                         compute on the CPU in WebAssembly: the same results, more slowly."
                    }
                    // Never the page's chosen backend (only what figures use meanwhile).
                    CpuWhy::Checking => {
                        "The figures compute on the CPU while a quick check of your GPU runs."
                    }
                };
                note.set_text_content(Some(text));
                // The technical detail (which backends the browser lacks) for whoever looks.
                let _ = note.set_attribute("title", reason);
                web_sys::console::info_1(
                    &format!("fm-explainer computes on the CPU: {reason}").into(),
                );
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
            if !page.tab_visible || page.figures.is_empty() {
                return;
            }
            let count = page.figures.len();
            let first = page.first % count;
            page.first = first + 1;
            let start = crate::web::turns::now_ms();
            for k in 0..count {
                let m = &mut page.figures[(first + k) % count];
                if m.on_screen {
                    let may_draw = crate::web::turns::now_ms() - start < FRAME_BUDGET_MS;
                    m.figure.frame(now, may_draw);
                }
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
