//! The velocity network u_theta(x, t): an MLP on [x, embed(t)] with SiLU hidden layers, its
//! backward pass, Adam, and CFM training steps. This is the reference (and the CPU fallback) for
//! the GPU training kernels, which use the same flat parameter layout so the two can be compared
//! weight by weight.
//!
//! Layout: for each layer in order, W (out x in, row-major) then b (out).

use super::rng::Rng;

/// Arithmetic the network needs, so that the gradient check can run it in f64.
pub trait Real:
    Copy
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
{
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn sqrt(self) -> Self;
    /// 1 / (1 + e^-x), the gate of SiLU.
    fn sigmoid(self) -> Self;
    /// c (m x n, row-major) += a b, with a (m x k) and b (k x n) read through their (row, column)
    /// strides, so a transposed operand costs nothing: matrixmultiply's blocked kernels, which
    /// pick AVX/FMA at run time natively.
    #[allow(clippy::too_many_arguments)]
    fn gemm_add(
        m: usize,
        k: usize,
        n: usize,
        a: &[Self],
        a_strides: (usize, usize),
        b: &[Self],
        b_strides: (usize, usize),
        c: &mut [Self],
    );
}

macro_rules! real {
    ($t:ty, $gemm:path, $sigmoid:expr) => {
        impl Real for $t {
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn sigmoid(self) -> Self {
                $sigmoid(self)
            }
            fn gemm_add(
                m: usize,
                k: usize,
                n: usize,
                a: &[Self],
                (rsa, csa): (usize, usize),
                b: &[Self],
                (rsb, csb): (usize, usize),
                c: &mut [Self],
            ) {
                if m == 0 || n == 0 {
                    return;
                }
                // The largest index each operand is read at, without wrapping.
                let last = |rows: usize, cols: usize, rs: usize, cs: usize| {
                    (rows - 1)
                        .checked_mul(rs)
                        .and_then(|r| (cols - 1).checked_mul(cs).and_then(|c| r.checked_add(c)))
                };
                let fits = |s: usize| isize::try_from(s).is_ok();
                assert!(
                    fits(rsa) && fits(csa) && fits(rsb) && fits(csb),
                    "a stride overflows"
                );
                if k > 0 {
                    assert!(
                        last(m, k, rsa, csa).is_some_and(|i| i < a.len()),
                        "a is too short"
                    );
                    assert!(
                        last(k, n, rsb, csb).is_some_and(|i| i < b.len()),
                        "b is too short"
                    );
                }
                assert!(
                    m.checked_mul(n).is_some_and(|mn| mn <= c.len()),
                    "c is too short"
                );
                // SAFETY: the assertions keep every element the kernel reads inside `a` and `b`
                // and every element it writes inside `c` (m x n, row stride n); the three slices
                // cannot overlap, `c` being borrowed mutably.
                unsafe {
                    $gemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        rsa as isize,
                        csa as isize,
                        b.as_ptr(),
                        rsb as isize,
                        csb as isize,
                        1.0,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                }
            }
        }
    };
}
// float32 (the page's training): e^-|x| by the closed form's vectorisable exponential (the
// library's expf is a scalar call on wasm and took a third of a CPU training step), then
// 1 / (1 + e) or e / (1 + e) by the sign, both exact to a few ulp.
real!(f32, matrixmultiply::sgemm, |x: f32| {
    let e = super::closed_form::exp_small(-x.abs());
    if x >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
});
// float64 (the references): the textbook formula.
real!(f64, matrixmultiply::dgemm, |x: f64| 1.0
    / (1.0 + (-x).exp()));

/// The network's architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MlpShape {
    pub dim: usize,
    pub hidden: usize,
    /// Number of hidden layers (each followed by SiLU).
    pub depth: usize,
    /// Size of the sinusoidal time embedding (even).
    pub time_features: usize,
}

impl MlpShape {
    pub fn new(dim: usize, hidden: usize, depth: usize) -> MlpShape {
        MlpShape {
            dim,
            hidden,
            depth,
            time_features: 8,
        }
    }

