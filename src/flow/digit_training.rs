//! Training the digits' U-Net (`flow::unet`) with CFM (or EFM) on 9,000 of the 10,000 MNIST digits, the
//! other 1,000 held out as the reference for "new"; sampling it; and the file its weights ship
//! in (float16, with the step count and losses in a small header).
//!
//! A step's batch depends only on the seed and the step's number: a resumed run (from a
//! checkpoint of the whole state) is the uninterrupted run, and a batch computed in fixed parts
//! summed in a fixed order gives the same weights whatever the number of threads (and the
//! whole batch's to rounding).

use super::closed_form::closed_form_velocity_at;
use super::mlp::{Adam, Target};
use super::rng::Rng;
use super::unet::{Unet, UnetShape};
use super::FlowError;
use std::sync::Arc;

/// Every tenth digit (index 9, 19, ...) is held out: 1,000 of the 10,000, each class in
/// proportion (the asset stores the classes in order).
pub fn is_held_out(index: usize) -> bool {
    index % 10 == 9
}

/// The index among all the digits of the training digit `j` (the `j`-th row `split` keeps).
pub fn original_index(j: usize) -> usize {
    j / 9 * 10 + j % 9
}

/// The (training, held-out) rows of `images` (n x dim).
pub fn split(images: &[f32], dim: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut train, mut held) = (Vec::new(), Vec::new());
    for (i, row) in images.chunks_exact(dim).enumerate() {
        if is_held_out(i) {
            held.extend_from_slice(row);
        } else {
            train.extend_from_slice(row);
        }
    }
    (train, held)
}

/// How the digits' network is trained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DigitOptions {
    pub batch: usize,
    /// Adam's step, reached linearly over the first `warmup` steps.
    pub lr: f32,
    pub warmup: u32,
    /// The decay of the weights' exponential moving average (the network that samples).
    pub ema: f32,
    /// The gradient's largest norm (larger gradients are scaled down to it).
    pub clip: f32,
    pub seed: u64,
    /// What u_theta regresses on: the conditional target, or u* over a reference set (EFM).
    pub target: Target,
}

impl DigitOptions {
    /// The shipped network's: batch 64, Adam 1e-3 after 100 warm-up steps, EMA 0.999, clipping
    /// at 1 (torchcfm's MNIST example and the paper's CIFAR-10 set-up, scaled to 2 cores).
    pub const SHIPPED: DigitOptions = DigitOptions {
        batch: 64,
        lr: 1e-3,
        warmup: 100,
        ema: 0.999,
        clip: 1.0,
        seed: 1,
        target: Target::Cfm,
    };
}

/// One step's rows: x_t = (1 - t) x0 + t x1 and the target, x1 - x0 as drawn (`DigitTraining::
/// batch` replaces it with u* under EFM).
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub x: Vec<f32>,
    pub t: Vec<f32>,
    pub target: Vec<f32>,
    /// The row of the data each x1 is.
    pub sources: Vec<usize>,
}

impl Batch {
    /// `rows` pairs (x0 ~ N(0, I), x1 drawn from `data`) at uniform times, from `seed`.
    pub fn draw(data: &[f32], dim: usize, rows: usize, seed: u64) -> Batch {
        let mut rng = Rng::new(seed);
        let n = data.len() / dim;
        let (mut x, mut t, mut target, mut sources) = (
            Vec::with_capacity(rows * dim),
            Vec::with_capacity(rows),
            Vec::with_capacity(rows * dim),
            Vec::with_capacity(rows),
        );
        for _ in 0..rows {
            let source = rng.below(n);
            sources.push(source);
            let x1 = &data[source * dim..][..dim];
            let tb = rng.uniform() as f32;
            for &v1 in x1 {
                let v0 = rng.normal() as f32;
                x.push((1.0 - tb) * v0 + tb * v1);
                target.push(v1 - v0);
            }
            t.push(tb);
        }
        Batch {
            x,
            t,
            target,
            sources,
        }
    }

    pub fn rows(&self) -> usize {
        self.t.len()
    }
}

