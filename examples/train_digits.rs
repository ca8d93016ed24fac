//! Trains the digits' U-Net natively and writes the weights the page ships
//! (`cargo xtask train-digits`): CFM (or EFM) on 9,000 of the 10,000 MNIST digits, seeded and
//! deterministic; each batch is computed in eight fixed parts spread over the machine's cores
//! and summed in order, so the weights do not depend on the number of threads.
//!
//!   --steps N       steps in all (default 3,000)
//!   --out PATH      the weights file (default www/weights/digits-unet.fmu, the shipped one;
//!                   with --efm, target/train-digits/digits-unet-efm.fmu)
//!   --resume        go on from the checkpoint (target/train-digits.ckpt, written every 100 steps;
//!                   the weights file is written every 500)
//!   --efm M         regress on u* over the batch's own digits and M more (EFM) instead of
//!                   x1 - x0 (its checkpoint is target/train-digits-efm.ckpt; the file's header
//!                   does not say which target trained it, so it is kept apart from the shipped one)
//!   --gpu           train on the GPU (wgpu: a hardware GPU where there is one, else lavapipe):
//!                   the same batches and updates to float32 rounding
//!                   (gpu::digit_trainer); no checkpoint, so no --resume
//!   --report        only measure the weights file: samples, memorization, the hybrid curve,
//!                   where the network departs from u* along t, the article's values, PNG grids
//!                   under target/train-digits/ and the article's opening picture
//!                   (www/question/*.png; beside the grids for weights other than the shipped)
//!
//! The report (`flow::digit_findings`, which tests/article_digits.rs holds the article to)
//! integrates the same 256 noises with the network and with u* (20 Euler steps) and measures,
//! against the 9,000 training digits: the mean distance to the nearest one, and the memorized
//! share (nearest / second-nearest distance below 1/3); the held-out digits' own distance is the
//! reference for "new".

use fm_explainer::flow::digit_findings::{
    Findings, Nearness, DEPARTURE_PAIRS, QUESTION_DIGITS, SAMPLES, STEPS,
};
use fm_explainer::flow::digit_training::{self, DigitOptions, DigitTraining, Weights};
use fm_explainer::flow::digits::{self, PIXELS, SIDE};
use fm_explainer::flow::jobs::{Jobs, Threads};
use fm_explainer::flow::mlp::Target;
use fm_explainer::flow::unet::{Unet, UnetShape};
use std::path::{Path, PathBuf};
use std::time::Instant;

const PARTS: usize = 8;
/// The weights the page ships (and the article's numbers and opening picture describe).
const SHIPPED: &str = "www/weights/digits-unet.fmu";

/// Where a run with these options keeps its checkpoint.
fn checkpoint(options: &DigitOptions) -> &'static str {
    match options.target {
        Target::Cfm => "target/train-digits.ckpt",
        Target::Efm { .. } => "target/train-digits-efm.ckpt",
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let steps: u32 = value("--steps").map_or(3000, |s| s.parse().expect("--steps N"));
    let jobs = Threads::available();
    let options = DigitOptions {
        target: match value("--efm") {
            Some(m) => Target::Efm {
                samples: m.parse().expect("--efm M"),
            },
            None => Target::Cfm,
        },
        ..DigitOptions::SHIPPED
    };
    let out = PathBuf::from(value("--out").unwrap_or(match options.target {
        Target::Cfm => SHIPPED.into(),
        Target::Efm { .. } => "target/train-digits/digits-unet-efm.fmu".into(),
    }));

    let bytes = std::fs::read("www/assets/digits.bin")
        .expect("www/assets/digits.bin (run node tools/pack-digits.mjs)");
    let images = digits::unpack(&bytes).expect("the digits asset").signed();
    let (train, held) = digit_training::split(&images, PIXELS);
    println!(
        "{} training digits, {} held out; {} threads",
        train.len() / PIXELS,
        held.len() / PIXELS,
        jobs.0
    );

    if args.iter().any(|a| a == "--gpu") {
        assert!(
            !args.iter().any(|a| a == "--resume"),
            "--gpu keeps no checkpoint"
        );
        train_on_gpu(&train, options, steps, &out);
    } else if !args.iter().any(|a| a == "--report") {
        train_and_write(
            &train,
            options,
            steps,
            &out,
            &jobs,
            args.iter().any(|a| a == "--resume"),
        );
    }
    let weights = Weights::decode(&std::fs::read(&out).expect("the weights file")).expect("FMU1");
    report(&weights, &out, &train, &held, &jobs);
}