    /// (inputs, outputs) of every layer, the output layer last.
    pub fn layers(&self) -> Vec<(usize, usize)> {
        let mut layers = vec![(self.dim + self.time_features, self.hidden)];
        layers.extend((1..self.depth).map(|_| (self.hidden, self.hidden)));
        layers.push((self.hidden, self.dim));
        layers
    }

    pub fn input_size(&self) -> usize {
        self.dim + self.time_features
    }

    /// Offset of each layer's W in the flat parameter vector (b follows W).
    pub fn offsets(&self) -> Vec<usize> {
        let mut offsets = Vec::new();
        let mut at = 0;
        for (i, o) in self.layers() {
            offsets.push(at);
            at += i * o + o;
        }
        offsets
    }

    pub fn parameter_count(&self) -> usize {
        self.layers().iter().map(|(i, o)| i * o + o).sum()
    }

    /// PyTorch's default initialisation: W and b uniform in +-1/sqrt(fan_in), from a seed.
    pub fn init(&self, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let mut params = Vec::with_capacity(self.parameter_count());
        for (i, o) in self.layers() {
            let bound = 1.0 / (i as f64).sqrt();
            params.extend((0..i * o + o).map(|_| ((2.0 * rng.uniform() - 1.0) * bound) as f32));
        }
        params
    }

    /// [x, sin(w_k t), cos(w_k t)] with w_k = 2^k, k < time_features / 2.
    pub fn input_row<R: Real>(&self, x: &[R], t: R, out: &mut [R]) {
        out[..self.dim].copy_from_slice(x);
        let half = self.time_features / 2;
        for k in 0..half {
            let wt = R::from_f64((1u64 << k) as f64) * t;
            out[self.dim + k] = wt.sin();
            out[self.dim + half + k] = wt.cos();
        }
    }
}

pub(crate) fn silu<R: Real>(z: R) -> R {
    z * z.sigmoid()
}

pub(crate) fn silu_grad<R: Real>(z: R) -> R {
    let one = R::from_f64(1.0);
    let s = z.sigmoid();
    s * (one + z * (one - s))
}

/// What the backward pass needs from the forward pass: each layer's input and pre-activation.
pub struct Cache<R> {
    inputs: Vec<Vec<R>>,
    pre: Vec<Vec<R>>,
    batch: usize,
}

/// The transpose of a rows x cols row-major matrix.
fn transpose<R: Real>(m: &[R], rows: usize, cols: usize) -> Vec<R> {
    let mut out = vec![R::from_f64(0.0); rows * cols];
    for (r, row) in m.chunks_exact(cols).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            out[c * rows + r] = v;
        }
    }
    out
}

/// out += x m, with x rows x k, m k x n and out rows x n, all row-major. Four rows of x at a
/// time, so each row of m is loaded once per four output rows, and the inner loop is an axpy
/// over contiguous memory, which LLVM vectorises (SIMD128 on wasm). The products of the forward
/// pass, of the input gradients and of the weight gradients all take this shape.
fn rows_times<R: Real>(x: &[R], m: &[R], k: usize, n: usize, out: &mut [R]) {
    let mut x_rows = x.chunks_exact(4 * k);
    let mut out_rows = out.chunks_exact_mut(4 * n);
    for (xs, outs) in (&mut x_rows).zip(&mut out_rows) {
        let (o0, rest) = outs.split_at_mut(n);
        let (o1, rest) = rest.split_at_mut(n);
        let (o2, o3) = rest.split_at_mut(n);
        for (i, m_row) in m.chunks_exact(n).enumerate() {
            let (c0, c1, c2, c3) = (xs[i], xs[k + i], xs[2 * k + i], xs[3 * k + i]);
            for ((((&v, a), b), c), d) in m_row
                .iter()
                .zip(o0.iter_mut())
                .zip(o1.iter_mut())
                .zip(o2.iter_mut())
                .zip(o3.iter_mut())
            {
                *a += c0 * v;
                *b += c1 * v;
                *c += c2 * v;
                *d += c3 * v;
            }
        }
    }
    for (xs, o) in x_rows
        .remainder()
        .chunks_exact(k)
        .zip(out_rows.into_remainder().chunks_exact_mut(n))
    {
        for (&c, m_row) in xs.iter().zip(m.chunks_exact(n)) {
            for (a, &v) in o.iter_mut().zip(m_row) {
                *a += c * v;
            }
        }
    }
}

