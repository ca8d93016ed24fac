//! The packed digits (www/assets/digits.bin, written by tools/pack-digits.mjs), shared by the
//! native tests that read them.

use std::path::Path;

/// The packed asset; under CI its absence is a failure (xtask packs it before the tests).
pub fn asset() -> Option<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("www/assets/digits.bin");
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{} is missing under CI: {e}",
                path.display()
            );
            eprintln!(
                "SKIPPED: {} is missing (run node tools/pack-digits.mjs)",
                path.display()
            );
            None
        }
    }
}
