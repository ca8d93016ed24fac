//! A figure's settings as its controls hold them: the `data-setting` inputs and selects that a
//! figure builds from the catalogue. The JS handles (`FigureHandle`), embedded figures'
//! attributes and the address all read and change settings through these, as a reader's hand
//! would.

use wasm_bindgen::JsCast;
use web_sys::Element;

pub fn settings(root: &Element) -> Vec<Element> {
    let mut out = Vec::new();
    if let Ok(list) = root.query_selector_all("[data-setting]") {
        for i in 0..list.length() {
            if let Some(e) = list.item(i).and_then(|n| n.dyn_into::<Element>().ok()) {
                out.push(e);
            }
        }
    }
    out
}

pub fn setting_control(root: &Element, key: &str) -> Option<Element> {
    settings(root)
        .into_iter()
        .find(|e| e.get_attribute("data-setting").as_deref() == Some(key))
}

pub fn control_value(control: &Element) -> String {
    if let Some(input) = control.dyn_ref::<web_sys::HtmlInputElement>() {
        input.value()
    } else if let Some(select) = control.dyn_ref::<web_sys::HtmlSelectElement>() {
        select.value()
    } else {
        String::new()
    }
}

fn select_options(select: &web_sys::HtmlSelectElement) -> Vec<String> {
    let Ok(options) = select.query_selector_all("option") else {
        return Vec::new();
    };
    (0..options.length())
        .filter_map(|i| options.item(i))
        .filter_map(|o| o.dyn_into::<Element>().ok())
        .filter_map(|o| o.get_attribute("value"))
        .collect()
}

pub fn describe(control: &Element) -> String {
    let key = control.get_attribute("data-setting").unwrap_or_default();
    if let Some(input) = control.dyn_ref::<web_sys::HtmlInputElement>() {
        format!(
            "{key}: a number in [{}, {}] (step {})",
            input.min(),
            input.max(),
            input.step()
        )
    } else if let Some(select) = control.dyn_ref::<web_sys::HtmlSelectElement>() {
        format!("{key}: one of {}", select_options(select).join(", "))
    } else {
        key
    }
}

/// Sets a figure's control to `value` and fires its event, so the figure reacts exactly as to
/// the reader's hand. Values outside the control's range are refused with the valid ones.
pub fn apply_setting(root: &Element, key: &str, value: &str) -> Result<(), String> {
    let Some(control) = setting_control(root, key) else {
        let valid: Vec<String> = settings(root).iter().map(describe).collect();
        return Err(if valid.is_empty() {
            format!("this figure has no setting \"{key}\" (it has none)")
        } else {
            format!(
                "this figure has no setting \"{key}\"; its settings: {}",
                valid.join("; ")
            )
        });
    };
    let event = if let Some(input) = control.dyn_ref::<web_sys::HtmlInputElement>() {
        let (min, max) = (input.min().parse::<f64>(), input.max().parse::<f64>());
        let v = value.trim().parse::<f64>().ok().filter(|v| v.is_finite());
        match (v, min, max) {
            (Some(v), Ok(min), Ok(max)) if v >= min && v <= max => input.set_value(&v.to_string()),
            _ => {
                return Err(format!(
                    "{key} must be {}, got \"{value}\"",
                    &describe(&control)[key.len() + 2..]
                ))
            }
        }
        "input"
    } else if let Some(select) = control.dyn_ref::<web_sys::HtmlSelectElement>() {
        let options = select_options(select);
        if !options.iter().any(|o| o == value) {
            return Err(format!(
                "{key} must be one of {}, got \"{value}\"",
                options.join(", ")
            ));
        }
        select.set_value(value);
        "change"
    } else {
        return Err(format!("setting {key} cannot be changed"));
    };
    let e = web_sys::Event::new(event).map_err(|e| format!("{e:?}"))?;
    control.dispatch_event(&e).map_err(|e| format!("{e:?}"))?;
    Ok(())
}

/// Every setting of the figure in `root` and its value now.
pub fn setting_values(root: &Element) -> Vec<(String, String)> {
    settings(root)
        .iter()
        .map(|c| {
            (
                c.get_attribute("data-setting").unwrap_or_default(),
                control_value(c),
            )
        })
        .collect()
}