/// Times this close to 1 keep the conditional target under EFM (see `DigitTraining::batch`).
const EFM_NEAR_ONE: f32 = 1e-4;

/// The rows `sources` of `data`, then `samples` more drawn from `seed`.
fn efm_reference(
    data: &[f32],
    dim: usize,
    sources: &[usize],
    samples: usize,
    seed: u64,
) -> Vec<f32> {
    let mut rng = Rng::new(seed ^ 0x5EF5_EF5E_F5EF_5EF5);
    let n = data.len() / dim;
    let extra: Vec<usize> = (0..samples).map(|_| rng.below(n)).collect();
    sources
        .iter()
        .chain(&extra)
        .flat_map(|&i| data[i * dim..(i + 1) * dim].iter().copied())
        .collect()
}

/// The fixed batch on which a file's `check_loss` is recorded and tested: 64 rows of the
/// training digits, seed 0xC4EC.
pub fn check_batch(train: &[f32], dim: usize) -> Batch {
    Batch::draw(train, dim, 64, 0xC4EC)
}

/// The training of the digits' network: its weights, their moving average, Adam's state.
pub struct DigitTraining {
    pub net: Unet,
    pub options: DigitOptions,
    pub params: Vec<f32>,
    pub ema: Vec<f32>,
    pub adam: Adam,
    /// Steps taken.
    pub step: u32,
    /// Shared, not copied: a page's lab trains from the digits it already holds.
    data: Arc<[f32]>,
}

impl DigitTraining {
    /// A run from the seeded initialisation on `train` (rows of the net's images, in [-1, 1]).
    pub fn new(
        shape: UnetShape,
        train: impl Into<Arc<[f32]>>,
        options: DigitOptions,
    ) -> DigitTraining {
        let net = Unet::new(shape);
        let params = net.init(options.seed);
        DigitTraining {
            ema: params.clone(),
            adam: Adam::new(params.len(), options.lr),
            net,
            options,
            params,
            step: 0,
            data: train.into(),
        }
    }

    /// The batch of the next step; with EFM, its targets are u*(x_t, t) over the batch's own
    /// x1 and `samples` more training digits (the paper's estimator, Proposition 2: the set always
    /// holds the x1 behind each x_t, so the target stays unbiased).
    pub fn batch(&self) -> Batch {
        step_batch(&self.data, self.net.shape.dim(), &self.options, self.step)
    }

    /// Rows `rows` of `batch`: their share of the batch's loss (the mean over rows and pixels)
    /// and of its gradient.
    pub fn part(&self, batch: &Batch, rows: std::ops::Range<usize>) -> (f32, Vec<f32>) {
        let dim = self.net.shape.dim();
        let mut grads = vec![0.0; self.params.len()];
        let loss = self.net.accumulate(
            &self.params,
            &batch.x[rows.start * dim..rows.end * dim],
            &batch.t[rows.clone()],
            &batch.target[rows.start * dim..rows.end * dim],
            1.0 / (batch.rows() * dim) as f32,
            &mut grads,
        );
        (loss, grads)
    }

    /// One update from the batch's gradient: clipping, Adam at the warmed-up rate, the average.
    pub fn apply(&mut self, mut grads: Vec<f32>) {
        let o = self.options;
        let norm = grads
            .iter()
            .map(|&g| g as f64 * g as f64)
            .sum::<f64>()
            .sqrt() as f32;
        if norm > o.clip {
            let scale = o.clip / norm;
            grads.iter_mut().for_each(|g| *g *= scale);
        }
        self.adam.lr = step_rate(&o, self.step);
        self.adam.update(&mut self.params, &grads);
        let decay = ema_decay(&o, self.step);
        for (e, &p) in self.ema.iter_mut().zip(&self.params) {
            *e = decay * *e + (1.0 - decay) * p;
        }
        self.step += 1;
    }

    /// One step on this thread; the batch's loss before it.
    pub fn train_step(&mut self) -> f32 {
        let batch = self.batch();
        let (loss, grads) = self.part(&batch, 0..batch.rows());
        self.apply(grads);
        loss
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }
}

