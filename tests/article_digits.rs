//! The article's numbers about the digits network and its opening picture, held to the shipped
//! weights (www/weights/digits-unet.fmu) on the packed digits: every `<span data-digits="key">`
//! in www/index.html (or the page named by FM_ARTICLE) must read what
//! `flow::digit_findings` computes now, and www/question/*.png must be what those weights draw.
//! After retraining, `cargo xtask train-digits --report` prints the values and redraws the picture.

mod packed;
use fm_explainer::flow::digit_findings::{Findings, QUESTION_DIGITS};
use fm_explainer::flow::digit_training::{self, Weights};
use fm_explainer::flow::digits;
use fm_explainer::flow::jobs::Threads;
use packed::asset;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

struct Measured {
    findings: Findings,
    train: Vec<f32>,
}

/// The report's findings, computed once for both tests (about a minute on two cores): `None`
/// when the digits are missing outside CI.
fn measured() -> Option<&'static Measured> {
    static MEASURED: OnceLock<Option<Measured>> = OnceLock::new();
    MEASURED
        .get_or_init(|| {
            let bytes = asset()?;
            let images = digits::unpack(&bytes).expect("the digits asset").signed();
            let (train, held) = digit_training::split(&images, digits::PIXELS);
            let path = root().join("www/weights/digits-unet.fmu");
            let weights = Weights::decode(&std::fs::read(&path).expect("the shipped weights"))
                .expect("an FMU1 file");
            let jobs = Threads::available();
            let started = std::time::Instant::now();
            let findings = Findings::measure(&weights, &train, &held, &jobs).expect("the findings");
            eprintln!(
                "findings measured in {:.1} s on {} threads",
                started.elapsed().as_secs_f64(),
                jobs.0
            );
            Some(Measured { findings, train })
        })
        .as_ref()
}

/// (key, text) of every `<span ... data-digits="key" ...>text</span>` in `html`, in order. An
/// attribute outside a span, an unclosed span or markup inside one is an error, so a value
/// cannot escape the check by being written differently.
fn marked_spans(html: &str) -> Result<Vec<(String, String)>, String> {
    const ATTRIBUTE: &str = "data-digits=\"";
    let mut spans = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find("<span") {
        rest = &rest[at..];
        let tag_end = rest.find('>').ok_or("a <span without its >")?;
        let tag = &rest[..tag_end];
        rest = &rest[tag_end + 1..];
        let Some(a) = tag.find(ATTRIBUTE) else {
            continue;
        };
        let key = &tag[a + ATTRIBUTE.len()..];
        let key = &key[..key
            .find('"')
            .ok_or_else(|| format!("{tag}>: an open quote"))?];
        let close = rest
            .find("</span>")
            .ok_or_else(|| format!("{tag}>: no </span>"))?;
        let text = &rest[..close];
        if text.contains('<') {
            return Err(format!("{tag}>: markup inside, {text:?}"));
        }
        spans.push((key.to_string(), text.to_string()));
        rest = &rest[close..];
    }
    let attributes = html.matches(ATTRIBUTE).count();
    if attributes != spans.len() {
        return Err(format!(
            "{attributes} data-digits attributes but {} on spans",
            spans.len()
        ));
    }
    Ok(spans)
}

