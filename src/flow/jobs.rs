//! Independent jobs, run in turn or spread over threads as the caller chooses: the results come
//! back in the jobs' order, so what a computation finds does not depend on how it was run.

/// A way of running `count` independent jobs.
pub trait Jobs {
    /// `[job(0), job(1), ..., job(count - 1)]`, in that order however the jobs were spread.
    fn run<T: Send>(&self, count: usize, job: impl Fn(usize) -> T + Sync) -> Vec<T>;
}

/// Every job on the calling thread, one after the other (the page's module: wasm32 cannot
/// spawn threads).
#[derive(Debug, Clone, Copy)]
pub struct InTurn;

impl Jobs for InTurn {
    fn run<T: Send>(&self, count: usize, job: impl Fn(usize) -> T + Sync) -> Vec<T> {
        (0..count).map(job).collect()
    }
}

/// Job i on scoped thread i mod n (at most one thread a job; 0 is taken as 1). Native only: on
/// wasm32 `std::thread::spawn` compiles but panics.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone, Copy)]
pub struct Threads(pub usize);

#[cfg(not(target_arch = "wasm32"))]
impl Threads {
    /// As many threads as the machine offers.
    pub fn available() -> Threads {
        Threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Jobs for Threads {
    fn run<T: Send>(&self, count: usize, job: impl Fn(usize) -> T + Sync) -> Vec<T> {
        let threads = self.0.clamp(1, count.max(1));
        if threads == 1 {
            return InTurn.run(count, job);
        }
        let mut slots: Vec<Option<T>> = (0..count).map(|_| None).collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|w| {
                    let job = &job;
                    s.spawn(move || {
                        (w..count)
                            .step_by(threads)
                            .map(|i| (i, job(i)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                // A job's panic is re-raised here, on the caller's thread, with its message.
                let done = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                for (i, v) in done {
                    slots[i] = Some(v);
                }
            }
        });
        slots
            .into_iter()
            .map(|v| v.expect("every job ran"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_return_each_result_in_its_jobs_place() {
        let job = |i: usize| (i, i * i);
        let in_turn = InTurn.run(11, job);
        assert_eq!(in_turn.len(), 11);
        for threads in [0, 1, 2, 3, 16] {
            assert_eq!(Threads(threads).run(11, job), in_turn, "{threads} threads");
        }
        assert!(Threads(4).run(0, job).is_empty());
    }

    #[test]
    #[should_panic(expected = "job 5 fails")]
    fn a_jobs_panic_reaches_the_caller_with_its_message() {
        Threads(2).run(8, |i| assert!(i != 5, "job {i} fails"));
    }
}
