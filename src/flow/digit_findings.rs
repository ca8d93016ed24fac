//! What the article says about the shipped digits network, computed in one place: the network's
//! and u*'s samples from the same noises and how near they lie to the training digits, the hybrid
//! curve, where the network departs from u* along t, the article's wording of each number, and
//! its opening picture. `examples/train_digits.rs --report` prints them; tests/article_digits.rs
//! holds the article's text and picture to them.
//!
//! The work is spread in chunks of `CHUNK` rows through a caller's `Jobs`; a chunk's arithmetic
//! is the same whichever thread runs it, so the findings do not depend on the thread count.

use super::closed_form::closed_form_velocity;
use super::digit_training::{self, Weights};
use super::digits::{PIXELS, SIDE};
use super::jobs::Jobs;
use super::metrics;
use super::rng::Rng;
use super::sampler;
use super::unet::Unet;
use super::FlowError;

/// The noises: `SAMPLES` rows of N(0, I) from `Rng::new(NOISE_SEED)`.
pub const NOISE_SEED: u64 = 7;
pub const SAMPLES: usize = 256;
/// Euler steps from t = 0 to 1, for the network, u* and the hybrids alike.
pub const STEPS: usize = 20;
/// Rows integrated or measured together: the unit of work handed to `Jobs`.
pub const CHUNK: usize = 16;
/// The hybrid's switch times: u* on [0, tau), the network after (0 is the network, 1 is u*).
pub const TAUS: [f32; 5] = [0.0, 0.2, 0.4, 0.6, 1.0];
/// The departure curve's pairs (a noise, a training digit) and times.
pub const DEPARTURE_PAIRS: usize = 256;
pub const DEPARTURE_SEED: u64 = 21;
pub const DEPARTURE_TIMES: [f32; 11] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95];
/// A sample is a copy (memorized) when its nearest training digit is nearer than a third of the
/// second nearest: nearer to one digit than that digit's neighbours are to each other.
pub const COPY_RATIO: f32 = 3.0;

/// A sample's nearest training digits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nearest {
    /// The row of the training digits nearest to the sample.
    pub index: usize,
    /// The Euclidean distance to it, and to the second nearest.
    pub distance: f32,
    pub second: f32,
}

impl Nearest {
    pub fn is_copy(&self) -> bool {
        self.distance < self.second / COPY_RATIO
    }
}

/// How near a set of images lies to the training digits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nearness {
    /// The mean distance to the nearest training digit.
    pub mean_distance: f32,
    /// The share (0..=1) of copies (`Nearest::is_copy`).
    pub copies: f32,
}

impl Nearness {
    fn of(nearest: &[Nearest]) -> Nearness {
        // Summed in order in float32, as the report always has: the quoted digits came from it.
        let n = nearest.len().max(1) as f32;
        Nearness {
            mean_distance: nearest.iter().map(|m| m.distance).sum::<f32>() / n,
            copies: nearest.iter().filter(|m| m.is_copy()).count() as f32 / n,
        }
    }
}

/// Samples (rows of `PIXELS`, in [-1, 1] roughly) with each one's nearest training digits.
#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    pub images: Vec<f32>,
    pub nearest: Vec<Nearest>,
}

impl Samples {
    pub fn nearness(&self) -> Nearness {
        Nearness::of(&self.nearest)
    }

    pub fn image(&self, i: usize) -> &[f32] {
        &self.images[i * PIXELS..(i + 1) * PIXELS]
    }
}

/// The hybrid's samples at one switch time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HybridPoint {
    pub tau: f32,
    pub nearness: Nearness,
}

/// The network against u* at one time, over the departure pairs' x_t.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeparturePoint {
    pub t: f32,
    /// E|u_theta - u*|^2 / D.
    pub gap: f32,
    /// E|u*|^2 / D, for scale.
    pub scale: f32,
}

/// Everything the article quotes about the shipped network.
#[derive(Debug, Clone, PartialEq)]
pub struct Findings {
    /// The network's samples from the `SAMPLES` noises, and u*'s from the same noises.
    pub network: Samples,
    pub closed_form: Samples,
    /// The held-out digits' own nearness: the reference for "new".
    pub held_out: Nearness,
    /// One point a tau of `TAUS`, in that order.
    pub hybrid: Vec<HybridPoint>,
    /// One point a time of `DEPARTURE_TIMES`, in that order.
    pub departure: Vec<DeparturePoint>,
}

