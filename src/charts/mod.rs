//! Drawings as functions of (data, DrawingBackend): the same code draws on a canvas in the page
//! and into an SVG or bitmap elsewhere. Pure geometry (scenes) is built here too; nothing here
//! computes flow-matching quantities.

pub mod alignment;
pub mod curves;
pub mod histogram;
pub mod layout;
pub mod plane;
pub mod scenes;

use plotters::chart::{ChartContext, MeshStyle};
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::prelude::*;

/// The charts' one typeface, at `size` pixels: the browser's sans-serif. Named by its variant,
/// not by the string "sans-serif": plotters parses a family's name through `str::to_lowercase`,
/// which would bring Unicode's case tables into the module (about 4 KB gzipped) for one word.
pub fn sans(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::SansSerif, size, FontStyle::Normal)
}

pub type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Where a legend sits in a chart's plotting area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corner {
    UpperRight,
    MiddleRight,
    LowerRight,
    LowerLeft,
}

/// The font size, from `size` down to 11 px (the smallest the page draws), at which `text` fits
/// in `room` pixels as `area` measures it: a chart on a phone keeps its titles whole.
pub fn fitting_size<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    text: &str,
    size: f64,
    room: u32,
) -> f64 {
    match area.estimate_text_size(text, &sans(size).into_text_style(area)) {
        Ok((w, _)) if w > room && w > 0 => (size * room as f64 / w as f64).floor().max(11.0),
        _ => size,
    }
}

/// `text` broken at spaces into lines no wider than `width` as `font` measures on `area` (a
/// word wider than the width keeps a line of its own).
pub fn wrap<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    text: &str,
    font: &TextStyle<'_>,
    width: u32,
) -> Result<Vec<String>, DrawingAreaErrorKind<DB::ErrorType>> {
    let mut out: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let longer = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        if line.is_empty() || area.estimate_text_size(&longer, font)?.0 <= width {
            line = longer;
        } else {
            out.push(std::mem::replace(&mut line, word.to_string()));
        }
    }
    if !line.is_empty() {
        out.push(line);
    }
    Ok(out)
}

/// A legend of line samples in `corner` of `area` (a chart's plotting area); a label too long
/// for the area (a phone) wraps. Plotters' own series labels measure their text through a page
/// element with a style attribute, which a strict Content-Security-Policy refuses; this one
/// measures through the backend (in the browser, the canvas's measureText).
pub fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[(&str, ShapeStyle)],
    corner: Corner,
) -> DrawResult<DB> {
    const PAD: i32 = 6;
    const SAMPLE: i32 = 18;
    const GAP: i32 = 6;
    const MARGIN: i32 = 10;
    const LINE: i32 = 15;
    if entries.is_empty() {
        return Ok(());
    }
    let font = sans(12.0).color(&palette::ink());
    let (area_w, area_h) = area.dim_in_pixel();
    let room = (area_w as i32 - 2 * MARGIN - 2 * PAD - SAMPLE - GAP).max(40) as u32;
    let mut labels = Vec::with_capacity(entries.len());
    for (label, _) in entries {
        labels.push(wrap(area, label, &font, room)?);
    }
    let mut text_w = 0;
    for line in labels.iter().flatten() {
        text_w = text_w.max(area.estimate_text_size(line, &font)?.0 as i32);
    }
    let lines: i32 = labels.iter().map(|l| l.len() as i32).sum();
    let (w, h) = (
        2 * PAD + SAMPLE + GAP + text_w,
        2 * PAD + LINE * lines + 4 * (entries.len() as i32 - 1),
    );
    let x0 = match corner {
        Corner::LowerLeft => MARGIN,
        _ => area_w as i32 - MARGIN - w,
    };
    let y0 = match corner {
        Corner::UpperRight => MARGIN,
        Corner::MiddleRight => (area_h as i32 - h) / 2,
        Corner::LowerRight | Corner::LowerLeft => area_h as i32 - MARGIN - h,
    };
    area.draw(&Rectangle::new(
        [(x0, y0), (x0 + w, y0 + h)],
        palette::paper().mix(0.85).filled(),
    ))?;
    area.draw(&Rectangle::new(
        [(x0, y0), (x0 + w, y0 + h)],
        palette::grid(),
    ))?;
    let text = font.pos(plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Left,
        plotters::style::text_anchor::VPos::Center,
    ));
    let mut y = y0 + PAD + LINE / 2;
    for ((_, style), label) in entries.iter().zip(&labels) {
        let x = x0 + PAD;
        area.draw(&PathElement::new(vec![(x, y), (x + SAMPLE, y)], *style))?;
        for line in label {
            area.draw(&Text::new(
                line.clone(),
                (x + SAMPLE + GAP, y),
                text.clone(),
            ))?;
            y += LINE;
        }
        y += 4;
    }
    Ok(())
}

