//! Histograms with labelled axes and an optional marked value.

use super::{palette, sans, DrawResult};
use crate::flow::metrics::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;

pub struct HistogramView<'a> {
    pub histogram: &'a Histogram,
    pub title: &'a str,
    pub x_label: &'a str,
    /// A vertical line (value, label), e.g. a threshold.
    pub marker: Option<(f32, &'a str)>,
}

pub fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    view: &HistogramView<'_>,
) -> DrawResult<DB> {
    area.fill(&palette::paper())?;
    let h = view.histogram;
    let total = h.total().max(1) as f64;
    let peak = h.counts.iter().copied().max().unwrap_or(0) as f64 / total;
    let top = (peak * 1.15).max(0.05);
    let (lo, hi) = (h.lo as f64, h.hi as f64);
    let mut chart =
        super::titled(area, view.title, 10, (38, 48)).build_cartesian_2d(lo..hi, 0.0..top)?;
    super::mesh(&mut chart, view.x_label, "fraction")
        .disable_x_mesh()
        .x_labels(6)
        .y_labels(5)
        .draw()?;
    let width = h.bin_width() as f64;
    chart.draw_series(h.counts.iter().enumerate().map(|(i, &c)| {
        let x0 = lo + i as f64 * width;
        Rectangle::new(
            [
                (x0 + 0.06 * width, 0.0),
                (x0 + 0.94 * width, c as f64 / total),
            ],
            palette::BAR.filled(),
        )
    }))?;
    if let Some((value, label)) = view.marker {
        let v = value as f64;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(v, 0.0), (v, top)],
            palette::ACCENT.stroke_width(2),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            label.to_string(),
            (v, top * 0.97),
            sans(13.0).color(&palette::ACCENT),
        )))?;
    }
    Ok(())
}