fn train_and_write(
    train: &[f32],
    options: DigitOptions,
    steps: u32,
    out: &Path,
    jobs: &Threads,
    resume: bool,
) {
    let mut run = DigitTraining::new(UnetShape::DIGITS, train.to_vec(), options);
    println!(
        "U-Net {} parameters; {:?}, batch {}, Adam {} (warm-up {}), EMA {}, clip {}; {steps} steps",
        run.net.parameter_count(),
        options.target,
        options.batch,
        options.lr,
        options.warmup,
        options.ema,
        options.clip
    );
    if resume {
        load_checkpoint(&mut run);
        println!("resumed at step {}", run.step);
        assert!(
            run.step < steps,
            "the checkpoint is at step {}: ask for more steps",
            run.step
        );
    }
    let started = Instant::now();
    let first = run.step;
    let mut recent: Vec<f32> = Vec::new();
    while run.step < steps {
        let batch = run.batch();
        let rows = batch.rows();
        let bounds: Vec<_> = (0..PARTS)
            .map(|p| p * rows / PARTS..(p + 1) * rows / PARTS)
            .collect();
        let parts = jobs.run(PARTS, |p| run.part(&batch, bounds[p].clone()));
        let mut grads = vec![0.0f32; run.params.len()];
        let mut loss = 0.0;
        for (l, g) in &parts {
            loss += l;
            grads.iter_mut().zip(g).for_each(|(a, b)| *a += b);
        }
        run.apply(grads);
        recent.push(loss);
        if recent.len() > 100 {
            recent.remove(0);
        }
        if run.step.is_multiple_of(50) || run.step == steps {
            let per = started.elapsed().as_secs_f64() / (run.step - first) as f64;
            println!(
                "step {:5}  loss {:.4} (mean of the last {})  {:.2} s/step, {:.0} s left",
                run.step,
                mean(&recent),
                recent.len(),
                per,
                per * (steps - run.step) as f64
            );
        }
        if run.step.is_multiple_of(100) {
            save_checkpoint(&run);
        }
        if run.step.is_multiple_of(500) && run.step < steps {
            write_weights(
                &run.net,
                &run.ema,
                run.step,
                &run.options,
                train,
                mean(&recent),
                out,
            );
        }
    }
    write_weights(
        &run.net,
        &run.ema,
        run.step,
        &run.options,
        train,
        mean(&recent),
        out,
    );
    println!("{:.0} s", started.elapsed().as_secs_f64());
}

/// `train_and_write` on the GPU: a step a submission, the loss read back each step, the
/// weights' average read back when written.
fn train_on_gpu(train: &[f32], options: DigitOptions, steps: u32, out: &Path) {
    use fm_explainer::gpu::digit_trainer::GpuDigitTraining;
    use fm_explainer::gpu::unet::UnetPipelines;
    let gpu = pollster::block_on(fm_explainer::gpu::Gpu::request(true)).expect("a GPU adapter");
    println!("training on {} ({:?})", gpu.adapter, gpu.backend);
    let mut run = GpuDigitTraining::new(&gpu, UnetShape::DIGITS, train.to_vec(), options)
        .expect("the network on the GPU");
    let pipelines = UnetPipelines::new(&gpu);
    let started = Instant::now();
    let mut recent: Vec<f32> = Vec::new();
    let write = |run: &GpuDigitTraining, loss: f32| {
        let (_, ema) = pollster::block_on(run.weights(&gpu)).expect("the weights read back");
        write_weights(&run.unet.net, &ema, run.step, &options, train, loss, out);
    };
    while run.step < steps {
        let loss = pollster::block_on(run.train_step(&gpu, &pipelines)).expect("a training step");
        recent.push(loss);
        if recent.len() > 100 {
            recent.remove(0);
        }
        if run.step.is_multiple_of(50) || run.step == steps {
            let per = started.elapsed().as_secs_f64() / run.step as f64;
            println!(
                "step {:5}  loss {:.4} (mean of the last {})  {:.3} s/step, {:.0} s left",
                run.step,
                mean(&recent),
                recent.len(),
                per,
                per * (steps - run.step) as f64
            );
        }
        if run.step.is_multiple_of(500) && run.step < steps {
            write(&run, mean(&recent));
        }
    }
    write(&run, mean(&recent));
    println!("{:.0} s", started.elapsed().as_secs_f64());
}

