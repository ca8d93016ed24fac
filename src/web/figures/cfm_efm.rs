//! CFM against EFM: two networks from the same seed and the same batches, one regressed on the
//! conditional target x1 - x0, the other on the closed form u*(x_t, t) over the batch's x1 and
//! EFM_SAMPLES more training points. Their losses (log scale), their samples, and live metrics:
//! the energy distance of the samples to held-out data, and their mean distance to the nearest
//! training point (memorization).

use super::driver::{Ctx, Settings, Sketch, Ui};
use super::{
    draw_on, draw_plane, run_controls, two_canvases, ChunkEnd, PauseToggle, Samples, TrainingRun,
    TwoCanvases,
};
use crate::catalog::cfm_efm as settings;
use crate::catalog::FigureSpec;
use crate::charts::layout::Fit;
use crate::charts::{curves, palette, scenes};
use crate::flow::training::TrainOptions;
use crate::flow::{metrics, mlp, rng::Rng, Dataset};
use crate::web::controls::{element, JsResult};
use crate::web::turns::yield_to_page;
use futures_util::future::LocalBoxFuture;
use plotters::style::Color;
use web_sys::{HtmlCanvasElement, HtmlElement};

const TRAIN_POINTS: usize = 500;
const TEST_POINTS: usize = 1000;
const EFM_SAMPLES: usize = 256;
const MAX_STEPS: usize = 2000;
/// Steps per background chunk: adapted so that one chunk of both runs takes about
/// CHUNK_MILLIS (software WebGPU is ~100 times slower than a CPU here, a real GPU far faster).
const FIRST_CHUNK: usize = 10;
const CHUNK_MILLIS: f64 = 500.0;
/// Samples and metrics are refreshed every this many steps.
const SAMPLE_EVERY: usize = 200;
const PARTICLES: usize = 500;
const FLOW_STEPS: usize = 30;
const SEED: u32 = 4;

/// One of the two runs.
#[derive(Default)]
struct Run {
    trainer: TrainingRun,
    losses: Vec<f32>,
    samples: Option<Vec<f32>>,
    /// Energy distance of the samples to the held-out set, and their mean distance to the
    /// nearest training point.
    metrics: Option<(f32, f32)>,
}

pub struct CfmEfm {
    planes: [HtmlCanvasElement; 2],
    loss_canvas: HtmlCanvasElement,
    table: HtmlElement,
    pause: PauseToggle,
    dataset: Dataset,
    train: Vec<f32>,
    test: Vec<f32>,
    shape: mlp::MlpShape,
    runs: [Run; 2],
    /// Energy distance to the held-out set of the source N(0, I) and of the training set.
    baselines: (f32, f32),
    chunk: usize,
    /// Bumped by Reset and by a new dataset: a chunk that ends for an older run is dropped.
    generation: u64,
}

/// A network's samples, their energy distance to the held-out set and their mean distance to
/// the nearest training point.
type Sampled = (Vec<f32>, (f32, f32));

/// A chunk of both runs: their ends, how long they took, and, when they crossed a multiple
/// of SAMPLE_EVERY steps, both networks' samples with their metrics.
pub struct Pair {
    ends: [ChunkEnd; 2],
    ms: f64,
    chunk: usize,
    samples: [Option<Sampled>; 2],
    backend: &'static str,
}

const TARGETS: [(&str, mlp::Target); 2] = [
    ("CFM: x1 − x0", mlp::Target::Cfm),
    (
        "EFM: û*(x_t, t)",
        mlp::Target::Efm {
            samples: EFM_SAMPLES,
        },
    ),
];
const COLORS: [plotters::style::RGBColor; 2] = [palette::PARTICLE, palette::SECOND];

/// Mean and standard deviation of the last `k` values.
fn tail_stats(values: &[f32], k: usize) -> Option<(f32, f32)> {
    let tail = &values[values.len().saturating_sub(k)..];
    if tail.is_empty() {
        return None;
    }
    let mean = tail.iter().sum::<f32>() / tail.len() as f32;
    let var = tail.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / tail.len() as f32;
    Some((mean, var.sqrt()))
}

impl CfmEfm {
    fn load(&mut self, dataset: Dataset, ctx: &mut Ctx<'_>) {
        self.dataset = dataset;
        self.train = dataset.sample(TRAIN_POINTS, 0);
        self.test = dataset.sample(TEST_POINTS, 99);
        let source = Rng::new(7).normals(2 * PARTICLES);
        self.baselines = (
            metrics::energy_distance(&source, &self.test, 2),
            metrics::energy_distance(&self.train, &self.test, 2),
        );
        self.reset(ctx);
    }

