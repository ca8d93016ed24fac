//! The digits' velocity network u_theta(x, t): a small convolutional U-Net on `side` x `side`
//! single-channel images, its backward pass, and the CFM loss. This is the reference (and the CPU
//! path) for the GPU's U-Net kernels, which use the same flat parameter layout.
//!
//! Why this shape: plain MLPs make noise on MNIST at any size this page can train, while U-Nets
//! of 0.3-1M parameters make sharp digits in a few thousand steps. Three resolutions (side,
//! side / 2, side / 4), one residual block each way, the time embedding added in every block,
//! GroupNorm and SiLU, average pooling down and nearest-neighbour up, skips concatenated.
//!
//! The network is a list of operations (`Op`) over numbered tensors, each one sample's
//! channels x height x width, row-major: the forward pass runs the list, the backward pass runs
//! it in reverse; both take one sample at a time, and a batch is a loop over samples with the
//! parameter gradients summed.

use super::mlp::{silu, silu_grad, Real};
use super::rng::Rng;

/// The sizes of the U-Net.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnetShape {
    /// Images are side x side (divisible by 4).
    pub side: usize,
    /// Channels at full resolution; twice as many at half and quarter resolution.
    pub base: usize,
    /// Sinusoidal time features, and the width of the time embedding.
    pub time_features: usize,
    pub embed: usize,
    /// GroupNorm's groups (dividing every block's channels).
    pub groups: usize,
}

impl UnetShape {
    /// A network small enough for float64 gradient checks and quick training tests.
    #[cfg(test)]
    pub(crate) const TINY: UnetShape = UnetShape {
        side: 8,
        base: 4,
        time_features: 4,
        embed: 6,
        groups: 2,
    };

    /// The digits' network: 28 x 28, 32 channels, 8 groups.
    pub const DIGITS: UnetShape = UnetShape {
        side: 28,
        base: 32,
        time_features: 32,
        embed: 128,
        groups: 8,
    };

    /// Values of one image.
    pub fn dim(&self) -> usize {
        self.side * self.side
    }
}

/// One operation. Tensors are numbered in the order they are made (0 the image, 1 the time
/// features, then one per operation); `w`, `b` and the like are offsets into the flat parameter
/// vector. The GPU twin (gpu::unet) runs the same list.
#[derive(Debug, Clone)]
pub enum Op {
    /// out = conv(in) + b: `k` x `k` kernel (k = 1 or 3), zero padding to keep the size.
    Conv {
        input: usize,
        cin: usize,
        cout: usize,
        k: usize,
        side: usize,
        w: usize,
        b: usize,
    },
    /// GroupNorm over `groups` groups of channels, then the per-channel scale and shift.
    Norm {
        input: usize,
        c: usize,
        side: usize,
        groups: usize,
        gamma: usize,
        beta: usize,
    },
    Silu {
        input: usize,
    },
    /// out = W in + b, W (nout x nin, row-major).
    Linear {
        input: usize,
        nin: usize,
        nout: usize,
        w: usize,
        b: usize,
    },
    Add {
        a: usize,
        b: usize,
    },
    /// out[c][p] = in[c][p] + per_channel[c].
    AddChannels {
        input: usize,
        per_channel: usize,
        c: usize,
        side: usize,
    },
    /// 2 x 2 average: side -> side / 2.
    Pool {
        input: usize,
        c: usize,
        side: usize,
    },
    /// Nearest neighbour: side -> 2 side.
    Up {
        input: usize,
        c: usize,
        side: usize,
    },
    /// The channels of `a` then those of `b`.
    Concat {
        a: usize,
        b: usize,
    },
}

/// The network's operations and its parameters' layout, built from a `UnetShape`.
#[derive(Debug, Clone)]
pub struct Unet {
    pub shape: UnetShape,
    graph: Graph,
}

/// The operations and where their tensors and parameters are; its methods add to it.
#[derive(Debug, Clone)]
struct Graph {
    ops: Vec<Op>,
    /// The length of every tensor: 0 the image, 1 the time features, then one per operation.
    sizes: Vec<usize>,
    /// (offset, length, fan-in) of every weight, for initialisation; biases and shifts start at
    /// 0 and GroupNorm scales at 1.
    weights: Vec<(usize, usize, usize)>,
    scales: Vec<(usize, usize)>,
    /// The parameters so far.
    parameters: usize,
}

