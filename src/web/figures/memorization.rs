//! Memorization: particles from N(0, I) integrated with u*, animated (play, pause, scrub t). At
//! the end every particle sits on a training point, which the histogram of nearest-training-point
//! distances shows.

use super::driver::{Ctx, Settings, Sketch, Ui};
use super::{draw_histogram, draw_plane, two_canvases, PlayButton, TwoCanvases};
use crate::catalog::memorization as settings;
use crate::catalog::FigureSpec;
use crate::charts::{histogram::HistogramView, scenes};
use crate::flow::{metrics, rng::Rng, Dataset};
use crate::web::backend::figure_backend;
use crate::web::compute::{ComputeError, Ready};
use crate::web::controls::JsResult;
use futures_util::future::LocalBoxFuture;
use std::rc::Rc;
use web_sys::HtmlCanvasElement;

const PARTICLES: usize = 800;
const STEPS: usize = 100;
const STEPS_PER_BATCH: usize = 10;
/// Seconds for t to go from 0 to 1 while playing, and the pause at t = 1 before looping.
const PLAY_SECONDS: f64 = 5.0;
const HOLD_SECONDS: f64 = 1.5;

pub struct Memorization {
    plane: HtmlCanvasElement,
    histogram: HtmlCanvasElement,
    play: PlayButton,
    seed: u64,
    /// Shared with the jobs (and with the compute layer's cache of ready sets).
    data: Rc<Vec<f32>>,
    prepared: Option<(u64, Rc<Ready>)>,
    /// Positions after each Euler step: frames[k] is at t = k / STEPS.
    frames: Vec<Vec<f32>>,
    /// Bumped on every setting change: a batch for an older one is dropped.
    version: u64,
    /// The integration of this version failed (shown in the status line); no retry until the
    /// settings change.
    failed: bool,
    /// Milliseconds the batches of this version took so far.
    ms: f64,
    hold: f64,
}

/// A batch of Euler steps: its data version, the set prepared for it, the positions after each
/// step, where it ran and in how long.
pub struct Batch {
    version: u64,
    result: Result<(Rc<Ready>, Vec<f32>), ComputeError>,
    backend: &'static str,
    ms: f64,
}

impl Memorization {
    fn restart(&mut self, ctx: &mut Ctx<'_>) {
        let s = ctx.settings();
        self.data = Rc::new(
            Dataset::from_id(s.choice(&settings::DATASET))
                .unwrap_or(Dataset::TwoMoons)
                .sample(s.number(&settings::N) as usize, self.seed),
        );
        self.frames = vec![Rng::new(1000 + self.seed).normals(2 * PARTICLES)];
        self.version += 1;
        self.failed = false;
        self.ms = 0.0;
        ctx.set_number(&settings::T, 0.0);
    }

    /// Positions at the displayed t, interpolated between computed steps.
    fn positions(&self, t: f64) -> Option<Vec<f32>> {
        let last = self.frames.len().checked_sub(1)?;
        let x = (t * STEPS as f64).min(last as f64);
        let k = (x.floor() as usize).min(last);
        let f = (x - k as f64) as f32;
        let a = &self.frames[k];
        let b = &self.frames[(k + 1).min(last)];
        Some(a.iter().zip(b).map(|(p, q)| p + f * (q - p)).collect())
    }
}

impl Sketch for Memorization {
    const SPEC: &'static FigureSpec = &crate::catalog::memorization::SPEC;
    const ID: &'static str = "mem";
    /// The data version and the steps integrated so far.
    type Key = (u64, usize);
    type Output = Batch;

    fn mount(ui: &mut Ui<'_, Self>) -> JsResult<Self> {
        let TwoCanvases { left, right } = two_canvases(
            ui.root,
            "Particles flowing from the Gaussian source to the training points",
            "Histogram of distances from each particle to its nearest training point",
        )?;
        let play = ui.button("Pause", |s, ctx| {
            let playing = !s.play.playing;
            if playing && ctx.settings().number(&settings::T) >= 1.0 {
                ctx.set_number(&settings::T, 0.0);
            }
            s.play.set(playing);
        })?;
        ui.button("New noise", |s, ctx| {
            s.seed += 1;
            s.restart(ctx);
        })?;
        let reduced_motion = web_sys::window()
            .and_then(|w| {
                w.match_media("(prefers-reduced-motion: reduce)")
                    .ok()
                    .flatten()
            })
            .is_some_and(|m| m.matches());
        let mut play = PlayButton::new(play);
        play.set(!reduced_motion);
        Ok(Memorization {
            plane: left,
            histogram: right,
            play,
            seed: 0,
            data: Rc::default(),
            prepared: None,
            frames: Vec::new(),
            version: 0,
            failed: false,
            ms: 0.0,
            hold: 0.0,
        })
    }

