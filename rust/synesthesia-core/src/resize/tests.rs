use super::*;

/// xorshift64*: deterministic test data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 56) as u8).collect()
    }
}

/// A random image with `pad` extra bytes per row, so strided views are exercised.
fn image(rng: &mut Rng, w: usize, h: usize, c: usize, pad: usize) -> (Vec<u8>, usize) {
    let stride = w * c + pad;
    (rng.bytes(stride * h), stride)
}

const METHODS: [Method; 3] = [Method::Nearest, Method::Bilinear, Method::Area];

/// Runs one resize into a fresh buffer whose row padding is filled with a sentinel, checks the
/// padding survived, and returns the packed output.
fn run(src: &ImageView, dw: usize, dh: usize, pad: usize, method: Method, level: SimdLevel) -> Vec<u8> {
    let c = src.channels();
    let stride = dw * c + pad;
    let mut buf = vec![0xA5u8; stride * dh];
    let mut dst = ImageViewMut::new(&mut buf, dw, dh, c, stride).unwrap();
    resize_with(src, &mut dst, method, level).unwrap();
    let mut out = Vec::with_capacity(dw * dh * c);
    for y in 0..dh {
        let row = &buf[y * stride..][..stride];
        assert!(row[dw * c..].iter().all(|&b| b == 0xA5), "{method:?} {level:?} wrote into row padding");
        out.extend_from_slice(&row[..dw * c]);
    }
    out
}

fn reference_nearest(src: &ImageView, dw: usize, dh: usize) -> Vec<f64> {
    let (sw, sh, c) = (src.width(), src.height(), src.channels());
    let mut out = Vec::new();
    for y in 0..dh {
        let sy = (((y as f64 + 0.5) * sh as f64 / dh as f64).floor() as usize).min(sh - 1);
        for x in 0..dw {
            let sx = (((x as f64 + 0.5) * sw as f64 / dw as f64).floor() as usize).min(sw - 1);
            for ch in 0..c {
                out.push(src.row(sy)[sx * c + ch] as f64);
            }
        }
    }
    out
}

/// Per-axis (index, weight) lists straight from the real-valued definitions.
fn reference_weights(method: Method, s: usize, d: usize) -> Vec<Vec<(usize, f64)>> {
    (0..d)
        .map(|i| match method {
            Method::Bilinear => {
                let p = ((i as f64 + 0.5) * s as f64 / d as f64 - 0.5).clamp(0.0, (s - 1) as f64);
                let i0 = p.floor() as usize;
                let f = p - i0 as f64;
                vec![(i0, 1.0 - f), ((i0 + 1).min(s - 1), f)]
            }
            _ => {
                let scale = s as f64 / d as f64;
                let (a, b) = (i as f64 * scale, (i + 1) as f64 * scale);
                (a.floor() as usize..(b.ceil() as usize).min(s))
                    .map(|j| (j, ((j + 1) as f64).min(b) - (j as f64).max(a)))
                    .map(|(j, o)| (j, o / scale))
                    .collect()
            }
        })
        .collect()
}

fn reference_separable(src: &ImageView, dw: usize, dh: usize, method: Method) -> Vec<f64> {
    let c = src.channels();
    let wx = reference_weights(method, src.width(), dw);
    let wy = reference_weights(method, src.height(), dh);
    let mut out = Vec::new();
    for ys in &wy {
        for xs in &wx {
            for ch in 0..c {
                let mut v = 0.0;
                for &(sy, a) in ys {
                    for &(sx, b) in xs {
                        v += a * b * src.row(sy)[sx * c + ch] as f64;
                    }
                }
                out.push(v);
            }
        }
    }
    out
}

