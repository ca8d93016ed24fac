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

/// Inflates and checks the packed asset.
pub fn unpack(compressed: &[u8]) -> Result<Digits, FlowError> {
    let raw = miniz_oxide::inflate::decompress_to_vec(compressed).map_err(|e| {
        corrupt(format!(
            "the digits file is damaged ({:?}): a truncated download?",
            e.status
        ))
    })?;
    if raw.len() < 8 || &raw[..4] != MAGIC {
        return Err(corrupt("the digits file has no FMD1 header".into()));
    }
    let n = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]) as usize;
    let body = &raw[8..];
    if body.len() != n * PIXELS {
        return Err(corrupt(format!(
            "the digits file holds {} bytes for {n} digits of {PIXELS} pixels",
            body.len()
        )));
    }
    Ok(Digits {
        n,
        pixels: body.to_vec(),
    })
}

impl Digits {
    /// Every pixel in [-1, 1] (n x 784).
    pub fn signed(&self) -> Vec<f32> {
        self.pixels
            .iter()
            .map(|&p| p as f32 * (2.0 / 255.0) - 1.0)
            .collect()
    }
}

/// Average pooling of square images (n x side^2) by `factor` (which divides side).
pub fn pool(images: &[f32], side: usize, factor: usize) -> Vec<f32> {
    let out_side = side / factor;
    let scale = 1.0 / (factor * factor) as f32;
    let mut out = Vec::with_capacity(images.len() / (factor * factor));
    for image in images.chunks_exact(side * side) {
        for oy in 0..out_side {
            for ox in 0..out_side {
                let mut acc = 0.0;
                for y in oy * factor..(oy + 1) * factor {
                    for x in ox * factor..(ox + 1) * factor {
                        acc += image[y * side + x];
                    }
                }
                out.push(acc * scale);
            }
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
        // Pooling by the full side gives each image's mean.
        let mean = s[..PIXELS].iter().sum::<f32>() / PIXELS as f32;
        assert!((pool(&s, SIDE, 28)[0] - mean).abs() < 1e-5);
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
}
