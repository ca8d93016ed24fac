//! The MNIST digits asset: 28 x 28 images at 8 bits per pixel, packed at build time by
//! `tools/pack-digits.mjs` as raw DEFLATE of
//! "FMD1" | n (u32, little-endian) | n x 784 pixel bytes (0 = black, 255 = white).
//! Decoding, scaling to [-1, 1] and average pooling are here, so native tests can check them.

use super::FlowError;

pub const SIDE: usize = 28;
pub const PIXELS: usize = SIDE * SIDE;
const MAGIC: &[u8; 4] = b"FMD1";

/// The resolutions the article uses: pooling factors of the 28 x 28 images and the dims they give.
pub const POOLINGS: [(usize, usize); 5] = [(14, 4), (7, 16), (4, 49), (2, 196), (1, 784)];

/// Digits as bytes, n x 784.
pub struct Digits {
    pub n: usize,
    pub pixels: Vec<u8>,
}

fn corrupt(why: String) -> FlowError {
    FlowError::Corrupt(why)
}

/// Inflates and checks the packed asset in one go.
pub fn unpack(compressed: &[u8]) -> Result<Digits, FlowError> {
    let mut unpacker = Unpacker::new(compressed);
    while !unpacker.advance(usize::MAX)? {}
    unpacker.finish()
}

/// The most digits an asset may hold (MNIST has 70,000 in all); a larger or endless stream is
/// refused while it inflates, before it takes the page's memory.
pub const MAX_DIGITS: usize = 70_000;
pub const MAX_INFLATED: usize = 8 + MAX_DIGITS * PIXELS;

/// Inflates the asset a slice at a time (`advance`), so that a page can give the reader turns
/// in between: the 7.8 MB take tens of milliseconds.
pub struct Unpacker<'a> {
    input: &'a [u8],
    consumed: usize,
    state: Box<miniz_oxide::inflate::stream::InflateState>,
    raw: Vec<u8>,
    done: bool,
}

impl<'a> Unpacker<'a> {
    pub fn new(compressed: &'a [u8]) -> Unpacker<'a> {
        Unpacker {
            input: compressed,
            consumed: 0,
            state: miniz_oxide::inflate::stream::InflateState::new_boxed(
                miniz_oxide::DataFormat::Raw,
            ),
            raw: Vec::new(),
            done: false,
        }
    }

    /// Inflates up to `budget` more bytes; true once the stream has ended.
    pub fn advance(&mut self, budget: usize) -> Result<bool, FlowError> {
        use miniz_oxide::{MZError, MZFlush, MZStatus};
        const SLICE: usize = 1 << 16;
        let truncated =
            || corrupt("the digits file is damaged (it ends early): a truncated download?".into());
        let mut left = budget;
        while !self.done && left > 0 {
            let start = self.raw.len();
            let room = SLICE.min(left);
            self.raw.resize(start + room, 0);
            let r = miniz_oxide::inflate::stream::inflate(
                &mut self.state,
                &self.input[self.consumed..],
                &mut self.raw[start..],
                MZFlush::None,
            );
            self.raw.truncate(start + r.bytes_written);
            if self.raw.len() > MAX_INFLATED {
                return Err(corrupt(format!(
                    "the digits file inflates past {MAX_INFLATED} bytes ({MAX_DIGITS} digits)"
                )));
            }
            self.consumed += r.bytes_consumed;
            left -= r.bytes_written.min(left);
            match r.status {
                Ok(MZStatus::StreamEnd) => self.done = true,
                Ok(_) if r.bytes_written == 0 && r.bytes_consumed == 0 => return Err(truncated()),
                Ok(_) => {}
                Err(MZError::Buf) => return Err(truncated()),
                Err(e) => {
                    return Err(corrupt(format!(
                        "the digits file is damaged ({e:?}): a truncated download?"
                    )))
                }
            }
        }
        Ok(self.done)
    }

    /// The digits, once `advance` has returned true; checks the header and the size.
    pub fn finish(self) -> Result<Digits, FlowError> {
        if !self.done {
            return Err(corrupt(
                "the digits file was not inflated to its end".into(),
            ));
        }
        Digits::from_inflated(self.raw)
    }
}

impl Digits {
    /// The digits of the asset's inflated bytes (the page's browser inflates them itself):
    /// checks the header and the size.
    pub fn from_inflated(mut raw: Vec<u8>) -> Result<Digits, FlowError> {
        if raw.len() < 8 || &raw[..4] != MAGIC {
            return Err(corrupt("the digits file has no FMD1 header".into()));
        }
        let n = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]) as usize;
        // n first: n * PIXELS of a crafted n could wrap on a 32-bit target.
        if n > MAX_DIGITS || raw.len() - 8 != n * PIXELS {
            return Err(corrupt(format!(
                "the digits file holds {} bytes for {n} digits of {PIXELS} pixels",
                raw.len() - 8
            )));
        }
        raw.drain(..8);
        Ok(Digits { n, pixels: raw })
    }

    /// Every pixel in [-1, 1] (n x 784).
    pub fn signed(&self) -> Vec<f32> {
        self.pixels.iter().map(|&p| signed(p)).collect()
    }
}

/// A pixel byte (0 black .. 255 white) in [-1, 1].
#[inline(always)]
pub fn signed(p: u8) -> f32 {
    p as f32 * (2.0 / 255.0) - 1.0
}