fn sizes() -> Vec<(usize, usize, usize, usize)> {
    let mut v = vec![
        (64, 48, 32, 24),
        (64, 48, 16, 12),
        (128, 64, 64, 16),
        (128, 64, 32, 32),
        (1280, 704, 320, 176),
        (1280, 704, 640, 352),
        (100, 60, 50, 15),
        (66, 34, 33, 17),
        (68, 36, 17, 9),
        (6, 4, 3, 2),
        (4, 4, 1, 1),
        (8, 8, 2, 2),
        (2, 2, 1, 1),
        (97, 61, 31, 17),
        (97, 61, 200, 130),
        (31, 17, 97, 61),
        (1, 50, 1, 13),
        (50, 1, 13, 1),
        (1, 1, 7, 5),
        (7, 5, 1, 1),
        (1, 9, 5, 1),
        (9, 1, 1, 5),
        (320, 176, 1280, 704),
        (333, 177, 111, 59),
        (640, 360, 427, 240),
        (1281, 705, 320, 176),
        (300, 200, 300, 200),
        (50, 40, 100, 10),
        (10, 100, 40, 25),
        (130, 70, 65, 17),
        (68, 70, 17, 35),
        (1000, 7, 3, 2),
        (7, 1000, 2, 3),
        (2000, 3, 7, 1),
        (513, 257, 256, 128),
        (256, 128, 513, 257),
        (1282, 706, 320, 176),
        (3, 3, 1000, 2),
    ];
    let mut rng = Rng(7);
    for i in 0..60 {
        let r = |rng: &mut Rng, m: u64| 1 + (rng.next() % m) as usize;
        let m = if i % 3 == 0 { 300 } else { 90 };
        v.push((r(&mut rng, m), r(&mut rng, 60), r(&mut rng, m), r(&mut rng, 60)));
    }
    v
}

