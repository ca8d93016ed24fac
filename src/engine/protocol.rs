//! What the page asks of a compute worker (`Job`) and what comes back (`Event`), typed on both
//! ends. `A` is a bulk array: `Vec<f32>` in the engine, a moved `Float32Array` on the page, `()`
//! in the structure that postcard encodes (where it takes no byte). `split` and `join` are the
//! one statement of which arrays a message carries and in which order.

use crate::flow::mlp::MlpShape;
use crate::flow::training::TrainOptions;
use serde::{Deserialize, Serialize};

/// One job for a compute worker; `set` names what the worker holds under that id: a training
/// set's slice or a network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Job<A> {
    /// Hold rows of a training set (rows of `dim`), whose first value is value `first` of the
    /// whole set (so that a refused value is reported at its index in the whole).
    Load {
        set: u32,
        dim: u32,
        first: u32,
        data: A,
    },
    /// The softmax state of a held slice at the rows of `points`, each at its time.
    Partials { set: u32, points: A, times: A },
    /// A network of `shape`, to train on `data` with `options`.
    Trainer {
        set: u32,
        shape: MlpShape,
        options: TrainOptions,
        data: A,
    },
    /// `steps` training steps: their losses, and the parameters after them when `params`.
    Train { set: u32, steps: u32, params: bool },
    /// The network's velocity at the rows of `points`, each at its time.
    Forward { set: u32, points: A, times: A },
    /// The network's samples from `points` (flow::sampler::HybridPath along the closed form of
    /// `data` while t < tau), every step's positions when `frames`.
    Path {
        set: u32,
        points: A,
        data: A,
        steps: u32,
        tau: f32,
        frames: bool,
    },
    /// How many sets and networks the worker holds (the leak test).
    Held,
    /// Forget what is held under `set`.
    Drop { set: u32 },
    /// Panic inside the module (the test that a broken worker is replaced).
    Trap,
}

/// A worker's answer to a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Answer<A> {
    /// Held (a set, a network) or forgotten: nothing to say.
    Loaded,
    /// A slice's softmax state at the query's rows (`flow::Partials`).
    Partials {
        max: A,
        sum: A,
        weighted: A,
    },
    /// The losses of the steps taken, and the parameters after them when asked.
    Trained {
        losses: A,
        params: Option<A>,
    },
    Velocity(A),
    Path(A),
    Held(u32),
    /// A loaded slice's array, handed back by the worker's shell once copied in: the page fills
    /// the next slice into it (its memory already mapped) rather than into a new array.
    Spare(A),
}

/// Why a job was not done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Refusal {
    /// The caller's data cannot be used (said as is; the page does not blame the worker).
    Input(String),
    /// The job cannot be done here (an unknown id, a malformed message).
    Broken(String),
}

/// What a worker posts: the answer to the job of `ticket`, or an unasked one (`ticket` None: a
/// spare array, a refusal of a message no ticket could be read from).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event<A> {
    pub ticket: Option<u32>,
    pub outcome: Result<Answer<A>, Refusal>,
}

/// A job as it crosses: its ticket (None: no answer expected) and the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<A> {
    pub ticket: Option<u32>,
    pub job: Job<A>,
}

impl<A> Job<A> {
    /// The job with every array through `f`, in the order `split` and `join` use.
    pub fn map<B>(self, mut f: impl FnMut(A) -> B) -> Job<B> {
        match self {
            Job::Load {
                set,
                dim,
                first,
                data,
            } => Job::Load {
                set,
                dim,
                first,
                data: f(data),
            },
            Job::Partials { set, points, times } => Job::Partials {
                set,
                points: f(points),
                times: f(times),
            },
            Job::Trainer {
                set,
                shape,
                options,
                data,
            } => Job::Trainer {
                set,
                shape,
                options,
                data: f(data),
            },
            Job::Train { set, steps, params } => Job::Train { set, steps, params },
            Job::Forward { set, points, times } => Job::Forward {
                set,
                points: f(points),
                times: f(times),
            },
            Job::Path {
                set,
                points,
                data,
                steps,
                tau,
                frames,
            } => Job::Path {
                set,
                points: f(points),
                data: f(data),
                steps,
                tau,
                frames,
            },
            Job::Held => Job::Held,
            Job::Drop { set } => Job::Drop { set },
            Job::Trap => Job::Trap,
        }
    }
}

