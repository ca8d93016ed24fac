//! Training curves: the loss against the step, on a log scale, raw and smoothed.

use super::{draw_legend, palette, ramp, Corner, DrawResult};
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
    draw_losses(
        area,
        &[LossSeries {
            label: "",
            losses,
            color: palette::PARTICLE,
        }],
        max_steps,
        title,
        "CFM loss (log scale)",
    )
}

/// One training run's losses, for `draw_losses`.
pub struct LossSeries<'a> {
    pub label: &'a str,
    pub losses: &'a [f32],
    pub color: RGBColor,
}

/// Several runs' losses against the step on one log-scale chart: each raw (faint) and smoothed,
/// with a legend when there is more than one.
pub fn draw_losses<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[LossSeries],
    max_steps: usize,
    title: &str,
    y_desc: &str,
) -> DrawResult<DB> {
    area.fill(&palette::paper())?;
    let finite = series
        .iter()
        .flat_map(|s| s.losses.iter().copied())
        .filter(|v| v.is_finite() && *v > 0.0);
    let lo = finite.clone().fold(f32::INFINITY, f32::min).min(1.0) as f64 * 0.8;
    let hi = finite.fold(0.0f32, f32::max).max(2.0) as f64 * 1.2;
    let mut chart = super::titled(area, title, 24, (36, 48))
        .build_cartesian_2d(0.0..max_steps.max(1) as f64, (lo..hi).log_scale())?;
    super::mesh(&mut chart, "training step", y_desc)
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
    for s in series {
        chart.draw_series(LineSeries::new(points(s.losses), s.color.mix(0.25)))?;
    }
    for s in series {
        chart.draw_series(LineSeries::new(
            points(&smooth(s.losses, 0.05)),
            s.color.stroke_width(2),
        ))?;
    }
    if series.len() > 1 {
        let legend: Vec<(&str, ShapeStyle)> = series
            .iter()
            .map(|s| (s.label, s.color.stroke_width(2)))
            .collect();
        draw_legend(
            &chart.plotting_area().strip_coord_spec(),
            &legend,
            Corner::MiddleRight,
        )?;
    }
    Ok(())
}

/// A named line of a chart: label, colour, points.
pub type Line<'a> = (&'a str, RGBColor, &'a [(f32, f32)]);

/// Says, at `middle` of a chart with nothing to draw yet, that its values come from work still
/// under way: an empty chart is never blank.
fn not_measured_yet<DB: DrawingBackend, CT: plotters::coord::CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    middle: CT::From,
) -> DrawResult<DB> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let style = super::sans(13.0)
        .color(&palette::muted())
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new("not measured yet", middle, style))
}

/// A hybrid model's measures against tau: each line (label, colour, points (tau, value)) with its
/// points marked, an optional horizontal reference (label, value) in muted ink, and the current tau
/// marked by a vertical line.
pub fn draw_tau_curves<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    lines: &[Line<'_>],
    reference: Option<(&str, f32)>,
    tau: f32,
) -> DrawResult<DB> {
    area.fill(&palette::paper())?;
    let highest = lines
        .iter()
        .flat_map(|l| l.2.iter().map(|p| p.1))
        .chain(reference.map(|r| r.1))
        .filter(|v| v.is_finite())
        .fold(0.1f32, f32::max);
    let top = highest as f64 * 1.15;
    let mut chart =
        super::titled(area, title, 10, (36, 48)).build_cartesian_2d(0.0..1.0f64, 0.0..top)?;
    super::mesh(&mut chart, "τ: the closed form is followed on [0, τ)", "")
        .x_labels(6)
        .y_labels(5)
        .draw()?;
    if lines.iter().all(|l| l.2.is_empty()) {
        not_measured_yet(chart.plotting_area(), (0.5, top / 2.0))?;
    }
    let mut legend = Vec::new();
    for &(label, colour, points) in lines {
        let at = |p: &(f32, f32)| (p.0 as f64, p.1 as f64);
        chart.draw_series(LineSeries::new(
            points.iter().map(at),
            colour.stroke_width(2),
        ))?;
        chart.draw_series(
            points
                .iter()
                .map(|p| Circle::new(at(p), 3, colour.filled())),
        )?;
        legend.push((label, colour.stroke_width(2)));
    }
    if let Some((label, value)) = reference {
        let style = palette::muted().stroke_width(2);
        chart.draw_series(LineSeries::new(
            [(0.0, value as f64), (1.0, value as f64)],
            style,
        ))?;
        legend.push((label, style));
    }
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(tau as f64, 0.0), (tau as f64, top)],
        palette::ACCENT.mix(0.6).stroke_width(1),
    )))?;
    draw_legend(
        &chart.plotting_area().strip_coord_spec(),
        &legend,
        Corner::UpperRight,
    )
}

