//! Validation of everything a reader or an embedding page hands in, with messages that name the
//! argument and its valid range.

/// A rejected argument; the message is shown to readers and to JS callers as is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FlowError {
    #[error("{name} must be {expected}, got {got}")]
    OutOfRange {
        name: &'static str,
        expected: String,
        got: String,
    },
    #[error("{name} has length {len}, which is not a multiple of dim = {dim}")]
    NotMultipleOfDim {
        name: &'static str,
        len: usize,
        dim: usize,
    },
    #[error("{name} contains a non-finite value (NaN or infinity) at index {index}")]
    NonFinite { name: &'static str, index: usize },
    #[error("{name} must not be empty")]
    Empty { name: &'static str },
    #[error("{name} must be {expected}")]
    WrongType {
        name: &'static str,
        expected: &'static str,
    },
    #[error("{0}")]
    Corrupt(String),
    #[error(
        "{what} is not finite in float32 (at index {index}): the inputs are too large in \
         magnitude, t is too close to 1, or training diverged (lower lr)"
    )]
    NotFinite { what: &'static str, index: usize },
    #[error("{name}: this call would need {got}, over its budget of {limit}; split it into smaller calls")]
    OverBudget {
        name: &'static str,
        got: String,
        limit: String,
    },
}

/// Largest dimension accepted (CIFAR-sized images).
pub const MAX_DIM: usize = 3072;
/// Largest number of Euler steps accepted.
pub const MAX_STEPS: usize = 10_000;

/// An integer in lo..=hi (the value arrives as a JS number).
pub fn check_integer(name: &'static str, v: f64, lo: usize, hi: usize) -> Result<usize, FlowError> {
    if v.fract() != 0.0 || !(lo as f64..=hi as f64).contains(&v) {
        return Err(FlowError::OutOfRange {
            name,
            expected: format!("an integer in {lo}..={hi}"),
            got: format!("{v}"),
        });
    }
    Ok(v as usize)
}

pub fn check_dim(dim: f64) -> Result<usize, FlowError> {
    check_integer("dim", dim, 1, MAX_DIM)
}

/// Time of the closed form: u* is singular at t = 1, so the range is [0, 1).
pub fn check_t(name: &'static str, t: f64) -> Result<f32, FlowError> {
    if !(0.0..1.0).contains(&t) || (t as f32) >= 1.0 {
        return Err(FlowError::OutOfRange {
            name,
            expected: "a number in [0, 1)".into(),
            got: format!("{t}"),
        });
    }
    Ok(t as f32)
}

/// A time or fraction in [0, 1] (the network, unlike u*, is defined at t = 1).
pub fn check_unit(name: &'static str, v: f64) -> Result<f32, FlowError> {
    if !(0.0..=1.0).contains(&v) {
        return Err(FlowError::OutOfRange {
            name,
            expected: "a number in [0, 1]".into(),
            got: format!("{v}"),
        });
    }
    Ok(v as f32)
}

pub fn check_steps(steps: f64) -> Result<usize, FlowError> {
    check_integer("steps", steps, 1, MAX_STEPS)
}

/// Checks that `values` is a non-empty, finite, row-major array of `dim`-vectors; returns the
/// number of rows.
pub fn check_rows(name: &'static str, values: &[f32], dim: usize) -> Result<usize, FlowError> {
    if values.is_empty() {
        return Err(FlowError::Empty { name });
    }
    if !values.len().is_multiple_of(dim) {
        return Err(FlowError::NotMultipleOfDim {
            name,
            len: values.len(),
            dim,
        });
    }
    if let Some(index) = values.iter().position(|v| !v.is_finite()) {
        return Err(FlowError::NonFinite { name, index });
    }
    Ok(values.len() / dim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_argument_and_the_range() {
        let e = check_t("t", 1.0).unwrap_err().to_string();
        assert_eq!(e, "t must be a number in [0, 1), got 1");
        let e = check_steps(2.5).unwrap_err().to_string();
        assert!(e.contains("steps") && e.contains("1..=10000"), "{e}");
        let e = check_rows("data", &[1.0, f32::NAN], 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("data") && e.contains("index 1"), "{e}");
        let e = check_rows("points", &[1.0, 2.0, 3.0], 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a multiple of dim = 2"), "{e}");
        assert!(check_dim(0.0).is_err() && check_dim(3073.0).is_err());
        assert_eq!(check_dim(784.0), Ok(784));
        // 0.99999999 rounds to 1.0 in f32, where u* is singular.
        assert!(check_t("t", 0.999_999_999).is_err());
        assert_eq!(check_t("t", 0.0), Ok(0.0));
        assert_eq!(
            check_integer("hidden", 4.0, 8, 1024)
                .unwrap_err()
                .to_string(),
            "hidden must be an integer in 8..=1024, got 4"
        );
        assert_eq!(check_integer("seed", 0.0, 0, u32::MAX as usize), Ok(0));
        assert_eq!(check_unit("hybridTau", 1.0), Ok(1.0));
        assert_eq!(
            check_unit("hybridTau", 1.5).unwrap_err().to_string(),
            "hybridTau must be a number in [0, 1], got 1.5"
        );
    }
}
