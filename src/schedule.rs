//! A figure's background job, scheduled so that the figure follows its controls: at most one
//! job in flight; what the controls ask for while it runs replaces what they asked before (only
//! the newest request starts next, the ones it replaced are dropped, never computed); a result
//! is drawn as soon as it comes. So a dragged slider starts at most one job per frame, and the
//! drawn result is never more than the one job in flight behind the control.
//!
//! Pure (no browser): the figures call it from their frames and callbacks, and the tests below
//! script it.

/// The jobs of one figure, keyed by their inputs `K` (settings, a data version).
#[derive(Debug, Clone)]
pub struct Jobs<K> {
    /// The newest request, not yet started.
    wanted: Option<K>,
    /// The job in flight: its number and inputs.
    running: Option<(u64, K)>,
    /// The newest result drawn: its job's number and inputs.
    drawn: Option<(u64, K)>,
    /// Jobs started so far (a job's number is the count when it started).
    pub started: u64,
    /// Requests replaced by a newer one before they started.
    pub dropped: u64,
}

impl<K> Default for Jobs<K> {
    fn default() -> Self {
        Jobs {
            wanted: None,
            running: None,
            drawn: None,
            started: 0,
            dropped: 0,
        }
    }
}

impl<K: PartialEq + Clone> Jobs<K> {
    /// The controls now ask for `key`. A request that is already computed, in flight or waiting
    /// changes nothing; one that replaces a waiting request drops it.
    pub fn ask(&mut self, key: K) {
        let known = |slot: &Option<(u64, K)>| slot.as_ref().is_some_and(|(_, k)| *k == key);
        if self.wanted.as_ref() == Some(&key) {
            return;
        }
        if self.wanted.take().is_some() {
            self.dropped += 1;
        }
        // Back to what is in flight (or drawn, with nothing in flight): nothing new to compute.
        if known(&self.running) || (self.running.is_none() && known(&self.drawn)) {
            return;
        }
        self.wanted = Some(key);
    }

    /// The controls ask for nothing now: a waiting request is dropped (the one in flight, if
    /// any, ends and is drawn).
    pub fn cancel(&mut self) {
        if self.wanted.take().is_some() {
            self.dropped += 1;
        }
    }

    /// The job to start now, if any: the newest request, when none is in flight.
    pub fn start(&mut self) -> Option<(u64, K)> {
        if self.running.is_some() {
            return None;
        }
        let key = self.wanted.take()?;
        self.started += 1;
        self.running = Some((self.started, key.clone()));
        Some((self.started, key))
    }

    /// Job `number` ended (with a result to draw, or an error shown in its place).
    pub fn finish(&mut self, number: u64) {
        if let Some((n, key)) = self.running.take_if(|(n, _)| *n == number) {
            self.drawn = Some((n, key));
        }
    }

    /// Whether a job is in flight.
    pub fn busy(&self) -> bool {
        self.running.is_some()
    }

    /// The number and inputs of the result drawn last.
    pub fn drawn(&self) -> Option<&(u64, K)> {
        self.drawn.as_ref()
    }

    /// Jobs started since the drawn result's (0: the drawn result is the newest started).
    pub fn lag(&self) -> u64 {
        self.started - self.drawn.as_ref().map_or(0, |(n, _)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::Jobs;

    /// A drag: every frame the control moves twice (two input events per frame), a job takes
    /// `frames_per_job` frames. At most one job starts per frame, the drawn result is never more
    /// than one job behind, every skipped value is counted as dropped, and once the control
    /// rests its value is the one drawn.
    fn drag(frames_per_job: usize) -> (Jobs<u32>, u64) {
        let mut jobs = Jobs::default();
        let mut in_flight: Option<(u64, usize)> = None;
        let mut asked = 0;
        for frame in 0..60usize {
            for half in 0..2 {
                jobs.ask((2 * frame + half) as u32);
                asked += 1;
            }
            // The frame: a finished job is drawn, then the next starts.
            if let Some((n, since)) = in_flight {
                if frame - since >= frames_per_job {
                    jobs.finish(n);
                    in_flight = None;
                }
            }
            let before = jobs.started;
            if let Some((n, _)) = jobs.start() {
                in_flight = Some((n, frame));
            }
            assert!(jobs.started - before <= 1);
            assert_eq!(jobs.busy(), in_flight.is_some());
            assert!(jobs.lag() <= 1, "frame {frame}: {} jobs behind", jobs.lag());
        }
        // At rest: the last job ends, the last value starts and ends.
        for _ in 0..2 {
            if let Some((n, _)) = in_flight.take() {
                jobs.finish(n);
            }
            in_flight = jobs.start().map(|(n, _)| (n, 0));
        }
        assert_eq!(jobs.drawn().map(|(_, k)| *k), Some(119));
        assert_eq!(jobs.lag(), 0);
        (jobs, asked)
    }

    #[test]
    fn a_cancelled_request_never_starts() {
        let mut jobs = Jobs::default();
        jobs.ask(1);
        let (n, _) = jobs.start().unwrap();
        jobs.ask(2);
        jobs.cancel();
        jobs.finish(n);
        assert_eq!(jobs.start(), None);
        assert_eq!((jobs.started, jobs.dropped, jobs.lag()), (1, 1, 0));
        // Nothing waiting: nothing dropped.
        jobs.cancel();
        assert_eq!(jobs.dropped, 1);
        jobs.ask(3);
        assert_eq!(jobs.start().map(|(_, k)| k), Some(3));
    }

    #[test]
    fn a_drag_starts_one_job_a_frame_and_drops_the_rest() {
        for frames_per_job in [0, 1, 3] {
            let (jobs, asked) = drag(frames_per_job);
            // Every request was either started or dropped.
            assert_eq!(
                jobs.started + jobs.dropped,
                asked,
                "{frames_per_job} frames a job"
            );
            assert!(jobs.started <= 61, "{} jobs", jobs.started);
        }
        // Fast jobs: one a frame (60 of the drag's frames), the other value of each frame dropped.
        let (fast, _) = drag(0);
        assert_eq!((fast.started, fast.dropped), (60, 60));
        // Jobs of three frames: one started every third frame, and one for the value at rest.
        let (slow, _) = drag(3);
        assert_eq!((slow.started, slow.dropped), (21, 99));
    }

    #[test]
    fn returning_to_the_value_in_flight_or_drawn_starts_nothing() {
        let mut jobs = Jobs::default();
        jobs.ask(1);
        assert_eq!(jobs.start(), Some((1, 1)));
        jobs.ask(2);
        jobs.ask(1); // back to the value in flight: 2 is dropped, nothing waits
        assert_eq!((jobs.dropped, jobs.start()), (1, None));
        jobs.finish(1);
        assert_eq!(jobs.drawn(), Some(&(1, 1)));
        jobs.ask(1);
        assert_eq!(jobs.start(), None);
        // A finish that is not the job in flight's changes nothing.
        jobs.ask(3);
        assert_eq!(jobs.start(), Some((2, 3)));
        jobs.finish(1);
        assert_eq!((jobs.drawn(), jobs.lag()), (Some(&(1, 1)), 1));
        jobs.finish(2);
        assert_eq!((jobs.drawn(), jobs.lag()), (Some(&(2, 3)), 0));
    }
}
