//! Sharing what a reader sees: each linked figure's settings live in the page's address
//! (`#velocity-field.t=0.8&dataset=spirals|hybrid-tau.tau=0.6`, only settings changed from their
//! defaults), so a copied link reopens the figures as they were left; and each figure can be
//! downloaded as PNG, as SVG and as CSV data. The article's figures are linked under their names,
//! embedded ones under their element's id (or name).

use super::controls::{document, element, JsResult, Listeners};
use super::settings::{apply_setting, setting_values};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::Element;

/// What the downloads need from the page's figure in `root`: to draw it now (the SVG capture
/// records that drawing) and its data as CSV, if it has any yet.
#[derive(Clone, Copy)]
pub struct Drawing {
    pub redraw: fn(&Element),
    pub csv: fn(&Element) -> Option<String>,
}

/// A figure on the page: its download buttons and, when it is linked, its key in the address
/// (an article figure's name, or an embedded figure's id or name) and its settings' defaults.
struct Shared {
    root: Element,
    /// The figure's name in the catalogue.
    name: String,
    linked: Option<(String, Vec<(String, String)>)>,
    listeners: Listeners,
}

thread_local! {
    static FIGURES: RefCell<Vec<Shared>> = const { RefCell::new(Vec::new()) };
}

/// The address fragment for every linked figure's changed settings.
fn encode() -> String {
    FIGURES.with(|f| {
        f.borrow()
            .iter()
            .filter_map(|s| {
                let (key, defaults) = s.linked.as_ref()?;
                let changed: Vec<String> = setting_values(&s.root)
                    .into_iter()
                    .filter(|kv| !defaults.contains(kv))
                    .map(|(k, v)| format!("{k}={}", String::from(js_sys::encode_uri_component(&v))))
                    .collect();
                (!changed.is_empty()).then(|| format!("{key}.{}", changed.join("&")))
            })
            .collect::<Vec<_>>()
            .join("|")
    })
}

/// `name.key=value&key=value|...` into (name, [(key, value)]).
pub fn decode(hash: &str) -> Vec<(String, Vec<(String, String)>)> {
    hash.trim_start_matches('#')
        .split('|')
        .filter_map(|entry| {
            let (name, rest) = entry.split_once('.')?;
            let pairs = rest
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| {
                    let v = js_sys::decode_uri_component(v)
                        .map(String::from)
                        .unwrap_or_else(|_| v.to_string());
                    (k.to_string(), v)
                })
                .collect();
            Some((name.to_string(), pairs))
        })
        .collect()
}

fn current_hash() -> String {
    web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default()
}

/// Rewrites the address with every linked figure's changed settings, keeping the parts of the
/// fragment that are not a linked figure's (a host page's own anchor, say).
fn write_address() {
    write_address_dropping(None);
}

/// `write_address`, also dropping the part under `dropped` (a figure that left the page).
fn write_address_dropping(dropped: Option<&str>) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let mut keys: Vec<String> = FIGURES.with(|f| {
        f.borrow()
            .iter()
            .filter_map(|s| s.linked.as_ref().map(|(k, _)| k.clone()))
            .collect()
    });
    keys.extend(dropped.map(str::to_string));
    let current = current_hash();
    let mut parts: Vec<String> = current
        .trim_start_matches('#')
        .split('|')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            !keys
                .iter()
                .any(|k| p.split_once('.').map(|(n, _)| n) == Some(k.as_str()))
        })
        .map(str::to_string)
        .collect();
    let ours = encode();
    if !ours.is_empty() {
        parts.push(ours);
    }
    let hash = parts.join("|");
    let location = window.location();
    let base = format!(
        "{}{}",
        location.pathname().unwrap_or_default(),
        location.search().unwrap_or_default()
    );
    let url = if hash.is_empty() {
        base
    } else {
        format!("{base}#{hash}")
    };
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&url));
    }
}

/// Adds a figure's download buttons ("Download PNG", "Download SVG", "Download data (CSV)");
/// `name` names the files.
pub fn add(name: &str, root: &Element, drawing: Drawing) -> JsResult<()> {
    let mut listeners = Listeners::default();
    download_buttons(name, root, drawing, &mut listeners)?;
    FIGURES.with(|f| {
        f.borrow_mut().push(Shared {
            root: root.clone(),
            name: name.to_string(),
            linked: None,
            listeners,
        })
    });
    Ok(())
}

/// Links a figure added with `add` to the address under `key`: its current settings become the
/// defaults, settings found in the address under `key` are applied now (a shared link reopens the
/// figure as it was left), and every change is written back.
pub fn link(key: &str, root: &Element) -> JsResult<()> {
    let defaults = setting_values(root);
    let name = FIGURES.with(|f| {
        f.borrow()
            .iter()
            .find(|s| &s.root == root)
            .map(|s| s.name.clone())
    });
    let Some(name) = name else {
        return Err("link: the figure was not added".into());
    };
    for (figure, pairs) in decode(&current_hash()) {
        if figure == key {
            for (k, v) in pairs {
                if let Err(e) = apply_setting(root, &name, &k, &v) {
                    web_sys::console::warn_1(&format!("link setting ignored: {e}").into());
                }
            }
        }
    }
    FIGURES.with(|f| -> JsResult<()> {
        let mut f = f.borrow_mut();
        let Some(s) = f.iter_mut().find(|s| &s.root == root) else {
            return Err("link: the figure was not added".into());
        };
        s.linked = Some((key.to_string(), defaults));
        s.listeners.on(root, "change", |_| write_address())?;
        s.listeners.on(root, "input", |_| write_address())?;
        Ok(())
    })
}