/// Adam's rate at step `step` (from 0): reached linearly over the warm-up.
pub fn step_rate(o: &DigitOptions, step: u32) -> f32 {
    o.lr * ((step + 1) as f32 / o.warmup.max(1) as f32).min(1.0)
}

/// The weights' average's decay at step `step`: it grows to `ema` (early weights would otherwise
/// linger).
pub fn ema_decay(o: &DigitOptions, step: u32) -> f32 {
    o.ema.min((1 + step) as f32 / (10 + step) as f32)
}

/// The seed of step `step`'s draws (its batch and, under EFM, its reference set).
fn batch_seed(options: &DigitOptions, step: u32) -> u64 {
    options.seed ^ (step as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407)
}

/// The batch of step `step` (from 0) of a run with `options` on `data` (see
/// `DigitTraining::batch`): its draws depend only on the seed and the step.
pub fn step_batch(data: &[f32], dim: usize, options: &DigitOptions, step: u32) -> Batch {
    let seed = batch_seed(options, step);
    let mut batch = Batch::draw(data, dim, options.batch, seed);
    if let Target::Efm { samples } = options.target {
        let reference = efm_reference(data, dim, &batch.sources, samples, seed);
        let star = closed_form_velocity_at(&reference, dim, &batch.x, &batch.t);
        // A time within EFM_NEAR_ONE of 1 (float32 rounds 1 - 2^-25 up to 1) keeps x1 - x0:
        // u* over a set holding x1 tends to it as t -> 1, and at t = 1 it would divide by 0
        // and turn every weight into NaN.
        for (r, &t) in batch.t.iter().enumerate() {
            if 1.0 - t >= EFM_NEAR_ONE {
                batch.target[r * dim..(r + 1) * dim].copy_from_slice(&star[r * dim..(r + 1) * dim]);
            }
        }
    }
    batch
}

/// The CFM loss of `params` on `batch`, the mean over rows and pixels (forward passes only).
pub fn loss(net: &Unet, params: &[f32], batch: &Batch) -> f32 {
    let dim = net.shape.dim();
    let mut sum = 0.0f64;
    for (b, &t) in batch.t.iter().enumerate() {
        let u = net.velocity(params, &batch.x[b * dim..(b + 1) * dim], t);
        for (&a, &want) in u.iter().zip(&batch.target[b * dim..(b + 1) * dim]) {
            sum += ((a - want) as f64).powi(2);
        }
    }
    (sum / (batch.rows() * dim).max(1) as f64) as f32
}

/// Euler samples of the network from the noises `x0` (rows), `steps` steps from t = 0 to 1.
pub fn sample(net: &Unet, params: &[f32], x0: &[f32], steps: usize) -> Vec<f32> {
    super::sampler::euler(x0, steps, 0.0, |x, t| net.velocities(params, x, t))
}

/// The pairs on which `departure` measures the network against u*: `pairs` noises x0 and as
/// many training digits x1 (drawn with replacement), both from `seed`.
pub fn departure_pairs(train: &[f32], dim: usize, pairs: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    let x0 = rng.normals(pairs * dim);
    let x1 = (0..pairs)
        .flat_map(|_| {
            let i = rng.below(train.len() / dim);
            train[i * dim..(i + 1) * dim].to_vec()
        })
        .collect();
    (x0, x1)
}

/// x_t = (1 - t) x0 + t x1, row by row.
pub fn interpolate(x0: &[f32], x1: &[f32], t: f32) -> Vec<f32> {
    x0.iter()
        .zip(x1)
        .map(|(a, b)| (1.0 - t) * a + t * b)
        .collect()
}

