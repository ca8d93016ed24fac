//! What one call may cost, checked from the sizes of its arguments before anything is allocated.
//! In wasm a failed allocation aborts the whole module (every figure and every later call with
//! it), so a call that would exceed its budget is refused with an error naming the argument and
//! the limit, and the module carries on.
//!
//! Two budgets per call: memory, in floats held by the call (its inputs, its outputs and its own
//! working copies together), and work, in multiply-adds. The closed form costs 2 n m dim
//! multiply-adds per evaluation of m queries over n points (distances, then the weighted sum).

use super::error::FlowError;

/// Floats one call may hold: 2^27 (512 MiB; all 60,000 MNIST training digits and their packed
/// copy fit).
pub const MAX_FLOATS: u64 = 1 << 27;
/// Multiply-adds one call may ask for: 2^38 (about 2.7e11; tens of seconds on one CPU core,
/// during which the page keeps running, since long work yields to it).
pub const MAX_WORK: u64 = 1 << 38;
/// Floats all unfinished calls together may hold: 2^28 (1 GiB), a quarter of wasm32's memory.
pub const MAX_FLOATS_IN_FLIGHT: u64 = 1 << 28;

fn grouped(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Saturating products, so that sizes from hostile arguments cannot wrap around.
pub fn product(factors: &[u64]) -> u64 {
    factors.iter().fold(1u64, |a, &b| a.saturating_mul(b))
}

/// Refuses `floats` over MAX_FLOATS, naming `name` (the argument that makes the call large).
pub fn check_floats(name: &'static str, floats: u64) -> Result<(), FlowError> {
    if floats > MAX_FLOATS {
        return Err(FlowError::OverBudget {
            name,
            got: format!("{} floats", grouped(floats)),
            limit: format!("{} floats (512 MiB)", grouped(MAX_FLOATS)),
        });
    }
    Ok(())
}

/// Refuses `multiply_adds` over MAX_WORK, naming `name`.
pub fn check_work(name: &'static str, multiply_adds: u64) -> Result<(), FlowError> {
    if multiply_adds > MAX_WORK {
        return Err(FlowError::OverBudget {
            name,
            got: format!("{} multiply-adds", grouped(multiply_adds)),
            limit: format!("{} multiply-adds", grouped(MAX_WORK)),
        });
    }
    Ok(())
}

/// The sizes of a closed-form call: n training points of dimension dim, m queries, `evaluations`
/// of u* per query (Euler steps), `out` floats returned.
pub struct ClosedFormCost {
    pub n: u64,
    pub dim: u64,
    pub m: u64,
    pub evaluations: u64,
    pub out: u64,
}

impl ClosedFormCost {
    /// Memory: the data (and the CPU path's packed copy of it), the queries (and the positions
    /// being stepped), the result.
    pub fn floats(&self) -> u64 {
        product(&[2, self.n, self.dim])
            .saturating_add(product(&[2, self.m, self.dim]))
            .saturating_add(self.out)
    }

    /// Refuses a call over either budget, naming `data` when the data alone is too large and
    /// `queries` otherwise. Work: 2 n m dim per evaluation.
    pub fn check(&self, data: &'static str, queries: &'static str) -> Result<(), FlowError> {
        check_floats(data, product(&[2, self.n, self.dim]))?;
        check_floats(queries, self.floats())?;
        check_work(
            queries,
            product(&[2, self.n, self.m, self.dim, self.evaluations]),
        )
    }
}

/// The cost of one training step of an MLP with `parameters` weights on `batch` rows of `width`
/// activations in all (the sum of the layers' widths), with an EFM target over `reference`
/// points of dimension `dim` (0 for CFM): forward and backward are about 3 multiply-adds per
/// weight per row.
pub fn training_step_work(parameters: u64, batch: u64, reference: u64, dim: u64) -> u64 {
    product(&[3, parameters, batch]).saturating_add(product(&[2, batch, reference, dim]))
}

/// Memory of a trainer: its data, its parameters five times over (the weights, Adam's two
/// moments, a gradient, the transposed weights of a pass), and the activations of a batch kept
/// for the backward pass (with their gradients).
pub fn trainer_floats(
    data: u64,
    parameters: u64,
    batch: u64,
    width: u64,
    reference: u64,
    dim: u64,
) -> u64 {
    data.saturating_add(product(&[5, parameters]))
        .saturating_add(product(&[3, batch, width]))
        .saturating_add(product(&[reference, dim]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_argument_and_the_limit() {
        assert!(check_floats("points", MAX_FLOATS).is_ok());
        let e = check_floats("points", MAX_FLOATS + 1)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "points: this call would need 134,217,729 floats, over its budget of 134,217,728 floats \
             (512 MiB); split it into smaller calls"
        );
        let e = check_work("x0", MAX_WORK * 3).unwrap_err().to_string();
        assert!(
            e.starts_with("x0: ") && e.contains("824,633,720,832 multiply-adds"),
            "{e}"
        );
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
    }

    #[test]
    fn a_trainer_counts_its_parameters_five_times() {
        // 10 data floats, 100 parameters, batch 4 of 7 activations, EFM over 3 points of dim 2.
        assert_eq!(trainer_floats(10, 100, 4, 7, 3, 2), 10 + 500 + 84 + 6);
    }

    #[test]
    fn hostile_sizes_saturate_instead_of_wrapping() {
        assert_eq!(product(&[u64::MAX, 3]), u64::MAX);
        let c = ClosedFormCost {
            n: 1 << 40,
            dim: 3072,
            m: 1 << 40,
            evaluations: 10_000,
            out: u64::MAX,
        };
        assert!(c.check("data", "points").is_err());
    }

    #[test]
    fn the_reported_freeze_is_refused_and_the_article_sizes_pass() {
        // 300,000 queries of dim 3,072 over 10,000 points: 1.8e13 multiply-adds, 2 GB of floats.
        let freeze = ClosedFormCost {
            n: 10_000,
            dim: 3072,
            m: 300_000,
            evaluations: 1,
            out: 300_000 * 3072,
        };
        let e = freeze.check("data", "points").unwrap_err().to_string();
        assert!(e.starts_with("points: "), "{e}");
        // 60,000 x 3,072 data, 10,000 steps: refused for its work, not for a uniform per step.
        let long = ClosedFormCost {
            n: 20_000,
            dim: 3072,
            m: 16,
            evaluations: 10_000,
            out: 16 * 3072,
        };
        assert!(long
            .check("data", "x0")
            .unwrap_err()
            .to_string()
            .contains("multiply-adds"));
        // The MNIST benchmark (n 10,000, dim 784, m 64) and the digit figure's 40 steps pass.
        for (m, evaluations) in [(64, 1), (4, 40), (2560, 1)] {
            let c = ClosedFormCost {
                n: 10_000,
                dim: 784,
                m,
                evaluations,
                out: m * 784,
            };
            assert!(c.check("data", "points").is_ok());
        }
        // All 60,000 MNIST training digits fit as data.
        let c = ClosedFormCost {
            n: 60_000,
            dim: 784,
            m: 16,
            evaluations: 1,
            out: 16 * 784,
        };
        assert!(c.check("data", "points").is_ok());
    }
}
