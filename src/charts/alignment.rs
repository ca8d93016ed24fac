//! Charts of the high-dimension section: cosine histograms as ridgelines (one row per t), the
//! fraction of aligned pairs against t (one curve per resolution), and grids of digit images.

use super::layout::{Grid, CAPTION_LINE, MARGIN};
use super::{draw_legend, palette, ramp, sans, Corner, DrawResult};
use crate::flow::metrics::Histogram;
use plotters::coord::Shift;
use plotters::element::{Drawable, PointCollection};
use plotters::prelude::*;
use plotters_backend::{BackendCoord, DrawingErrorKind};

/// One ridgeline: its label, and its histogram once computed.
pub struct Ridge<'a> {
    pub label: String,
    pub histogram: Option<&'a Histogram>,
}

/// Histograms stacked bottom to top, each scaled to its own peak so every shape reads, over the
/// shared range of their bins. Rows not computed yet show their label only.
pub fn draw_ridgelines<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    range: (f32, f32),
    ridges: &[Ridge],
) -> DrawResult<DB> {
    area.fill(&palette::paper())?;
    let (lo, hi) = (range.0 as f64, range.1 as f64);
    let rows = ridges.len();
    let mut chart = super::titled(area, title, 20, (38, 64))
        .build_cartesian_2d(lo..hi, -0.1..rows as f64 + 0.5)?;
    let labels: Vec<String> = ridges.iter().map(|r| r.label.clone()).collect();
    let label_of = move |v: &f64| {
        let k = v.round();
        if (v - k).abs() < 1e-6 && k >= 0.0 && (k as usize) < labels.len() {
            labels[k as usize].clone()
        } else {
            String::new()
        }
    };
    super::mesh(&mut chart, x_label, "")
        .disable_y_mesh()
        .x_labels(5)
        .y_labels(rows + 1)
        .y_label_formatter(&label_of)
        .draw()?;
    // Top rows first, so lower ridges overlap the ones above them.
    for (k, ridge) in ridges.iter().enumerate().rev() {
        let base = k as f64;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(lo, base), (hi, base)],
            palette::grid().stroke_width(1),
        )))?;
        let Some(h) = ridge.histogram else { continue };
        let peak = h.counts.iter().copied().max().unwrap_or(0).max(1) as f64;
        let width = h.bin_width() as f64;
        let mut outline: Vec<(f64, f64)> = vec![(lo, base)];
        for (i, &c) in h.counts.iter().enumerate() {
            let y = base + 1.3 * c as f64 / peak;
            outline.push((h.lo as f64 + i as f64 * width, y));
            outline.push((h.lo as f64 + (i + 1) as f64 * width, y));
        }
        outline.push((hi, base));
        let color = ramp(0.15 + 0.7 * k as f64 / rows.max(1) as f64);
        chart.draw_series(std::iter::once(Polygon::new(
            outline.clone(),
            color.mix(0.75).filled(),
        )))?;
        chart.draw_series(std::iter::once(PathElement::new(
            outline,
            palette::paper().stroke_width(1),
        )))?;
    }
    Ok(())
}

/// One curve of `draw_fractions`: its label and (t, value) points computed so far.
pub struct Curve<'a> {
    pub label: String,
    pub points: &'a [(f32, f32)],
}

/// Curves over t in [0, 1] with values in [0, 1], one colour per curve along the ramp.
pub fn draw_fractions<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    y_label: &str,
    curves: &[Curve],
) -> DrawResult<DB> {
    area.fill(&palette::paper())?;
    let mut chart =
        super::titled(area, title, 20, (38, 52)).build_cartesian_2d(0.0..1.0f64, 0.0..1.02f64)?;
    super::mesh(&mut chart, "t", y_label)
        .x_labels(6)
        .y_labels(6)
        .draw()?;
    let count = curves.len().max(2) - 1;
    let mut legend = Vec::with_capacity(curves.len());
    for (k, curve) in curves.iter().enumerate() {
        let color = ramp(0.85 * k as f64 / count as f64);
        let pts: Vec<(f64, f64)> = curve
            .points
            .iter()
            .map(|&(t, v)| (t as f64, v as f64))
            .collect();
        chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?;
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
        legend.push((curve.label.as_str(), color.stroke_width(2)));
    }
    draw_legend(
        &chart.plotting_area().strip_coord_spec(),
        &legend,
        // The shares start near 1 at small t and fall at large t: the lower left stays clear.
        Corner::LowerLeft,
    )
}

/// Both sides of the objective against t: `points` are (t, E‖x1 − x0 − u*‖², E‖x1 − x0‖²) as
/// computed so far. The first is drawn with its points, the second (the target's own size, the
/// same pairs at every t) as a line for scale; the y axis starts at 0 so the two compare by eye.
pub fn draw_target_variance<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    points: &[(f32, f64, f64)],
) -> DrawResult<DB> {
    area.fill(&palette::paper())?;
    let top = points
        .iter()
        .flat_map(|&(_, r, e)| [r, e])
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    // Headroom above the target's line for the legend.
    let top = if top > 0.0 { top * 1.45 } else { 1.0 };
    let mut chart =
        super::titled(area, title, 20, (38, 56)).build_cartesian_2d(0.0..1.0f64, 0.0..top)?;
    super::mesh(&mut chart, "t", "mean over 256 pairs")
        .y_label_formatter(&|v| super::scenes::short(*v as f32))
        .x_labels(6)
        .y_labels(6)
        .draw()?;
    let energy = palette::muted().stroke_width(2);
    let residual = palette::ACCENT.stroke_width(2);
    chart.draw_series(LineSeries::new(
        points.iter().map(|&(t, _, e)| (t as f64, e)),
        energy,
    ))?;
    let gap: Vec<(f64, f64)> = points.iter().map(|&(t, r, _)| (t as f64, r)).collect();
    chart.draw_series(LineSeries::new(gap.clone(), residual))?;
    chart.draw_series(
        gap.into_iter()
            .map(|p| Circle::new(p, 3, palette::ACCENT.filled())),
    )?;
    draw_legend(
        &chart.plotting_area().strip_coord_spec(),
        &[
            ("E‖x1 − x0‖²  (the target)", energy),
            ("E‖x1 − x0 − û*(x_t, t)‖²", residual),
        ],
        Corner::UpperRight,
    )
}