/// The moving average of the weights, as float16, with the header: what the page ships.
fn write_weights(
    net: &Unet,
    ema: &[f32],
    steps: u32,
    options: &DigitOptions,
    train: &[f32],
    train_loss: f32,
    out: &Path,
) {
    let params = Weights::rounded(ema);
    let check = digit_training::check_batch(train, PIXELS);
    let weights = Weights {
        shape: net.shape,
        steps,
        seed: options.seed,
        batch: options.batch as u32,
        train_loss,
        check_loss: digit_training::loss(net, &params, &check),
        params,
    };
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).expect("the weights' folder");
    }
    let bytes = weights.encode().expect("weights float16 can hold");
    std::fs::write(out, &bytes).expect("write the weights");
    println!(
        "wrote {} ({} bytes): {} steps, training loss {:.4}, check loss {:.4}",
        out.display(),
        bytes.len(),
        weights.steps,
        weights.train_loss,
        weights.check_loss,
    );
}

fn mean(v: &[f32]) -> f32 {
    v.iter().sum::<f32>() / v.len().max(1) as f32
}

/// What a checkpoint must have been written with to be resumed: the options, as text.
fn checkpoint_tag(run: &DigitTraining) -> Vec<u8> {
    let mut tag = format!("{:?} {:?}", run.net.shape, run.options).into_bytes();
    tag.resize(256, b' ');
    tag
}