/// u_theta for a batch: `x` is batch x dim, `t` has one time per row. Returns batch x dim.
pub fn forward<R: Real>(shape: &MlpShape, params: &[R], x: &[R], t: &[R]) -> (Vec<R>, Cache<R>) {
    let batch = t.len();
    let mut input = vec![R::from_f64(0.0); batch * shape.input_size()];
    for (b, row) in input.chunks_exact_mut(shape.input_size()).enumerate() {
        shape.input_row(&x[b * shape.dim..(b + 1) * shape.dim], t[b], row);
    }
    let layers = shape.layers();
    let offsets = shape.offsets();
    let mut cache = Cache {
        inputs: Vec::new(),
        pre: Vec::new(),
        batch,
    };
    for (l, &(n_in, n_out)) in layers.iter().enumerate() {
        let w = &params[offsets[l]..offsets[l] + n_in * n_out];
        let bias = &params[offsets[l] + n_in * n_out..offsets[l] + n_in * n_out + n_out];
        let mut z: Vec<R> = bias.iter().copied().cycle().take(batch * n_out).collect();
        rows_times(&input, &transpose(w, n_out, n_in), n_in, n_out, &mut z);
        let last = l + 1 == layers.len();
        let next = if last {
            z.clone()
        } else {
            z.iter().map(|&v| silu(v)).collect()
        };
        cache.inputs.push(std::mem::replace(&mut input, next));
        cache.pre.push(z);
    }
    (input, cache)
}

/// Gradient of a loss with respect to the parameters, given its gradient `grad_out` with
/// respect to the network's output (batch x dim).
pub fn backward<R: Real>(
    shape: &MlpShape,
    params: &[R],
    cache: &Cache<R>,
    grad_out: &[R],
) -> Vec<R> {
    let layers = shape.layers();
    let offsets = shape.offsets();
    let batch = cache.batch;
    let mut grads = vec![R::from_f64(0.0); params.len()];
    let mut delta = grad_out.to_vec(); // dL/dz of the current layer
    for l in (0..layers.len()).rev() {
        let (n_in, n_out) = layers[l];
        let input = &cache.inputs[l];
        let (gw, rest) = grads[offsets[l]..].split_at_mut(n_in * n_out);
        let gb = &mut rest[..n_out];
        // dL/dW = delta^T input, dL/db = the column sums of delta.
        let delta_t = transpose(&delta, batch, n_out);
        rows_times(&delta_t, input, batch, n_in, gw);
        for (g, column) in gb.iter_mut().zip(delta_t.chunks_exact(batch)) {
            *g = column.iter().fold(R::from_f64(0.0), |acc, &d| acc + d);
        }
        if l == 0 {
            break;
        }
        // dL/da of this layer's input (delta W), then through the previous layer's SiLU.
        let w = &params[offsets[l]..offsets[l] + n_in * n_out];
        let prev_pre = &cache.pre[l - 1];
        let mut next = vec![R::from_f64(0.0); batch * n_in];
        rows_times(&delta, w, n_out, n_in, &mut next);
        for (v, &z) in next.iter_mut().zip(prev_pre) {
            *v = *v * silu_grad(z);
        }
        delta = next;
    }
    grads
}