    fn reset(&mut self, ctx: &mut Ctx<'_>) {
        for run in &mut self.runs {
            run.trainer.reset();
            run.losses.clear();
            run.samples = None;
            run.metrics = None;
        }
        self.chunk = FIRST_CHUNK;
        self.generation += 1;
        ctx.status
            .set("Training starts when the figure is on screen.");
        self.update_table();
    }

    fn steps(&self) -> usize {
        self.runs[0].losses.len().min(self.runs[1].losses.len())
    }

    fn update_table(&self) {
        let cell = |v: Option<f32>| v.map_or("…".to_string(), |v| format!("{v:.3}"));
        let mut rows = String::from(
            "<thead><tr><th scope=\"col\">target</th><th scope=\"col\">loss (last 200)</th>\
             <th scope=\"col\">loss s.d.</th><th scope=\"col\">energy distance to held-out data</th>\
             <th scope=\"col\">mean distance to nearest training point</th></tr></thead><tbody>",
        );
        for ((label, _), run) in TARGETS.iter().zip(&self.runs) {
            let stats = tail_stats(&run.losses, 200);
            rows.push_str(&format!(
                "<tr><th scope=\"row\">{label}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                cell(stats.map(|s| s.0)),
                cell(stats.map(|s| s.1)),
                cell(run.metrics.map(|m| m.0)),
                cell(run.metrics.map(|m| m.1)),
            ));
        }
        rows.push_str(&format!(
            "<tr class=\"baseline\"><th scope=\"row\">source N(0, I)</th><td></td><td></td><td>{:.3}</td><td></td></tr>\
             <tr class=\"baseline\"><th scope=\"row\">training set</th><td></td><td></td><td>{:.3}</td><td>0</td></tr></tbody>",
            self.baselines.0, self.baselines.1
        ));
        self.table.set_inner_html(&rows);
    }
}

impl Sketch for CfmEfm {
    const SPEC: &'static FigureSpec = &crate::catalog::cfm_efm::SPEC;
    const ID: &'static str = "cfm-efm";
    /// The generation and the steps both runs trained before the chunk.
    type Key = (u64, usize);
    type Output = Pair;

    fn mount(ui: &mut Ui<'_, Self>) -> JsResult<Self> {
        let TwoCanvases { left, right } = two_canvases(
            ui.root,
            "Samples of the network trained with the CFM target",
            "Samples of the network trained with the EFM target",
        )?;
        let loss_canvas = super::row_canvas(
            ui.root,
            Fit::wide(960, 360),
            "figure-wide",
            "Training losses of both networks",
        )?;
        let table_wrap = element("div", "figure-table-wrap", ui.root)?;
        let table = element("table", "figure-table", &table_wrap)?;
        let pause = run_controls(ui, |s| &mut s.pause, Self::reset)?;
        Ok(CfmEfm {
            planes: [left, right],
            loss_canvas,
            table,
            pause,
            dataset: Dataset::EightGaussians,
            train: Vec::new(),
            test: Vec::new(),
            shape: mlp::MlpShape::new(2, 64, 3),
            runs: Default::default(),
            baselines: (0.0, 0.0),
            chunk: FIRST_CHUNK,
            generation: 0,
        })
    }

    fn changed(&mut self, _: Option<&str>, ctx: &mut Ctx<'_>) {
        if let Some(d) = Dataset::from_id(ctx.settings().choice(&settings::DATASET)) {
            self.load(d, ctx);
        }
    }

    fn wanted(&self, _: &Settings) -> Option<Self::Key> {
        let steps = self.steps();
        (steps < MAX_STEPS && !self.pause.paused).then_some((self.generation, steps))
    }