/// The model-capacity chart: the mean distance of samples to the nearest training point (over the
/// data scale) against the number of training points n, log scale. `references` are
/// (n, held-out points, closed form) for every n of the slider; `runs` are, per network width,
/// the (n, samples) measured so far; `current` (width, n) is ringed.
pub fn draw_capacity<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    references: &[(f32, f32, f32)],
    runs: &[(usize, Vec<(f32, f32)>)],
    current: (usize, f32),
) -> DrawResult<DB> {
    area.fill(&palette::paper())?;
    let (lo_n, hi_n) = references
        .iter()
        .fold((f64::INFINITY, 1.0f64), |(lo, hi), r| {
            (lo.min(r.0 as f64), hi.max(r.0 as f64))
        });
    let lo_n = if lo_n.is_finite() { lo_n * 0.9 } else { 1.0 };
    let top = references
        .iter()
        .map(|r| r.1)
        .chain(runs.iter().flat_map(|(_, p)| p.iter().map(|q| q.1)))
        .filter(|v| v.is_finite())
        .fold(0.1f32, f32::max) as f64
        * 1.1;
    let mut chart = super::titled(area, "samples’ distance to the training set", 20, (38, 56))
        .build_cartesian_2d(
            (lo_n..hi_n * 1.1)
                .log_scale()
                .with_key_points(vec![10.0, 20.0, 50.0, 100.0, 200.0, 500.0]),
            0.0..top,
        )?;
    super::mesh(
        &mut chart,
        "training points n (log)",
        "mean distance to nearest / data scale",
    )
    .y_labels(6)
    .x_label_formatter(&|v| format!("{v:.0}"))
    .draw()?;
    let held = palette::GREY.stroke_width(2);
    let closed = palette::ink().stroke_width(2);
    chart.draw_series(LineSeries::new(
        references.iter().map(|r| (r.0 as f64, r.1 as f64)),
        held,
    ))?;
    chart.draw_series(LineSeries::new(
        references.iter().map(|r| (r.0 as f64, r.2 as f64)),
        closed,
    ))?;
    let mut legend = vec![
        ("held-out points of the data", held),
        ("closed form û*", closed),
    ];
    let labels: Vec<String> = runs
        .iter()
        .map(|(w, _)| format!("network, width {w}"))
        .collect();
    let widths = runs.len().max(2) - 1;
    for (k, ((width, points), label)) in runs.iter().zip(&labels).enumerate() {
        let color = ramp(0.15 + 0.7 * k as f64 / widths as f64);
        let pts: Vec<(f64, f64)> = points.iter().map(|&(n, d)| (n as f64, d as f64)).collect();
        chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?;
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        if let Some(&(n, d)) = points
            .iter()
            .find(|p| *width == current.0 && p.0 == current.1)
        {
            chart.draw_series(std::iter::once(Circle::new(
                (n as f64, d as f64),
                8,
                palette::ink().stroke_width(2),
            )))?;
        }
        if !points.is_empty() {
            legend.push((label.as_str(), color.stroke_width(2)));
        }
    }
    draw_legend(
        &chart.plotting_area().strip_coord_spec(),
        &legend,
        Corner::UpperRight,
    )
}

/// E||u_theta - u*||^2 per t bin over [0, 1), on a log scale.
pub fn draw_binned_error<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    errors: &[f32],
    bins: usize,
) -> DrawResult<DB> {
    area.fill(&palette::paper())?;
    let positive = errors.iter().copied().filter(|v| v.is_finite() && *v > 0.0);
    let lo = positive.clone().fold(f32::INFINITY, f32::min).min(0.01) as f64 * 0.5;
    let hi = positive.fold(0.0f32, f32::max).max(1.0) as f64 * 2.0;
    let mut chart = super::titled(area, "E‖u_θ − û*‖² against t", 10, (36, 56))
        .build_cartesian_2d(0.0..1.0f64, (lo..hi).log_scale())?;
    super::mesh(&mut chart, "t", "mean squared error (log)")
        .x_labels(6)
        .y_labels(5)
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()?;
    let width = 1.0 / bins as f64;
    if !errors.iter().any(|e| e.is_finite() && *e > 0.0) {
        not_measured_yet(chart.plotting_area(), (0.5, (lo * hi).sqrt()))?;
    }
    chart.draw_series(LineSeries::new(
        errors
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_finite() && **e > 0.0)
            .map(|(k, &e)| ((k as f64 + 0.5) * width, e as f64)),
        palette::ACCENT.stroke_width(2),
    ))?;
    chart.draw_series(
        errors
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_finite() && **e > 0.0)
            .map(|(k, &e)| {
                Circle::new(
                    ((k as f64 + 0.5) * width, e as f64),
                    3,
                    palette::ACCENT.filled(),
                )
            }),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chart_without_values_says_so() {
        let svg = |errors: &[f32]| {
            let mut out = String::new();
            {
                let area = SVGBackend::with_string(&mut out, (400, 300)).into_drawing_area();
                draw_binned_error(&area, errors, 4).unwrap();
                area.present().unwrap();
            }
            out
        };
        assert!(svg(&[f32::NAN; 4]).contains("not measured yet"));
        assert!(!svg(&[0.5, f32::NAN, 0.1, 0.2]).contains("not measured yet"));
        let tau = |points: &[(f32, f32)]| {
            let mut out = String::new();
            {
                let area = SVGBackend::with_string(&mut out, (400, 300)).into_drawing_area();
                draw_tau_curves(&area, "τ", &[("d", palette::DATA, points)], None, 0.0).unwrap();
                area.present().unwrap();
            }
            out
        };
        assert!(tau(&[]).contains("not measured yet"));
        assert!(!tau(&[(0.0, 1.0)]).contains("not measured yet"));
    }

    #[test]
    fn smoothing_follows_a_step() {
        let s = smooth(&[1.0, 1.0, 0.0, 0.0, 0.0], 0.5);
        assert_eq!(s, vec![1.0, 1.0, 0.5, 0.25, 0.125]);
    }
}
