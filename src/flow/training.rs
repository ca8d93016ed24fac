//! A velocity network's training run on the CPU: the options every place trains with (the GPU
//! trainer, a compute worker, the page's thread) and the CPU's run itself, the GPU trainer's twin
//! step for step (`gpu::trainer`'s tests compare them weight by weight).

use super::mlp::{self, Adam, MlpShape, Target};

/// Options of a training run.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainOptions {
    pub batch: usize,
    pub lr: f32,
    pub seed: u32,
    pub target: Target,
}

/// Rows of a network evaluation at once: bounds the activations kept in memory.
pub const FORWARD_ROWS: usize = 1024;

/// The CPU's training run (in a compute worker, or on the page's thread where workers cannot
/// run): the same arithmetic as the GPU trainer's, step for step.
pub struct CpuTraining {
    pub shape: MlpShape,
    pub options: TrainOptions,
    data: Vec<f32>,
    pub params: Vec<f32>,
    adam: Adam,
}

impl CpuTraining {
    /// `shape` from its seeded initialisation, to be trained on `data` (n x dim).
    pub fn new(shape: MlpShape, data: Vec<f32>, options: TrainOptions) -> CpuTraining {
        let params = shape.init(options.seed as u64);
        CpuTraining {
            shape,
            options,
            data,
            adam: Adam::new(params.len(), options.lr),
            params,
        }
    }

    /// u_theta(x, t) for every row of `x` at its time in `t`, a block of FORWARD_ROWS rows at a
    /// time (rows are independent: the same values as in one pass, with bounded activations).
    pub fn velocity(&self, x: &[f32], t: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(x.len());
        for (xs, ts) in row_blocks(self.shape.dim, x, t) {
            out.extend(mlp::forward(&self.shape, &self.params, xs, ts).0);
        }
        out
    }

    /// One optimisation step; returns its loss.
    pub fn step(&mut self) -> f32 {
        mlp::train_step(
            &self.shape,
            &mut self.params,
            &mut self.adam,
            &self.data,
            self.options.batch,
            self.options.seed,
            self.options.target,
        )
    }
}

/// The rows of `x` (n x dim) and their times `t` in blocks of FORWARD_ROWS rows: a network
/// evaluated block by block gives the same values as in one pass (rows are independent) with
/// bounded activations, and a caller on a page's thread can give the page a turn between blocks.
pub fn row_blocks<'a>(
    dim: usize,
    x: &'a [f32],
    t: &'a [f32],
) -> impl Iterator<Item = (&'a [f32], &'a [f32])> {
    x.chunks(FORWARD_ROWS * dim).zip(t.chunks(FORWARD_ROWS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_network_evaluated_in_row_blocks_is_the_network_in_one_pass() {
        let shape = MlpShape::new(2, 16, 2);
        let data: Vec<f32> = (0..200).map(|i| (i as f32 * 0.37).sin()).collect();
        let options = TrainOptions {
            batch: 32,
            lr: 1e-3,
            seed: 7,
            target: Target::Cfm,
        };
        let mut run = CpuTraining::new(shape, data, options);
        for _ in 0..20 {
            assert!(run.step().is_finite());
        }
        // More rows than one block, and not a multiple of it.
        let rows = 2 * FORWARD_ROWS + 37;
        let x: Vec<f32> = (0..rows * 2).map(|i| (i as f32 * 0.013).cos()).collect();
        let t: Vec<f32> = (0..rows).map(|i| i as f32 / rows as f32).collect();
        assert_eq!(row_blocks(2, &x, &t).count(), 3);
        let whole = mlp::forward(&shape, &run.params, &x, &t).0;
        assert_eq!(run.velocity(&x, &t), whole);
    }
}