impl Graph {
    fn take(&mut self, len: usize) -> usize {
        let at = self.parameters;
        self.parameters += len;
        at
    }

    fn push(&mut self, op: Op, size: usize) -> usize {
        self.ops.push(op);
        self.sizes.push(size);
        self.sizes.len() - 1
    }

    fn conv(&mut self, input: usize, cin: usize, cout: usize, k: usize, side: usize) -> usize {
        let w = self.take(cout * cin * k * k);
        self.weights.push((w, cout * cin * k * k, cin * k * k));
        let b = self.take(cout);
        let op = Op::Conv {
            input,
            cin,
            cout,
            k,
            side,
            w,
            b,
        };
        self.push(op, cout * side * side)
    }

    fn norm(&mut self, input: usize, c: usize, side: usize, groups: usize) -> usize {
        let gamma = self.take(c);
        self.scales.push((gamma, c));
        let beta = self.take(c);
        let op = Op::Norm {
            input,
            c,
            side,
            groups,
            gamma,
            beta,
        };
        self.push(op, c * side * side)
    }

    fn silu(&mut self, input: usize) -> usize {
        let size = self.sizes[input];
        self.push(Op::Silu { input }, size)
    }

    fn linear(&mut self, input: usize, nin: usize, nout: usize) -> usize {
        let w = self.take(nout * nin);
        self.weights.push((w, nout * nin, nin));
        let b = self.take(nout);
        self.push(
            Op::Linear {
                input,
                nin,
                nout,
                w,
                b,
            },
            nout,
        )
    }

    /// GroupNorm, SiLU, conv; the time embedding added per channel; GroupNorm, SiLU, conv; plus
    /// the input (through a 1 x 1 conv when the channels change).
    fn block(&mut self, input: usize, cin: usize, cout: usize, side: usize, s: &Shapes) -> usize {
        let h = self.norm(input, cin, side, s.groups);
        let h = self.silu(h);
        let h = self.conv(h, cin, cout, 3, side);
        let per_channel = self.linear(s.time, s.embed, cout);
        let h = self.push(
            Op::AddChannels {
                input: h,
                per_channel,
                c: cout,
                side,
            },
            cout * side * side,
        );
        let h = self.norm(h, cout, side, s.groups);
        let h = self.silu(h);
        let h = self.conv(h, cout, cout, 3, side);
        let skip = if cin == cout {
            input
        } else {
            self.conv(input, cin, cout, 1, side)
        };
        self.push(Op::Add { a: h, b: skip }, cout * side * side)
    }
}

/// What every block needs: the time embedding's tensor (after its SiLU) and sizes.
struct Shapes {
    time: usize,
    embed: usize,
    groups: usize,
}

impl Unet {
    pub fn new(shape: UnetShape) -> Unet {
        let (side, c, e) = (shape.side, shape.base, shape.embed);
        assert!(side % 4 == 0, "the side must be divisible by 4");
        let mut n = Graph {
            ops: Vec::new(),
            sizes: vec![shape.dim(), shape.time_features],
            weights: Vec::new(),
            scales: Vec::new(),
            parameters: 0,
        };
        // The time embedding: features -> e -> SiLU -> e -> SiLU (each block projects it).
        let time = n.linear(1, shape.time_features, e);
        let time = n.silu(time);
        let time = n.linear(time, e, e);
        let time = n.silu(time);
        let s = Shapes {
            time,
            embed: e,
            groups: shape.groups,
        };
        let (half, quarter) = (side / 2, side / 4);
        let x = n.conv(0, 1, c, 3, side);
        let d1 = n.block(x, c, c, side, &s);
        let p1 = n.push(Op::Pool { input: d1, c, side }, c * half * half);
        let d2 = n.block(p1, c, 2 * c, half, &s);
        let p2 = n.push(
            Op::Pool {
                input: d2,
                c: 2 * c,
                side: half,
            },
            2 * c * quarter * quarter,
        );
        let mid = n.block(p2, 2 * c, 2 * c, quarter, &s);
        let u2 = n.push(
            Op::Up {
                input: mid,
                c: 2 * c,
                side: quarter,
            },
            2 * c * half * half,
        );
        let u2 = n.push(Op::Concat { a: u2, b: d2 }, 4 * c * half * half);
        let u2 = n.block(u2, 4 * c, 2 * c, half, &s);
        let u1 = n.push(
            Op::Up {
                input: u2,
                c: 2 * c,
                side: half,
            },
            2 * c * side * side,
        );
        let u1 = n.push(Op::Concat { a: u1, b: d1 }, 3 * c * side * side);
        let u1 = n.block(u1, 3 * c, c, side, &s);
        let out = n.norm(u1, c, side, shape.groups);
        let out = n.silu(out);
        n.conv(out, c, 1, 3, side);
        Unet { shape, graph: n }
    }