/// `f` on chunks of `CHUNK` rows of `x` (the last may be shorter), the results joined in order.
fn by_chunks<T: Send>(jobs: &impl Jobs, x: &[f32], f: impl Fn(&[f32]) -> Vec<T> + Sync) -> Vec<T> {
    let chunks: Vec<&[f32]> = x.chunks(CHUNK * PIXELS).collect();
    jobs.run(chunks.len(), |c| f(chunks[c]))
        .into_iter()
        .flatten()
        .collect()
}

/// Each image's nearest training digits (a point's scan over the digits is the same in any
/// chunk, so chunking changes nothing).
fn nearest(jobs: &impl Jobs, train: &[f32], images: &[f32]) -> Vec<Nearest> {
    by_chunks(jobs, images, |rows| {
        metrics::nearest_two(train, PIXELS, rows)
            .into_iter()
            .map(|(index, distance, second)| Nearest {
                index,
                distance,
                second,
            })
            .collect()
    })
}

fn check_rows(name: &'static str, rows: &[f32], at_least: usize) -> Result<(), FlowError> {
    if !rows.len().is_multiple_of(PIXELS) {
        return Err(FlowError::NotMultipleOfDim {
            name,
            len: rows.len(),
            dim: PIXELS,
        });
    }
    if rows.len() / PIXELS < at_least {
        return Err(FlowError::OutOfRange {
            name,
            expected: format!("at least {at_least} digits"),
            got: format!("{}", rows.len() / PIXELS),
        });
    }
    Ok(())
}

impl Findings {
    /// The findings of `weights` (a network of `PIXELS` pixels) against the training digits
    /// `train` and the held-out digits `held` (rows in [-1, 1], as `digit_training::split` gives
    /// them). About 125 CPU-seconds in a release build on the 9,000 and 1,000 digits (twice that
    /// under the test profile); four fifths of it the network's forward passes.
    pub fn measure(
        weights: &Weights,
        train: &[f32],
        held: &[f32],
        jobs: &impl Jobs,
    ) -> Result<Findings, FlowError> {
        if weights.shape.dim() != PIXELS {
            return Err(FlowError::OutOfRange {
                name: "the network's image size",
                expected: format!("{PIXELS} pixels"),
                got: format!("{}", weights.shape.dim()),
            });
        }
        let net = Unet::new(weights.shape);
        if weights.params.len() != net.parameter_count() {
            return Err(FlowError::Corrupt(format!(
                "digit network weights: {} parameters; the shape has {}",
                weights.params.len(),
                net.parameter_count()
            )));
        }
        // Two digits at least: a copy is judged against the second nearest.
        check_rows("training digits", train, 2)?;
        check_rows("held-out digits", held, 1)?;
        let params = &weights.params;
        let x0 = Rng::new(NOISE_SEED).normals(SAMPLES * PIXELS);
        let hybrid_images = |tau: f32| {
            by_chunks(jobs, &x0, |noise| {
                sampler::hybrid_sample(train, PIXELS, noise, STEPS, tau, |x, t| {
                    net.velocities(params, x, t)
                })
            })
        };
        let measured = |images: Vec<f32>| Samples {
            nearest: nearest(jobs, train, &images),
            images,
        };
        let network = measured(hybrid_images(0.0));
        let closed_form = measured(sampler::euler(&x0, STEPS, 0.0, |x, t| {
            by_chunks(jobs, x, |rows| closed_form_velocity(train, PIXELS, rows, t))
        }));
        let held_out = Nearness::of(&nearest(jobs, train, held));
        let hybrid = TAUS
            .iter()
            .map(|&tau| HybridPoint {
                tau,
                nearness: match tau {
                    0.0 => network.nearness(),
                    1.0 => closed_form.nearness(),
                    _ => Nearness::of(&nearest(jobs, train, &hybrid_images(tau))),
                },
            })
            .collect();
        let (p0, p1) =
            digit_training::departure_pairs(train, PIXELS, DEPARTURE_PAIRS, DEPARTURE_SEED);
        let departure = DEPARTURE_TIMES
            .iter()
            .map(|&t| {
                let xt = digit_training::interpolate(&p0, &p1, t);
                let u_net = by_chunks(jobs, &xt, |rows| net.velocities(params, rows, t));
                let u_star = by_chunks(jobs, &xt, |rows| {
                    closed_form_velocity(train, PIXELS, rows, t)
                });
                let (gap, scale) = digit_training::departure(&u_net, &u_star);
                DeparturePoint { t, gap, scale }
            })
            .collect();
        Ok(Findings {
            network,
            closed_form,
            held_out,
            hybrid,
            departure,
        })
    }