/// A chart on `area` with the page's title style: `title` above (smaller where the area is too
/// narrow for it), a 10-pixel margin (`right` on the right, for the last tick label), and label
/// areas of `x_area` and `y_area` pixels.
pub fn titled<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    right: u32,
    (x_area, y_area): (u32, u32),
) -> ChartBuilder<'a, 'b, DB> {
    let size = fitting_size(area, title, 16.0, area.dim_in_pixel().0.saturating_sub(16));
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(10)
        .margin_right(right)
        .caption(title, sans(size).color(&palette::ink()))
        .x_label_area_size(x_area)
        .y_label_area_size(y_area);
    builder
}

/// The page's axes on `chart`: a grid without minor lines, tick labels in the theme's muted ink
/// and the axis titles in ink. The caller adds label counts and formatters, then draws.
pub fn mesh<'a, 'b, X, Y, XT, YT, DB>(
    chart: &'b mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    x_desc: &str,
    y_desc: &str,
) -> MeshStyle<'a, 'b, X, Y, DB>
where
    X: Ranged<ValueType = XT> + ValueFormatter<XT>,
    Y: Ranged<ValueType = YT> + ValueFormatter<YT>,
    DB: DrawingBackend,
{
    // The axes' titles are centred along the plotting area: on a phone they may need a smaller
    // size to stay whole (one size for both, as plotters styles them).
    let plot = chart.plotting_area().strip_coord_spec();
    let (w, h) = plot.dim_in_pixel();
    let size =
        fitting_size(&plot, x_desc, 14.0, w + 24).min(fitting_size(&plot, y_desc, 14.0, h + 16));
    let mut style = chart.configure_mesh();
    style
        .light_line_style(palette::grid().mix(0.0))
        .bold_line_style(palette::grid())
        .x_desc(x_desc)
        .y_desc(y_desc)
        .axis_desc_style(sans(size).color(&palette::ink()))
        .label_style(sans(12.0).color(&palette::muted()));
    style
}

/// Colours shared by every figure. The neutral ones (paper, ink, muted, grid) follow the theme
/// (`set_dark`, from the reader's `prefers-color-scheme`); the data colours read on both.
///
/// One colour per quantity, in every figure (the article's table of velocities names them):
/// training points DATA; points being carried, x_t and the network's samples PARTICLE (a second
/// network SECOND, several widths the ramp); source points BAR; the conditional target x1 - x0
/// GREY, weighted by lambda; u* ink; the squared distance to u* (the target's spread, the
/// network's gap) ACCENT; held-out references GREY; a field's arrows the ramp, by speed.
pub mod palette {
    use plotters::style::RGBColor;
    use std::cell::Cell;

    thread_local! {
        static DARK: Cell<bool> = const { Cell::new(false) };
        /// A theme forced for the drawing in progress (a figure with its own theme).
        static FORCED: Cell<Option<bool>> = const { Cell::new(None) };
    }

    /// Draw light-on-dark from now on (or not): the reader's preference.
    pub fn set_dark(dark: bool) {
        DARK.with(|d| d.set(dark));
    }

    pub fn is_dark() -> bool {
        FORCED
            .with(Cell::get)
            .unwrap_or_else(|| DARK.with(Cell::get))
    }

    /// Runs `draw` in the given theme (None: the reader's preference).
    pub fn with_theme<T>(dark: Option<bool>, draw: impl FnOnce() -> T) -> T {
        let before = FORCED.with(|f| f.replace(dark));
        let out = draw();
        FORCED.with(|f| f.set(before));
        out
    }

    fn pick(light: RGBColor, dark: RGBColor) -> RGBColor {
        if is_dark() {
            dark
        } else {
            light
        }
    }

    /// The chart background.
    pub fn paper() -> RGBColor {
        pick(RGBColor(255, 255, 255), RGBColor(24, 24, 27))
    }

    pub fn ink() -> RGBColor {
        pick(RGBColor(34, 34, 34), RGBColor(230, 230, 230))
    }

    pub fn muted() -> RGBColor {
        pick(RGBColor(140, 140, 140), RGBColor(160, 160, 165))
    }

    pub fn grid() -> RGBColor {
        pick(RGBColor(232, 232, 232), RGBColor(58, 58, 64))
    }

    pub const DATA: RGBColor = RGBColor(214, 96, 30);
    pub const PARTICLE: RGBColor = RGBColor(40, 96, 200);
    pub const ACCENT: RGBColor = RGBColor(200, 30, 90);
    pub const BAR: RGBColor = RGBColor(90, 120, 190);
    /// The conditional targets x1 - x0 and held-out references: a grey that reads on both themes
    /// (a constant, not the theme's `muted()`, whose calls cost the page's module bytes it lacks).
    pub const GREY: RGBColor = RGBColor(150, 150, 150);
    /// A second series beside PARTICLE (distinct from DATA and ACCENT).
    pub const SECOND: RGBColor = RGBColor(0, 128, 110);
}

/// A viridis-like ramp on [0, 1] (dark purple -> teal -> yellow).
pub fn ramp(v: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let v = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = v * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |p: f64, q: f64| (p + f * (q - p)).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_ends_and_clamps() {
        assert_eq!(ramp(0.0), RGBColor(68, 1, 84));
        assert_eq!(ramp(1.0), RGBColor(253, 231, 37));
        assert_eq!(ramp(7.0), ramp(1.0));
        assert_eq!(ramp(f64::NAN), ramp(0.0));
    }
}