/// Where the network departs from u* (the paper's Figure 2 curve at one n): from both velocities
/// at the same points x_t, the mean over points of |u_theta - u*|^2 / D, and of |u*|^2 / D for
/// scale (sums in float64).
pub fn departure(u_net: &[f32], u_star: &[f32]) -> (f32, f32) {
    // Over pairs of |.|^2 / D: the sum over every value, divided by their count.
    let per = |v: f64| (v / u_star.len().max(1) as f64) as f32;
    let gap = u_net
        .iter()
        .zip(u_star)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum();
    let scale = u_star.iter().map(|&v| (v as f64).powi(2)).sum();
    (per(gap), per(scale))
}

/// The shipped network: its shape, how it was trained, and its weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    pub shape: UnetShape,
    pub steps: u32,
    pub seed: u64,
    pub batch: u32,
    /// The training loss over the last steps (their mean).
    pub train_loss: f32,
    /// The loss of these (float16) weights on `check_batch`.
    pub check_loss: f32,
    pub params: Vec<f32>,
}

const MAGIC: &[u8; 4] = b"FMU1";
/// Magic, five shape fields, steps, seed (two words), batch, two losses, the count.
const HEADER: usize = 4 + 4 * 12;

impl Weights {
    /// "FMU1", then little-endian u32s: side, base, time_features, embed, groups, steps, seed
    /// (low, high), batch; f32s: train_loss, check_loss; u32: the count; then the parameters as
    /// float16 (round to nearest even). A parameter float16 cannot hold (beyond 65,504, or not
    /// finite) is refused rather than written as an infinity.
    pub fn encode(&self) -> Result<Vec<u8>, FlowError> {
        if let Some(p) = self
            .params
            .iter()
            .find(|p| !half::f16::from_f32(**p).is_finite())
        {
            return Err(FlowError::Corrupt(format!(
                "digit network weights: {p} does not fit float16"
            )));
        }
        let s = self.shape;
        let mut out = Vec::with_capacity(HEADER + 2 * self.params.len());
        out.extend_from_slice(MAGIC);
        let words = [
            s.side as u32,
            s.base as u32,
            s.time_features as u32,
            s.embed as u32,
            s.groups as u32,
            self.steps,
            self.seed as u32,
            (self.seed >> 32) as u32,
            self.batch,
            self.train_loss.to_bits(),
            self.check_loss.to_bits(),
            self.params.len() as u32,
        ];
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        for &p in &self.params {
            out.extend_from_slice(&half::f16::from_f32(p).to_le_bytes());
        }
        Ok(out)
    }

    /// The inverse of `encode`, refusing anything that is not a whole, consistent file.
    pub fn decode(bytes: &[u8]) -> Result<Weights, FlowError> {
        let corrupt = |why: &str| FlowError::Corrupt(format!("digit network weights: {why}"));
        if bytes.len() < HEADER || &bytes[..4] != MAGIC {
            return Err(corrupt("not an FMU1 file"));
        }
        let word = |k: usize| u32::from_le_bytes(bytes[4 + 4 * k..8 + 4 * k].try_into().unwrap());
        let field = |k: usize| word(k) as usize;
        let shape = UnetShape {
            side: field(0),
            base: field(1),
            time_features: field(2),
            embed: field(3),
            groups: field(4),
        };
        let sane = (4..=64).contains(&shape.side)
            && shape.side.is_multiple_of(4)
            && (1..=256).contains(&shape.base)
            && (1..=shape.base).contains(&shape.groups)
            && shape.base.is_multiple_of(shape.groups)
            && (2..=256).contains(&shape.time_features)
            && shape.time_features.is_multiple_of(2)
            && (1..=1024).contains(&shape.embed);
        if !sane {
            return Err(corrupt(&format!("impossible shape {shape:?}")));
        }
        let count = field(11);
        let expected = Unet::new(shape).parameter_count();
        if count != expected || bytes.len() != HEADER + 2 * count {
            return Err(corrupt(&format!(
                "{count} parameters in {} bytes; the shape has {expected}",
                bytes.len()
            )));
        }
        let params: Vec<f32> = bytes[HEADER..]
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect();
        if params.iter().any(|p| !p.is_finite()) {
            return Err(corrupt("a parameter is not finite"));
        }
        Ok(Weights {
            shape,
            steps: word(5),
            seed: word(6) as u64 | (word(7) as u64) << 32,
            batch: word(8),
            train_loss: f32::from_bits(word(9)),
            check_loss: f32::from_bits(word(10)),
            params,
        })
    }