    /// The hybrid's nearness at `tau` (one of `TAUS`).
    pub fn hybrid_at(&self, tau: f32) -> Option<Nearness> {
        self.hybrid
            .iter()
            .find(|h| h.tau == tau)
            .map(|h| h.nearness)
    }

    /// The departure's gap at `t` (one of `DEPARTURE_TIMES`).
    pub fn gap_at(&self, t: f32) -> Option<f32> {
        self.departure.iter().find(|d| d.t == t).map(|d| d.gap)
    }

    /// Where the gap peaks among t <= 0.6 (where the network leaves u*), and where it is least
    /// after that peak (t in (peak, 0.95]). The first of equal gaps wins.
    pub fn departure_peak_and_trough(&self) -> Option<(DeparturePoint, DeparturePoint)> {
        let peak = self.departure.iter().filter(|d| d.t <= 0.6).fold(
            None::<DeparturePoint>,
            |best, &d| match best {
                Some(b) if b.gap >= d.gap => Some(b),
                _ => Some(d),
            },
        )?;
        let trough = self
            .departure
            .iter()
            .filter(|d| d.t > peak.t && d.t <= 0.95)
            .fold(None::<DeparturePoint>, |best, &d| match best {
                Some(b) if b.gap <= d.gap => Some(b),
                _ => Some(d),
            })?;
        Some((peak, trough))
    }

    /// The article's numbers as it prints them: (key of a `<span data-digits="key">`, text).
    /// Distances to two decimals, shares and ratios of shares as whole percents, times to one
    /// decimal. `None` for findings not made by `measure` (a tau or a time missing).
    pub fn article_values(&self) -> Option<Vec<(String, String)>> {
        let percent = |share: f64| format!("{:.0}%", 100.0 * share);
        let distance = |n: Nearness| format!("{:.2}", n.mean_distance);
        let mut values = vec![
            (
                "network-distance".to_string(),
                distance(self.network.nearness()),
            ),
            (
                "closed-form-distance".into(),
                distance(self.closed_form.nearness()),
            ),
            ("held-out-distance".into(), distance(self.held_out)),
            (
                "network-ratio".into(),
                format!(
                    "{:.2}",
                    self.network.nearness().mean_distance / self.held_out.mean_distance
                ),
            ),
            (
                "network-copies".into(),
                percent(self.network.nearness().copies as f64),
            ),
            (
                "closed-form-copies".into(),
                percent(self.closed_form.nearness().copies as f64),
            ),
            (
                "held-out-copies".into(),
                percent(self.held_out.copies as f64),
            ),
            (
                "network-nearest-is-copied".into(),
                percent(self.network_heads_for_the_copy()),
            ),
        ];
        let network = self.network.nearness().mean_distance as f64;
        for tau in [0.2f32, 0.4, 0.6] {
            let kept = self.hybrid_at(tau)?.mean_distance as f64 / network;
            values.push((format!("hybrid-{tau}-kept"), percent(kept)));
        }
        for tau in [0.2f32, 0.4, 0.6, 1.0] {
            let copies = self.hybrid_at(tau)?.copies as f64;
            values.push((format!("hybrid-{tau}-copies"), percent(copies)));
        }
        let (peak, trough) = self.departure_peak_and_trough()?;
        let of_peak = |t: f32| Some(percent(self.gap_at(t)? as f64 / peak.gap as f64));
        values.push(("departure-peak-t".into(), format!("{:.1}", peak.t)));
        values.push(("departure-0.1-of-peak".into(), of_peak(0.1)?));
        values.push(("departure-0.95-of-peak".into(), of_peak(0.95)?));
        values.push((
            "departure-min-after-peak-t".into(),
            format!("{:.1}", trough.t),
        ));
        Some(values)
    }

    /// The share of noises whose network sample lies nearest the very training digit that u*
    /// copies from the same noise: the network chose the same image and parted from u* in the
    /// details.
    pub fn network_heads_for_the_copy(&self) -> f64 {
        let same = self
            .network
            .nearest
            .iter()
            .zip(&self.closed_form.nearest)
            .filter(|(net, copy)| net.index == copy.index)
            .count();
        same as f64 / self.network.nearest.len().max(1) as f64
    }