    fn changed(&mut self, key: Option<&str>, ctx: &mut Ctx<'_>) {
        if key == Some(settings::T.key) {
            self.play.set(false);
        } else {
            self.restart(ctx);
        }
    }

    fn wanted(&self, _: &Settings) -> Option<Self::Key> {
        let steps = self.frames.len().checked_sub(1)?;
        (steps < STEPS && !self.failed).then_some((self.version, steps))
    }

    /// Integrates the next batch of steps (one submission and one readback on the GPU), so the
    /// animation starts while the rest integrates and the progress shows.
    fn job(
        &mut self,
        &(version, k0): &Self::Key,
        _: &mut Ctx<'_>,
    ) -> LocalBoxFuture<'static, Batch> {
        let cached = self
            .prepared
            .as_ref()
            .filter(|(v, _)| *v == version)
            .map(|(_, p)| p.clone());
        let data = self.data.clone();
        let x = self.frames[k0].clone();
        Box::pin(async move {
            let backend = figure_backend();
            let start = js_sys::Date::now();
            let result = async {
                // In the compute workers on the CPU path, one round trip a step.
                let prepared = Ready::cached(&backend, cached, &data, 2).await?;
                let dt = 1.0 / STEPS as f32;
                let steps = STEPS_PER_BATCH.min(STEPS - k0);
                let frames = prepared.trajectory(&x, k0 as f32 * dt, dt, steps).await?;
                Ok((prepared, frames))
            }
            .await;
            Batch {
                version,
                result,
                backend: backend.name(),
                ms: js_sys::Date::now() - start,
            }
        })
    }

    fn done(&mut self, _: Self::Key, batch: Batch, ctx: &mut Ctx<'_>) {
        if batch.version != self.version {
            return;
        }
        match batch.result {
            Ok((prepared, frames)) => {
                self.prepared = Some((batch.version, prepared));
                self.frames
                    .extend(frames.chunks(2 * PARTICLES).map(<[f32]>::to_vec));
                self.ms += batch.ms;
                if self.frames.len() > STEPS {
                    ctx.status.set(&format!(
                        "{PARTICLES} particles × {STEPS} Euler steps with û* of {} points, on {} in {:.0} ms.",
                        self.data.len() / 2,
                        batch.backend,
                        self.ms
                    ));
                }
            }
            Err(e) => {
                ctx.status.error(&format!("Could not integrate: {e}"));
                self.failed = true;
            }
        }
    }

    fn animate(&mut self, dt: f64, ctx: &mut Ctx<'_>) -> bool {
        if !self.play.playing {
            return false;
        }
        let mut t = ctx.settings().number(&settings::T);
        let available = self.frames.len().saturating_sub(1) as f64 / STEPS as f64;
        if t >= 1.0 {
            self.hold += dt;
            if self.hold > HOLD_SECONDS {
                self.hold = 0.0;
                t = 0.0;
            }
        } else {
            t = (t + dt / PLAY_SECONDS).min(available).min(1.0);
        }
        ctx.set_number(&settings::T, t);
        true
    }

    fn draw(&mut self, ctx: &mut Ctx<'_>) -> JsResult<()> {
        let t = ctx.settings().number(&settings::T);
        let Some(pos) = self.positions(t) else {
            return Ok(());
        };
        let done = self.frames.len().saturating_sub(1);
        let caption = if done < STEPS {
            format!("integrating: step {done} / {STEPS}")
        } else {
            format!("{PARTICLES} particles, {STEPS} Euler steps")
        };
        let scene = scenes::particles(&self.data, &pos, t as f32, caption);
        let distances = metrics::nearest_distances(&self.data, 2, &pos);
        let scale = metrics::data_scale(&self.data, 2);
        let close = metrics::fraction_below(&distances, 0.01 * scale);
        let hist = metrics::Histogram::new(&distances, 0.0, 1.0, 40);
        let title = format!(
            "{:.0}% within 1% of the data's scale of a training point",
            100.0 * close
        );
        let view = HistogramView {
            histogram: &hist,
            title: &title,
            x_label: "distance to the nearest training point",
            marker: Some((0.01 * scale, "1%")),
        };
        draw_plane(&self.plane, &scene)?;
        draw_histogram(&self.histogram, &view)
    }

    fn csv(&self, settings: &Settings) -> Option<String> {
        let t = settings.number(&settings::T);
        let x = self.positions(t)?;
        let nearest = metrics::nearest_distances(&self.data, 2, &x);
        Some(super::csv_rows(
            "t,x,y,distance_to_nearest_training_point",
            x.chunks_exact(2)
                .zip(&nearest)
                .map(|(p, d)| format!("{t},{},{},{d}", p[0], p[1])),
        ))
    }
}