/// One cell of `draw_digit_grid`: pixels in [-1, 1] (side x side) and a caption under it.
pub struct Cell<'a> {
    pub pixels: &'a [f32],
    pub caption: String,
}

/// Rows of square grey-scale images (white digit on black, as MNIST), each with a caption, an
/// optional header over each column and an optional label over each row (a reader should not
/// have to learn from the status line which row is which), placed by `grid`'s layout for the
/// area's width (on a phone a row wraps onto several lines). Empty cells keep their place.
pub fn draw_digit_grid<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    grid: &Grid,
    headers: &[String],
    labels: &[String],
    rows: &[Vec<Option<Cell>>],
) -> DrawResult<DB> {
    area.fill(&palette::paper())?;
    let layout = grid.layout(area.dim_in_pixel().0);
    let side = grid.side as usize;
    let font = sans(12.0).color(&palette::ink());
    let muted = sans(11.0).color(&palette::muted());
    for (r, row) in rows.iter().enumerate().take(grid.rows as usize) {
        if let Some(label) = labels.get(r) {
            let y = layout.label_top(grid, r as u32) as i32 + 2;
            let room = area.dim_in_pixel().0.saturating_sub(2 * MARGIN + 2);
            let size = super::fitting_size(area, label, 12.0, room);
            let label_font = sans(size).color(&palette::ink());
            area.draw(&Text::new(
                label.clone(),
                (MARGIN as i32 + 2, y),
                label_font,
            ))?;
        }
        for (c, cell) in row.iter().enumerate().take(grid.columns as usize) {
            let ((x0, y0), top) = layout.cell(grid, r as u32, c as u32);
            let image = layout.image as i32;
            // Headers and captions centred on their image, within the cell.
            let centred = |text: &str, font: &TextStyle<'_>| -> Result<i32, _> {
                let w = area.estimate_text_size(text, font)?.0 as i32;
                let left = x0 - (layout.cell_width as i32 - image) / 2;
                Ok((x0 + image / 2 - w / 2).max(left))
            };
            if let Some(header) = headers.get(c) {
                let x = centred(header, &font)?;
                area.draw(&Text::new(header.clone(), (x, top + 1), font.clone()))?;
            }
            let Some(cell) = cell else {
                area.draw(&Rectangle::new(
                    [(x0, y0), (x0 + image, y0 + image)],
                    palette::grid().filled(),
                ))?;
                continue;
            };
            // One image per cell (a canvas copies it in one call; a pixel at a time cost tens of
            // milliseconds per redraw), each pixel scale x scale.
            let (edge, px) = (layout.image as usize, layout.scale as usize);
            let mut rgb = Vec::with_capacity(edge * edge * 3);
            for y in 0..edge {
                let row = &cell.pixels[(y / px) * side..][..side];
                for x in 0..edge {
                    let g = ((row[x / px].clamp(-1.0, 1.0) + 1.0) * 127.5) as u8;
                    rgb.extend([g, g, g]);
                }
            }
            area.draw(&RgbImage {
                pos: (x0, y0),
                size: (layout.image, layout.image),
                rgb: &rgb,
            })?;
            let width = layout.cell_width.saturating_sub(4);
            let mut lines = super::wrap(area, &cell.caption, &muted, width)?;
            lines.truncate(layout.caption_lines as usize);
            for (k, line) in lines.into_iter().enumerate() {
                let y = y0 + image + 2 + (k as u32 * CAPTION_LINE) as i32;
                let x = centred(&line, &muted)?;
                area.draw(&Text::new(line, (x, y), muted.clone()))?;
            }
        }
    }
    Ok(())
}

/// An RGB image (3 bytes a pixel, row-major) drawn through the backend's `blit_bitmap`: plotters'
/// own `BitMapElement` needs its bitmap backend, which the page does not otherwise use.
pub struct RgbImage<'a> {
    pub pos: (i32, i32),
    pub size: (u32, u32),
    pub rgb: &'a [u8],
}

impl<'a> PointCollection<'a, (i32, i32)> for &'a RgbImage<'_> {
    type Point = &'a (i32, i32);
    type IntoIter = std::iter::Once<&'a (i32, i32)>;
    fn point_iter(self) -> Self::IntoIter {
        std::iter::once(&self.pos)
    }
}

impl<DB: DrawingBackend> Drawable<DB> for RgbImage<'_> {
    fn draw<I: Iterator<Item = BackendCoord>>(
        &self,
        mut points: I,
        backend: &mut DB,
        _: (u32, u32),
    ) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
        match points.next() {
            Some(at) => backend.blit_bitmap(at, self.size, self.rgb),
            None => Ok(()),
        }
    }
}