    pub fn parameter_count(&self) -> usize {
        self.graph.parameters
    }

    /// The operations in the order they run; operation k writes tensor k + 2.
    pub fn ops(&self) -> &[Op] {
        &self.graph.ops
    }

    /// The length of every tensor of one image: 0 the image, 1 the time features, then one per
    /// operation (the last is the velocity).
    pub fn tensor_sizes(&self) -> &[usize] {
        &self.graph.sizes
    }

    /// Weights uniform in +-1/sqrt(fan_in) (PyTorch's default), biases and shifts 0, GroupNorm
    /// scales 1, and the last convolution 0 (so the untrained network answers 0 everywhere, as
    /// diffusion U-Nets start), from a seed.
    pub fn init(&self, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let mut params = vec![0.0f32; self.graph.parameters];
        let last = self.graph.weights.len() - 1;
        for (k, &(at, len, fan_in)) in self.graph.weights.iter().enumerate() {
            let bound = 1.0 / (fan_in as f64).sqrt();
            for p in &mut params[at..at + len] {
                let v = (2.0 * rng.uniform() - 1.0) * bound;
                *p = if k == last { 0.0 } else { v as f32 };
            }
        }
        for &(at, len) in &self.graph.scales {
            params[at..at + len].fill(1.0);
        }
        params
    }

    /// `init` with 0.05 x normal added to every parameter: the last convolution, the biases and
    /// GroupNorm's shifts away from 0 and its scales away from 1, so that a twin's comparison sees
    /// every parameter of every operation (the zero start would hide them).
    pub fn init_for_comparison(&self, seed: u64) -> Vec<f32> {
        let mut params = self.init(seed);
        let mut rng = Rng::new(seed ^ 0x5EED);
        for p in &mut params {
            *p += 0.05 * rng.normal() as f32;
        }
        params
    }

    /// sin(w_k t) and cos(w_k t), w_k = 1000^(k / (half - 1)) for k < half: periods from 2 pi
    /// down to 2 pi / 1000, so that nearby times are told apart.
    pub fn time_features<R: Real>(&self, t: R) -> Vec<R> {
        let half = self.shape.time_features / 2;
        let mut out = vec![R::from_f64(0.0); 2 * half];
        for k in 0..half {
            let w = 1000f64.powf(k as f64 / (half.max(2) - 1) as f64);
            let wt = R::from_f64(w) * t;
            out[k] = wt.sin();
            out[half + k] = wt.cos();
        }
        out
    }

    /// u_theta(x, t) for one image `x` (side x side): the output and every tensor on the way
    /// (what `backward` needs).
    pub fn forward<R: Real>(&self, params: &[R], x: &[R], t: R) -> Vec<Vec<R>> {
        let mut tensors: Vec<Vec<R>> = Vec::with_capacity(self.graph.sizes.len());
        tensors.push(x.to_vec());
        tensors.push(self.time_features(t));
        for (k, op) in self.graph.ops.iter().enumerate() {
            let out = self.run(op, params, &tensors, self.graph.sizes[k + 2]);
            tensors.push(out);
        }
        tensors
    }

    /// The velocity for one image (the last tensor of `forward`).
    pub fn velocity<R: Real>(&self, params: &[R], x: &[R], t: R) -> Vec<R> {
        self.forward(params, x, t)
            .pop()
            .expect("the network has operations")
    }

