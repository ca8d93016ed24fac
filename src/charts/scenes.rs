//! The scenes of the 2-D figures: plain geometry built from points, weights and velocities.

use super::plane::{Dot, Scene, Segment};
use super::{palette, ramp};
use plotters::style::Color;

fn pairs(values: &[f32]) -> impl Iterator<Item = (f32, f32)> + '_ {
    values.chunks_exact(2).map(|p| (p[0], p[1]))
}

fn data_dots(data: &[f32], weights: Option<&[f32]>) -> Vec<Dot> {
    let max = weights
        .map(|w| w.iter().copied().fold(0.0f32, f32::max))
        .unwrap_or(0.0)
        .max(f32::MIN_POSITIVE);
    pairs(data)
        .enumerate()
        .map(|(i, at)| match weights {
            Some(w) => {
                let rel = (w[i] / max) as f64;
                Dot {
                    at,
                    radius: 2 + (4.0 * rel.sqrt()).round() as u32,
                    color: if rel > 1e-3 {
                        ramp(0.25 + 0.75 * rel.sqrt()).to_rgba()
                    } else {
                        palette::muted().mix(0.5)
                    },
                }
            }
            None => Dot {
                at,
                radius: 3,
                color: palette::DATA.mix(0.85),
            },
        })
        .collect()
}

/// Velocity arrows: length = `scale` data units per unit of speed, clipped at `max_len`; colour
/// = log10 speed on [-1, 3], so the blow-up as t -> 1 shows as long, bright arrows.
pub fn velocity_arrows(grid: &[f32], velocities: &[f32], scale: f32, max_len: f32) -> Vec<Segment> {
    pairs(grid)
        .zip(pairs(velocities))
        .map(|(x, u)| {
            let speed = (u.0 * u.0 + u.1 * u.1).sqrt();
            let len = (scale * speed).min(max_len);
            let k = if speed > 0.0 { len / speed } else { 0.0 };
            Segment {
                from: x,
                to: (x.0 + k * u.0, x.1 + k * u.1),
                color: ramp(((speed.max(1e-3).log10() + 1.0) / 4.0) as f64).mix(0.85),
                width: 2,
            }
        })
        .collect()
}

/// For a point x at time t: the conditional path through x from each training point's point of
/// view, x0_i = (x - t x_i) / (1 - t) -> x_i, shaded by lambda_i (the strongest `limit` only).
pub fn posterior_segments(
    data: &[f32],
    weights: &[f32],
    x: (f32, f32),
    t: f32,
    limit: usize,
) -> Vec<Segment> {
    let max = weights
        .iter()
        .copied()
        .fold(0.0f32, f32::max)
        .max(f32::MIN_POSITIVE);
    let mut order: Vec<usize> = (0..weights.len())
        .filter(|&i| weights[i] / max > 0.01)
        .collect();
    order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]));
    order.truncate(limit);
    order
        .into_iter()
        .map(|i| {
            let xi = (data[2 * i], data[2 * i + 1]);
            let s = 1.0 - t;
            Segment {
                from: ((x.0 - t * xi.0) / s, (x.1 - t * xi.1) / s),
                to: xi,
                color: palette::GREY.mix(0.15 + 0.8 * (weights[i] / max) as f64),
                width: 1,
            }
        })
        .collect()
}

/// The closed-form field figure.
pub fn velocity_field(
    data: &[f32],
    grid: &[f32],
    velocities: &[f32],
    hover: Option<((f32, f32), &[f32])>,
    t: f32,
) -> Scene {
    let max_speed = pairs(velocities)
        .map(|u| (u.0 * u.0 + u.1 * u.1).sqrt())
        .fold(0.0f32, f32::max);
    let mut scene = Scene {
        arrows: velocity_arrows(grid, velocities, 0.12, 0.45),
        dots: data_dots(data, hover.map(|h| h.1)),
        caption: vec![
            format!("t = {t:.3}    n = {}", data.len() / 2),
            format!("max |û*| = {}", short(max_speed)),
        ],
        ..Scene::default()
    };
    if let Some((x, weights)) = hover {
        scene.segments = posterior_segments(data, weights, x, t, 300);
        scene.top_dots.push(Dot {
            at: x,
            radius: 6,
            color: palette::PARTICLE.to_rgba(),
        });
        let top = weights.iter().copied().fold(0.0f32, f32::max);
        scene.caption.push(format!("largest λᵢ = {top:.2}"));
    }
    scene
}