/// The regression loss mean_b ||u_theta(x_b, t_b) - target_b||^2 and its gradient.
pub fn loss_and_grad<R: Real>(
    shape: &MlpShape,
    params: &[R],
    x: &[R],
    t: &[R],
    target: &[R],
) -> (R, Vec<R>) {
    let (u, cache) = forward(shape, params, x, t);
    let scale = R::from_f64(1.0 / t.len() as f64);
    let mut loss = R::from_f64(0.0);
    let grad_out: Vec<R> = u
        .iter()
        .zip(target)
        .map(|(&a, &b)| {
            let d = a - b;
            loss += d * d * scale;
            R::from_f64(2.0) * d * scale
        })
        .collect();
    (loss, backward(shape, params, &cache, &grad_out))
}

/// Adam (Kingma & Ba) with bias correction.
pub struct Adam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    pub step: u32,
}

impl Adam {
    pub fn new(parameters: usize, lr: f32) -> Adam {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            m: vec![0.0; parameters],
            v: vec![0.0; parameters],
            step: 0,
        }
    }

    pub fn update(&mut self, params: &mut [f32], grads: &[f32]) {
        self.step += 1;
        let c1 = 1.0 - self.beta1.powi(self.step as i32);
        let c2 = 1.0 - self.beta2.powi(self.step as i32);
        for (((p, &g), m), v) in params
            .iter_mut()
            .zip(grads)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m = self.beta1 * *m + (1.0 - self.beta1) * g;
            *v = self.beta2 * *v + (1.0 - self.beta2) * g * g;
            *p -= self.lr * (*m / c1) / ((*v / c2).sqrt() + self.eps);
        }
    }
}

/// Trains `shape` from its seeded initialisation for `steps` steps (batch 256, Adam) and returns
/// the parameters: the CPU reference runs of the quality measurements.
pub fn train(
    shape: &MlpShape,
    data: &[f32],
    target: Target,
    steps: usize,
    lr: f32,
    seed: u32,
) -> Vec<f32> {
    let mut params = shape.init(seed as u64);
    let mut adam = Adam::new(params.len(), lr);
    for _ in 0..steps {
        train_step(shape, &mut params, &mut adam, data, 256, seed, target);
    }
    params
}

/// Euler samples of the network from `x0`, `steps` steps from t = 0 to 1.
pub fn sample(shape: &MlpShape, params: &[f32], x0: &[f32], steps: usize) -> Vec<f32> {
    super::sampler::euler(x0, steps, 0.0, |x, t| {
        forward(shape, params, x, &vec![t; x.len() / shape.dim]).0
    })
}

/// A counter-based random stream (lowbias32 hash), identical in Rust and in WGSL
/// (`shaders/mlp_batch.wgsl`), so the GPU draws the very batch the CPU twin draws.
pub fn hash32(x: u32) -> u32 {
    let mut v = x;
    v ^= v >> 16;
    v = v.wrapping_mul(0x7feb_352d);
    v ^= v >> 15;
    v = v.wrapping_mul(0x846c_a68b);
    v ^= v >> 16;
    v
}

/// Random u32 number `k` of batch row `row` at training step `step`.
pub fn counter_u32(seed: u32, step: u32, row: u32, k: u32) -> u32 {
    hash32(seed ^ hash32(step ^ hash32(row ^ hash32(k))))
}