#[test]
fn every_level_matches_portable() {
    let mut rng = Rng(0x1234_5678);
    for (sw, sh, dw, dh) in sizes() {
        for c in [1, 3, 4] {
            for (spad, dpad) in [(0, 0), (5, 3)] {
                let (data, stride) = image(&mut rng, sw, sh, c, spad);
                let src = ImageView::new(&data, sw, sh, c, stride).unwrap();
                for method in METHODS {
                    let want = run(&src, dw, dh, dpad, method, SimdLevel::Portable);
                    for level in SimdLevel::available() {
                        let got = run(&src, dw, dh, dpad, method, level);
                        assert!(
                            got == want,
                            "{method:?} {level:?} differs from portable: {sw}x{sh}x{c} -> {dw}x{dh}, pads {spad}/{dpad}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn every_method_matches_its_definition() {
    let mut rng = Rng(42);
    for (sw, sh, dw, dh) in sizes() {
        if sw * sh > 100_000 {
            continue;
        }
        for c in [1, 3, 4] {
            let (data, stride) = image(&mut rng, sw, sh, c, 1);
            let src = ImageView::new(&data, sw, sh, c, stride).unwrap();
            for method in METHODS {
                let want = match method {
                    Method::Nearest => reference_nearest(&src, dw, dh),
                    _ => reference_separable(&src, dw, dh, method),
                };
                for level in SimdLevel::available() {
                    let got = run(&src, dw, dh, 0, method, level);
                    let tol = if method == Method::Nearest { 0.0 } else { 1.0 };
                    for (i, (&g, &r)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g as f64 - r).abs() <= tol,
                            "{method:?} {level:?} {sw}x{sh}x{c} -> {dw}x{dh}: sample {i} is {g}, reference {r}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn power_of_two_shrinks_are_rounded_box_means() {
    let mut rng = Rng(3);
    for f in [2usize, 4] {
        let (sw, sh, c) = (8 * f, 4 * f, 3);
        let (data, _) = image(&mut rng, sw, sh, c, 0);
        let src = ImageView::packed(&data, sw, sh, c).unwrap();
        for level in SimdLevel::available() {
            let area = run(&src, 8, 4, 0, Method::Area, level);
            let bilinear = run(&src, 8, 4, 0, Method::Bilinear, level);
            for y in 0..4 {
                for x in 0..8 {
                    for ch in 0..c {
                        let at = |sx: usize, sy: usize| src.row(sy)[sx * c + ch] as u32;
                        let mut sum = 0;
                        for j in 0..f {
                            for i in 0..f {
                                sum += at(f * x + i, f * y + j);
                            }
                        }
                        let n = (f * f) as u32;
                        assert_eq!(area[(y * 8 + x) * c + ch] as u32, (sum + n / 2) / n);
                        let o = f / 2 - 1;
                        let mid = at(f * x + o, f * y + o)
                            + at(f * x + o + 1, f * y + o)
                            + at(f * x + o, f * y + o + 1)
                            + at(f * x + o + 1, f * y + o + 1);
                        assert_eq!(bilinear[(y * 8 + x) * c + ch] as u32, (mid + 2) / 4);
                    }
                }
            }
        }
    }
}

#[test]
fn box_kernels_match_the_general_path() {
    let mut rng = Rng(11);
    let shapes = [(64, 48, 2, 2), (1280, 704, 4, 4), (100, 36, 2, 4), (8, 8, 4, 2), (36, 100, 4, 4), (40, 24, 2, 2)];
    let more = [(96, 48, 8, 8), (96, 48, 6, 2), (99, 45, 3, 3), (128, 64, 16, 8), (90, 60, 3, 2), (70, 40, 2, 1)];
    for (sw, sh, fx, fy) in shapes.into_iter().chain(more) {
        let (dw, dh) = (sw / fx, sh / fy);
        for c in [1, 3, 4] {
            let (data, stride) = image(&mut rng, sw, sh, c, 3);
            let src = ImageView::new(&data, sw, sh, c, stride).unwrap();
            for method in METHODS {
                let boxed = BoxShape::detect(method, sw, sh, dw, dh).is_some();
                let expected = fy > 1
                    && match method {
                        Method::Nearest => matches!(fx, 2 | 4),
                        Method::Bilinear => fx % 2 == 0 && fy % 2 == 0,
                        Method::Area => matches!(fx, 2 | 4) && matches!(fy, 2 | 4),
                    };
                assert_eq!(boxed, expected, "{method:?} {fx}x{fy}");
                let mut want = vec![0u8; dw * dh * c];
                general(&src, &mut ImageViewMut::packed(&mut want, dw, dh, c).unwrap(), method, SimdLevel::Portable);
                for level in SimdLevel::available() {
                    let got = run(&src, dw, dh, 0, method, level);
                    assert!(got == want, "{method:?} {level:?} {sw}x{sh}x{c} -> {dw}x{dh}");
                }
            }
        }
    }
}

#[test]
fn same_size_is_a_copy() {
    let mut rng = Rng(5);
    let (data, stride) = image(&mut rng, 37, 11, 3, 4);
    let src = ImageView::new(&data, 37, 11, 3, stride).unwrap();
    let want: Vec<u8> = (0..11).flat_map(|y| src.row(y).to_vec()).collect();
    for method in METHODS {
        let mut general_out = vec![0u8; 37 * 11 * 3];
        general(&src, &mut ImageViewMut::packed(&mut general_out, 37, 11, 3).unwrap(), method, SimdLevel::Portable);
        assert_eq!(general_out, want, "{method:?}");
        for level in SimdLevel::available() {
            assert_eq!(run(&src, 37, 11, 2, method, level), want, "{method:?} {level:?}");
        }
    }
}

#[test]
fn flat_images_stay_flat() {
    for (sw, sh, dw, dh) in sizes() {
        let data = vec![200u8; sw * sh * 3];
        let src = ImageView::packed(&data, sw, sh, 3).unwrap();
        for method in METHODS {
            for level in SimdLevel::available() {
                assert!(run(&src, dw, dh, 0, method, level).iter().all(|&v| v == 200), "{method:?} {level:?}");
            }
        }
    }
}

#[test]
fn channel_mismatch_is_an_invalid_argument() {
    let data = vec![0u8; 4 * 4 * 3];
    let src = ImageView::packed(&data, 4, 4, 3).unwrap();
    let mut out = vec![0u8; 2 * 2 * 4];
    let mut dst = ImageViewMut::packed(&mut out, 2, 2, 4).unwrap();
    for method in METHODS {
        match resize(&src, &mut dst, method) {
            Err(Error::InvalidArgument { name, message }) => {
                assert_eq!(name, "out");
                assert!(message.contains('3') && message.contains('4'), "{message}");
            }
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }
}

#[test]
fn method_names_round_trip() {
    for m in METHODS {
        assert_eq!(Method::parse(m.name()).unwrap(), m);
    }
    assert!(Method::parse("cubic").is_err());
}
