//! CFM against EFM: two networks from the same seed and the same batches, one regressed on the
//! conditional target x1 - x0, the other on the closed form u*(x_t, t) over the batch's x1 and
//! EFM_SAMPLES more training points. Their losses (log scale), their samples, and live metrics:
//! the energy distance of the samples to held-out data, and their mean distance to the nearest
//! training point (memorization).

use super::{draw_on, draw_plane, two_panels, Figure, Later, PauseToggle, Status, TwoPanels};
use crate::catalog::cfm_efm as settings;
use crate::charts::{curves, palette, scenes};
use crate::flow::{metrics, mlp, rng::Rng, sampler, Dataset};
use crate::gpu::trainer::TrainOptions;
use crate::web::compute::Training;
use crate::web::controls::{element, select, JsResult, Listeners};
use crate::web::shared::{backend, yield_to_page};
use plotters::style::Color;
use std::cell::RefCell;
use std::rc::Rc;
use web_sys::{Element, HtmlCanvasElement, HtmlElement};

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
    training: Option<Training>,
    losses: Vec<f32>,
    samples: Option<Vec<f32>>,
    /// Energy distance of the samples to the held-out set, and their mean distance to the
    /// nearest training point.
    metrics: Option<(f32, f32)>,
}

struct State {
    planes: [HtmlCanvasElement; 2],
    loss_canvas: HtmlCanvasElement,
    table: HtmlElement,
    status: Status,
    pause: PauseToggle,
    dataset: Dataset,
    train: Vec<f32>,
    test: Vec<f32>,
    shape: mlp::MlpShape,
    runs: [Run; 2],
    /// Energy distance to the held-out set of the source N(0, I) and of the training set.
    baselines: (f32, f32),
    chunk: usize,
    busy: bool,
    visible: bool,
    /// Bumped by Reset and by a new dataset: work in flight for an older run is dropped.
    generation: u64,
    needs_draw: bool,
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

impl State {
    fn load(&mut self, dataset: Dataset) {
        self.dataset = dataset;
        self.train = dataset.sample(TRAIN_POINTS, 0);
        self.test = dataset.sample(TEST_POINTS, 99);
        let source = Rng::new(7).normals(2 * PARTICLES);
        self.baselines = (
            metrics::energy_distance(&source, &self.test, 2),
            metrics::energy_distance(&self.train, &self.test, 2),
        );
        self.reset();
    }