impl<A> Answer<A> {
    /// The answer with every array through `f`, in the order `split` and `join` use.
    pub fn map<B>(self, mut f: impl FnMut(A) -> B) -> Answer<B> {
        match self {
            Answer::Loaded => Answer::Loaded,
            Answer::Partials { max, sum, weighted } => Answer::Partials {
                max: f(max),
                sum: f(sum),
                weighted: f(weighted),
            },
            Answer::Trained { losses, params } => Answer::Trained {
                losses: f(losses),
                params: params.map(f),
            },
            Answer::Velocity(a) => Answer::Velocity(f(a)),
            Answer::Path(a) => Answer::Path(f(a)),
            Answer::Held(k) => Answer::Held(k),
            Answer::Spare(a) => Answer::Spare(f(a)),
        }
    }
}

impl<A> Envelope<A> {
    /// Its structure and its arrays, in order.
    pub fn split(self) -> (Envelope<()>, Vec<A>) {
        let mut arrays = Vec::new();
        let job = self.job.map(|a| arrays.push(a));
        let ticket = self.ticket;
        (Envelope { ticket, job }, arrays)
    }
}

impl<A> Event<A> {
    /// Its structure and its arrays, in order.
    pub fn split(self) -> (Event<()>, Vec<A>) {
        let mut arrays = Vec::new();
        let outcome = self.outcome.map(|a| a.map(|a| arrays.push(a)));
        (
            Event {
                ticket: self.ticket,
                outcome,
            },
            arrays,
        )
    }
}

impl Envelope<()> {
    /// The envelope with `arrays` in their places; an error when there are more or fewer than
    /// its job carries.
    pub fn join<A>(self, arrays: Vec<A>) -> Result<Envelope<A>, String> {
        let carried = count(|tally| {
            self.job.clone().map(|()| tally());
        });
        let mut arrays = checked(arrays, carried)?.into_iter();
        let job = self.job.map(|()| arrays.next().expect("counted"));
        Ok(Envelope {
            ticket: self.ticket,
            job,
        })
    }
}

impl Event<()> {
    /// The event with `arrays` in their places; an error when there are more or fewer than its
    /// answer carries.
    pub fn join<A>(self, arrays: Vec<A>) -> Result<Event<A>, String> {
        let carried = count(|tally| {
            if let Ok(answer) = &self.outcome {
                answer.clone().map(|()| tally());
            }
        });
        let mut arrays = checked(arrays, carried)?.into_iter();
        let outcome = self
            .outcome
            .map(|answer| answer.map(|()| arrays.next().expect("counted")));
        Ok(Event {
            ticket: self.ticket,
            outcome,
        })
    }
}

/// How many times `visit` calls its tally.
fn count(visit: impl FnOnce(&mut dyn FnMut())) -> usize {
    let mut n = 0;
    visit(&mut || n += 1);
    n
}

/// `arrays` when they are as many as a message carries.
fn checked<A>(arrays: Vec<A>, carried: usize) -> Result<Vec<A>, String> {
    match arrays.len() {
        k if k == carried => Ok(arrays),
        k => Err(format!("{k} arrays where the message carries {carried}")),
    }
}

/// A message as it crosses between threads: postcard's bytes.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    // Only an allocation failure could make this fail, and that aborts first.
    postcard::to_allocvec(message).unwrap_or_default()
}

