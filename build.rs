//! The WGSL kernels as the module ships them: `shaders/*.wgsl` without their comments, leading
//! indentation and blank lines, written to OUT_DIR for `src/gpu/shaders.rs` to include. The
//! comments (why each kernel is safe, what it relies on) are half of the kernels' text and no use
//! to a reader's browser. The code itself is unchanged; the native tests parse and validate
//! these (tests/shaders.rs) and run every kernel through them against its CPU twin.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=shaders");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let dir = Path::new("shaders");
    let entries = std::fs::read_dir(dir).expect("shaders/ is beside Cargo.toml");
    for entry in entries {
        let path = entry.expect("a readable entry of shaders/").path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("a WGSL file is UTF-8");
        // WGSL has no string literals, so `//` always starts a comment; block comments are not
        // used in this tree and are refused rather than half-stripped.
        assert!(
            !source.contains("/*"),
            "{}: block comments are not stripped by build.rs; use // comments",
            path.display()
        );
        let mut stripped = String::with_capacity(source.len() / 2);
        for line in source.lines() {
            let code = line.split("//").next().unwrap_or("").trim();
            if !code.is_empty() {
                stripped.push_str(code);
                stripped.push('\n');
            }
        }
        let name = path.file_name().expect("a file name");
        std::fs::write(Path::new(&out).join(name), stripped).expect("OUT_DIR is writable");
    }
}