/// Forgets a removed figure: its listeners are detached and its settings leave the address.
pub fn forget(root: &Element) {
    let key = FIGURES.with(|f| {
        let mut f = f.borrow_mut();
        let key = f
            .iter()
            .find(|s| &s.root == root)
            .and_then(|s| s.linked.as_ref().map(|(k, _)| k.clone()));
        f.retain(|s| &s.root != root);
        key
    });
    if let Some(key) = key {
        write_address_dropping(Some(&key));
    }
}

/// Saves a figure (root, name) as one file.
type Saver = fn(&Element, &str, Drawing) -> JsResult<()>;

/// "Download PNG" (the canvases side by side), "Download SVG" (the same charts drawn by the SVG
/// backend) and "Download data (CSV)", folded behind one small "Download" (a disclosure the
/// browser opens and closes itself).
fn download_buttons(
    name: &str,
    root: &Element,
    drawing: Drawing,
    listeners: &mut Listeners,
) -> JsResult<()> {
    let tools = element("details", "figure-tools", root)?;
    element("summary", "", &tools)?.set_text_content(Some("Download"));
    let bar = element("div", "figure-downloads", &tools)?;
    let savers: [(&str, Saver); 3] = [
        ("Download PNG", save_png),
        ("Download SVG", save_svg),
        ("Download data (CSV)", save_csv),
    ];
    for (label, save) in savers {
        let button = element("button", "control-button", &bar)?;
        button.set_attribute("type", "button")?;
        button.set_text_content(Some(label));
        let (root, name) = (root.clone(), name.to_string());
        listeners.on(&button, "click", move |_| {
            if let Err(e) = save(&root, &name, drawing) {
                web_sys::console::error_1(&e);
            }
        })?;
    }
    Ok(())
}

fn canvases(root: &Element) -> JsResult<Vec<web_sys::HtmlCanvasElement>> {
    let list = root.query_selector_all("canvas")?;
    Ok((0..list.length())
        .filter_map(|i| list.item(i))
        .filter_map(|n| n.dyn_into().ok())
        .collect())
}

fn download(href: &str, file: &str) -> JsResult<()> {
    let link: web_sys::HtmlAnchorElement = document().create_element("a")?.unchecked_into();
    link.set_href(href);
    link.set_download(file);
    link.click();
    Ok(())
}

fn save_svg(root: &Element, name: &str, drawing: Drawing) -> JsResult<()> {
    let docs = crate::web::drawing::capture_svg(|| (drawing.redraw)(root));
    const GAP: u32 = 12;
    let mut x = 0;
    let mut height = 0;
    let mut body = String::new();
    for c in canvases(root)? {
        let Some((_, svg)) = docs.iter().find(|(canvas, _)| canvas == &c) else {
            continue;
        };
        body.push_str(&svg.replacen("<svg ", &format!("<svg x=\"{x}\" "), 1));
        // The SVG of a chart is its size in CSS pixels, not the canvas's device pixels.
        let (w, h) = crate::web::drawing::chart_size(&c);
        x += w + GAP;
        height = height.max(h);
    }
    if body.is_empty() {
        return Err("nothing was drawn".into());
    }
    let width = x.saturating_sub(GAP);
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">{body}</svg>"
    );
    let href = format!(
        "data:image/svg+xml;charset=utf-8,{}",
        String::from(js_sys::encode_uri_component(&svg))
    );
    download(&href, &format!("{name}.svg"))
}

fn save_csv(root: &Element, name: &str, drawing: Drawing) -> JsResult<()> {
    let csv = (drawing.csv)(root).ok_or("this figure has no data yet")?;
    let href = format!(
        "data:text/csv;charset=utf-8,{}",
        String::from(js_sys::encode_uri_component(&csv))
    );
    download(&href, &format!("{name}.csv"))
}

fn save_png(root: &Element, name: &str, _: Drawing) -> JsResult<()> {
    let canvases = canvases(root)?;
    const GAP: u32 = 12;
    let width = canvases
        .iter()
        .map(|c| c.width() + GAP)
        .sum::<u32>()
        .saturating_sub(GAP);
    let height = canvases.iter().map(|c| c.height()).max().unwrap_or(0);
    let sheet: web_sys::HtmlCanvasElement = document().create_element("canvas")?.unchecked_into();
    sheet.set_width(width.max(1));
    sheet.set_height(height.max(1));
    let ctx: web_sys::CanvasRenderingContext2d = sheet
        .get_context("2d")?
        .ok_or("no 2-D context")?
        .unchecked_into();
    let paper = crate::charts::palette::paper();
    ctx.set_fill_style_str(&format!("rgb({},{},{})", paper.0, paper.1, paper.2));
    ctx.fill_rect(0.0, 0.0, width as f64, height as f64);
    let mut x = 0.0;
    for c in &canvases {
        ctx.draw_image_with_html_canvas_element(c, x, 0.0)?;
        x += (c.width() + GAP) as f64;
    }
    download(&sheet.to_data_url()?, &format!("{name}.png"))
}
