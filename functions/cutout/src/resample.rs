//! A port of Pillow's 8-bit LANCZOS resampler (`Image.resize(size, Image.LANCZOS)`).
//!
//! rembg resizes the photo to the model's input and the predicted mask back to the photo's
//! size with Pillow's LANCZOS filter. The `image` crate's `Lanczos3` is a different filter
//! (different support handling, float arithmetic, no rounding between passes), and with it
//! masks drift visibly from rembg's. This module re-implements Pillow's algorithm from its
//! description so that the model sees the very same bytes rembg feeds it:
//!
//! 1. The filter is `sinc(x)·sinc(x/3)` on `[-3, 3)` (Lanczos, a = 3).
//! 2. Each axis is handled on its own (separable): first a horizontal pass over the rows the
//!    vertical pass will need, then a vertical pass. A pass is skipped when that axis keeps
//!    its size.
//! 3. For output sample `i` the centre in source coordinates is `(i + 0.5)·scale` with
//!    `scale = in / out`. When shrinking (`scale > 1`) the filter is stretched by `scale`
//!    (its support widens, it becomes an anti-aliasing low-pass); when enlarging it is not.
//! 4. The source window is `[trunc(centre − support + 0.5), trunc(centre + support + 0.5))`,
//!    clamped to the image; weights are `filter((j − centre + 0.5) / filterscale)`, computed
//!    in f64 and normalised to sum to one.
//! 5. Weights are turned into 22-bit fixed point (rounded half away from zero), each output
//!    value is `(½ + Σ wⱼ·srcⱼ) >> 22` in 32-bit integers, clamped to `0..=255`. The
//!    intermediate image between the passes is stored as u8, exactly as Pillow does; that
//!    rounding step is part of what must be reproduced for bit-identical results.
//!
//! The functions work on interleaved u8 buffers with any number of channels (1 for masks,
//! 3 for RGB) and never panic: sizes are validated by the callers' types.

use std::f64::consts::PI;

/// Fixed-point precision of the weights, as in Pillow: 32 − 8 (u8 samples) − 2 (headroom).
const PRECISION_BITS: u32 = 32 - 8 - 2;
/// Lanczos `a`: the filter's support on each side before any widening.
const LANCZOS_SUPPORT: f64 = 3.0;

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * PI;
        x.sin() / x
    }
}

fn lanczos(x: f64) -> f64 {
    if (-LANCZOS_SUPPORT..LANCZOS_SUPPORT).contains(&x) {
        sinc(x) * sinc(x / LANCZOS_SUPPORT)
    } else {
        0.0
    }
}

/// The weights of one axis: for every output sample, the first source index and the
/// fixed-point weights of the source samples from there on.
struct AxisWeights {
    /// Maximum taps per output sample; `weights` holds `ksize` entries per output sample.
    ksize: usize,
    /// `(first source index, number of taps)` per output sample.
    bounds: Vec<(usize, usize)>,
    /// Fixed-point weights, `ksize` per output sample (unused taps are zero).
    weights: Vec<i32>,
}

impl AxisWeights {
    /// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the whole axis
    /// (`box` = the full input extent).
    fn new(in_size: usize, out_size: usize) -> AxisWeights {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = LANCZOS_SUPPORT * filterscale;
        let ksize = (support.ceil() as usize) * 2 + 1;
        let mut bounds = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * ksize];
        let mut taps = vec![0f64; ksize];
        let inv = 1.0 / filterscale;
        for (i, row) in weights.chunks_exact_mut(ksize).enumerate() {
            let center = (i as f64 + 0.5) * scale;
            // C's (int) cast truncates toward zero; negatives are clamped to 0 right after.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let n = xmax.saturating_sub(xmin).min(ksize);
            let mut total = 0.0;
            for (j, tap) in taps.iter_mut().enumerate().take(n) {
                let w = lanczos(((j + xmin) as f64 - center + 0.5) * inv);
                *tap = w;
                total += w;
            }
            for (j, out) in row.iter_mut().enumerate() {
                let w = if j < n {
                    if total != 0.0 {
                        taps[j] / total
                    } else {
                        taps[j]
                    }
                } else {
                    0.0
                };
                let scaled = w * f64::from(1u32 << PRECISION_BITS);
                // Round half away from zero, as Pillow does with (int)(±0.5 + w·2²²).
                *out = if w < 0.0 { (scaled - 0.5) as i32 } else { (scaled + 0.5) as i32 };
            }
            bounds.push((xmin, n));
        }
        AxisWeights { ksize, bounds, weights }
    }

    fn taps(&self, i: usize) -> (usize, &[i32]) {
        let (start, n) = self.bounds[i];
        (start, &self.weights[i * self.ksize..i * self.ksize + n])
    }
}

/// Pillow's `clip8`: drop the fixed-point fraction and clamp to a byte.
#[inline]
fn clip8(acc: i32) -> u8 {
    let v = acc >> PRECISION_BITS;
    v.clamp(0, 255) as u8
}

