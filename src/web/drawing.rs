//! One drawing backend type for the figures that is either the page's canvas or an SVG document,
//! so the same chart code (generic in `src/charts`) can also be saved as SVG ("Download SVG"):
//! `draw_on` renders to SVG instead of the canvas while a capture is active.

use crate::charts::layout::Fit;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};
use plotters_canvas::CanvasBackend;
use std::cell::{Cell, RefCell};
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
    Canvas(Canvas),
    Svg(SVGBackend<'a>),
}

/// Plotters' canvas backend, with the canvas's context for what this module draws itself:
/// images in one call, and dots and lines without setting the style for each. Plotters' backend
/// formats the colour as a CSS string that the browser parses again for every shape, which is
/// most of the cost of a scene of a few thousand dots; here a run of shapes in one style sets it
/// once.
pub struct Canvas {
    backend: CanvasBackend,
    context: web_sys::CanvasRenderingContext2d,
    /// The fill colour, and the stroke colour and width, this module last set on the context;
    /// None once plotters' backend drew (it sets its own).
    fill: Option<Style>,
    stroke: Option<(Style, u32)>,
    /// The font, alignment and baseline this module last set.
    text: Option<(String, &'static str, &'static str)>,
    /// The size charts draw at, in CSS pixels (the canvas holds it times the device's ratio).
    size: (u32, u32),
}

/// A colour as compared for reuse: (r, g, b) and the alpha's bits.
type Style = ((u8, u8, u8), u64);

fn style_of(color: BackendColor) -> Style {
    (color.rgb, color.alpha.to_bits())
}

fn css(color: BackendColor) -> String {
    let (r, g, b) = color.rgb;
    format!("rgba({r},{g},{b},{})", color.alpha)
}

impl Canvas {
    /// The canvas's context, scaled so that charts draw in `size`'s CSS pixels whatever the
    /// device's pixel ratio; images are scaled without smoothing (a digit's pixels stay square).
    fn new(canvas: &HtmlCanvasElement, size: (u32, u32)) -> Option<Canvas> {
        let context = canvas
            .get_context("2d")
            .ok()
            .flatten()?
            .dyn_into::<web_sys::CanvasRenderingContext2d>()
            .ok()?;
        let scale = |pixels: u32, css: u32| pixels as f64 / css.max(1) as f64;
        let (sx, sy) = (
            scale(canvas.width(), size.0),
            scale(canvas.height(), size.1),
        );
        context.set_transform(sx, 0.0, 0.0, sy, 0.0, 0.0).ok()?;
        context.set_image_smoothing_enabled(false);
        Some(Canvas {
            backend: CanvasBackend::with_canvas_object(canvas.clone())?,
            context,
            fill: None,
            stroke: None,
            text: None,
            size,
        })
    }

    /// Plotters' backend, which sets the context's styles as it likes.
    fn plotters(&mut self) -> &mut CanvasBackend {
        self.forget();
        &mut self.backend
    }

    /// After something else set the context's styles.
    fn forget(&mut self) {
        self.fill = None;
        self.stroke = None;
        self.text = None;
    }

    /// Plotters' canvas text (the same font string, anchor and rotation), with the font and
    /// the anchor set only when they change: the browser parses a font string every time.
    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        (x, y): BackendCoord,
    ) -> Result<(), wasm_bindgen::JsValue> {
        use plotters_backend::text_anchor::{HPos, VPos};
        use plotters_backend::FontTransform;
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let turn = match style.transform() {
            FontTransform::None => 0.0,
            FontTransform::Rotate90 => 0.5,
            FontTransform::Rotate180 => 1.0,
            FontTransform::Rotate270 => 1.5,
        };
        let (x, y) = match turn != 0.0 {
            true => {
                self.context.save();
                self.context.translate(x as f64, y as f64)?;
                self.context.rotate(turn * std::f64::consts::PI)?;
                (0.0, 0.0)
            }
            false => (x as f64, y as f64),
        };
        let baseline = match style.anchor().v_pos {
            VPos::Top => "top",
            VPos::Center => "middle",
            VPos::Bottom => "bottom",
        };
        let align = match style.anchor().h_pos {
            HPos::Left => "start",
            HPos::Right => "end",
            HPos::Center => "center",
        };
        let font = format!(
            "{} {}px {}",
            style.style().as_str(),
            style.size(),
            style.family().as_str()
        );
        let same = |(f, a, b): &(String, &str, &str)| *f == font && *a == align && *b == baseline;
        if !self.text.as_ref().is_some_and(same) {
            self.context.set_text_baseline(baseline);
            self.context.set_text_align(align);
            self.context.set_font(&font);
            self.text = Some((font, align, baseline));
        }
        self.set_fill(color);
        let drawn = self.context.fill_text(text, x, y);
        if turn != 0.0 {
            // Back to the styles from before the rotation, which this module no longer knows.
            self.context.restore();
            self.forget();
        }
        drawn
    }

    fn set_fill(&mut self, color: BackendColor) {
        if self.fill != Some(style_of(color)) {
            self.context.set_fill_style_str(&css(color));
            self.fill = Some(style_of(color));
        }
    }

    fn set_stroke(&mut self, color: BackendColor, width: u32) {
        if self.stroke != Some((style_of(color), width)) {
            self.context.set_stroke_style_str(&css(color));
            self.context.set_line_width(width as f64);
            self.stroke = Some((style_of(color), width));
        }
    }
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
            AnyBackend::Canvas(c) => {
                let $b = c.plotters();
                $call.map_err(conv)
            }
            AnyBackend::Svg($b) => $call.map_err(conv),
        }
    };
}