/// Average pooling of square images (n x side^2) by `factor` (which divides side), one pass
/// over the pixels in memory order.
pub fn pool(images: &[f32], side: usize, factor: usize) -> Vec<f32> {
    let out_side = side / factor;
    let scale = 1.0 / (factor * factor) as f32;
    let mut out = vec![0.0f32; images.len() / (factor * factor)];
    for (image, dst) in images
        .chunks_exact(side * side)
        .zip(out.chunks_exact_mut(out_side * out_side))
    {
        for (y, row) in image.chunks_exact(side).enumerate() {
            let pooled_row = &mut dst[(y / factor) * out_side..][..out_side];
            for (o, group) in pooled_row.iter_mut().zip(row.chunks_exact(factor)) {
                *o += group.iter().sum::<f32>();
            }
        }
        for v in dst.iter_mut() {
            *v *= scale;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(n: u32, pixels: &[u8]) -> Vec<u8> {
        let mut raw = MAGIC.to_vec();
        raw.extend_from_slice(&n.to_le_bytes());
        raw.extend_from_slice(pixels);
        miniz_oxide::deflate::compress_to_vec(&raw, 6)
    }

    #[test]
    fn a_header_naming_more_digits_than_an_asset_holds_is_refused() {
        let mut raw = MAGIC.to_vec();
        raw.extend_from_slice(&(MAX_DIGITS as u32 + 1).to_le_bytes());
        assert!(Digits::from_inflated(raw).is_err());
        let mut wraps = MAGIC.to_vec();
        // n * 784 wraps to 0 on a 32-bit target.
        wraps.extend_from_slice(&(1u32 << 28).to_le_bytes());
        assert!(Digits::from_inflated(wraps).is_err());
    }

    #[test]
    fn unpacks_scales_and_pools() {
        let pixels: Vec<u8> = (0..2 * PIXELS).map(|i| (i % 256) as u8).collect();
        let d = unpack(&packed(2, &pixels)).unwrap();
        assert_eq!(d.n, 2);
        let s = d.signed();
        assert_eq!(s[0], -1.0);
        assert_eq!(s[255], 1.0);
        for &(factor, dim) in &POOLINGS {
            let p = pool(&s, SIDE, factor);
            assert_eq!(p.len(), 2 * dim);
        }
        let p = pool(&s, SIDE, 2);
        let expect = (s[0] + s[1] + s[28] + s[29]) / 4.0;
        assert!((p[0] - expect).abs() < 1e-6);
        // Every block of every resolution is the mean of its pixels.
        for &(factor, _) in &POOLINGS {
            let p = pool(&s, SIDE, factor);
            let out_side = SIDE / factor;
            for (img, (image, pooled)) in s
                .chunks_exact(PIXELS)
                .zip(p.chunks_exact(out_side * out_side))
                .enumerate()
            {
                for (o, &v) in pooled.iter().enumerate() {
                    let (oy, ox) = (o / out_side, o % out_side);
                    let mut sum = 0.0f64;
                    for y in oy * factor..(oy + 1) * factor {
                        for x in ox * factor..(ox + 1) * factor {
                            sum += image[y * SIDE + x] as f64;
                        }
                    }
                    let want = sum / (factor * factor) as f64;
                    assert!(
                        (v as f64 - want).abs() < 1e-5,
                        "image {img}, factor {factor}, block {o}"
                    );
                }
            }
        }
        // Pooling by the full side gives each image's mean.
        let mean = s[..PIXELS].iter().sum::<f32>() / PIXELS as f32;
        assert!((pool(&s, SIDE, 28)[0] - mean).abs() < 1e-5);
    }

    #[test]
    fn slice_by_slice_gives_the_same_digits() {
        let pixels: Vec<u8> = (0..5 * PIXELS).map(|i| (i * 7 % 251) as u8).collect();
        let file = packed(5, &pixels);
        let mut u = Unpacker::new(&file);
        let mut calls = 0;
        while !u.advance(1000).unwrap() {
            calls += 1;
        }
        assert!(calls >= 3, "{calls} slices");
        assert_eq!(u.finish().unwrap().pixels, pixels);
        // A truncated file fails in some slice, never hangs.
        let mut u = Unpacker::new(&file[..file.len() / 3]);
        let err = loop {
            match u.advance(1000) {
                Ok(true) => panic!("a truncated file inflated to its end"),
                Ok(false) => {}
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn truncated_or_foreign_files_are_refused() {
        let pixels = vec![7u8; 3 * PIXELS];
        let good = packed(3, &pixels);
        let err = unpack(&good[..good.len() / 2]).err().unwrap();
        assert!(err.to_string().contains("truncated"), "{err}");
        let wrong_count = packed(4, &pixels);
        assert!(unpack(&wrong_count).is_err());
        let foreign = miniz_oxide::deflate::compress_to_vec(b"hello world, not digits", 6);
        assert!(unpack(&foreign).is_err());
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_largest_set() {
        // 1,000 bytes that inflate to 100 MB of zeros: refused once past 70,000 digits' worth.
        let zeros = vec![0u8; 100 << 20];
        let bomb = packed(200_000, &zeros);
        assert!(bomb.len() < 200_000, "{} bytes", bomb.len());
        let err = unpack(&bomb).err().unwrap().to_string();
        assert!(err.contains("inflates past"), "{err}");
    }
}
