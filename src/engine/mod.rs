//! The compute engine of the page's workers: what a worker holds (training sets' slices by id,
//! networks by id) and its answer to each `Job`, with no DOM and no JavaScript, so that all of it
//! is tested natively. The worker's shell (engine/, a WebAssembly module of its own that
//! www/worker.js loads) only moves messages: the page's pool (src/web/pool/) sends `Job`s, the
//! engine answers `Event`s.
//!
//! One encoding crosses: a message's structure as postcard's bytes (`encode`, `decode`; the
//! digits lab's messages too), its bulk arrays beside it as buffers moved, not copied, between
//! the threads (`Envelope::split` and `join`, `Event::split` and `join`, all through `Job::map`
//! and `Answer::map`: the one place that says which arrays a message carries and in which order,
//! for both ends).

pub mod protocol;
#[cfg(target_arch = "wasm32")]
pub mod wire;

pub use protocol::{decode, encode, Answer, Envelope, Event, Job, Refusal};

use crate::flow::sampler::HybridPath;
use crate::flow::training::CpuTraining;
use crate::flow::{ClosedForm, FlowError};

/// What one worker holds, by the ids the page gave.
#[derive(Default)]
pub struct Engine {
    /// Training sets' slices, or why one was refused (said at its first query: a load has no
    /// answer of its own).
    slices: Vec<(u32, Result<ClosedForm, Refusal>)>,
    /// Networks in training, or why one was refused (said at its first use).
    trainers: Vec<(u32, Result<CpuTraining, Refusal>)>,
}

/// Floats, the bulk of jobs and answers on this side.
pub type Floats = Vec<f32>;

impl Engine {
    pub fn new() -> Engine {
        Engine::default()
    }

    /// How many slices and networks are held (the page's leak test asks).
    pub fn held(&self) -> usize {
        self.slices.len() + self.trainers.len()
    }

    fn trainer(&mut self, set: u32) -> Result<&mut CpuTraining, Refusal> {
        match self.trainers.iter_mut().find(|(id, _)| *id == set) {
            Some((_, Ok(training))) => Ok(training),
            Some((_, Err(refused))) => Err(refused.clone()),
            None => Err(Refusal::Broken(format!("no network {set} in this worker"))),
        }
    }

    /// The answer to `job`. A job the page could not have meant (rows that do not match their
    /// times, an unknown id) is refused with why; data the reader gave that cannot be used (a
    /// non-finite value) is refused as the caller's input, at its index in the whole set.
    ///
    /// # Panics
    /// On `Job::Trap` only: the test that a broken worker is replaced asks for it.
    pub fn answer(&mut self, job: Job<Floats>) -> Result<Answer<Floats>, Refusal> {
        match job {
            Job::Load {
                set,
                dim,
                first,
                data,
            } => {
                let slice = match data.iter().position(|v| !v.is_finite()) {
                    _ if dim == 0 => Err(Refusal::Broken("dim must be at least 1".into())),
                    Some(i) => Err(Refusal::Input(
                        FlowError::NonFinite {
                            name: "data",
                            index: first as usize + i,
                        }
                        .to_string(),
                    )),
                    None => Ok(ClosedForm::from_rows(data, dim as usize)),
                };
                self.slices.retain(|(id, _)| *id != set);
                self.slices.push((set, slice));
                Ok(Answer::Loaded)
            }
            Job::Partials { set, points, times } => {
                let slice = match self.slices.iter().find(|(id, _)| *id == set) {
                    Some((_, Ok(slice))) => slice,
                    Some((_, Err(refused))) => return Err(refused.clone()),
                    None => {
                        return Err(Refusal::Broken(format!(
                            "no training set {set} in this worker"
                        )))
                    }
                };
                rows(&points, &times, slice.dim())?;
                let p = slice.partials_at(&points, &times);
                Ok(Answer::Partials {
                    max: p.max,
                    sum: p.sum,
                    weighted: p.weighted,
                })
            }
            Job::Trainer {
                set,
                shape,
                options,
                data,
            } => {
                let training = if shape.dim == 0 || !data.len().is_multiple_of(shape.dim) {
                    Err(Refusal::Broken(format!(
                        "{} floats are not rows of {}",
                        data.len(),
                        shape.dim
                    )))
                } else if !options.lr.is_finite() {
                    Err(Refusal::Broken("lr must be a finite number".into()))
                } else {
                    Ok(CpuTraining::new(shape, data, options))
                };
                self.trainers.retain(|(id, _)| *id != set);
                self.trainers.push((set, training));
                Ok(Answer::Loaded)
            }
            Job::Train { set, steps, params } => {
                let training = self.trainer(set)?;
                let losses = (0..steps).map(|_| training.step()).collect();
                Ok(Answer::Trained {
                    losses,
                    params: params.then(|| training.params.clone()),
                })
            }
            Job::Forward { set, points, times } => {
                let training = self.trainer(set)?;
                rows(&points, &times, training.shape.dim)?;
                Ok(Answer::Velocity(training.velocity(&points, &times)))
            }
            Job::Path {
                set,
                points,
                data,
                steps,
                tau,
                frames,
            } => {
                let training = self.trainer(set)?;
                let dim = training.shape.dim;
                if !points.len().is_multiple_of(dim) || !data.len().is_multiple_of(dim) {
                    return Err(Refusal::Broken(format!("rows of {dim} expected")));
                }
                if !tau.is_finite() {
                    return Err(Refusal::Broken("tau must be a finite number".into()));
                }
                let hybrid = HybridPath::new(&data, dim, &points, steps as usize, tau, frames);
                let training = &*training;
                Ok(Answer::Path(
                    hybrid.run(|x, t| training.velocity(x, &vec![t; x.len() / dim])),
                ))
            }
            Job::Held => Ok(Answer::Held(self.held() as u32)),
            Job::Drop { set } => {
                self.slices.retain(|(id, _)| *id != set);
                self.trainers.retain(|(id, _)| *id != set);
                Ok(Answer::Loaded)
            }
            Job::Trap => panic!("a trap asked for by a test"),
        }
    }
}