    /// Trains both networks one chunk further; when that crosses a multiple of SAMPLE_EVERY
    /// steps, samples both and measures them.
    fn job(
        &mut self,
        &(_, before): &Self::Key,
        ctx: &mut Ctx<'_>,
    ) -> LocalBoxFuture<'static, Pair> {
        let chunk = self.chunk.min(MAX_STEPS - before);
        if before == 0 {
            ctx.status.set("Training both networks: first steps…");
        }
        let shape = self.shape;
        let sample =
            (before + chunk) / SAMPLE_EVERY != before / SAMPLE_EVERY || before + chunk >= MAX_STEPS;
        let [a, b] = &mut self.runs;
        let chunks = [(a, TARGETS[0].1), (b, TARGETS[1].1)].map(|(run, target)| {
            let options = TrainOptions {
                batch: 256,
                lr: 2e-3,
                seed: SEED,
                target,
            };
            // Both networks' samples, drawn where each network is (its worker, or paced here).
            let samples = sample.then(|| Samples {
                x0: Rng::new(7).normals(2 * PARTICLES),
                steps: FLOW_STEPS,
                data: Vec::new(),
                tau: 0.0,
                frames: false,
            });
            run.trainer
                .chunk(&self.train, (shape, options, chunk), samples)
        });
        let (train, test) = (self.train.clone(), self.test.clone());
        Box::pin(async move {
            let backend = crate::web::backend::figure_backend();
            let [a, b] = chunks;
            let ends = [a.await, b.await];
            let ms = ends.iter().map(ChunkEnd::ms).sum();
            let mut samples = [None, None];
            for (k, end) in ends.iter().enumerate() {
                let Some(x) = end.samples() else { continue };
                yield_to_page().await;
                let energy = metrics::energy_distance(x, &test, 2);
                let mean_nearest = metrics::mean_nearest_distance(&train, 2, x);
                samples[k] = Some((x.to_vec(), (energy, mean_nearest)));
            }
            Pair {
                ends,
                ms,
                chunk,
                samples,
                backend: backend.name(),
            }
        })
    }

    fn done(&mut self, _: Self::Key, pair: Pair, ctx: &mut Ctx<'_>) {
        let [a, b] = pair.ends;
        let [ra, rb] = &mut self.runs;
        let (Some(a), Some(b)) = (ra.trainer.finish(a), rb.trainer.finish(b)) else {
            return; // reset while this chunk ran
        };
        let chunks = match (a, b) {
            (Ok(a), Ok(b)) => [a, b],
            (Err(e), _) | (_, Err(e)) => {
                // Both networks start again together at the next chunk (Resume).
                for run in &mut self.runs {
                    run.trainer.reset();
                }
                self.generation += 1;
                self.pause.stop();
                ctx.status.error(&e);
                return;
            }
        };
        for ((run, chunk), samples) in self.runs.iter_mut().zip(chunks).zip(pair.samples) {
            run.losses.extend(chunk.losses);
            if let Some((x, m)) = samples {
                run.samples = Some(x);
                run.metrics = Some(m);
            }
        }
        let steps = self.steps();
        let scaled = pair.chunk as f64 * CHUNK_MILLIS / pair.ms.max(1.0);
        self.chunk = (scaled as usize).clamp(2, 100);
        ctx.status.set(&format!(
            "Training two MLPs ({} hidden layers of width {}) on {} points of {} on {}: step {steps} of {MAX_STEPS} ({:.0} ms per step of both).",
            self.shape.depth,
            self.shape.hidden,
            TRAIN_POINTS,
            self.dataset.label(),
            pair.backend,
            pair.ms / pair.chunk as f64,
        ));
        if steps >= MAX_STEPS {
            for run in &mut self.runs {
                run.trainer.release(); // frees the GPU buffers; samples and metrics stay
            }
        }
        self.update_table();
    }

    fn draw(&mut self, ctx: &mut Ctx<'_>) -> JsResult<()> {
        let steps = self.steps();
        self.pause
            .show_paused(ctx.status, ctx.busy, steps, MAX_STEPS);
        for (k, ((label, _), run)) in TARGETS.iter().zip(&self.runs).enumerate() {
            let positions = run
                .samples
                .clone()
                .unwrap_or_else(|| Rng::new(7).normals(2 * PARTICLES));
            let caption = match run.samples {
                Some(_) => format!("{label}: samples"),
                None => format!("{label}: waiting for {SAMPLE_EVERY} steps"),
            };
            let mut scene = scenes::particles(&self.train, &positions, 1.0, String::new());
            scene.caption = vec![caption];
            for dot in &mut scene.top_dots {
                dot.color = COLORS[k].mix(0.55);
            }
            draw_plane(&self.planes[k], &scene)?;
        }
        let title = format!("losses, step {steps} / {MAX_STEPS}");
        let series: Vec<curves::LossSeries> = TARGETS
            .iter()
            .zip(&self.runs)
            .zip(COLORS)
            .map(|(((label, _), run), color)| curves::LossSeries {
                label,
                losses: &run.losses,
                color,
            })
            .collect();
        draw_on(&self.loss_canvas, |area| {
            curves::draw_losses(area, &series, MAX_STEPS, &title, "loss (log scale)")
        })
    }

    fn csv(&self, _: &Settings) -> Option<String> {
        let s = self;
        let steps = s.steps();
        (steps > 0).then(|| {
            super::csv_rows(
                "step,cfm_loss,efm_loss",
                (0..steps)
                    .map(|k| format!("{},{},{}", k + 1, s.runs[0].losses[k], s.runs[1].losses[k])),
            )
        })
    }
}
