use super::*;
use crate::image::ImageView;

fn pseudo_random(n: usize, seed: u32) -> Vec<u8> {
    let mut s = seed.wrapping_mul(2654435761).max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 24) as u8
        })
        .collect()
}

fn convert(data: &[u8], w: usize, h: usize, c: usize, stride: usize, level: SimdLevel) -> Vec<u8> {
    let src = ImageView::new(data, w, h, c, stride).unwrap();
    let mut out = vec![0u8; i420_size(w, h)];
    rgb_to_i420(&src, &mut out, Some(level)).unwrap();
    out
}

/// The real-valued BT.601 limited-range definition the integer one approximates.
fn reference(data: &[u8], w: usize, h: usize, c: usize, stride: usize) -> Vec<f64> {
    let px = |x: usize, y: usize| {
        let p = &data[y * stride + x * c..];
        (p[0] as f64, p[1] as f64, p[2] as f64)
    };
    let mut out = Vec::with_capacity(i420_size(w, h));
    for y in 0..h {
        for x in 0..w {
            let (r, g, b) = px(x, y);
            out.push(16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0);
        }
    }
    for k in 0..2 {
        for cy in 0..h / 2 {
            for cx in 0..w / 2 {
                let mut s = 0.0;
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let (r, g, b) = px(2 * cx + dx, 2 * cy + dy);
                    s +=
                        if k == 0 { -37.797 * r - 74.203 * g + 112.0 * b } else { 112.0 * r - 93.786 * g - 18.214 * b };
                }
                out.push(128.0 + s / 4.0 / 255.0);
            }
        }
    }
    out
}

#[test]
fn every_level_matches_portable_for_odd_sizes_strides_and_channels() {
    for &(w, h) in &[(2, 2), (16, 2), (18, 4), (34, 6), (64, 8), (130, 10), (1280, 4)] {
        for c in [3, 4] {
            for pad in [0, 5] {
                let stride = w * c + pad;
                let data = pseudo_random(stride * h, (w * 31 + h * 7 + c + pad) as u32);
                let want = convert(&data, w, h, c, stride, SimdLevel::Portable);
                for level in SimdLevel::available() {
                    assert_eq!(convert(&data, w, h, c, stride, level), want, "{w}x{h}x{c} pad {pad} {level:?}");
                }
            }
        }
    }
}

#[test]
fn portable_is_within_rounding_of_the_real_definition() {
    let (w, h, c) = (64, 32, 3);
    let data = pseudo_random(w * h * c, 9);
    let got = convert(&data, w, h, c, w * c, SimdLevel::Portable);
    let want = reference(&data, w, h, c, w * c);
    let worst = got.iter().zip(&want).map(|(&g, &r)| (g as f64 - r).abs()).fold(0.0, f64::max);
    assert!(worst <= 1.0, "worst error {worst}");
}

#[test]
fn extremes_stay_in_the_limited_range() {
    let w = 32;
    let mut data = vec![0u8; w * 2 * 3];
    data[..w * 3].fill(255);
    let out = convert(&data, w, 2, 3, w * 3, SimdLevel::active());
    assert_eq!(out[0], 235);
    assert_eq!(out[w], 16);
    assert!(out[2 * w..].iter().all(|&v| v == 128));
}

#[test]
fn bad_arguments_are_named() {
    let data = vec![0u8; 3 * 3 * 3];
    let src = ImageView::new(&data, 3, 3, 3, 9).unwrap();
    let mut out = vec![0u8; 64];
    assert!(matches!(rgb_to_i420(&src, &mut out, None), Err(Error::InvalidArgument { name: "img", .. })));
    let data = vec![0u8; 4 * 4 * 3];
    let src = ImageView::new(&data, 4, 4, 3, 12).unwrap();
    let mut out = vec![0u8; 10];
    assert!(matches!(rgb_to_i420(&src, &mut out, None), Err(Error::BufferTooSmall { needed: 24, available: 10 })));
    let gray = vec![0u8; 16];
    let src = ImageView::new(&gray, 4, 4, 1, 4).unwrap();
    assert!(rgb_to_i420(&src, &mut out, None).is_err());
}