fn save_checkpoint(run: &DigitTraining) {
    let mut bytes = checkpoint_tag(run);
    bytes.extend_from_slice(&run.step.to_le_bytes());
    for v in [&run.params, &run.ema, &run.adam.m, &run.adam.v] {
        for x in v.iter() {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    let path = checkpoint(&run.options);
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, bytes).expect("write the checkpoint");
    std::fs::rename(&tmp, path).expect("move the checkpoint");
}

fn load_checkpoint(run: &mut DigitTraining) {
    let bytes = std::fs::read(checkpoint(&run.options)).expect("the checkpoint");
    let tag = checkpoint_tag(run);
    assert!(
        bytes.starts_with(&tag),
        "the checkpoint is another run's (its options differ)"
    );
    let bytes = &bytes[tag.len()..];
    let n = run.params.len();
    assert_eq!(bytes.len(), 4 + 16 * n, "a checkpoint of this network");
    run.step = u32::from_le_bytes(bytes[..4].try_into().unwrap());
    run.adam.step = run.step;
    let floats: Vec<f32> = bytes[4..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    run.params.copy_from_slice(&floats[..n]);
    run.ema.copy_from_slice(&floats[n..2 * n]);
    run.adam.m.copy_from_slice(&floats[2 * n..3 * n]);
    run.adam.v.copy_from_slice(&floats[3 * n..]);
}

/// The findings the article quotes (`flow::digit_findings`), printed; PNG grids of the first 64
/// samples under target/train-digits/; the article's opening picture under www/question/ when
/// these are the shipped weights (else beside the grids, so another run cannot replace it).
fn report(weights: &Weights, out: &Path, train: &[f32], held: &[f32], jobs: &Threads) {
    let net = Unet::new(weights.shape);
    let check = digit_training::check_batch(train, PIXELS);
    println!(
        "\n## The weights: {} steps (batch {}, seed {}), training loss {:.4}; check loss recorded {:.4}, now {:.4}",
        weights.steps,
        weights.batch,
        weights.seed,
        weights.train_loss,
        weights.check_loss,
        digit_training::loss(&net, &weights.params, &check)
    );
    let started = Instant::now();
    let findings = Findings::measure(weights, train, held, jobs).expect("the findings");
    let took = started.elapsed().as_secs_f64();
    let (network, closed) = (&findings.network, &findings.closed_form);
    let (net, cf, held) = (network.nearness(), closed.nearness(), findings.held_out);
    println!(
        "\n## {SAMPLES} samples, {STEPS} Euler steps (every finding: {took:.1} s on {} threads)",
        jobs.0
    );
    println!(
        "| source | mean distance to the nearest training digit | memorized share (d1/d2 < 1/3) |"
    );
    println!("|---|---|---|");
    let row = |source: &str, n: Nearness| {
        println!(
            "| {source} | {:.3} | {:.1}% |",
            n.mean_distance,
            100.0 * n.copies
        )
    };
    row("network", net);
    row("u* (closed form)", cf);
    row("1,000 held-out digits", held);
    println!(
        "network / held-out distance: {:.2}",
        net.mean_distance / held.mean_distance
    );
    println!("\n## Hybrid: u* on [0, tau), the network after");
    println!("| tau | mean nearest distance | memorized share |");
    println!("|---|---|---|");
    for h in &findings.hybrid {
        println!(
            "| {} | {:.3} | {:.1}% |",
            h.tau,
            h.nearness.mean_distance,
            100.0 * h.nearness.copies
        );
    }
    println!(
        "\n## Where the network departs from u*: {DEPARTURE_PAIRS} pairs (x0, a training digit)"
    );
    println!("| t | E|u_theta - u*|^2 / D | E|u*|^2 / D | ratio |");
    println!("|---|---|---|---|");
    for d in &findings.departure {
        println!(
            "| {} | {:.4} | {:.4} | {:.3} |",
            d.t,
            d.gap,
            d.scale,
            d.gap / d.scale
        );
    }
    println!("\n## The first {QUESTION_DIGITS} noises (the article's opening picture)");
    println!(
        "| noise | network: nearest distance | copy? | nearest digit | u*: nearest distance | copy? | nearest digit |"
    );
    println!("|---|---|---|---|---|---|---|");
    for i in 0..QUESTION_DIGITS {
        let (n, c) = (network.nearest[i], closed.nearest[i]);
        println!(
            "| {i} | {:.3} (second {:.3}) | {} | {} | {:.3} (second {:.3}) | {} | {} |",
            n.distance,
            n.second,
            yes_no(n.is_copy()),
            n.index,
            c.distance,
            c.second,
            yes_no(c.is_copy()),
            c.index
        );
    }
    println!("\n## article values (<span data-digits=\"key\">value</span> in www/index.html)");
    for (key, value) in findings
        .article_values()
        .expect("every tau and time measured")
    {
        println!("{key} = {value}");
    }

    let dir = Path::new("target/train-digits");
    std::fs::create_dir_all(dir).expect("the report's folder");
    let nearest: Vec<f32> = network.nearest[..64]
        .iter()
        .flat_map(|n| train[n.index * PIXELS..(n.index + 1) * PIXELS].to_vec())
        .collect();
    write_grid(&dir.join("network.png"), &network.images[..64 * PIXELS]);
    write_grid(&dir.join("network-nearest.png"), &nearest);
    write_grid(&dir.join("closed-form.png"), &closed.images[..64 * PIXELS]);
    println!(
        "\ngrids of the first 64: {}/{{network,network-nearest,closed-form}}.png",
        dir.display()
    );
    let shipped = out == Path::new(SHIPPED);
    let question = if shipped {
        PathBuf::from("www/question")
    } else {
        dir.join("question")
    };
    std::fs::create_dir_all(&question).expect("the picture's folder");
    for (name, strip) in findings.question(train).files() {
        write_png(
            &question.join(name),
            strip.width,
            strip.height,
            &strip.pixels,
        );
    }
    println!(
        "the opening picture{}: {}/{{network,nearest,closed-form}}.png",
        if shipped {
            ""
        } else {
            " (not the shipped weights)"
        },
        question.display()
    );
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// 64 digits (in [-1, 1]) as an 8 x 8 grid, 3x enlarged, one pixel of gap.
fn write_grid(path: &Path, images: &[f32]) {
    const SCALE: usize = 3;
    let cell = SIDE * SCALE + 2;
    let side = 8 * cell;
    let mut pixels = vec![64u8; side * side];
    for (k, image) in images.chunks_exact(PIXELS).enumerate() {
        let (gy, gx) = (k / 8 * cell + 1, k % 8 * cell + 1);
        for y in 0..SIDE * SCALE {
            for x in 0..SIDE * SCALE {
                let v = image[(y / SCALE) * SIDE + x / SCALE];
                pixels[(gy + y) * side + gx + x] = ((v + 1.0) * 127.5).clamp(0.0, 255.0) as u8;
            }
        }
    }
    write_png(path, side, side, &pixels);
}

/// 8-bit grey pixels (row-major) as a PNG.
fn write_png(path: &Path, width: usize, height: usize, pixels: &[u8]) {
    let file = std::fs::File::create(path).expect("the PNG's file");
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().expect("a PNG header");
    writer.write_image_data(pixels).expect("the PNG's pixels");
}