    fn run<R: Real>(&self, op: &Op, p: &[R], tensors: &[Vec<R>], size: usize) -> Vec<R> {
        let zero = R::from_f64(0.0);
        let mut out = vec![zero; size];
        match *op {
            Op::Conv {
                input,
                cin,
                cout,
                k,
                side,
                w,
                b,
            } => {
                let area = side * side;
                for (o, row) in out.chunks_exact_mut(area).enumerate() {
                    row.fill(p[b + o]);
                }
                let cols = im2col(&tensors[input], cin, k, side);
                // out (cout x area) += W (cout x cin k k) cols (cin k k x area)
                matmul(
                    &p[w..w + cout * cin * k * k],
                    &cols,
                    cout,
                    cin * k * k,
                    area,
                    &mut out,
                );
            }
            Op::Norm {
                input,
                c,
                side,
                groups,
                gamma,
                beta,
            } => {
                let x = &tensors[input];
                let area = side * side;
                let per = c / groups * area;
                for g in 0..groups {
                    let (mean, rstd) = moments(&x[g * per..(g + 1) * per]);
                    for ch in g * c / groups..(g + 1) * c / groups {
                        let (scale, shift) = (p[gamma + ch], p[beta + ch]);
                        for i in ch * area..(ch + 1) * area {
                            out[i] = (x[i] - mean) * rstd * scale + shift;
                        }
                    }
                }
            }
            Op::Silu { input } => {
                for (o, &v) in out.iter_mut().zip(&tensors[input]) {
                    *o = silu(v);
                }
            }
            Op::Linear {
                input, nin, w, b, ..
            } => {
                let x = &tensors[input];
                for (o, out) in out.iter_mut().enumerate() {
                    let row = &p[w + o * nin..w + (o + 1) * nin];
                    *out = row
                        .iter()
                        .zip(x)
                        .fold(p[b + o], |acc, (&a, &v)| acc + a * v);
                }
            }
            Op::Add { a, b } => {
                for ((o, &u), &v) in out.iter_mut().zip(&tensors[a]).zip(&tensors[b]) {
                    *o = u + v;
                }
            }
            Op::AddChannels {
                input,
                per_channel,
                c,
                side,
            } => {
                let area = side * side;
                for ch in 0..c {
                    let add = tensors[per_channel][ch];
                    for i in ch * area..(ch + 1) * area {
                        out[i] = tensors[input][i] + add;
                    }
                }
            }
            Op::Pool { input, c, side } => {
                let x = &tensors[input];
                let half = side / 2;
                let quarter = R::from_f64(0.25);
                for ch in 0..c {
                    for i in 0..half {
                        for j in 0..half {
                            let at = |di: usize, dj: usize| {
                                x[ch * side * side + (2 * i + di) * side + 2 * j + dj]
                            };
                            out[ch * half * half + i * half + j] =
                                (at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) * quarter;
                        }
                    }
                }
            }
            Op::Up { input, c, side } => {
                let x = &tensors[input];
                let twice = 2 * side;
                for ch in 0..c {
                    for i in 0..twice {
                        for j in 0..twice {
                            out[ch * twice * twice + i * twice + j] =
                                x[ch * side * side + (i / 2) * side + j / 2];
                        }
                    }
                }
            }
            Op::Concat { a, b } => {
                let split = tensors[a].len();
                out[..split].copy_from_slice(&tensors[a]);
                out[split..].copy_from_slice(&tensors[b]);
            }
        }
        out
    }

    /// Adds to `grads` the gradient of a loss with respect to the parameters, given the tensors
    /// of `forward` and the loss's gradient `grad_out` with respect to the output.
    pub fn backward<R: Real>(
        &self,
        params: &[R],
        tensors: &[Vec<R>],
        grad_out: &[R],
        grads: &mut [R],
    ) {
        let zero = R::from_f64(0.0);
        let mut d: Vec<Vec<R>> = self.graph.sizes.iter().map(|&n| vec![zero; n]).collect();
        let last = d.len() - 1;
        d[last].copy_from_slice(grad_out);
        for (k, op) in self.graph.ops.iter().enumerate().rev() {
            let out = k + 2;
            let dy = std::mem::take(&mut d[out]);
            self.back(op, params, tensors, &dy, &mut d, grads);
        }
    }

