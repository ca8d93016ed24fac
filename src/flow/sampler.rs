//! ODE samplers from t0 to 1 on left endpoints: t = 1, where u* is singular, is never evaluated.

use super::closed_form::closed_form_velocity;

/// The largest f32 below 1: where a time grid that would round onto t = 1 stops.
pub const LAST_TIME: f32 = 1.0 - f32::EPSILON / 2.0;

/// t_k = t_start + k dt, summed in f64 and kept below 1. Summed in f32 the grid lands on 1.0
/// exactly for valid inputs (t_start 0.9999 with 10,000 steps, 0.999999 with 100, 0.9999999 with
/// 7), where u* is infinite. Every sampler, on the CPU and the GPU, takes its times from here.
pub fn step_time(t_start: f32, dt: f32, k: usize) -> f32 {
    ((t_start as f64 + k as f64 * dt as f64) as f32).min(LAST_TIME)
}

/// The `steps` left endpoints t_k = t0 + k (1 - t0) / steps and the step size.
pub fn time_grid(steps: usize, t0: f32) -> (Vec<f32>, f32) {
    let dt = (1.0 - t0) / steps as f32;
    ((0..steps).map(|k| step_time(t0, dt, k)).collect(), dt)
}

/// Euler integration of dx/dt = velocity(x, t) from t0 to 1, all rows at once.
pub fn euler<F>(x0: &[f32], steps: usize, t0: f32, velocity: F) -> Vec<f32>
where
    F: FnMut(&[f32], f32) -> Vec<f32>,
{
    euler_range(x0, t0, (1.0 - t0) / steps as f32, steps, velocity)
}

/// `steps` Euler steps of size `dt` from `t_start`; t_k = step_time(t_start, dt, k), as on the GPU.
pub fn euler_range<F>(x0: &[f32], t_start: f32, dt: f32, steps: usize, mut velocity: F) -> Vec<f32>
where
    F: FnMut(&[f32], f32) -> Vec<f32>,
{
    let mut x = x0.to_vec();
    for k in 0..steps {
        let u = velocity(&x, step_time(t_start, dt, k));
        for (a, b) in x.iter_mut().zip(&u) {
            *a += dt * b;
        }
    }
    x
}

/// `euler_range` with a velocity that is awaited: computed in a worker, on a GPU, or with a turn
/// for the page after it. The positions at the end, or every step's positions (steps x len,
/// step-major) when `record`. Every place that integrates step by step takes its steps from
/// here, so the arithmetic is `euler_range`'s wherever the velocity comes from.
pub async fn euler_awaiting<E>(
    x0: &[f32],
    t_start: f32,
    dt: f32,
    steps: usize,
    record: bool,
    mut velocity: impl AsyncFnMut(&[f32], f32) -> Result<Vec<f32>, E>,
) -> Result<Vec<f32>, E> {
    let mut x = x0.to_vec();
    let mut frames = Vec::with_capacity(if record { steps * x0.len() } else { 0 });
    for k in 0..steps {
        let u = velocity(&x, step_time(t_start, dt, k)).await?;
        for (a, b) in x.iter_mut().zip(&u) {
            *a += dt * b;
        }
        if record {
            frames.extend_from_slice(&x);
        }
    }
    Ok(if record { frames } else { x })
}

/// Heun (explicit trapezoid). The last step would evaluate t = 1, so it is an Euler step.
pub fn heun<F>(x0: &[f32], steps: usize, t0: f32, mut velocity: F) -> Vec<f32>
where
    F: FnMut(&[f32], f32) -> Vec<f32>,
{
    let (times, dt) = time_grid(steps, t0);
    let mut x = x0.to_vec();
    for (k, &t) in times.iter().enumerate() {
        let u = velocity(&x, t);
        if k + 1 == steps {
            for (a, b) in x.iter_mut().zip(&u) {
                *a += dt * b;
            }
            break;
        }
        let pred: Vec<f32> = x.iter().zip(&u).map(|(a, b)| a + dt * b).collect();
        let u2 = velocity(&pred, times[k + 1]);
        for ((a, b), c) in x.iter_mut().zip(&u).zip(&u2) {
            *a += 0.5 * dt * (b + c);
        }
    }
    x
}

/// Euler with the closed-form velocity of `data`.
pub fn euler_sample(data: &[f32], dim: usize, x0: &[f32], steps: usize, t0: f32) -> Vec<f32> {
    euler(x0, steps, t0, |x, t| closed_form_velocity(data, dim, x, t))
}

/// Heun with the closed-form velocity of `data`.
pub fn heun_sample(data: &[f32], dim: usize, x0: &[f32], steps: usize, t0: f32) -> Vec<f32> {
    heun(x0, steps, t0, |x, t| closed_form_velocity(data, dim, x, t))
}

