//! One drawing backend type for the figures that is either the page's canvas or an SVG document,
//! so the same chart code (generic in `src/charts`) can also be saved as SVG ("Download SVG"):
//! `draw_on` renders to SVG instead of the canvas while a capture is active.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};
use plotters_canvas::CanvasBackend;
use std::cell::RefCell;
use wasm_bindgen::JsCast;
use web_sys::HtmlCanvasElement;

#[derive(Debug)]
pub struct AnyError(String);

impl std::fmt::Display for AnyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AnyError {}

pub enum AnyBackend<'a> {
    /// The canvas's backend, and the canvas (for the images it copies in one call).
    Canvas(CanvasBackend, HtmlCanvasElement),
    Svg(SVGBackend<'a>),
}

fn conv<E: std::error::Error + Send + Sync>(e: DrawingErrorKind<E>) -> DrawingErrorKind<AnyError> {
    match e {
        DrawingErrorKind::DrawingError(e) => {
            DrawingErrorKind::DrawingError(AnyError(e.to_string()))
        }
        DrawingErrorKind::FontError(f) => DrawingErrorKind::FontError(f),
    }
}

macro_rules! delegate {
    ($self:ident, $b:ident => $call:expr) => {
        match $self {
            AnyBackend::Canvas($b, _) => $call.map_err(conv),
            AnyBackend::Svg($b) => $call.map_err(conv),
        }
    };
}