/// A message from its bytes; an error for anything else (a truncated or padded one included).
pub fn decode<T: for<'a> Deserialize<'a>>(bytes: &[u8]) -> Result<T, String> {
    match postcard::take_from_bytes(bytes) {
        Ok((message, [])) => Ok(message),
        Ok((_, rest)) => Err(format!("{} bytes after a message", rest.len())),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::mlp::Target;

    fn jobs() -> Vec<Job<Vec<f32>>> {
        let options = TrainOptions {
            batch: 8,
            lr: 1e-3,
            seed: 9,
            target: Target::Efm { samples: 32 },
        };
        vec![
            Job::Load {
                set: 1,
                dim: 2,
                first: 6,
                data: vec![1.0, 2.0],
            },
            Job::Partials {
                set: 1,
                points: vec![0.5, 0.25],
                times: vec![0.75],
            },
            Job::Trainer {
                set: 2,
                shape: MlpShape::new(2, 16, 2),
                options,
                data: vec![3.0; 4],
            },
            Job::Train {
                set: 2,
                steps: 5,
                params: true,
            },
            Job::Forward {
                set: 2,
                points: vec![0.0; 2],
                times: vec![0.1],
            },
            Job::Path {
                set: 2,
                points: vec![0.0; 2],
                data: vec![1.0; 4],
                steps: 3,
                tau: 0.5,
                frames: false,
            },
            Job::Held,
            Job::Drop { set: 1 },
            Job::Trap,
        ]
    }

    /// Every job crosses as bytes and arrays and comes back equal; its arrays are the ones it
    /// holds, in order, and the bytes carry none of their floats.
    #[test]
    fn every_job_crosses_whole() {
        for job in jobs() {
            let sent = Envelope {
                ticket: Some(4),
                job: job.clone(),
            };
            let (head, arrays) = sent.clone().split();
            let bytes = encode(&head);
            assert!(bytes.len() < 32, "{job:?}: {} bytes", bytes.len());
            let back = decode::<Envelope<()>>(&bytes)
                .unwrap()
                .join(arrays)
                .unwrap();
            assert_eq!(back, sent);
        }
    }

    #[test]
    fn every_answer_crosses_whole() {
        let answers = [
            Answer::Loaded,
            Answer::Partials {
                max: vec![1.0],
                sum: vec![2.0],
                weighted: vec![3.0, 4.0],
            },
            Answer::Trained {
                losses: vec![0.5; 3],
                params: None,
            },
            Answer::Trained {
                losses: vec![0.5; 3],
                params: Some(vec![1.5; 7]),
            },
            Answer::Velocity(vec![1.0; 2]),
            Answer::Path(vec![2.0; 6]),
            Answer::Held(3),
            Answer::Spare(vec![0.0; 8]),
        ];
        let refusals = [
            Err(Refusal::Input("data[7] is not finite".into())),
            Err(Refusal::Broken("no network 4".into())),
        ];
        for outcome in answers.into_iter().map(Ok).chain(refusals) {
            let sent = Event {
                ticket: Some(2),
                outcome,
            };
            let (head, arrays) = sent.clone().split();
            let back = decode::<Event<()>>(&encode(&head))
                .unwrap()
                .join(arrays)
                .unwrap();
            assert_eq!(back, sent);
        }
    }

    /// The bytes as the browser test of the slider's drag reads them to count the workers'
    /// queries: the ticket (an Option<u32>: 1 then a varint), then the job's variant index as a
    /// varint, Partials being 1.
    #[test]
    fn a_query_reads_as_the_drag_test_reads_it() {
        let (head, _) = Envelope {
            ticket: Some(300),
            job: jobs().swap_remove(1),
        }
        .split();
        assert_eq!(encode(&head)[..4], [1, 0xac, 0x02, 1]);
    }

    /// A message with an array too many or too few, truncated bytes or bytes left over: an
    /// error, never a job read with a default.
    #[test]
    fn malformed_messages_are_refused() {
        let (head, mut arrays) = Envelope {
            ticket: None,
            job: jobs().swap_remove(1),
        }
        .split();
        let extra = head
            .clone()
            .join([arrays.clone(), vec![vec![0.0]]].concat());
        assert!(extra
            .unwrap_err()
            .contains("3 arrays where the message carries 2"));
        arrays.pop();
        assert!(head.clone().join(arrays).is_err());
        let bytes = encode(&head);
        assert!(decode::<Envelope<()>>(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode::<Envelope<()>>(&[bytes.clone(), vec![0]].concat()).is_err());
        let refused: Event<()> = Event {
            ticket: None,
            outcome: Err(Refusal::Broken("x".into())),
        };
        assert!(refused.join(vec![vec![1.0f32]]).is_err());
    }
}