    /// The article's opening picture: the network's samples from the first `QUESTION_DIGITS`
    /// noises, each one's nearest training digit, and u*'s samples from the same noises.
    pub fn question(&self, train: &[f32]) -> Question {
        let first = |s: &Samples| s.images[..QUESTION_DIGITS * PIXELS].to_vec();
        let nearest: Vec<f32> = self.network.nearest[..QUESTION_DIGITS]
            .iter()
            .flat_map(|n| {
                train[n.index * PIXELS..(n.index + 1) * PIXELS]
                    .iter()
                    .copied()
            })
            .collect();
        Question {
            network: Strip::of(&first(&self.network)),
            nearest: Strip::of(&nearest),
            closed_form: Strip::of(&first(&self.closed_form)),
        }
    }
}

/// Digits in the opening picture's rows.
pub const QUESTION_DIGITS: usize = 8;
/// Each source pixel drawn as SCALE x SCALE.
pub const STRIP_SCALE: usize = 2;
/// The gap between digits, and its grey: mid grey sets the black squares apart on a dark page
/// and reads as a plain divider on a white one.
pub const STRIP_GAP: usize = 4;
pub const STRIP_GAP_LEVEL: u8 = 128;

/// A row of digits as 8-bit grey (white digits on black, as MNIST), row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strip {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Strip {
    /// `images` (rows of `PIXELS` in [-1, 1]) side by side, `STRIP_SCALE` times enlarged,
    /// `STRIP_GAP` pixels apart.
    pub fn of(images: &[f32]) -> Strip {
        let count = images.len() / PIXELS;
        let cell = SIDE * STRIP_SCALE;
        let width = count * cell + count.saturating_sub(1) * STRIP_GAP;
        let mut pixels = vec![STRIP_GAP_LEVEL; width * cell];
        for (k, image) in images.chunks_exact(PIXELS).enumerate() {
            let left = k * (cell + STRIP_GAP);
            for y in 0..cell {
                for x in 0..cell {
                    let v = image[(y / STRIP_SCALE) * SIDE + x / STRIP_SCALE];
                    pixels[y * width + left + x] = level(v);
                }
            }
        }
        Strip {
            width,
            height: cell,
            pixels,
        }
    }
}