    /// Adds what `op` passes back of `dy` (its output's gradient) to its inputs' gradients in
    /// `d` and to its parameters' in `grads`.
    fn back<R: Real>(
        &self,
        op: &Op,
        p: &[R],
        tensors: &[Vec<R>],
        dy: &[R],
        d: &mut [Vec<R>],
        grads: &mut [R],
    ) {
        let zero = R::from_f64(0.0);
        match *op {
            Op::Conv {
                input,
                cin,
                cout,
                k,
                side,
                w,
                b,
            } => {
                let area = side * side;
                let kk = cin * k * k;
                for (o, row) in dy.chunks_exact(area).enumerate() {
                    grads[b + o] += row.iter().fold(zero, |acc, &v| acc + v);
                }
                let cols = im2col(&tensors[input], cin, k, side);
                // dW (cout x kk) += dy (cout x area) cols^T (area x kk)
                matmul_bt(dy, &cols, cout, area, kk, &mut grads[w..w + cout * kk]);
                // dcols (kk x area) = W^T (kk x cout) dy (cout x area)
                let mut dcols = vec![zero; kk * area];
                matmul_at(&p[w..w + cout * kk], dy, cout, kk, area, &mut dcols);
                col2im(&dcols, cin, k, side, &mut d[input]);
            }
            Op::Norm {
                input,
                c,
                side,
                groups,
                gamma,
                beta,
            } => {
                let x = &tensors[input];
                let area = side * side;
                let per = c / groups * area;
                let inv = R::from_f64(1.0 / per as f64);
                for g in 0..groups {
                    let (mean, rstd) = moments(&x[g * per..(g + 1) * per]);
                    // d xhat = dy gamma; dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
                    let (mut sum, mut dot) = (zero, zero);
                    for ch in g * c / groups..(g + 1) * c / groups {
                        let scale = p[gamma + ch];
                        let (mut gs, mut bs) = (zero, zero);
                        for i in ch * area..(ch + 1) * area {
                            let xhat = (x[i] - mean) * rstd;
                            gs += dy[i] * xhat;
                            bs += dy[i];
                            sum += dy[i] * scale;
                            dot += dy[i] * scale * xhat;
                        }
                        grads[gamma + ch] += gs;
                        grads[beta + ch] += bs;
                    }
                    let (sum, dot) = (sum * inv, dot * inv);
                    for ch in g * c / groups..(g + 1) * c / groups {
                        let scale = p[gamma + ch];
                        for i in ch * area..(ch + 1) * area {
                            let xhat = (x[i] - mean) * rstd;
                            d[input][i] += rstd * (dy[i] * scale - sum - xhat * dot);
                        }
                    }
                }
            }
            Op::Silu { input } => {
                for (i, &g) in dy.iter().enumerate() {
                    d[input][i] += g * silu_grad(tensors[input][i]);
                }
            }
            Op::Linear {
                input,
                nin,
                nout,
                w,
                b,
            } => {
                let x = &tensors[input];
                for o in 0..nout {
                    grads[b + o] += dy[o];
                    for i in 0..nin {
                        grads[w + o * nin + i] += dy[o] * x[i];
                        d[input][i] += dy[o] * p[w + o * nin + i];
                    }
                }
            }
            Op::Add { a, b } => {
                for (i, &g) in dy.iter().enumerate() {
                    d[a][i] += g;
                    d[b][i] += g;
                }
            }
            Op::AddChannels {
                input,
                per_channel,
                c,
                side,
            } => {
                let area = side * side;
                for ch in 0..c {
                    for i in ch * area..(ch + 1) * area {
                        d[input][i] += dy[i];
                        d[per_channel][ch] += dy[i];
                    }
                }
            }
            Op::Pool { input, c, side } => {
                let half = side / 2;
                let quarter = R::from_f64(0.25);
                for ch in 0..c {
                    for i in 0..side {
                        for j in 0..side {
                            d[input][ch * side * side + i * side + j] +=
                                dy[ch * half * half + (i / 2) * half + j / 2] * quarter;
                        }
                    }
                }
            }
            Op::Up { input, c, side } => {
                let twice = 2 * side;
                for ch in 0..c {
                    for i in 0..twice {
                        for j in 0..twice {
                            d[input][ch * side * side + (i / 2) * side + j / 2] +=
                                dy[ch * twice * twice + i * twice + j];
                        }
                    }
                }
            }
            Op::Concat { a, b } => {
                let split = d[a].len();
                for (v, &g) in d[a].iter_mut().zip(&dy[..split]) {
                    *v += g;
                }
                for (v, &g) in d[b].iter_mut().zip(&dy[split..]) {
                    *v += g;
                }
            }
        }
    }