/// Whether `points` are rows of `dim`, one for each of `times`.
fn rows(points: &[f32], times: &[f32], dim: usize) -> Result<(), Refusal> {
    if points.len() == times.len() * dim {
        Ok(())
    } else {
        Err(Refusal::Broken(format!(
            "{} floats are not {} rows of {dim}",
            points.len(),
            times.len()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::mlp::{MlpShape, Target};
    use crate::flow::training::TrainOptions;

    fn grid(n: usize, dim: usize) -> Vec<f32> {
        (0..n * dim)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect()
    }

    /// A set split over two engines, as the pool splits it, answers as the whole closed form.
    #[test]
    fn slices_merge_to_the_closed_form() {
        let (n, dim) = (40, 3);
        let data = grid(n, dim);
        let points = vec![0.3, -0.2, 0.5, 1.0, 0.0, -1.0];
        let times = vec![0.4, 0.9];
        let mut parts = Vec::new();
        for (k, rows) in [(0, 0..25), (1, 25..40)] {
            let mut engine = Engine::new();
            let job = Job::Load {
                set: 7,
                dim: dim as u32,
                first: (rows.start * dim) as u32,
                data: data[rows.start * dim..rows.end * dim].to_vec(),
            };
            assert_eq!(engine.answer(job), Ok(Answer::Loaded), "slice {k}");
            let answer = engine.answer(Job::Partials {
                set: 7,
                points: points.clone(),
                times: times.clone(),
            });
            let Ok(Answer::Partials { max, sum, weighted }) = answer else {
                panic!("slice {k}: {answer:?}")
            };
            parts.push(crate::flow::Partials {
                dim,
                max,
                sum,
                weighted,
            });
        }
        let merged = crate::flow::Partials::merge(&parts).velocity(&points, &times);
        let whole = ClosedForm::from_rows(data, dim).velocity_at(&points, &times);
        for (a, b) in merged.iter().zip(&whole) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{merged:?} against {whole:?}"
            );
        }
    }

    /// A non-finite value is the caller's input, reported at its index in the whole set, when
    /// the slice is first queried; an unknown set and rows that do not match their times are
    /// refused as the page's own mistakes.
    #[test]
    fn refusals_say_why() {
        let mut engine = Engine::new();
        let mut data = grid(10, 2);
        data[7] = f32::NAN;
        let load = Job::Load {
            set: 1,
            dim: 2,
            first: 100,
            data,
        };
        assert_eq!(engine.answer(load), Ok(Answer::Loaded));
        let query = |set| Job::Partials {
            set,
            points: vec![0.0, 0.0],
            times: vec![0.5],
        };
        match engine.answer(query(1)) {
            Err(Refusal::Input(why)) => assert!(why.contains("107"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(engine.answer(query(2)), Err(Refusal::Broken(_))));
        let zero = Job::Load {
            set: 3,
            dim: 0,
            first: 0,
            data: vec![1.0],
        };
        // A load has no answer of its own: its refusal is the next query's.
        assert_eq!(engine.answer(zero), Ok(Answer::Loaded));
        assert!(matches!(engine.answer(query(3)), Err(Refusal::Broken(w)) if w.contains("dim")));
        engine
            .answer(Job::Load {
                set: 4,
                dim: 2,
                first: 0,
                data: grid(5, 2),
            })
            .unwrap();
        let ragged = Job::Partials {
            set: 4,
            points: vec![0.0; 3],
            times: vec![0.5],
        };
        assert!(matches!(engine.answer(ragged), Err(Refusal::Broken(_))));
        let train = |set| Job::Train {
            set,
            steps: 1,
            params: false,
        };
        assert!(matches!(engine.answer(train(9)), Err(Refusal::Broken(_))));
        // A network that could not be made says why at its first use.
        let options = TrainOptions {
            batch: 4,
            lr: f32::NAN,
            seed: 1,
            target: Target::Cfm,
        };
        let made = engine.answer(Job::Trainer {
            set: 9,
            shape: MlpShape::new(2, 8, 1),
            options,
            data: grid(4, 2),
        });
        assert_eq!(made, Ok(Answer::Loaded));
        assert!(matches!(engine.answer(train(9)), Err(Refusal::Broken(w)) if w.contains("lr")));
        let ragged = Job::Trainer {
            set: 10,
            shape: MlpShape::new(2, 8, 1),
            options: TrainOptions {
                lr: 1e-3,
                ..options
            },
            data: vec![0.0; 3],
        };
        engine.answer(ragged).unwrap();
        assert!(matches!(engine.answer(train(10)), Err(Refusal::Broken(w)) if w.contains("rows")));
    }

    /// A network trained here takes the same steps as `CpuTraining` itself, answers its velocity
    /// and its paths, and is forgotten when dropped.
    #[test]
    fn a_network_trains_answers_and_is_dropped() {
        let shape = MlpShape::new(2, 16, 2);
        let options = TrainOptions {
            batch: 8,
            lr: 1e-2,
            seed: 3,
            target: Target::Cfm,
        };
        let data = grid(32, 2);
        let mut engine = Engine::new();
        let made = engine.answer(Job::Trainer {
            set: 5,
            shape,
            options,
            data: data.clone(),
        });
        assert_eq!(made, Ok(Answer::Loaded));
        let mut twin = CpuTraining::new(shape, data.clone(), options);
        let twin_losses: Vec<f32> = (0..4).map(|_| twin.step()).collect();
        let trained = engine.answer(Job::Train {
            set: 5,
            steps: 4,
            params: true,
        });
        assert_eq!(
            trained,
            Ok(Answer::Trained {
                losses: twin_losses,
                params: Some(twin.params.clone())
            })
        );
        let (points, times) = (vec![0.1, 0.2, -0.3, 0.4], vec![0.5, 0.25]);
        assert_eq!(
            engine.answer(Job::Forward {
                set: 5,
                points: points.clone(),
                times: times.clone()
            }),
            Ok(Answer::Velocity(twin.velocity(&points, &times)))
        );
        let path = engine.answer(Job::Path {
            set: 5,
            points: points.clone(),
            data: data.clone(),
            steps: 4,
            tau: 0.5,
            frames: true,
        });
        let Ok(Answer::Path(path)) = path else {
            panic!("{path:?}")
        };
        assert_eq!(path.len(), points.len() * 5);
        assert_eq!(path[..4], points[..]);
        assert!(path.iter().all(|v| v.is_finite()));
        let unknown_tau = Job::Path {
            set: 5,
            points: points.clone(),
            data: data.clone(),
            steps: 2,
            tau: f32::NAN,
            frames: false,
        };
        assert!(matches!(engine.answer(unknown_tau), Err(Refusal::Broken(w)) if w.contains("tau")));
        assert_eq!(engine.answer(Job::Held), Ok(Answer::Held(1)));
        assert_eq!(engine.answer(Job::Drop { set: 5 }), Ok(Answer::Loaded));
        assert_eq!(engine.answer(Job::Held), Ok(Answer::Held(0)));
    }
}