#[test]
fn marked_spans_are_read_and_irregular_ones_refused() {
    let html = r#"<p>Copies: <span data-digits="network-copies">0%</span> and
        <span class="x" data-digits="closed-form-copies" title="u*">100%</span>;
        <span>plain</span> <span data-digits="network-ratio"></span></p>"#;
    assert_eq!(
        marked_spans(html).unwrap(),
        [
            ("network-copies".into(), "0%".into()),
            ("closed-form-copies".into(), "100%".into()),
            ("network-ratio".into(), String::new()),
        ]
    );
    for bad in [
        r#"<em data-digits="network-ratio">1.20</em>"#,
        r#"<span data-digits="network-ratio">1.<b>20</b></span>"#,
        r#"<span data-digits="network-ratio">1.20"#,
        r#"<span data-digits="network-ratio>1.20</span>"#,
    ] {
        assert!(marked_spans(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_article_quotes_what_the_shipped_network_gives() {
    let Some(m) = measured() else { return };
    let values = m
        .findings
        .article_values()
        .expect("the findings hold every tau and time");
    let page = std::env::var_os("FM_ARTICLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("www/index.html"));
    let html = std::fs::read_to_string(&page)
        .unwrap_or_else(|e| panic!("the article {}: {e}", page.display()));
    let spans = marked_spans(&html).unwrap_or_else(|e| panic!("{}: {e}", page.display()));

    eprintln!("\n{:<28} {:>8}   article", "key", "value");
    for (key, value) in &values {
        let quoted: Vec<&str> = spans
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, text)| text.as_str())
            .collect();
        eprintln!("{key:<28} {value:>8}   {}", quoted.join(" | "));
    }
    if let Err(wrong) = check_article(&values, &spans) {
        panic!(
            "{} (cargo xtask train-digits --report prints every value):\n{}",
            page.display(),
            wrong.join("\n")
        );
    }
}

/// The article's marked numbers against the findings' values: every mark a known key reading
/// its value, and at least `MARKS` of them (fewer means numbers quoted unchecked, or the marks
/// deleted). Each problem, in words.
fn check_article(
    values: &[(String, String)],
    spans: &[(String, String)],
) -> Result<(), Vec<String>> {
    const MARKS: usize = 8;
    let mut wrong = Vec::new();
    for (key, text) in spans {
        match values.iter().find(|(k, _)| k == key) {
            None => wrong.push(format!("data-digits=\"{key}\" is no finding's key")),
            Some((_, value)) if value != text => wrong.push(format!(
                "{key}: the article says {text:?}, the weights give {value:?}"
            )),
            Some(_) => {}
        }
    }
    if spans.len() < MARKS {
        wrong.push(format!(
            "{} numbers marked with data-digits; the article quotes at least {MARKS}",
            spans.len()
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong)
    }
}

#[test]
fn the_check_names_wrong_unknown_and_missing_marks() {
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(k, t)| (k.to_string(), t.to_string()))
            .collect()
    };
    let values = pairs(&[("network-copies", "0%"), ("network-ratio", "1.20")]);
    let good = pairs(&[("network-copies", "0%"); 8]);
    assert_eq!(check_article(&values, &good), Ok(()));
    let mut bad = good.clone();
    bad[2].1 = "1%".into();
    bad[5].0 = "network-copy".into();
    let wrong = check_article(&values, &bad).unwrap_err();
    assert_eq!(wrong.len(), 2, "{wrong:?}");
    assert!(wrong[0].contains("\"1%\"") && wrong[1].contains("network-copy"));
    let wrong = check_article(&values, &good[..7]).unwrap_err();
    assert!(wrong[0].contains("7 numbers"), "{wrong:?}");
}

/// A grayscale 8-bit PNG's (width, height, pixels).
fn read_png(path: &Path) -> (usize, usize, Vec<u8>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (cargo xtask train-digits --report draws it)",
            path.display()
        )
    });
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("the PNG's pixels");
    assert_eq!(
        (info.color_type, info.bit_depth),
        (png::ColorType::Grayscale, png::BitDepth::Eight),
        "{}",
        path.display()
    );
    pixels.truncate(info.buffer_size());
    (info.width as usize, info.height as usize, pixels)
}

#[test]
fn the_opening_picture_is_what_the_shipped_network_draws() {
    let Some(m) = measured() else { return };
    let question = m.findings.question(&m.train);
    for (name, strip) in question.files() {
        let path = root().join("www/question").join(name);
        let (width, height, pixels) = read_png(&path);
        assert_eq!(
            (width, height),
            (strip.width, strip.height),
            "{}",
            path.display()
        );
        // Exact on the machine that drew it; one level allowed because the network's products
        // (matrixmultiply) pick FMA or not by the CPU they run on, and a sample's last bits can
        // round a pixel onto the next level.
        let off: Vec<u8> = pixels
            .iter()
            .zip(&strip.pixels)
            .map(|(a, b)| a.abs_diff(*b))
            .collect();
        let differing = off.iter().filter(|&&d| d > 0).count();
        let worst = off.iter().copied().max().unwrap_or(0);
        eprintln!("{name}: {differing} pixels differ, by at most {worst}");
        assert!(
            worst <= 1,
            "{} differs by up to {worst} levels from what the shipped weights draw \
             (cargo xtask train-digits --report redraws it)",
            path.display()
        );
    }
    // The caption's claim: the same noises give u* copies and the network none.
    let (network, closed) = (&m.findings.network, &m.findings.closed_form);
    for i in 0..QUESTION_DIGITS {
        let (n, c) = (network.nearest[i], closed.nearest[i]);
        eprintln!(
            "noise {i}: network {:.3} from digit {} (copy: {}); u* {:.3} from digit {} (copy: {})",
            n.distance,
            n.index,
            n.is_copy(),
            c.distance,
            c.index,
            c.is_copy()
        );
        assert!(!n.is_copy(), "the network's sample {i} is a copy");
        assert!(c.is_copy(), "u*'s sample {i} is not a copy");
    }
}