/// Resizes an interleaved u8 image of `channels` channels from `src_w×src_h` to
/// `dst_w×dst_h` exactly as Pillow's `Image.resize(…, LANCZOS)` does for 8-bit modes
/// (`L`, `RGB`).
///
/// Returns `None` if a size is zero or `src` is shorter than `src_w·src_h·channels`.
pub fn resize_lanczos(
    src: &[u8],
    src_w: usize,
    src_h: usize,
    channels: usize,
    dst_w: usize,
    dst_h: usize,
) -> Option<Vec<u8>> {
    if src_w == 0 || src_h == 0 || dst_w == 0 || dst_h == 0 || channels == 0 {
        return None;
    }
    let len = src_w.checked_mul(src_h)?.checked_mul(channels)?;
    let src = src.get(..len)?;
    dst_w.checked_mul(dst_h)?.checked_mul(channels)?;

    let need_h = dst_w != src_w;
    let need_v = dst_h != src_h;
    let vert = need_v.then(|| AxisWeights::new(src_h, dst_h));

    // The horizontal pass only computes the source rows the vertical pass reads.
    let (row_first, row_last) = match &vert {
        Some(v) => {
            let (first, _) = v.bounds[0];
            let (last_start, last_n) = v.bounds[dst_h - 1];
            (first, last_start + last_n)
        }
        None => (0, src_h),
    };

    let horizontal: std::borrow::Cow<'_, [u8]> = if need_h {
        let hw = AxisWeights::new(src_w, dst_w);
        let rows = row_last - row_first;
        let mut out = vec![0u8; rows * dst_w * channels];
        for (r, out_row) in out.chunks_exact_mut(dst_w * channels).enumerate() {
            let y = row_first + r;
            let in_row = &src[y * src_w * channels..(y + 1) * src_w * channels];
            horizontal_row(in_row, out_row, &hw, channels);
        }
        std::borrow::Cow::Owned(out)
    } else {
        std::borrow::Cow::Borrowed(&src[row_first * src_w * channels..row_last * src_w * channels])
    };

    let Some(vw) = vert else {
        return Some(horizontal.into_owned());
    };
    let stride = dst_w * channels;
    let mut out = vec![0u8; dst_h * stride];
    let mut acc = vec![0i32; stride];
    for (yy, out_row) in out.chunks_exact_mut(stride).enumerate() {
        let (start, ws) = vw.taps(yy);
        acc.fill(1 << (PRECISION_BITS - 1));
        for (k, &w) in ws.iter().enumerate() {
            let y = start + k - row_first;
            let in_row = &horizontal[y * stride..(y + 1) * stride];
            for (a, &p) in acc.iter_mut().zip(in_row) {
                *a = a.wrapping_add(i32::from(p).wrapping_mul(w));
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    Some(out)
}

fn horizontal_row(in_row: &[u8], out_row: &mut [u8], hw: &AxisWeights, channels: usize) {
    for (xx, out_px) in out_row.chunks_exact_mut(channels).enumerate() {
        let (start, ws) = hw.taps(xx);
        for (c, o) in out_px.iter_mut().enumerate() {
            let mut acc: i32 = 1 << (PRECISION_BITS - 1);
            for (k, &w) in ws.iter().enumerate() {
                let p = in_row[(start + k) * channels + c];
                acc = acc.wrapping_add(i32::from(p).wrapping_mul(w));
            }
            *o = clip8(acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_identity() {
        let src: Vec<u8> = (0..=255).cycle().take(7 * 5 * 3).collect();
        assert_eq!(resize_lanczos(&src, 7, 5, 3, 7, 5).unwrap(), src);
    }

    #[test]
    fn constant_image_stays_constant_when_shrinking_and_enlarging() {
        for &(w, h, ow, oh) in &[(100, 80, 32, 32), (10, 10, 320, 320), (3, 1, 1, 9)] {
            let src = vec![137u8; w * h];
            let out = resize_lanczos(&src, w, h, 1, ow, oh).unwrap();
            assert_eq!(out.len(), ow * oh);
            assert!(out.iter().all(|&v| v == 137), "{w}x{h} -> {ow}x{oh}");
        }
    }

    #[test]
    fn weights_of_each_output_sample_sum_to_one_in_fixed_point() {
        for &(i, o) in &[(1000, 320), (320, 1411), (7, 3), (1, 5)] {
            let w = AxisWeights::new(i, o);
            for k in 0..o {
                let (_, ws) = w.taps(k);
                let sum: i64 = ws.iter().map(|&v| i64::from(v)).sum();
                assert!((sum - (1 << PRECISION_BITS)).abs() <= ws.len() as i64, "{i}->{o}");
            }
        }
    }

    #[test]
    fn matches_pillow_on_small_references() {
        // Values produced by Pillow 13 in the parity virtualenv:
        //   Image.frombytes("L", (6, 1), bytes([0, 50, 100, 150, 200, 250]))
        //        .resize((3, 1), Image.LANCZOS).tobytes().hex() == "187de2"
        //   Image.frombytes("L", (3, 1), bytes([0, 100, 255]))
        //        .resize((8, 1), Image.LANCZOS).tobytes().hex() == "000214408dd1faff"
        let down = resize_lanczos(&[0, 50, 100, 150, 200, 250], 6, 1, 1, 3, 1).unwrap();
        assert_eq!(down, vec![0x18, 0x7d, 0xe2]);
        let up = resize_lanczos(&[0, 100, 255], 3, 1, 1, 8, 1).unwrap();
        assert_eq!(up, vec![0x00, 0x02, 0x14, 0x40, 0x8d, 0xd1, 0xfa, 0xff]);
    }

    #[test]
    fn rejects_degenerate_sizes_without_panicking() {
        assert!(resize_lanczos(&[], 0, 0, 3, 1, 1).is_none());
        assert!(resize_lanczos(&[1, 2, 3], 1, 1, 3, 0, 4).is_none());
        assert!(resize_lanczos(&[1, 2], 1, 1, 3, 2, 2).is_none());
    }
}