/// The paper's hybrid model: Euler from 0 to 1 in `steps` steps, following the closed form u*
/// of `data` while t < tau and `network` afterwards.
pub fn hybrid_sample<F>(
    data: &[f32],
    dim: usize,
    x0: &[f32],
    steps: usize,
    tau: f32,
    network: F,
) -> Vec<f32>
where
    F: FnMut(&[f32], f32) -> Vec<f32>,
{
    HybridPath::new(data, dim, x0, steps, tau, false).run(network)
}

/// `hybrid_sample` a step at a time (for a caller that gives the page a turn between steps, or
/// asks a worker for the network's velocity), optionally keeping every step's positions. With
/// tau = 0 (and no data) it is the network's own flow.
pub struct HybridPath<'a> {
    data: &'a [f32],
    dim: usize,
    tau: f32,
    dt: f32,
    steps: usize,
    k: usize,
    x: Vec<f32>,
    frames: Option<Vec<f32>>,
}

impl<'a> HybridPath<'a> {
    pub fn new(
        data: &'a [f32],
        dim: usize,
        x0: &[f32],
        steps: usize,
        tau: f32,
        keep_frames: bool,
    ) -> HybridPath<'a> {
        HybridPath {
            data,
            dim,
            tau,
            dt: 1.0 / steps as f32,
            steps,
            k: 0,
            x: x0.to_vec(),
            frames: keep_frames.then(|| {
                let mut frames = Vec::with_capacity((steps + 1) * x0.len());
                frames.extend_from_slice(x0);
                frames
            }),
        }
    }

    /// Whether every step is taken.
    pub fn done(&self) -> bool {
        self.k >= self.steps
    }

    /// The positions now.
    pub fn positions(&self) -> &[f32] {
        &self.x
    }

    /// The time of the next step, and whether the network moves it (else the closed form).
    pub fn next_time(&self) -> (f32, bool) {
        let t = step_time(0.0, self.dt, self.k);
        (t, t >= self.tau)
    }

    /// The next step, with `network`'s velocity at the positions and time when it is the
    /// network's.
    pub fn step(&mut self, network: impl FnOnce(&[f32], f32) -> Vec<f32>) {
        let (t, by_network) = self.next_time();
        let u = match by_network {
            true => network(&self.x, t),
            false => closed_form_velocity(self.data, self.dim, &self.x, t),
        };
        self.step_with(&u);
    }

    /// The next step with the velocity `u` at the positions (computed elsewhere).
    pub fn step_with(&mut self, u: &[f32]) {
        for (a, b) in self.x.iter_mut().zip(u) {
            *a += self.dt * b;
        }
        self.k += 1;
        if let Some(frames) = &mut self.frames {
            frames.extend_from_slice(&self.x);
        }
    }

    /// Every step at once.
    pub fn run(mut self, mut network: impl FnMut(&[f32], f32) -> Vec<f32>) -> Vec<f32> {
        while !self.done() {
            self.step(&mut network);
        }
        self.finish()
    }

    /// The frames when kept (x0, then the positions after every step: steps + 1 frames), else
    /// the last positions.
    pub fn finish(self) -> Vec<f32> {
        self.frames.unwrap_or(self.x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{metrics, rng::Rng, Dataset};

    #[test]
    fn euler_awaiting_takes_euler_ranges_steps_bit_for_bit() {
        let data = Dataset::TwoMoons.sample(40, 3);
        let x0 = Rng::new(4).normals(2 * 25);
        let u = |x: &[f32], t: f32| closed_form_velocity(&data, 2, x, t);
        let (t_start, dt, steps) = (0.1, 0.9 / 30.0, 30);
        let end = pollster::block_on(euler_awaiting(
            x0.as_slice(),
            t_start,
            dt,
            steps,
            false,
            async |x, t| Ok::<_, ()>(u(x, t)),
        ))
        .unwrap();
        assert_eq!(end, euler_range(&x0, t_start, dt, steps, u));
        let frames = pollster::block_on(euler_awaiting(
            &x0,
            t_start,
            dt,
            steps,
            true,
            async |x, t| Ok::<_, ()>(u(x, t)),
        ))
        .unwrap();
        assert_eq!(frames.len(), steps * x0.len());
        for k in [0, 7, steps - 1] {
            let row = &frames[k * x0.len()..(k + 1) * x0.len()];
            assert_eq!(
                row,
                euler_range(&x0, t_start, dt, k + 1, u).as_slice(),
                "step {k}"
            );
        }
        // A failed velocity ends the integration with its error.
        let mut calls = 0;
        let failed = pollster::block_on(euler_awaiting(
            &x0,
            t_start,
            dt,
            steps,
            false,
            async |x, t| {
                calls += 1;
                if calls == 3 {
                    Err("third")
                } else {
                    Ok(u(x, t))
                }
            },
        ));
        assert_eq!((failed, calls), (Err("third"), 3));
    }

    #[test]
    fn hybrid_path_is_euler_with_the_switch_and_keeps_its_frames() {
        let data = Dataset::TwoMoons.sample(30, 2);
        let x0 = Rng::new(5).normals(2 * 40);
        let network = |x: &[f32], t: f32| x.iter().map(|v| -v * (1.0 + t)).collect::<Vec<_>>();
        let tau = 0.4;
        let reference = euler(&x0, 10, 0.0, |x, t| match t < tau {
            true => closed_form_velocity(&data, 2, x, t),
            false => network(x, t),
        });
        assert_eq!(hybrid_sample(&data, 2, &x0, 10, tau, network), reference);
        let frames = HybridPath::new(&data, 2, &x0, 10, tau, true).run(network);
        assert_eq!(frames.len(), 11 * x0.len());
        assert_eq!(&frames[..x0.len()], &x0[..]);
        assert_eq!(&frames[10 * x0.len()..], &reference[..]);
        // Frame 4 is after four steps: t = 0, 0.1, 0.2, 0.3, all below tau (the closed form).
        let four = euler_range(&x0, 0.0, 0.1, 4, |x, t| {
            closed_form_velocity(&data, 2, x, t)
        });
        assert_eq!(&frames[4 * x0.len()..5 * x0.len()], &four[..]);
        // tau = 0 and no data: the network's flow.
        let own = HybridPath::new(&[], 2, &x0, 10, 0.0, false).run(network);
        assert_eq!(own, euler(&x0, 10, 0.0, network));
    }

    #[test]
    fn hybrid_switches_at_tau() {
        let data = Dataset::TwoMoons.sample(20, 1);
        let x0 = Rng::new(3).normals(2 * 50);
        let zero = |x: &[f32], _t: f32| vec![0.0; x.len()];
        // tau = 0: the network alone (here: nothing moves); tau = 1: the closed form alone.
        assert_eq!(hybrid_sample(&data, 2, &x0, 20, 0.0, zero), x0);
        assert_eq!(
            hybrid_sample(&data, 2, &x0, 20, 1.0, zero),
            euler_sample(&data, 2, &x0, 20, 0.0)
        );
        // In between, the first tau * steps steps follow u*, the rest stand still.
        let half = hybrid_sample(&data, 2, &x0, 20, 0.5, zero);
        assert_eq!(
            half,
            euler_range(&x0, 0.0, 0.05, 10, |x, t| closed_form_velocity(
                &data, 2, x, t
            ))
        );
    }

    #[test]
    fn grid_never_reaches_one() {
        let (ts, dt) = time_grid(4, 0.2);
        assert_eq!(ts.len(), 4);
        assert!((dt - 0.2).abs() < 1e-7);
        assert!((ts[3] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn no_step_evaluates_t_one() {
        // Summed in f32, each of these grids reaches t = 1.0 exactly.
        for (t0, steps) in [(0.9999f32, 10_000), (0.999_999, 100), (0.999_999_9, 7)] {
            let dt = (1.0 - t0) / steps as f32;
            assert!(
                (0..steps).any(|k| t0 + k as f32 * dt >= 1.0),
                "{t0} {steps}"
            );
            let (ts, _) = time_grid(steps, t0);
            assert!(ts.iter().all(|&t| t < 1.0), "{t0} {steps}");
            let data = Dataset::TwoMoons.sample(30, 2);
            let x0 = Rng::new(4).normals(2 * 40);
            for x in [
                euler_sample(&data, 2, &x0, steps, t0),
                heun_sample(&data, 2, &x0, steps, t0),
            ] {
                assert!(x.iter().all(|v| v.is_finite()), "{t0} {steps}: {x:?}");
            }
        }
    }

    #[test]
    fn straight_paths_are_integrated_exactly() {
        // One training point: u* is the straight line to it; both samplers land on it.
        let data = [1.0f32, -2.0];
        let x0 = Rng::new(1).normals(20);
        for x in [
            euler_sample(&data, 2, &x0, 7, 0.0),
            heun_sample(&data, 2, &x0, 7, 0.0),
        ] {
            for p in x.chunks(2) {
                assert!(
                    (p[0] - 1.0).abs() < 1e-4 && (p[1] + 2.0).abs() < 1e-4,
                    "{p:?}"
                );
            }
        }
    }

    #[test]
    fn closed_form_memorizes_two_moons() {
        let data = Dataset::TwoMoons.sample(50, 0);
        let x0 = Rng::new(2).normals(2 * 1000);
        let x1 = euler_sample(&data, 2, &x0, 100, 0.0);
        let scale = metrics::data_scale(&data, 2);
        let d = metrics::nearest_distances(&data, 2, &x1);
        let frac = metrics::fraction_below(&d, 0.01 * scale);
        assert!(frac >= 0.98, "only {frac} memorized");
        // Heun does as well.
        let x1 = heun_sample(&data, 2, &x0[..400], 100, 0.0);
        let d = metrics::nearest_distances(&data, 2, &x1);
        assert!(metrics::fraction_below(&d, 0.01 * scale) >= 0.98);
    }
}