    /// The CFM loss mean_b ||u_theta(x_b, t_b) - target_b||^2 over a batch (rows of `x` and
    /// `target`, one time each) and its gradient with respect to the parameters.
    pub fn loss_and_grad<R: Real>(
        &self,
        params: &[R],
        x: &[R],
        t: &[R],
        target: &[R],
    ) -> (R, Vec<R>) {
        let mut grads = vec![R::from_f64(0.0); params.len()];
        let scale = R::from_f64(1.0 / t.len() as f64);
        let loss = self.accumulate(params, x, t, target, scale, &mut grads);
        (loss, grads)
    }

    /// `scale` x sum_b ||u_theta(x_b, t_b) - target_b||^2 over the rows given, its gradient added
    /// to `grads`: a part of a batch (scale = 1 / the batch's size), so that parts computed apart
    /// add up to the batch's mean.
    pub fn accumulate<R: Real>(
        &self,
        params: &[R],
        x: &[R],
        t: &[R],
        target: &[R],
        scale: R,
        grads: &mut [R],
    ) -> R {
        let dim = self.shape.dim();
        let mut loss = R::from_f64(0.0);
        for (b, &tb) in t.iter().enumerate() {
            let tensors = self.forward(params, &x[b * dim..(b + 1) * dim], tb);
            let u = tensors.last().expect("an output");
            let grad_out: Vec<R> = u
                .iter()
                .zip(&target[b * dim..(b + 1) * dim])
                .map(|(&a, &want)| {
                    let diff = a - want;
                    loss += diff * diff * scale;
                    R::from_f64(2.0) * diff * scale
                })
                .collect();
            self.backward(params, &tensors, &grad_out, grads);
        }
        loss
    }

    /// The velocities of many images (rows of `x`) at one time.
    pub fn velocities(&self, params: &[f32], x: &[f32], t: f32) -> Vec<f32> {
        x.chunks_exact(self.shape.dim())
            .flat_map(|row| self.velocity(params, row, t))
            .collect()
    }
}

/// The mean and 1 / sqrt(variance + 1e-5) of `x`.
fn moments<R: Real>(x: &[R]) -> (R, R) {
    let inv = R::from_f64(1.0 / x.len() as f64);
    let mean = x.iter().fold(R::from_f64(0.0), |acc, &v| acc + v) * inv;
    let var = x.iter().fold(R::from_f64(0.0), |acc, &v| {
        let d = v - mean;
        acc + d * d
    }) * inv;
    (mean, R::from_f64(1.0) / (var + R::from_f64(1e-5)).sqrt())
}

/// The patches of a cin x side x side image under a k x k kernel with zero padding k / 2:
/// (cin k k) x (side side), row (c, di, dj) holding x[c][i + di - k/2][j + dj - k/2].
fn im2col<R: Real>(x: &[R], cin: usize, k: usize, side: usize) -> Vec<R> {
    if k == 1 {
        return x.to_vec();
    }
    let area = side * side;
    let pad = (k / 2) as isize;
    let mut cols = vec![R::from_f64(0.0); cin * k * k * area];
    for c in 0..cin {
        for di in 0..k {
            for dj in 0..k {
                let row = &mut cols[((c * k + di) * k + dj) * area..][..area];
                for i in 0..side {
                    let si = i as isize + di as isize - pad;
                    if si < 0 || si >= side as isize {
                        continue;
                    }
                    for j in 0..side {
                        let sj = j as isize + dj as isize - pad;
                        if sj >= 0 && sj < side as isize {
                            row[i * side + j] = x[c * area + si as usize * side + sj as usize];
                        }
                    }
                }
            }
        }
    }
    cols
}

/// Adds the patches' gradient `dcols` back onto the image's, `dx` (the transpose of `im2col`).
fn col2im<R: Real>(dcols: &[R], cin: usize, k: usize, side: usize, dx: &mut [R]) {
    let area = side * side;
    if k == 1 {
        for (v, &g) in dx.iter_mut().zip(dcols) {
            *v += g;
        }
        return;
    }
    let pad = (k / 2) as isize;
    for c in 0..cin {
        for di in 0..k {
            for dj in 0..k {
                let row = &dcols[((c * k + di) * k + dj) * area..][..area];
                for i in 0..side {
                    let si = i as isize + di as isize - pad;
                    if si < 0 || si >= side as isize {
                        continue;
                    }
                    for j in 0..side {
                        let sj = j as isize + dj as isize - pad;
                        if sj >= 0 && sj < side as isize {
                            dx[c * area + si as usize * side + sj as usize] += row[i * side + j];
                        }
                    }
                }
            }
        }
    }
}