    fn reset(&mut self) {
        self.runs = Default::default();
        self.chunk = FIRST_CHUNK;
        self.generation += 1;
        self.status
            .set("Training starts when the figure is on screen.");
        self.needs_draw = true;
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

    fn draw(&mut self) {
        self.needs_draw = false;
        let steps = self.steps();
        let mut result = Ok(());
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
            result = result.and_then(|_| draw_plane(&self.planes[k], &scene));
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
        result = result.and_then(|_| {
            draw_on(&self.loss_canvas, |area| {
                curves::draw_losses(area, &series, MAX_STEPS, &title, "loss (log scale)")
            })
        });
        if let Err(e) = result {
            self.status.error(&format!("{e:?}"));
        }
    }
}

pub struct CfmEfm {
    state: Rc<RefCell<State>>,
    _listeners: Listeners,
}

impl CfmEfm {
    pub fn mount(root: &Element) -> JsResult<CfmEfm> {
        let mut listeners = Listeners::default();
        let TwoPanels {
            controls: panel,
            left,
            right,
            status,
        } = two_panels(
            root,
            "Samples of the network trained with the CFM target",
            "Samples of the network trained with the EFM target",
        )?;
        let loss_canvas = super::row_canvas(
            root,
            (960, 360),
            "figure-wide",
            "Training losses of both networks",
        )?;
        let table_wrap = element("div", "figure-table-wrap", root)?;
        let table = element("table", "figure-table", &table_wrap)?;
        // The status line belongs under everything.
        root.append_child(status.element())?;

        let cell = Later::<State>::new();
        let c = cell.clone();
        select(
            &panel,
            &mut listeners,
            "cfm-efm-dataset",
            &settings::DATASET,
            move |id| {
                c.with(|s| {
                    if let Some(d) = Dataset::from_id(&id) {
                        s.load(d);
                    }
                })
            },
        )?;
        let pause = super::run_controls(
            &panel,
            &mut listeners,
            &cell,
            |s| &mut s.pause,
            |s| s.reset(),
        )?;
        let mut state = State {
            planes: [left, right],
            loss_canvas,
            table,
            status,
            pause,
            dataset: Dataset::from_id(settings::DATASET.choice())
                .unwrap_or(Dataset::EightGaussians),
            train: Vec::new(),
            test: Vec::new(),
            shape: mlp::MlpShape::new(2, 64, 3),
            runs: Default::default(),
            baselines: (0.0, 0.0),
            chunk: FIRST_CHUNK,
            busy: false,
            visible: false,
            generation: 0,
            needs_draw: true,
        };
        state.load(Dataset::EightGaussians);
        let state = Rc::new(RefCell::new(state));
        cell.set(&state);
        Ok(CfmEfm {
            state,
            _listeners: listeners,
        })
    }
}

/// Trains both networks one chunk further; every SAMPLE_EVERY steps, samples both and measures.
fn train_chunk(state: &Rc<RefCell<State>>) {
    let (shape, data, generation, trainings, chunk, before) = {
        let mut s = state.borrow_mut();
        s.busy = true;
        let trainings = [s.runs[0].training.take(), s.runs[1].training.take()];
        let chunk = s.chunk.min(MAX_STEPS - s.steps());
        if s.steps() == 0 {
            s.status.set("Training both networks: first steps…");
        }
        (
            s.shape,
            s.train.clone(),
            s.generation,
            trainings,
            chunk,
            s.steps(),
        )
    };
    let state = state.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let backend = backend().await;
        let start = js_sys::Date::now();
        let mut results = Vec::new();
        for ((_, target), training) in TARGETS.iter().zip(trainings) {
            let options = TrainOptions {
                batch: 256,
                lr: 2e-3,
                seed: SEED,
                target: *target,
            };
            results
                .push(super::train_chunk(&backend, training, shape, &data, options, chunk).await);
        }
        let elapsed = js_sys::Date::now() - start;
        let steps = {
            let mut s = state.borrow_mut();
            if s.generation != generation {
                s.busy = false;
                return; // reset while this chunk ran
            }
            let mut failed = None;
            let mut params = Vec::new();
            for (run, result) in s.runs.iter_mut().zip(results) {
                match result {
                    Ok((t, losses, p)) => {
                        run.training = Some(t);
                        run.losses.extend(losses);
                        params.push(p);
                    }
                    Err(e) => failed = Some(e),
                }
            }
            if let Some(e) = failed {
                s.busy = false;
                s.pause.stop();
                s.status.error(&format!("Training failed: {e}"));
                return;
            }
            let steps = s.steps();
            let scaled = chunk as f64 * CHUNK_MILLIS / elapsed.max(1.0);
            s.chunk = (scaled as usize).clamp(2, 100);
            s.status.set(&format!(
                "Training two MLPs ({} hidden layers of width {}) on {} points of {} on {}: step {steps} of {MAX_STEPS} ({:.0} ms per step of both).",
                shape.depth,
                shape.hidden,
                TRAIN_POINTS,
                s.dataset.label(),
                backend.name(),
                elapsed / chunk as f64,
            ));
            s.needs_draw = true;
            s.update_table();
            if steps / SAMPLE_EVERY == before / SAMPLE_EVERY && steps < MAX_STEPS {
                s.busy = false;
                return;
            }
            (steps, params)
        };
        // Sampling both networks is the longest CPU work here: a few Euler steps per task turn,
        // so no task runs long while the reader scrolls.
        let (steps, params) = steps;
        let (train, test) = {
            let s = state.borrow();
            (s.train.clone(), s.test.clone())
        };
        let dt = 1.0 / FLOW_STEPS as f32;
        for (k, p) in params.iter().enumerate() {
            let mut x = Rng::new(7).normals(2 * PARTICLES);
            for step in 0..FLOW_STEPS {
                if step % 5 == 0 {
                    yield_to_page().await;
                    if state.borrow().generation != generation {
                        state.borrow_mut().busy = false;
                        return;
                    }
                }
                x = sampler::euler_range(&x, step as f32 * dt, dt, 1, |x, t| {
                    mlp::forward(&shape, p, x, &vec![t; x.len() / 2]).0
                });
            }
            yield_to_page().await;
            let energy = metrics::energy_distance(&x, &test, 2);
            let mean_nearest = metrics::mean_nearest_distance(&train, 2, &x);
            let mut s = state.borrow_mut();
            if s.generation != generation {
                s.busy = false;
                return;
            }
            s.runs[k].metrics = Some((energy, mean_nearest));
            s.runs[k].samples = Some(x);
        }
        let mut s = state.borrow_mut();
        s.busy = false;
        if steps >= MAX_STEPS {
            for run in &mut s.runs {
                run.training = None; // frees the GPU buffers; samples and metrics stay
            }
        }
        s.update_table();
        s.needs_draw = true;
    });
}

impl Figure for CfmEfm {
    fn csv(&self) -> Option<String> {
        let s = self.state.borrow();
        let steps = s.steps();
        (steps > 0).then(|| {
            super::csv_rows(
                "step,cfm_loss,efm_loss",
                (0..steps)
                    .map(|k| format!("{},{},{}", k + 1, s.runs[0].losses[k], s.runs[1].losses[k])),
            )
        })
    }

    fn frame(&mut self, _now: f64) {
        let start = {
            let s = self.state.borrow();
            s.pause.show_paused(&s.status, s.busy, s.steps(), MAX_STEPS);
            s.visible && !s.busy && !s.pause.paused && s.steps() < MAX_STEPS
        };
        if start {
            train_chunk(&self.state);
        }
        let mut s = self.state.borrow_mut();
        if s.needs_draw {
            s.draw();
        }
    }

    fn set_visible(&mut self, visible: bool) {
        let mut s = self.state.borrow_mut();
        s.visible = visible;
        s.needs_draw = true;
    }
}