impl DrawingBackend for AnyBackend<'_> {
    type ErrorType = AnyError;

    fn get_size(&self) -> (u32, u32) {
        match self {
            AnyBackend::Canvas(c) => c.size,
            AnyBackend::Svg(b) => b.get_size(),
        }
    }

    // Before every shape: nothing to do on a canvas, whose styles stay as they are.
    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<AnyError>> {
        match self {
            AnyBackend::Canvas(c) => c.backend.ensure_prepared().map_err(conv),
            AnyBackend::Svg(b) => b.ensure_prepared().map_err(conv),
        }
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<AnyError>> {
        match self {
            AnyBackend::Canvas(c) => c.backend.present().map_err(conv),
            AnyBackend::Svg(b) => b.present().map_err(conv),
        }
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
        match self {
            // Plotters' canvas arithmetic (a vertical or horizontal line on the pixel's
            // centre), with the style set only when it changes.
            AnyBackend::Canvas(c) => {
                if style.color().alpha == 0.0 {
                    return Ok(());
                }
                let half = |a: i32, b: i32| if a == b { 0.5 } else { 0.0 };
                let (dx, dy) = (half(from.0, to.0), half(from.1, to.1));
                c.set_stroke(style.color(), style.stroke_width());
                c.context.begin_path();
                c.context.move_to(from.0 as f64 - dx, from.1 as f64 - dy);
                c.context.line_to(to.0 as f64 - dx, to.1 as f64 - dy);
                c.context.stroke();
                Ok(())
            }
            AnyBackend::Svg(b) => b.draw_line(from, to, style).map_err(conv),
        }
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
        match self {
            // Plotters' canvas arithmetic, with the style set only when it changes.
            AnyBackend::Canvas(c) => {
                if style.color().alpha == 0.0 {
                    return Ok(());
                }
                match fill {
                    true => c.set_fill(style.color()),
                    false => c.set_stroke(style.color(), style.stroke_width()),
                }
                c.context.begin_path();
                let (x, y, r) = (center.0 as f64, center.1 as f64, radius as f64);
                c.context
                    .arc(x, y, r, 0.0, std::f64::consts::TAU)
                    .map_err(|e| DrawingErrorKind::DrawingError(AnyError(format!("{e:?}"))))?;
                match fill {
                    true => c.context.fill(),
                    false => c.context.stroke(),
                }
                Ok(())
            }
            AnyBackend::Svg(b) => b.draw_circle(center, radius, style, fill).map_err(conv),
        }
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
        match self {
            AnyBackend::Canvas(c) => c
                .draw_text(text, style, pos)
                .map_err(|e| DrawingErrorKind::DrawingError(AnyError(format!("{e:?}")))),
            AnyBackend::Svg(b) => b.draw_text(text, style, pos).map_err(conv),
        }
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
            AnyBackend::Canvas(c) => {
                let mut rgba = Vec::with_capacity(w * h * 4);
                for p in src[..w * h * 3].chunks_exact(3) {
                    rgba.extend([p[0], p[1], p[2], 255]);
                }
                let failed = |e: wasm_bindgen::JsValue| {
                    DrawingErrorKind::DrawingError(AnyError(format!("{e:?}")))
                };
                let image = web_sys::ImageData::new_with_u8_clamped_array_and_sh(
                    wasm_bindgen::Clamped(&rgba),
                    w as u32,
                    h as u32,
                )
                .map_err(failed)?;
                // putImageData ignores the context's scale: the image goes through a canvas of
                // its own, drawn scaled like everything else.
                let (w, h) = (w as f64, h as f64);
                with_scratch((w, h), |scratch, context| {
                    context.put_image_data(&image, 0.0, 0.0)?;
                    c.context.draw_image_with_html_canvas_element_and_sw_and_sh_and_dx_and_dy_and_dw_and_dh(
                        scratch, 0.0, 0.0, w, h, x as f64, y as f64, w, h,
                    )
                })
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
            None => match self {
                AnyBackend::Canvas(c) => c.backend.estimate_text_size(text, style).map_err(conv),
                AnyBackend::Svg(b) => b.estimate_text_size(text, style).map_err(conv),
            }?,
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
/// on the canvas that is never shown (`with_scratch`).
fn measure_text(font: &str, text: &str) -> Option<(u32, u32)> {
    with_scratch((0.0, 0.0), |_, context| {
        context.set_font(font);
        context.measure_text(text)
    })
    .ok()
    .map(|metrics| {
        let height = metrics.font_bounding_box_ascent() + metrics.font_bounding_box_descent();
        (metrics.width().ceil() as u32, height.ceil() as u32)
    })
}

/// Text measurements kept before the cache starts afresh.
const TEXT_SIZES_MAX: usize = 4096;

thread_local! {
    /// The canvas that is never shown, with its context: images are copied through it
    /// (`blit_bitmap`) and text is measured on it (`with_scratch`).
    static SCRATCH: RefCell<Option<(HtmlCanvasElement, web_sys::CanvasRenderingContext2d)>> =
        const { RefCell::new(None) };
    /// The canvases drawn at the width they are shown at (`fit`).
    static FITTED: RefCell<Vec<Fitted>> = const { RefCell::new(Vec::new()) };
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
    let size = fit_now(canvas)?;
    if CAPTURE.with(|c| c.borrow().is_some()) {
        let mut svg = String::new();
        {
            let backend = AnyBackend::Svg(SVGBackend::with_string(&mut svg, size));
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
    let backend = Canvas::new(canvas, size)
        .ok_or_else(|| wasm_bindgen::JsValue::from_str("canvas has no 2-D context"))?;
    let area = AnyBackend::Canvas(backend).into_drawing_area();
    chart(&area).map_err(plotting_error)?;
    area.present().map_err(plotting_error)
}

/// A canvas whose chart is drawn at the width it is shown at (`fit`).
struct Fitted {
    canvas: HtmlCanvasElement,
    fit: Fit,
    /// The width shown, in CSS pixels, as the page's resize observer last reported it (0: not
    /// yet).
    shown: Cell<u32>,
    /// The chart's size when last drawn, in CSS pixels.
    drawn: Cell<(u32, u32)>,
}

/// From now on `canvas` is drawn at the width it is shown at, `fit` giving its height, at the
/// device's resolution: text, lines and markers keep their CSS size on any screen.
pub fn fit(canvas: &HtmlCanvasElement, fit: Fit) {
    FITTED.with(|f| {
        f.borrow_mut().push(Fitted {
            canvas: canvas.clone(),
            fit,
            shown: Cell::new(0),
            drawn: Cell::new((0, 0)),
        })
    });
}

/// The size the chart on `canvas` is drawn at, in CSS pixels (its own size if not fitted):
/// where a pointer is, in the chart's coordinates.
pub fn chart_size(canvas: &HtmlCanvasElement) -> (u32, u32) {
    FITTED
        .with(|f| {
            f.borrow()
                .iter()
                .find(|c| &c.canvas == canvas)
                .map(|c| c.drawn.get())
        })
        .filter(|s| s.0 > 0)
        .unwrap_or((canvas.width(), canvas.height()))
}

/// Sizes a fitted canvas for the width it is shown at (its pixels: that size times the device's
/// pixel ratio; its CSS height: its fit's); the chart's size in CSS pixels. An unfitted canvas,
/// or one not shown, keeps its size.
fn fit_now(canvas: &HtmlCanvasElement) -> Result<(u32, u32), wasm_bindgen::JsValue> {
    let own = (canvas.width(), canvas.height());
    FITTED.with(|f| {
        let f = f.borrow();
        let Some(c) = f.iter().find(|c| &c.canvas == canvas) else {
            return Ok(own);
        };
        // Before the observer's first report, the layout is read once.
        let width = match c.shown.get() {
            0 => canvas.client_width().max(0) as u32,
            w => w,
        };
        if width == 0 {
            return Ok(match c.drawn.get() {
                (0, _) => own,
                drawn => drawn,
            });
        }
        let height = c.fit.height(width);
        let ratio = web_sys::window()
            .map_or(1.0, |w| w.device_pixel_ratio())
            .max(1.0);
        let pixels = |css: u32| (css as f64 * ratio).round() as u32;
        if canvas.width() != pixels(width) {
            canvas.set_width(pixels(width));
        }
        if canvas.height() != pixels(height) {
            canvas.set_height(pixels(height));
        }
        if c.drawn.get().1 != height {
            canvas
                .style()
                .set_property("height", &format!("{height}px"))?;
        }
        c.drawn.set((width, height));
        Ok((width, height))
    })
}

/// Observes the fitted canvases inside `root`: when one is shown at a new width, `resized` is
/// called (the figure draws again). Dropped (its figure removed or rebuilt), it stops and forgets
/// those canvases: only them, since a rebuilt figure's new canvases are in the same root.
pub struct Observer {
    observer: web_sys::ResizeObserver,
    canvases: Vec<HtmlCanvasElement>,
    _callback: wasm_bindgen::closure::Closure<dyn FnMut(js_sys::Array)>,
}

impl Observer {
    pub fn new(
        root: &web_sys::Element,
        resized: impl Fn() + 'static,
    ) -> Result<Observer, wasm_bindgen::JsValue> {
        let callback = wasm_bindgen::closure::Closure::<dyn FnMut(js_sys::Array)>::new(
            move |entries: js_sys::Array| {
                let mut changed = false;
                for entry in entries.iter() {
                    let Ok(entry) = entry.dyn_into::<web_sys::ResizeObserverEntry>() else {
                        continue;
                    };
                    let width = entry.content_rect().width().round().max(0.0) as u32;
                    let target = entry.target();
                    FITTED.with(|f| {
                        for c in f.borrow().iter() {
                            if c.canvas.as_ref() as &web_sys::Element == &target
                                && c.shown.replace(width) != width
                                && c.drawn.get().0 != width
                            {
                                changed = true;
                            }
                        }
                    });
                }
                if changed {
                    resized();
                }
            },
        );
        let observer = web_sys::ResizeObserver::new(callback.as_ref().unchecked_ref())?;
        let canvases: Vec<HtmlCanvasElement> = FITTED.with(|f| {
            f.borrow()
                .iter()
                .filter(|c| root.contains(Some(&c.canvas)))
                .map(|c| c.canvas.clone())
                .collect()
        });
        for c in &canvases {
            observer.observe(c);
        }
        Ok(Observer {
            observer,
            canvases,
            _callback: callback,
        })
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.observer.disconnect();
        FITTED.with(|f| {
            f.borrow_mut()
                .retain(|c| !self.canvases.iter().any(|own| own == &c.canvas))
        });
    }
}

/// Runs `f` with a canvas of at least `size` pixels that is never shown, and its context.
fn with_scratch<T>(
    (w, h): (f64, f64),
    f: impl FnOnce(
        &HtmlCanvasElement,
        &web_sys::CanvasRenderingContext2d,
    ) -> Result<T, wasm_bindgen::JsValue>,
) -> Result<T, wasm_bindgen::JsValue> {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_none() {
            let canvas: HtmlCanvasElement = web_sys::window()
                .and_then(|w| w.document())
                .ok_or("no document")?
                .create_element("canvas")?
                .unchecked_into();
            let context = canvas
                .get_context("2d")?
                .ok_or("no 2-D context")?
                .unchecked_into();
            *s = Some((canvas, context));
        }
        let (canvas, context) = s.as_ref().ok_or("no scratch canvas")?;
        if (canvas.width() as f64) < w || (canvas.height() as f64) < h {
            canvas.set_width(canvas.width().max(w as u32));
            canvas.set_height(canvas.height().max(h as u32));
        }
        f(canvas, context)
    })
}
