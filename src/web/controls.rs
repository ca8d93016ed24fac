//! Labelled DOM controls for figures. Each control keeps its listener alive in `Listeners`, which
//! the figure owns, so dropping the figure drops its callbacks.

use crate::catalog::{Kind, Setting};
use crate::charts::layout::Fit;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Document, Element, HtmlElement, HtmlInputElement, HtmlSelectElement};

pub type JsResult<T> = Result<T, JsValue>;

type Listener = (
    web_sys::EventTarget,
    String,
    Closure<dyn FnMut(web_sys::Event)>,
);

/// Event listeners of one figure. Dropping them detaches them, so a removed figure leaves no
/// callback behind on elements the page keeps.
#[derive(Default)]
pub struct Listeners(Vec<Listener>);

impl Listeners {
    pub fn on(
        &mut self,
        target: &web_sys::EventTarget,
        event: &str,
        f: impl FnMut(web_sys::Event) + 'static,
    ) -> JsResult<()> {
        let closure = Closure::<dyn FnMut(web_sys::Event)>::new(f);
        target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref())?;
        self.0.push((target.clone(), event.to_string(), closure));
        Ok(())
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        for (target, event, closure) in &self.0 {
            let _ =
                target.remove_event_listener_with_callback(event, closure.as_ref().unchecked_ref());
        }
    }
}

pub fn document() -> Document {
    web_sys::window()
        .and_then(|w| w.document())
        .expect("figures run in a page with a document")
}

pub fn element(tag: &str, class: &str, parent: &Element) -> JsResult<HtmlElement> {
    let el = document().create_element(tag)?;
    if !class.is_empty() {
        el.set_class_name(class);
    }
    parent.append_child(&el)?;
    Ok(el.unchecked_into())
}

/// A range slider with its label and a live read-out; calls `on_input` with each new value.
pub struct Slider {
    pub input: HtmlInputElement,
    readout: HtmlElement,
    digits: usize,
}

impl Slider {
    /// The slider of number `setting`, at its default.
    pub fn new(
        parent: &Element,
        listeners: &mut Listeners,
        id: &str,
        setting: &Setting,
        mut on_input: impl FnMut(f64) + 'static,
    ) -> JsResult<Slider> {
        let Kind::Number {
            min,
            max,
            step,
            default: value,
            digits,
        } = setting.kind
        else {
            return Err(JsValue::from_str("a slider needs a number setting"));
        };
        let id = &unique_id(id);
        let wrap = element("label", "control", parent)?;
        wrap.set_attribute("for", id)?;
        element("span", "control-label", &wrap)?.set_text_content(Some(setting.label));
        let input: HtmlInputElement = element("input", "", &wrap)?.unchecked_into();
        input.set_type("range");
        input.set_id(id);
        input.set_attribute("data-setting", setting.key)?;
        input.set_min(&min.to_string());
        input.set_max(&max.to_string());
        input.set_step(&step.to_string());
        input.set_value(&value.to_string());
        let readout = element("output", "control-value", &wrap)?;
        readout.set_attribute("for", id)?;
        readout.set_text_content(Some(&format!("{value:.digits$}")));
        let (inp, out) = (input.clone(), readout.clone());
        listeners.on(&input, "input", move |_| {
            let v = inp.value_as_number();
            out.set_text_content(Some(&format!("{v:.digits$}")));
            on_input(v);
        })?;
        Ok(Slider {
            input,
            readout,
            digits,
        })
    }

    pub fn set(&self, value: f64) {
        let digits = self.digits;
        self.input.set_value(&value.to_string());
        self.readout
            .set_text_content(Some(&format!("{value:.digits$}")));
    }
}

/// `base`, or `base-2`, `base-3`, ... when the page already has that id (the same figure
/// embedded twice).
fn unique_id(base: &str) -> String {
    let doc = document();
    (1..)
        .map(|k| {
            if k == 1 {
                base.to_string()
            } else {
                format!("{base}-{k}")
            }
        })
        .find(|id| doc.get_element_by_id(id).is_none())
        .unwrap_or_else(|| base.to_string())
}

/// The drop-down of choice `setting`, at its default.
pub fn select(
    parent: &Element,
    listeners: &mut Listeners,
    id: &str,
    setting: &Setting,
    mut on_change: impl FnMut(String) + 'static,
) -> JsResult<HtmlSelectElement> {
    let id = &unique_id(id);
    let wrap = element("label", "control", parent)?;
    wrap.set_attribute("for", id)?;
    element("span", "control-label", &wrap)?.set_text_content(Some(setting.label));
    let select: HtmlSelectElement = element("select", "", &wrap)?.unchecked_into();
    select.set_id(id);
    select.set_attribute("data-setting", setting.key)?;
    for (value, text) in setting.options() {
        let option = element("option", "", &select)?;
        option.set_attribute("value", value)?;
        option.set_text_content(Some(text));
    }
    select.set_value(setting.choice());
    let sel = select.clone();
    listeners.on(&select, "change", move |_| on_change(sel.value()))?;
    Ok(select)
}

pub fn button(
    parent: &Element,
    listeners: &mut Listeners,
    text: &str,
    mut on_click: impl FnMut() + 'static,
) -> JsResult<HtmlElement> {
    let b = element("button", "control-button", parent)?;
    b.set_attribute("type", "button")?;
    b.set_text_content(Some(text));
    listeners.on(&b, "click", move |_| on_click())?;
    Ok(b)
}

/// A canvas whose chart is drawn at the width its column gives it (at most `width` CSS pixels,
/// as the stylesheet says), `fit` giving its height (`drawing::fit`).
pub fn canvas(
    parent: &Element,
    width: u32,
    fit: Fit,
    label: &str,
) -> JsResult<web_sys::HtmlCanvasElement> {
    let c: web_sys::HtmlCanvasElement =
        element("canvas", "figure-canvas", parent)?.unchecked_into();
    // Its size until it is first drawn, at the width it is shown at.
    c.set_width(width);
    c.set_height(fit.height(width));
    c.set_attribute("role", "img")?;
    c.set_attribute("aria-label", label)?;
    crate::web::drawing::fit(&c, fit);
    Ok(c)
}

/// Where a pointer event is in the chart on `canvas` (in the chart's CSS pixels), and the
/// chart's size.
pub fn canvas_point(
    canvas: &web_sys::HtmlCanvasElement,
    event: &web_sys::Event,
) -> Option<((f64, f64), (u32, u32))> {
    let e = event.dyn_ref::<web_sys::MouseEvent>()?;
    let rect = canvas.get_bounding_client_rect();
    if rect.width() <= 0.0 || rect.height() <= 0.0 {
        return None;
    }
    let (w, h) = crate::web::drawing::chart_size(canvas);
    Some((
        (
            (e.client_x() as f64 - rect.left()) * w as f64 / rect.width(),
            (e.client_y() as f64 - rect.top()) * h as f64 / rect.height(),
        ),
        (w, h),
    ))
}