impl DrawingBackend for AnyBackend<'_> {
    type ErrorType = AnyError;

    fn get_size(&self) -> (u32, u32) {
        match self {
            AnyBackend::Canvas(b, _) => b.get_size(),
            AnyBackend::Svg(b) => b.get_size(),
        }
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<AnyError>> {
        delegate!(self, b => b.ensure_prepared())
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<AnyError>> {
        delegate!(self, b => b.present())
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<AnyError>> {
        delegate!(self, b => b.draw_pixel(point, color))
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<AnyError>> {
        delegate!(self, b => b.draw_line(from, to, style))
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<AnyError>> {
        delegate!(self, b => b.draw_rect(upper_left, bottom_right, style, fill))
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<AnyError>> {
        delegate!(self, b => b.draw_path(path, style))
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<AnyError>> {
        delegate!(self, b => b.draw_circle(center, radius, style, fill))
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<AnyError>> {
        delegate!(self, b => b.fill_polygon(vert, style))
    }

    fn draw_text<TStyle: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<AnyError>> {
        delegate!(self, b => b.draw_text(text, style, pos))
    }

    /// An RGB image: on the canvas one `putImageData`; in an SVG one rectangle per run of equal
    /// pixels in a run of equal rows (plotters would draw every pixel on its own).
    fn blit_bitmap(
        &mut self,
        (x, y): BackendCoord,
        (w, h): (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<AnyError>> {
        let (w, h) = (w as usize, h as usize);
        if src.len() < w * h * 3 {
            return Err(DrawingErrorKind::DrawingError(AnyError(
                "an image shorter than its size".into(),
            )));
        }
        match self {
            AnyBackend::Canvas(_, canvas) => {
                let mut rgba = Vec::with_capacity(w * h * 4);
                for p in src[..w * h * 3].chunks_exact(3) {
                    rgba.extend([p[0], p[1], p[2], 255]);
                }
                let failed = |e: wasm_bindgen::JsValue| {
                    DrawingErrorKind::DrawingError(AnyError(format!("{e:?}")))
                };
                let context: web_sys::CanvasRenderingContext2d = canvas
                    .get_context("2d")
                    .map_err(failed)?
                    .ok_or_else(|| failed("canvas has no 2-D context".into()))?
                    .dyn_into::<web_sys::CanvasRenderingContext2d>()
                    .map_err(|_| failed("not a 2-D context".into()))?;
                let image = web_sys::ImageData::new_with_u8_clamped_array_and_sh(
                    wasm_bindgen::Clamped(&rgba),
                    w as u32,
                    h as u32,
                )
                .map_err(failed)?;
                context
                    .put_image_data(&image, x as f64, y as f64)
                    .map_err(failed)
            }
            AnyBackend::Svg(b) => {
                let row = |r: usize| &src[r * w * 3..(r + 1) * w * 3];
                let mut r0 = 0;
                while r0 < h {
                    let mut r1 = r0 + 1;
                    while r1 < h && row(r1) == row(r0) {
                        r1 += 1;
                    }
                    let pixels = row(r0);
                    let mut c0 = 0;
                    while c0 < w {
                        let mut c1 = c0 + 1;
                        while c1 < w && pixels[c1 * 3..c1 * 3 + 3] == pixels[c0 * 3..c0 * 3 + 3] {
                            c1 += 1;
                        }
                        let rgb = (pixels[c0 * 3], pixels[c0 * 3 + 1], pixels[c0 * 3 + 2]);
                        b.draw_rect(
                            (x + c0 as i32, y + r0 as i32),
                            (x + c1 as i32, y + r1 as i32),
                            &RGBColor(rgb.0, rgb.1, rgb.2).filled(),
                            true,
                        )
                        .map_err(conv)?;
                        c0 = c1;
                    }
                    r0 = r1;
                }
                Ok(())
            }
        }
    }

    /// Plotters measures text in the browser by adding a span with a style attribute to the
    /// page and reading its size: that lays out the whole article each time (tens of ms per
    /// chart on a long page) and is refused by a Content-Security-Policy without
    /// 'unsafe-inline' styles. Text is measured on a detached canvas instead (`measure_text`),
    /// each label in each font once.
    fn estimate_text_size<TStyle: BackendTextStyle>(
        &self,
        text: &str,
        style: &TStyle,
    ) -> Result<(u32, u32), DrawingErrorKind<AnyError>> {
        let key = format!(
            "{}|{}|{}|{text}",
            style.family().as_str(),
            style.style().as_str(),
            style.size()
        );
        if let Some(size) = TEXT_SIZES.with(|m| m.borrow().get(&key).copied()) {
            return Ok(size);
        }
        let font = format!(
            "{} {}px {}",
            style.style().as_str(),
            style.size(),
            style.family().as_str()
        );
        let size = match measure_text(&font, text) {
            Some(size) => size,
            None => delegate!(self, b => b.estimate_text_size(text, style))?,
        };
        TEXT_SIZES.with(|m| {
            let mut m = m.borrow_mut();
            if m.len() >= TEXT_SIZES_MAX {
                m.clear();
            }
            m.insert(key, size);
        });
        Ok(size)
    }
}

/// The width and height (the font's ascent plus descent) of `text` in CSS font `font`, measured
/// on a canvas that is never attached to the page.
fn measure_text(font: &str, text: &str) -> Option<(u32, u32)> {
    use wasm_bindgen::JsCast;
    MEASURE.with(|m| {
        let mut m = m.borrow_mut();
        if m.is_none() {
            let canvas = web_sys::window()?
                .document()?
                .create_element("canvas")
                .ok()?
                .dyn_into::<HtmlCanvasElement>()
                .ok()?;
            *m = canvas
                .get_context("2d")
                .ok()
                .flatten()
                .and_then(|c| c.dyn_into().ok());
        }
        let ctx = m.as_ref()?;
        ctx.set_font(font);
        let metrics = ctx.measure_text(text).ok()?;
        let height = metrics.font_bounding_box_ascent() + metrics.font_bounding_box_descent();
        Some((metrics.width().ceil() as u32, height.ceil() as u32))
    })
}

/// Text measurements kept before the cache starts afresh.
const TEXT_SIZES_MAX: usize = 4096;

thread_local! {
    /// The context `measure_text` measures with.
    static MEASURE: RefCell<Option<web_sys::CanvasRenderingContext2d>> = const { RefCell::new(None) };
    /// Measured text sizes by font and text.
    static TEXT_SIZES: RefCell<std::collections::HashMap<String, (u32, u32)>> =
        RefCell::new(std::collections::HashMap::new());
    /// While Some, `draw_on` renders SVG documents here instead of drawing on canvases.
    static CAPTURE: RefCell<Option<Vec<(HtmlCanvasElement, String)>>> = const { RefCell::new(None) };
}

/// Runs `draw` with every `draw_on` rendering SVG, and returns the documents by canvas.
pub fn capture_svg(draw: impl FnOnce()) -> Vec<(HtmlCanvasElement, String)> {
    CAPTURE.with(|c| *c.borrow_mut() = Some(Vec::new()));
    draw();
    CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default()
}

fn plotting_error<E: std::fmt::Debug>(e: E) -> wasm_bindgen::JsValue {
    wasm_bindgen::JsValue::from_str(&format!("drawing failed: {e:?}"))
}

/// Runs a chart function on a canvas (or, during `capture_svg`, into an SVG of its size).
pub fn draw_on<F, E>(canvas: &HtmlCanvasElement, chart: F) -> Result<(), wasm_bindgen::JsValue>
where
    F: for<'b> FnOnce(&DrawingArea<AnyBackend<'b>, Shift>) -> Result<(), E>,
    E: std::fmt::Debug,
{
    // A figure inside an element with data-theme="light" or "dark" keeps that theme.
    let forced = canvas
        .closest("[data-theme]")
        .ok()
        .flatten()
        .and_then(|e| e.get_attribute("data-theme"))
        .and_then(|t| match t.as_str() {
            "dark" => Some(true),
            "light" => Some(false),
            _ => None,
        });
    crate::charts::palette::with_theme(forced, || render(canvas, chart))
}

fn render<F, E>(canvas: &HtmlCanvasElement, chart: F) -> Result<(), wasm_bindgen::JsValue>
where
    F: for<'b> FnOnce(&DrawingArea<AnyBackend<'b>, Shift>) -> Result<(), E>,
    E: std::fmt::Debug,
{
    if CAPTURE.with(|c| c.borrow().is_some()) {
        let mut svg = String::new();
        {
            let backend = AnyBackend::Svg(SVGBackend::with_string(
                &mut svg,
                (canvas.width(), canvas.height()),
            ));
            let area = backend.into_drawing_area();
            chart(&area).map_err(plotting_error)?;
            area.present().map_err(plotting_error)?;
        }
        CAPTURE.with(|c| {
            if let Some(list) = c.borrow_mut().as_mut() {
                list.push((canvas.clone(), svg));
            }
        });
        return Ok(());
    }
    let backend = CanvasBackend::with_canvas_object(canvas.clone())
        .ok_or_else(|| wasm_bindgen::JsValue::from_str("canvas has no 2-D context"))?;
    let area = AnyBackend::Canvas(backend, canvas.clone()).into_drawing_area();
    chart(&area).map_err(plotting_error)?;
    area.present().map_err(plotting_error)
}