/// c (m x n) += a (m x k) b (k x n), all row-major.
fn matmul<R: Real>(a: &[R], b: &[R], m: usize, k: usize, n: usize, c: &mut [R]) {
    R::gemm_add(m, k, n, a, (k, 1), b, (n, 1), c);
}

/// c (m x n) += a (m x k) b^T, with b (n x k).
fn matmul_bt<R: Real>(a: &[R], b: &[R], m: usize, k: usize, n: usize, c: &mut [R]) {
    R::gemm_add(m, k, n, a, (k, 1), b, (1, k), c);
}

/// c (k x n) += a^T b, with a (m x k) and b (m x n).
fn matmul_at<R: Real>(a: &[R], b: &[R], m: usize, k: usize, n: usize, c: &mut [R]) {
    R::gemm_add(k, m, n, a, (1, k), b, (n, 1), c);
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: UnetShape = UnetShape::TINY;

    #[test]
    fn the_digits_network_has_the_size_the_issue_allows() {
        let net = Unet::new(UnetShape::DIGITS);
        let count = net.parameter_count();
        assert!((300_000..=1_000_000).contains(&count), "{count} parameters");
        let params = net.init(1);
        assert_eq!(params.len(), count);
        // The last convolution starts at zero: the untrained network answers 0.
        let x = Rng::new(2).normals(UnetShape::DIGITS.dim());
        let u = net.velocity(&params, &x, 0.3f32);
        assert_eq!(u.len(), 784);
        assert!(u.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn the_gradient_is_the_loss_s_slope() {
        // Central differences in float64 on a tiny U-Net with every parameter random (the last
        // convolution too, so every path carries gradient), at a sample of parameters from every
        // kind of operation.
        let net = Unet::new(TINY);
        let mut rng = Rng::new(3);
        let params: Vec<f64> = (0..net.parameter_count())
            .map(|_| rng.normal() * 0.5)
            .collect();
        let dim = TINY.dim();
        let x: Vec<f64> = (0..2 * dim).map(|_| rng.normal()).collect();
        let target: Vec<f64> = (0..2 * dim).map(|_| rng.normal()).collect();
        let t = [0.2, 0.7];
        let (_, grads) = net.loss_and_grad(&params, &x, &t, &target);
        let loss = |p: &[f64]| net.loss_and_grad(p, &x, &t, &target).0;
        // Relative to each gradient, or to a thousandth of the largest for the smallest (where
        // the differences' rounding, about 1e-10, is all there is).
        let floor = 1e-3 * grads.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        let h = 1e-5;
        let mut worst = 0.0f64;
        for i in (0..params.len()).step_by(7) {
            let mut up = params.clone();
            up[i] += h;
            let mut down = params.clone();
            down[i] -= h;
            let numeric = (loss(&up) - loss(&down)) / (2.0 * h);
            let err = (numeric - grads[i]).abs() / numeric.abs().max(grads[i].abs()).max(floor);
            worst = worst.max(err);
            assert!(
                err < 1e-5,
                "parameter {i}: numeric {numeric}, analytic {}",
                grads[i]
            );
        }
        eprintln!("worst relative gradient error {worst:.1e}");
    }

    #[test]
    fn float32_follows_float64() {
        let net = Unet::new(TINY);
        let mut rng = Rng::new(4);
        let params: Vec<f64> = (0..net.parameter_count())
            .map(|_| rng.normal() * 0.3)
            .collect();
        let x: Vec<f64> = (0..TINY.dim()).map(|_| rng.normal()).collect();
        let wide = net.velocity(&params, &x, 0.4);
        let narrow = net.velocity(
            &params.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            &x.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            0.4f32,
        );
        let scale = wide.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (a, b) in narrow.iter().zip(&wide) {
            assert!((*a as f64 - b).abs() <= 1e-4 * scale, "{a} against {b}");
        }
    }
}