/// v in [-1, 1] as a grey level: (v + 1) 127.5, rounded and clamped. Rounded rather than
/// truncated: a training digit's pixel is a whole level p stored as p (2 / 255) - 1, and
/// truncation would draw p - 1 wherever float arithmetic lands a hair below p.
pub fn level(v: f32) -> u8 {
    ((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8
}

/// The opening picture's three rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub network: Strip,
    pub nearest: Strip,
    pub closed_form: Strip,
}

impl Question {
    /// Each row with its file's name under www/question/.
    pub fn files(&self) -> [(&'static str, &Strip); 3] {
        [
            ("network.png", &self.network),
            ("nearest.png", &self.nearest),
            ("closed-form.png", &self.closed_form),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nearness(mean_distance: f32, copies: f32) -> Nearness {
        Nearness {
            mean_distance,
            copies,
        }
    }

    fn samples(distances: &[f32], second: f32) -> Samples {
        Samples {
            images: vec![0.0; distances.len() * PIXELS],
            nearest: distances
                .iter()
                .enumerate()
                .map(|(index, &distance)| Nearest {
                    index,
                    distance,
                    second,
                })
                .collect(),
        }
    }

    /// Findings with chosen numbers, to check the wording without the digits.
    fn made_up() -> Findings {
        let gaps = [
            0.002, 0.005, 0.06, 0.18, 0.16, 0.12, 0.11, 0.109, 0.117, 0.13, 0.149,
        ];
        Findings {
            // 12, 10 (one copy of two: 10 < 33 / 3 = 11), mean 11.
            network: samples(&[12.0, 10.0], 33.0),
            closed_form: samples(&[0.0, 0.0], 9.0),
            held_out: nearness(10.0, 0.0),
            hybrid: TAUS
                .iter()
                .zip([11.0, 10.89, 7.5, 3.96, 0.0])
                .zip([0.5, 0.0, 0.0, 0.094, 1.0])
                .map(|((&tau, d), c)| HybridPoint {
                    tau,
                    nearness: nearness(d, c),
                })
                .collect(),
            departure: DEPARTURE_TIMES
                .iter()
                .zip(gaps)
                .map(|(&t, gap)| DeparturePoint { t, gap, scale: 1.9 })
                .collect(),
        }
    }

    #[test]
    fn the_article_values_are_worded_from_the_findings() {
        let mut findings = made_up();
        // u*'s second sample lands on another digit than the network's second lies nearest.
        findings.closed_form.nearest[1].index = 7;
        let values = findings.article_values().expect("every tau and time");
        let get = |key: &str| {
            values
                .iter()
                .find(|(k, _)| k == key)
                .unwrap_or_else(|| panic!("{key}"))
                .1
                .clone()
        };
        assert_eq!(get("network-distance"), "11.00");
        assert_eq!(get("closed-form-distance"), "0.00");
        assert_eq!(get("held-out-distance"), "10.00");
        assert_eq!(get("network-ratio"), "1.10");
        assert_eq!(get("network-copies"), "50%");
        assert_eq!(get("closed-form-copies"), "100%");
        assert_eq!(get("held-out-copies"), "0%");
        assert_eq!(get("hybrid-0.2-kept"), "99%");
        assert_eq!(get("hybrid-0.4-kept"), "68%");
        assert_eq!(get("hybrid-0.6-kept"), "36%");
        assert_eq!(get("hybrid-0.2-copies"), "0%");
        assert_eq!(get("hybrid-0.6-copies"), "9%");
        assert_eq!(get("hybrid-1-copies"), "100%");
        assert_eq!(get("departure-peak-t"), "0.3");
        assert_eq!(get("departure-0.1-of-peak"), "3%");
        assert_eq!(get("departure-0.95-of-peak"), "83%");
        assert_eq!(get("departure-min-after-peak-t"), "0.7");
        assert_eq!(get("network-nearest-is-copied"), "50%");
        assert_eq!(values.len(), 19);
        let mut keys: Vec<_> = values.iter().map(|(k, _)| k).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 19, "keys are unique");
    }

    #[test]
    fn the_peak_ignores_late_times_and_findings_missing_a_time_give_no_values() {
        let mut f = made_up();
        // A larger gap after 0.6 is not the departure's peak.
        f.departure[10].gap = 1.0;
        let (peak, trough) = f.departure_peak_and_trough().unwrap();
        assert_eq!((peak.t, trough.t), (0.3, 0.7));
        f.departure.retain(|d| d.t != 0.95);
        assert!(f.article_values().is_none());
        let mut g = made_up();
        g.hybrid.retain(|h| h.tau != 0.4);
        assert!(g.article_values().is_none());
    }

    #[test]
    fn a_strip_puts_each_digit_in_its_cell_twice_enlarged_between_grey_gaps() {
        let mut images = vec![-1.0f32; 3 * PIXELS];
        images[PIXELS + SIDE + 2] = 1.0; // digit 1, row 1, column 2
        images[2 * PIXELS] = 0.0; // digit 2, top-left
        let s = Strip::of(&images);
        let cell = SIDE * STRIP_SCALE;
        assert_eq!((s.width, s.height), (3 * cell + 2 * STRIP_GAP, cell));
        let at = |x: usize, y: usize| s.pixels[y * s.width + x];
        let left = cell + STRIP_GAP;
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            assert_eq!(at(left + 4 + dx, 2 + dy), 255);
        }
        assert_eq!(at(left + 6, 2), 0);
        assert_eq!(at(2 * left, 0), 128, "0 is mid grey (127.5 rounds up)");
        assert_eq!(at(cell, 10), STRIP_GAP_LEVEL);
        assert_eq!(at(left - 1, 30), STRIP_GAP_LEVEL);
        assert_eq!(at(left, 30), 0);
        assert_eq!(s.pixels.iter().filter(|&&p| p == 255).count(), 4);
    }

    #[test]
    fn levels_give_back_the_assets_bytes_and_clamp() {
        for p in 0..=255u8 {
            assert_eq!(level(crate::flow::digits::signed(p)), p);
        }
        assert_eq!(level(-3.0), 0);
        assert_eq!(level(2.0), 255);
    }

    #[test]
    fn the_measure_refuses_digits_of_another_size_and_a_mismatched_network() {
        let shape = crate::flow::unet::UnetShape::DIGITS;
        let mut weights = Weights {
            shape,
            steps: 0,
            seed: 0,
            batch: 0,
            train_loss: 0.0,
            check_loss: 0.0,
            params: vec![0.0; Unet::new(shape).parameter_count() + 1],
        };
        let train = vec![0.0; 2 * PIXELS];
        let jobs = crate::flow::jobs::InTurn;
        assert!(Findings::measure(&weights, &train, &train, &jobs).is_err());
        weights.params.pop();
        assert!(Findings::measure(&weights, &train[..PIXELS + 1], &train, &jobs).is_err());
        assert!(Findings::measure(&weights, &train[..PIXELS], &train, &jobs).is_err());
        assert!(Findings::measure(&weights, &train, &[], &jobs).is_err());
    }
}