    /// The parameters as the file holds them (each rounded to float16).
    pub fn rounded(params: &[f32]) -> Vec<f32> {
        params
            .iter()
            .map(|&p| half::f16::from_f32(p).to_f32())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: UnetShape = UnetShape::TINY;

    #[test]
    fn original_index_finds_each_training_row() {
        let images: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let (train, held) = split(&images, 1);
        assert_eq!((train.len(), held.len()), (90, 10));
        for (j, &v) in train.iter().enumerate() {
            assert_eq!(original_index(j), v as usize);
        }
    }

    fn data(rows: usize) -> Vec<f32> {
        let mut rng = Rng::new(9);
        (0..rows * TINY.dim())
            .map(|_| rng.uniform() as f32 * 2.0 - 1.0)
            .collect()
    }

    #[test]
    fn a_batch_split_in_parts_adds_up_to_the_whole() {
        let options = DigitOptions {
            batch: 6,
            ..DigitOptions::SHIPPED
        };
        let mut run = DigitTraining::new(TINY, data(20), options);
        // Every parameter away from its start, so that every gradient is in play.
        run.params = Unet::new(TINY).init_for_comparison(3);
        let batch = run.batch();
        let (whole_loss, whole) = run.part(&batch, 0..6);
        let (la, a) = run.part(&batch, 0..2);
        let (lb, b) = run.part(&batch, 2..6);
        assert!((la + lb - whole_loss).abs() <= 1e-6 * whole_loss, "losses");
        let scale = whole.iter().fold(0.0f32, |m, g| m.max(g.abs()));
        let worst = whole
            .iter()
            .zip(a.iter().zip(&b))
            .map(|(w, (x, y))| (w - (x + y)).abs())
            .fold(0.0f32, f32::max);
        // Summing the parts reorders float additions: equal to rounding, not bit for bit.
        assert!(
            worst <= 1e-5 * scale,
            "parts differ from the whole by {worst} (of {scale})"
        );
        assert!(scale > 0.0);
    }

    #[test]
    fn efm_targets_are_nearer_u_star_than_the_conditional_ones_on_the_same_rows() {
        let train = data(20);
        let dim = TINY.dim();
        let mut cfm = DigitTraining::new(TINY, train.clone(), DigitOptions::SHIPPED);
        let efm_options = DigitOptions {
            target: Target::Efm { samples: 40 },
            ..DigitOptions::SHIPPED
        };
        let mut efm = DigitTraining::new(TINY, train.clone(), efm_options);
        let (mut cfm_gap, mut efm_gap) = (0.0f64, 0.0f64);
        for step in 0..3 {
            (cfm.step, efm.step) = (step, step);
            let (c, e) = (cfm.batch(), efm.batch());
            // The same rows; only the targets differ.
            assert_eq!((&c.x, &c.t, &c.sources), (&e.x, &e.t, &e.sources));
            assert_ne!(c.target, e.target);
            let star = closed_form_velocity_at(&train, dim, &c.x, &c.t);
            let gap = |target: &[f32]| {
                target
                    .iter()
                    .zip(&star)
                    .map(|(a, b)| ((a - b) as f64).powi(2))
                    .sum::<f64>()
            };
            cfm_gap += gap(&c.target);
            efm_gap += gap(&e.target);
        }
        // u* over the rows' own x1 and 40 more of the 20 digits is nearly u* over all of them;
        // x1 - x0 is one draw around it.
        assert!(
            efm_gap < 0.2 * cfm_gap,
            "EFM {efm_gap} against CFM {cfm_gap}"
        );
    }

    #[test]
    fn the_efm_reference_holds_each_rows_own_digit_so_late_targets_are_the_conditional_ones() {
        // Many more digits than the reference holds (4 rows + 4 more of 500): u* over all of
        // them would point elsewhere, but the estimator's set always holds the x1 behind x_t
        // (Proposition 2), and late in t the posterior sits on it.
        let train = data(500);
        let dim = TINY.dim();
        let options = DigitOptions {
            batch: 4,
            target: Target::Efm { samples: 4 },
            ..DigitOptions::SHIPPED
        };
        let mut efm = DigitTraining::new(TINY, train.clone(), options);
        let mut late = 0;
        for step in 0..40 {
            efm.step = step;
            let b = efm.batch();
            let seed = batch_seed(&options, step);
            let reference = efm_reference(&train, dim, &b.sources, 4, seed);
            for (r, &i) in b.sources.iter().enumerate() {
                assert_eq!(
                    &reference[r * dim..(r + 1) * dim],
                    &train[i * dim..(i + 1) * dim]
                );
            }
            let drawn = Batch::draw(&train, dim, 4, seed);
            for (r, &t) in b.t.iter().enumerate() {
                if t > 0.8 {
                    late += 1;
                    let rows = |v: &[f32]| v[r * dim..(r + 1) * dim].to_vec();
                    let (efm_row, cfm_row) = (rows(&b.target), rows(&drawn.target));
                    let worst = efm_row
                        .iter()
                        .zip(&cfm_row)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0f32, f32::max);
                    assert!(
                        worst < 1e-3,
                        "t = {t}: the EFM target is {worst} off x1 - x0"
                    );
                }
            }
        }
        assert!(late >= 10, "only {late} rows after t = 0.8");
    }

