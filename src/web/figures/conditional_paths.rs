//! Conditional paths: pairs (x0, x1) from a source and a target distribution joined by straight
//! segments, particles x_t = (1 - t) x0 + t x1 moving along them, and the marginal p_t formed by
//! many such particles. A t slider (and Play); the source and the target can be any data set.

use super::driver::{Ctx, Settings, Sketch, Ui};
use super::{draw_plane, two_canvases, PlayButton, TwoCanvases};
use crate::catalog::conditional_paths as settings;
use crate::catalog::FigureSpec;
use crate::charts::palette;
use crate::charts::plane::{Dot, Scene, Segment};
use crate::flow::{rng::Rng, Dataset};
use crate::web::controls::JsResult;
use plotters::style::Color;
use web_sys::HtmlCanvasElement;

const PAIRS: usize = 60;
const MARGINAL: usize = 3000;
/// Seconds for t to go from 0 to 1 while playing.
const PLAY_SECONDS: f64 = 4.0;

pub struct ConditionalPaths {
    planes: [HtmlCanvasElement; 2],
    play: PlayButton,
    /// MARGINAL pairs, x0 and x1 (the first PAIRS are drawn as segments).
    x0: Vec<f32>,
    x1: Vec<f32>,
}

fn sample(id: &str, n: usize, seed: u64) -> Vec<f32> {
    match Dataset::from_id(id) {
        Some(d) => d.sample(n, seed),
        None => Rng::new(seed).normals(2 * n),
    }
}

impl ConditionalPaths {
    fn resample(&mut self, ctx: &mut Ctx<'_>) {
        // Independent pairs: x0 and x1 drawn separately, as in conditional flow matching.
        let s = ctx.settings();
        self.x0 = sample(s.choice(&settings::SOURCE), MARGINAL, 3);
        self.x1 = sample(s.choice(&settings::TARGET), MARGINAL, 4);
        ctx.status.set("Drag t, or press Play: each particle moves along its own segment, at constant speed x1 − x0.");
    }
}

impl Sketch for ConditionalPaths {
    const SPEC: &'static FigureSpec = &crate::catalog::conditional_paths::SPEC;
    const ID: &'static str = "cp";
    type Key = ();
    type Output = ();

    fn mount(ui: &mut Ui<'_, Self>) -> JsResult<Self> {
        let TwoCanvases { left, right } = two_canvases(
            ui.root,
            "Pairs of source and target points joined by straight segments, with the particle x_t on each",
            "The marginal distribution p_t of many such particles",
        )?;
        let play = ui.button("Play", |s, _| {
            let playing = !s.play.playing;
            s.play.set(playing);
        })?;
        Ok(ConditionalPaths {
            planes: [left, right],
            play: PlayButton::new(play),
            x0: Vec::new(),
            x1: Vec::new(),
        })
    }

    fn changed(&mut self, key: Option<&str>, ctx: &mut Ctx<'_>) {
        if key == Some(settings::T.key) {
            self.play.set(false);
        } else {
            self.resample(ctx);
        }
    }

    fn animate(&mut self, dt: f64, ctx: &mut Ctx<'_>) -> bool {
        if !self.play.playing {
            return false;
        }
        let t = (ctx.settings().number(&settings::T) + dt / PLAY_SECONDS) % 1.0;
        ctx.set_number(&settings::T, t);
        true
    }

    fn draw(&mut self, ctx: &mut Ctx<'_>) -> JsResult<()> {
        let t = ctx.settings().number(&settings::T) as f32;
        let xt: Vec<f32> = self
            .x0
            .iter()
            .zip(&self.x1)
            .map(|(a, b)| (1.0 - t) * a + t * b)
            .collect();
        let point = |v: &[f32], k: usize| (v[2 * k], v[2 * k + 1]);
        let faint = |v: &[f32], color: plotters::style::RGBColor, count: usize| -> Vec<Dot> {
            (0..count)
                .map(|k| Dot {
                    at: point(v, k),
                    radius: 2,
                    color: color.mix(0.35),
                })
                .collect()
        };
        let mut pairs = Scene {
            segments: (0..PAIRS)
                .map(|k| Segment {
                    from: point(&self.x0, k),
                    to: point(&self.x1, k),
                    color: palette::muted().mix(0.45),
                    width: 1,
                })
                .collect(),
            dots: faint(&self.x0, palette::BAR, PAIRS),
            top_dots: (0..PAIRS)
                .map(|k| Dot {
                    at: point(&xt, k),
                    radius: 4,
                    color: palette::PARTICLE.mix(0.9),
                })
                .collect(),
            caption: vec![
                format!("t = {t:.2}"),
                format!("{PAIRS} pairs (x0, x1), x_t on each"),
            ],
            ..Scene::default()
        };
        pairs.dots.extend(faint(&self.x1, palette::DATA, PAIRS));
        let marginal = Scene {
            top_dots: (0..MARGINAL)
                .map(|k| Dot {
                    at: point(&xt, k),
                    radius: 1,
                    color: palette::PARTICLE.mix(0.5),
                })
                .collect(),
            caption: vec![
                format!("t = {t:.2}"),
                format!("p_t: {MARGINAL} particles x_t"),
            ],
            ..Scene::default()
        };
        draw_plane(&self.planes[0], &pairs)?;
        draw_plane(&self.planes[1], &marginal)
    }

    fn csv(&self, settings: &Settings) -> Option<String> {
        let t = settings.number(&settings::T) as f32;
        Some(super::csv_rows(
            "t,x0_x,x0_y,x1_x,x1_y,xt_x,xt_y",
            self.x0
                .chunks_exact(2)
                .zip(self.x1.chunks_exact(2))
                .map(|(a, b)| {
                    let xt = ((1.0 - t) * a[0] + t * b[0], (1.0 - t) * a[1] + t * b[1]);
                    format!("{t},{},{},{},{},{},{}", a[0], a[1], b[0], b[1], xt.0, xt.1)
                }),
        ))
    }
}