/// Particles flowing towards the data.
pub fn particles(data: &[f32], positions: &[f32], t: f32, caption: String) -> Scene {
    Scene {
        dots: data_dots(data, None),
        top_dots: pairs(positions)
            .map(|at| Dot {
                at,
                radius: 2,
                color: palette::PARTICLE.mix(0.55),
            })
            .collect(),
        caption: vec![format!("t = {t:.2}"), caption],
        ..Scene::default()
    }
}

/// The stochastic-target figure: conditional targets drawn times (1 - t), so each ends on its
/// training point, with width by lambda_i; their average u* in black.
pub fn conditional_targets(
    data: &[f32],
    x: (f32, f32),
    weights: &[f32],
    u: (f32, f32),
    t: f32,
) -> Scene {
    let max = weights
        .iter()
        .copied()
        .fold(0.0f32, f32::max)
        .max(f32::MIN_POSITIVE);
    let mut arrows: Vec<Segment> = pairs(data)
        .zip(weights)
        .filter(|(_, &w)| w / max > 0.002)
        .map(|(xi, &w)| Segment {
            from: x,
            to: xi,
            color: palette::GREY.mix(0.2 + 0.75 * (w / max) as f64),
            width: 1 + (4.0 * w).round() as u32,
        })
        .collect();
    let s = 1.0 - t;
    arrows.push(Segment {
        from: x,
        to: (x.0 + s * u.0, x.1 + s * u.1),
        color: palette::ink().to_rgba(),
        width: 3,
    });
    Scene {
        dots: data_dots(data, Some(weights)),
        arrows,
        top_dots: vec![Dot {
            at: x,
            radius: 7,
            color: palette::PARTICLE.to_rgba(),
        }],
        caption: vec![
            format!(
                "t = {t:.2}   |û*(x, t)| = {}",
                short((u.0 * u.0 + u.1 * u.1).sqrt())
            ),
            "arrows: velocities x (1 - t); û* thick".into(),
        ],
        segments: Vec::new(),
    }
}

/// A number in at most four significant characters: 0.42, 3.1, 312, 2.1e4.
pub fn short(v: f32) -> String {
    if !v.is_finite() {
        "inf".into()
    } else if v.abs() >= 1e4 {
        format!("{v:.1e}")
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrows_are_clipped_and_coloured_by_speed() {
        let grid = [0.0, 0.0, 1.0, 1.0];
        let u = [1.0, 0.0, 0.0, 1000.0];
        let a = velocity_arrows(&grid, &u, 0.1, 0.5);
        assert!((a[0].to.0 - 0.1).abs() < 1e-6);
        assert!((a[1].to.1 - 1.5).abs() < 1e-6, "clipped at 0.5");
        assert_ne!(a[0].color, a[1].color);
    }

    #[test]
    fn segments_pass_through_x_at_time_t() {
        let data = [1.0, 0.0, -1.0, 0.0];
        let w = [0.7, 0.3];
        let x = (0.2, 0.1);
        let t = 0.4;
        for s in posterior_segments(&data, &w, x, t, 10) {
            let p = (
                (1.0 - t) * s.from.0 + t * s.to.0,
                (1.0 - t) * s.from.1 + t * s.to.1,
            );
            assert!((p.0 - x.0).abs() < 1e-6 && (p.1 - x.1).abs() < 1e-6);
        }
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short(0.4243), "0.42");
        assert_eq!(short(312.4), "312");
        assert_eq!(short(21000.0), "2.1e4");
    }
}