    #[test]
    fn training_lowers_the_loss_on_a_fixed_batch() {
        let train = data(8);
        let options = DigitOptions {
            batch: 8,
            lr: 3e-3,
            warmup: 1,
            ..DigitOptions::SHIPPED
        };
        let mut run = DigitTraining::new(TINY, train.clone(), options);
        let check = check_batch(&train, TINY.dim());
        let before = loss(&run.net, &run.params, &check);
        for _ in 0..60 {
            run.train_step();
        }
        let after = loss(&run.net, &run.params, &check);
        assert!(after < 0.9 * before, "loss {before} -> {after}");
    }

    #[test]
    fn weights_survive_their_file_and_a_damaged_file_is_refused() {
        let net = Unet::new(TINY);
        let mut rng = Rng::new(5);
        let params: Vec<f32> = (0..net.parameter_count())
            .map(|_| rng.normal() as f32)
            .collect();
        let weights = Weights {
            shape: TINY,
            steps: 1234,
            seed: 0x1_0000_0007,
            batch: 64,
            train_loss: 0.25,
            check_loss: 0.5,
            params: Weights::rounded(&params),
        };
        let bytes = weights.encode().unwrap();
        assert_eq!(bytes.len(), HEADER + 2 * params.len());
        let mut huge = weights.clone();
        huge.params[0] = 1e6;
        assert!(huge.encode().is_err());
        assert_eq!(Weights::decode(&bytes).unwrap(), weights);
        // float16 keeps 11 significant bits.
        for (a, b) in params.iter().zip(&weights.params) {
            assert!((a - b).abs() <= a.abs() / 2048.0 + 6e-8);
        }
        assert!(Weights::decode(&bytes[..bytes.len() - 2]).is_err());
        let mut wrong = bytes.clone();
        wrong[8] = 3; // base 3 with 2 groups
        assert!(Weights::decode(&wrong).is_err());
        let mut infinite = bytes.clone();
        infinite[HEADER..HEADER + 2].copy_from_slice(&half::f16::INFINITY.to_le_bytes());
        assert!(Weights::decode(&infinite).is_err());
        assert!(Weights::decode(b"FMD1").is_err());
    }

    #[test]
    fn the_split_holds_out_every_tenth_digit() {
        let images: Vec<f32> = (0..30).map(|i| i as f32).collect();
        let (train, held) = split(&images, 1);
        assert_eq!(held, vec![9.0, 19.0, 29.0]);
        assert_eq!(train.len(), 27);
    }
}
