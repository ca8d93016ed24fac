//! The 2-D data plane: a square view [-extent, extent]^2 holding dots, segments and arrows.

use super::{palette, sans, DrawResult};
use plotters::coord::Shift;
use plotters::prelude::*;

/// The square view and its margin in pixels; maps pointer pixels back to data coordinates.
#[derive(Debug, Clone, Copy)]
pub struct Plane {
    pub extent: f64,
    pub margin: u32,
}

impl Plane {
    pub const DEFAULT: Plane = Plane {
        extent: 3.2,
        margin: 8,
    };

    /// Data coordinates of canvas pixel (px, py) on a canvas of `size` pixels.
    pub fn to_data(&self, size: (u32, u32), px: f64, py: f64) -> (f32, f32) {
        let m = self.margin as f64;
        let w = (size.0 as f64 - 2.0 * m).max(1.0);
        let h = (size.1 as f64 - 2.0 * m).max(1.0);
        let x = -self.extent + 2.0 * self.extent * (px - m) / w;
        let y = self.extent - 2.0 * self.extent * (py - m) / h;
        (x as f32, y as f32)
    }
}

pub struct Dot {
    pub at: (f32, f32),
    pub radius: u32,
    pub color: RGBAColor,
}

pub struct Segment {
    pub from: (f32, f32),
    pub to: (f32, f32),
    pub color: RGBAColor,
    pub width: u32,
}

/// What one frame of a plane figure shows, back to front: segments, arrows, dots, top dots,
/// then text.
#[derive(Default)]
pub struct Scene {
    pub segments: Vec<Segment>,
    pub dots: Vec<Dot>,
    pub arrows: Vec<Segment>,
    pub top_dots: Vec<Dot>,
    /// Lines of text in the top-left corner.
    pub caption: Vec<String>,
}

fn point(p: (f32, f32)) -> (f64, f64) {
    (p.0 as f64, p.1 as f64)
}

/// The two strokes of an arrow head at `to`, sized relative to the view.
fn arrow_head(from: (f32, f32), to: (f32, f32), size: f64) -> [(f64, f64); 3] {
    let (dx, dy) = ((to.0 - from.0) as f64, (to.1 - from.1) as f64);
    let len = (dx * dx + dy * dy).sqrt().max(1e-12);
    let head = size.min(0.45 * len);
    let (ux, uy) = (dx / len, dy / len);
    let tip = point(to);
    let back = (tip.0 - head * ux, tip.1 - head * uy);
    let side = (-uy * head * 0.5, ux * head * 0.5);
    [
        (back.0 + side.0, back.1 + side.1),
        tip,
        (back.0 - side.0, back.1 - side.1),
    ]
}

pub fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    plane: &Plane,
    scene: &Scene,
) -> DrawResult<DB> {
    area.fill(&palette::paper())?;
    let e = plane.extent;
    let mut chart = ChartBuilder::on(area)
        .margin(plane.margin)
        .build_cartesian_2d(-e..e, -e..e)?;
    chart
        .configure_mesh()
        .disable_x_axis()
        .disable_y_axis()
        .light_line_style(palette::grid().mix(0.0))
        .bold_line_style(palette::grid())
        .x_labels(7)
        .y_labels(7)
        .draw()?;
    chart.draw_series(scene.segments.iter().map(|s| {
        PathElement::new(
            vec![point(s.from), point(s.to)],
            s.color.stroke_width(s.width),
        )
    }))?;
    let dots = |dots: &[Dot]| -> Vec<Circle<(f64, f64), u32>> {
        dots.iter()
            .map(|d| Circle::new(point(d.at), d.radius, d.color.filled()))
            .collect()
    };
    let head = 0.018 * 2.0 * e;
    for a in &scene.arrows {
        let style = a.color.stroke_width(a.width);
        chart.draw_series(std::iter::once(PathElement::new(
            vec![point(a.from), point(a.to)],
            style,
        )))?;
        chart.draw_series(std::iter::once(PathElement::new(
            arrow_head(a.from, a.to, head).to_vec(),
            style,
        )))?;
    }
    chart.draw_series(dots(&scene.dots))?;
    chart.draw_series(dots(&scene.top_dots))?;
    let font = sans(15.0).color(&palette::ink());
    if !scene.caption.is_empty() {
        // A light box keeps the caption readable over arrows and points.
        let widest = scene
            .caption
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0);
        let (x, y) = (plane.margin as i32 + 4, plane.margin as i32 + 2);
        area.draw(&Rectangle::new(
            [
                (x, y),
                (
                    x + 8 + 8 * widest as i32,
                    y + 8 + 19 * scene.caption.len() as i32,
                ),
            ],
            palette::paper().mix(0.85).filled(),
        ))?;
    }
    for (i, line) in scene.caption.iter().enumerate() {
        area.draw_text(
            line,
            &font,
            (
                plane.margin as i32 + 8,
                plane.margin as i32 + 6 + 19 * i as i32,
            ),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_map_back_to_data() {
        let p = Plane::DEFAULT;
        let (x, y) = p.to_data((416, 416), 8.0, 8.0);
        assert!((x + 3.2).abs() < 1e-6 && (y - 3.2).abs() < 1e-6);
        let (x, y) = p.to_data((416, 416), 208.0, 208.0);
        assert!(x.abs() < 1e-6 && y.abs() < 1e-6);
    }

    #[test]
    fn arrow_heads_point_back_along_the_shaft() {
        let [a, tip, b] = arrow_head((0.0, 0.0), (1.0, 0.0), 0.1);
        assert_eq!(tip, (1.0, 0.0));
        assert!(a.0 < 1.0 && b.0 < 1.0 && (a.1 + b.1).abs() < 1e-12);
    }
}
