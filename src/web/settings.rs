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

/// Sets setting `key` of figure `name` (in `root`) to `value` and fires its control's event, so
/// the figure reacts exactly as to the reader's hand. The value is checked against the
/// catalogue's setting (`catalog::FigureSpec::check`), not against the control's attributes: a
/// value outside the setting's range, or an unknown key, is refused with the valid ones.
pub fn apply_setting(root: &Element, name: &str, key: &str, value: &str) -> Result<(), String> {
    let spec = crate::catalog::figure(name).ok_or_else(|| format!("no figure \"{name}\""))?;
    let (setting, value) = spec.check(key, value)?;
    let control =
        setting_control(root, key).ok_or_else(|| format!("setting {key} has no control"))?;
    let event = match setting.kind {
        crate::catalog::Kind::Number { .. } => {
            let input = control
                .dyn_ref::<web_sys::HtmlInputElement>()
                .ok_or_else(|| format!("setting {key} has no slider"))?;
            input.set_value(&value);
            "input"
        }
        crate::catalog::Kind::Choice { .. } => {
            let select = control
                .dyn_ref::<web_sys::HtmlSelectElement>()
                .ok_or_else(|| format!("setting {key} has no drop-down"))?;
            select.set_value(&value);
            "change"
        }
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
