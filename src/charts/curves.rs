//! Training curves: the loss against the step, on a log scale, raw and smoothed.

use super::{palette, DrawResult};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Exponential moving average, the usual way to read a noisy loss.
pub fn smooth(values: &[f32], alpha: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(values.len());
    let mut acc = None;
    for &v in values {
        let next = match acc {
            None => v,
            Some(a) => a + alpha * (v - a),
        };
        acc = Some(next);
        out.push(next);
    }
    out
}

pub fn draw_loss<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    losses: &[f32],
    max_steps: usize,
    title: &str,
) -> DrawResult<DB> {
    area.fill(&WHITE)?;
    let finite: Vec<f32> = losses
        .iter()
        .copied()
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    let lo = finite
        .iter()
        .copied()
        .fold(f32::INFINITY, f32::min)
        .min(1.0) as f64
        * 0.8;
    let hi = finite.iter().copied().fold(0.0f32, f32::max).max(2.0) as f64 * 1.2;
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .caption(title, ("sans-serif", 16).into_font().color(&palette::INK))
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..max_steps.max(1) as f64, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .light_line_style(palette::GRID.mix(0.0))
        .bold_line_style(palette::GRID)
        .x_desc("training step")
        .y_desc("CFM loss (log scale)")
        .axis_desc_style(("sans-serif", 14).into_font().color(&palette::INK))
        .label_style(("sans-serif", 12).into_font().color(&palette::MUTED))
        .x_labels(6)
        .y_labels(5)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.2}"))
        .draw()?;
    let points = |v: &[f32]| -> Vec<(f64, f64)> {
        v.iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite() && **v > 0.0)
            .map(|(i, &v)| (i as f64, v as f64))
            .collect()
    };
    chart.draw_series(LineSeries::new(points(losses), palette::BAR.mix(0.3)))?;
    chart.draw_series(LineSeries::new(
        points(&smooth(losses, 0.05)),
        palette::PARTICLE.stroke_width(2),
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_follows_a_step() {
        let s = smooth(&[1.0, 1.0, 0.0, 0.0, 0.0], 0.5);
        assert_eq!(s, vec![1.0, 1.0, 0.5, 0.25, 0.125]);
    }
}