/// Uniform in [0, 1) with 24 bits, as the GPU computes it.
pub fn counter_uniform(seed: u32, step: u32, row: u32, k: u32) -> f32 {
    (counter_u32(seed, step, row, k) >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// One CFM training batch: x_t (batch x dim), t (batch), target x1 - x0 (batch x dim), with
/// x0 ~ N(0, I) (Box-Muller), x1 uniform from `data`, t ~ U[0, 1).
pub struct Batch {
    pub xt: Vec<f32>,
    pub t: Vec<f32>,
    pub target: Vec<f32>,
}

/// Pair `row` of draw `step`: the index of x1 in `data` and x0 ~ N(0, I) (Box-Muller), pushed
/// onto `x0`. Batches and the cosine-alignment pairs share this stream.
pub fn draw_pair(seed: u32, step: u32, n: usize, dim: usize, row: u32, x0: &mut Vec<f32>) -> usize {
    for k in 0..dim as u32 {
        let u1 = 1.0 - counter_uniform(seed, step, row, 2 + 2 * k);
        let u2 = counter_uniform(seed, step, row, 3 + 2 * k);
        x0.push((-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos());
    }
    (counter_u32(seed, step, row, 0) % n as u32) as usize
}

pub fn draw_batch(seed: u32, step: u32, data: &[f32], dim: usize, batch: usize) -> Batch {
    let n = data.len() / dim;
    let mut out = Batch {
        xt: Vec::with_capacity(batch * dim),
        t: Vec::with_capacity(batch),
        target: Vec::with_capacity(batch * dim),
    };
    let mut x0 = Vec::with_capacity(dim);
    for b in 0..batch as u32 {
        x0.clear();
        let i = draw_pair(seed, step, n, dim, b, &mut x0);
        let t = counter_uniform(seed, step, b, 1);
        for (&z, &x1) in x0.iter().zip(&data[i * dim..(i + 1) * dim]) {
            out.xt.push((1.0 - t) * z + t * x1);
            out.target.push(x1 - z);
        }
        out.t.push(t);
    }
    out
}

/// The regression target of a training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Target {
    /// Conditional flow matching: x1 - x0.
    Cfm,
    /// Empirical flow matching: u*(x_t, t) over a reference set made of the batch's own x1 and
    /// `samples` more training points (the estimator always contains the x1 behind each x_t).
    Efm { samples: usize },
}

/// The EFM reference set of batch `step`: rows 0..batch are the batch's x1, rows
/// batch..batch + samples more training points drawn as if they were further batch rows
/// (counter key 0, the index draw), so the GPU builds the same set in the same pass.
pub fn efm_reference(
    seed: u32,
    step: u32,
    data: &[f32],
    dim: usize,
    batch: usize,
    samples: usize,
) -> Vec<f32> {
    let n = (data.len() / dim) as u32;
    (0..(batch + samples) as u32)
        .flat_map(|r| {
            let i = (counter_u32(seed, step, r, 0) % n) as usize;
            data[i * dim..(i + 1) * dim].iter().copied()
        })
        .collect()
}

/// The EFM target u*(x_t, t) of every row of `batch` over `reference`.
pub fn efm_targets(reference: &[f32], dim: usize, batch: &Batch) -> Vec<f32> {
    super::closed_form::closed_form_velocity_at(reference, dim, &batch.xt, &batch.t)
}

/// One training step: draw batch `adam.step`, regress u_theta(x_t, t) on `target`, update with
/// Adam. Returns the batch loss before the update.
pub fn train_step(
    shape: &MlpShape,
    params: &mut [f32],
    adam: &mut Adam,
    data: &[f32],
    batch: usize,
    seed: u32,
    target: Target,
) -> f32 {
    let mut b = draw_batch(seed, adam.step, data, shape.dim, batch);
    if let Target::Efm { samples } = target {
        let reference = efm_reference(seed, adam.step, data, shape.dim, batch, samples);
        b.target = efm_targets(&reference, shape.dim, &b);
    }
    let (loss, grads) = loss_and_grad(shape, params, &b.xt, &b.t, &b.target);
    adam.update(params, &grads);
    loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{metrics, sampler, Dataset};

    #[test]
    fn layout_counts_every_parameter() {
        let s = MlpShape::new(2, 8, 3);
        assert_eq!(s.layers(), vec![(10, 8), (8, 8), (8, 8), (8, 2)]);
        assert_eq!(
            s.parameter_count(),
            10 * 8 + 8 + 2 * (8 * 8 + 8) + 8 * 2 + 2
        );
        assert_eq!(s.offsets(), vec![0, 88, 160, 232]);
        assert_eq!(s.init(3).len(), s.parameter_count());
        assert_eq!(s.init(3), s.init(3));
    }

    #[test]
    fn counter_batches_are_well_distributed_and_repeatable() {
        let data = Dataset::TwoMoons.sample(100, 1);
        let a = draw_batch(3, 7, &data, 2, 4096);
        assert_eq!(a.xt, draw_batch(3, 7, &data, 2, 4096).xt);
        assert_ne!(a.xt, draw_batch(3, 8, &data, 2, 4096).xt);
        let mean_t = a.t.iter().sum::<f32>() / 4096.0;
        assert!((mean_t - 0.5).abs() < 0.02, "mean t {mean_t}");
        assert!(a.t.iter().all(|&t| (0.0..1.0).contains(&t)));
        // x0 = x1 - target is standard normal.
        let x0: Vec<f32> =
            a.xt.iter()
                .zip(&a.target)
                .zip(&a.t.iter().flat_map(|&t| [t, t]).collect::<Vec<_>>())
                .map(|((xt, d), t)| xt - t * d)
                .collect();
        let var = x0.iter().map(|v| v * v).sum::<f32>() / x0.len() as f32;
        assert!((var - 1.0).abs() < 0.05, "var {var}");
    }

    #[test]
    fn efm_reference_starts_with_the_batch_x1() {
        let data = Dataset::TwoMoons.sample(300, 1);
        let (batch, samples) = (40, 25);
        let b = draw_batch(9, 4, &data, 2, batch);
        let reference = efm_reference(9, 4, &data, 2, batch, samples);
        assert_eq!(reference.len(), (batch + samples) * 2);
        // x1 = x_t + (1 - t)(x1 - x0), from the CFM batch alone.
        for r in 0..batch {
            for k in 0..2 {
                let x1 = b.xt[r * 2 + k] + (1.0 - b.t[r]) * b.target[r * 2 + k];
                let got = reference[r * 2 + k];
                assert!((x1 - got).abs() < 1e-4, "row {r}: {x1} vs {got}");
            }
        }
        // Every reference row is a training point.
        for row in reference.chunks_exact(2) {
            assert!(
                data.chunks_exact(2).any(|p| p == row),
                "{row:?} is not in the data"
            );
        }
    }

    #[test]
    fn efm_target_over_one_point_is_the_cfm_target() {
        // With a single training point u*(x_t, t) = (x1 - x_t) / (1 - t) = x1 - x0.
        let data = vec![1.5f32, -0.5, 2.0];
        let b = draw_batch(3, 0, &data, 3, 64);
        let reference = efm_reference(3, 0, &data, 3, 64, 10);
        let efm = efm_targets(&reference, 3, &b);
        for (r, (e, c)) in efm
            .chunks_exact(3)
            .zip(b.target.chunks_exact(3))
            .enumerate()
        {
            for k in 0..3 {
                let tol = 1e-4 / (1.0 - b.t[r]);
                assert!(
                    (e[k] - c[k]).abs() <= tol,
                    "row {r} t {}: {e:?} vs {c:?}",
                    b.t[r]
                );
            }
        }
    }

    #[test]
    fn efm_target_has_lower_variance_and_trains() {
        let shape = MlpShape::new(2, 64, 2);
        let data = Dataset::EightGaussians.sample(2000, 4);
        let run = |target| {
            let mut params = shape.init(5);
            let mut adam = Adam::new(params.len(), 2e-3);
            let losses: Vec<f32> = (0..1500)
                .map(|_| train_step(&shape, &mut params, &mut adam, &data, 256, 6, target))
                .collect();
            (params, losses)
        };
        let (_, cfm) = run(Target::Cfm);
        let (params, efm) = run(Target::Efm { samples: 256 });
        let tail = |l: &[f32]| {
            let late = &l[l.len() - 500..];
            let mean = late.iter().sum::<f32>() / late.len() as f32;
            let var = late.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / late.len() as f32;
            (mean, var.sqrt())
        };
        let ((cm, cs), (em, es)) = (tail(&cfm), tail(&efm));
        eprintln!("last 500 losses: CFM mean {cm} sd {cs}; EFM mean {em} sd {es}");
        // The EFM target removes most of the conditional target's noise: a lower loss and a
        // steadier one.
        assert!(em < 0.5 * cm, "EFM loss {em} vs CFM {cm}");
        assert!(es < 0.5 * cs, "EFM loss sd {es} vs CFM {cs}");
        let x0 = Rng::new(7).normals(2 * 500);
        let samples = sampler::euler(&x0, 50, 0.0, |x, t| {
            forward(&shape, &params, x, &vec![t; x.len() / 2]).0
        });
        let modes: Vec<f32> = (0..8)
            .flat_map(|k| {
                let a = k as f32 * std::f32::consts::PI / 4.0;
                [2.0 * a.cos(), 2.0 * a.sin()]
            })
            .collect();
        let near = metrics::fraction_below(&metrics::nearest_distances(&modes, 2, &samples), 0.5);
        eprintln!("EFM: {near} of samples within 0.5 of a mode");
        assert!(near > 0.6, "EFM samples near a mode: {near}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let shape = MlpShape::new(3, 7, 2);
        let params: Vec<f64> = shape.init(1).iter().map(|&v| v as f64).collect();
        let mut rng = Rng::new(2);
        let batch = 5;
        let x: Vec<f64> = (0..batch * 3).map(|_| rng.normal()).collect();
        let t: Vec<f64> = (0..batch).map(|_| rng.uniform()).collect();
        let target: Vec<f64> = (0..batch * 3).map(|_| rng.normal()).collect();
        let (_, grads) = loss_and_grad(&shape, &params, &x, &t, &target);
        let h = 1e-6;
        let mut worst = 0.0f64;
        for i in 0..params.len() {
            let mut p = params.clone();
            p[i] += h;
            let (up, _) = loss_and_grad(&shape, &p, &x, &t, &target);
            p[i] -= 2.0 * h;
            let (down, _) = loss_and_grad(&shape, &p, &x, &t, &target);
            let numeric = (up - down) / (2.0 * h);
            let err = (numeric - grads[i]).abs() / numeric.abs().max(grads[i].abs()).max(1e-6);
            worst = worst.max(err);
        }
        assert!(worst <= 1e-3, "worst relative gradient error {worst}");
    }

    #[test]
    fn cfm_training_learns_eight_gaussians() {
        let shape = MlpShape::new(2, 64, 2);
        let data = Dataset::EightGaussians.sample(2000, 4);
        let mut params = shape.init(5);
        let mut adam = Adam::new(params.len(), 2e-3);
        let losses: Vec<f32> = (0..4000)
            .map(|_| train_step(&shape, &mut params, &mut adam, &data, 256, 6, Target::Cfm))
            .collect();
        let early: f32 = losses[..50].iter().sum::<f32>() / 50.0;
        let late: f32 = losses[losses.len() - 100..].iter().sum::<f32>() / 100.0;
        assert!(late < 0.8 * early, "loss {early} -> {late}");

        let x0 = Rng::new(7).normals(2 * 500);
        let samples = sampler::euler(&x0, 50, 0.0, |x, t| {
            let (u, _) = forward(&shape, &params, x, &vec![t; x.len() / 2]);
            u
        });
        // Samples land on the modes: radius near 2, and most within 0.5 of a mode centre.
        let modes: Vec<f32> = (0..8)
            .flat_map(|k| {
                let a = k as f32 * std::f32::consts::PI / 4.0;
                [2.0 * a.cos(), 2.0 * a.sin()]
            })
            .collect();
        let near =
            |pts: &[f32]| metrics::fraction_below(&metrics::nearest_distances(&modes, 2, pts), 0.5);
        let (trained, source) = (near(&samples), near(&x0));
        eprintln!(
            "near a mode: {trained} of samples, {source} of the source; loss {early} -> {late}"
        );
        assert!(
            trained > 0.7 && trained > 3.0 * source,
            "{trained} vs source {source}"
        );
    }
}
