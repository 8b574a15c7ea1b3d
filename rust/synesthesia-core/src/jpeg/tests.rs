//! Round trips through an independent decoder, SIMD-vs-portable byte equality, file structure.

use super::*;
use crate::error::Error;

/// A smooth scene with edges and mild noise, deterministic.
pub(crate) fn scene(w: usize, h: usize, ch: usize, seed: u32) -> Vec<u8> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    let mut out = vec![0u8; w * h * ch];
    for y in 0..h {
        for x in 0..w {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let n = (s % 9) as i32 - 4;
            let fx = x as f32 / w.max(1) as f32;
            let fy = y as f32 / h.max(1) as f32;
            let disc = ((fx - 0.6).powi(2) + (fy - 0.4).powi(2)) < 0.05;
            let r = 40.0 + 170.0 * fx + if disc { 40.0 } else { 0.0 };
            let g = 60.0 + 120.0 * fy + 30.0 * (fx * 12.0).sin();
            let b = if disc { 220.0 } else { 90.0 + 60.0 * (fy * 7.0 + fx * 3.0).cos() };
            let px = [r, g, b, 255.0];
            for c in 0..ch {
                let v = if ch == 1 { 0.3 * r + 0.6 * g + 0.1 * b } else { px[c] };
                out[(y * w + x) * ch + c] = (v as i32 + n).clamp(0, 255) as u8;
            }
        }
    }
    out
}

pub(crate) fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 7) as u8
        })
        .collect()
}

pub(crate) fn decode(jpeg: &[u8]) -> (usize, usize, usize, Vec<u8>) {
    let mut d = jpeg_decoder::Decoder::new(jpeg);
    let px = d.decode().expect("decodes");
    let info = d.info().unwrap();
    let ch = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => 1,
        jpeg_decoder::PixelFormat::RGB24 => 3,
        f => panic!("unexpected format {f:?}"),
    };
    (info.width as usize, info.height as usize, ch, px)
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let se: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum();
    let mse = se / a.len() as f64;
    if mse == 0.0 {
        return 99.0;
    }
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

/// The source as the decoder should approximately return it: RGB, or luma for gray output.
fn reference(src: &[u8], ch: usize, gray_out: bool) -> Vec<u8> {
    let px = src.chunks_exact(ch);
    if ch == 1 {
        src.to_vec()
    } else if gray_out {
        px.map(|p| portable::ycc(p[0] as i32, p[1] as i32, p[2] as i32).0).collect()
    } else {
        px.flat_map(|p| [p[0], p[1], p[2]]).collect()
    }
}

fn opts(sub: Subsampling, quality: u8) -> EncodeOptions {
    EncodeOptions { quality, subsampling: sub, ..Default::default() }
}

const SUBS: [Subsampling; 4] = [Subsampling::S444, Subsampling::S422, Subsampling::S420, Subsampling::Gray];

fn check_round_trip(w: usize, h: usize, ch: usize, o: &EncodeOptions, min_psnr: f64) -> Vec<u8> {
    let src = scene(w, h, ch, (w * 31 + h) as u32);
    let img = ImageView::packed(&src, w, h, ch).unwrap();
    let jpeg = encode(&img, o).unwrap();
    let (dw, dh, dch, px) = decode(&jpeg);
    assert_eq!((dw, dh), (w, h));
    let gray_out = ch == 1 || o.subsampling == Subsampling::Gray;
    assert_eq!(dch, if gray_out { 1 } else { 3 });
    // Subsampled chroma cannot follow this scene's steep colour gradients on a few pixels.
    let min_psnr =
        if gray_out || o.subsampling == Subsampling::S444 || w.min(h) >= 16 { min_psnr } else { min_psnr - 12.0 };
    let p = psnr(&px, &reference(&src, ch, gray_out));
    assert!(p > min_psnr, "{w}x{h}x{ch} {o:?}: psnr {p:.2}");
    assert!(jpeg.len() <= JpegEncoder::max_encoded_size(w, h, o));
    px
}

#[test]
fn round_trips_every_layout() {
    for &(w, h) in &[(1, 1), (7, 5), (17, 33), (64, 48), (33, 17)] {
        for sub in SUBS {
            for ch in [1, 3, 4] {
                for optimize in [false, true] {
                    for (restart, threads) in [(0, 1), (2, 1), (0, 3), (1, 4)] {
                        let o = EncodeOptions {
                            optimize_huffman: optimize,
                            restart_interval: restart,
                            threads,
                            ..opts(sub, 90)
                        };
                        check_round_trip(w, h, ch, &o, 27.0);
                    }
                }
            }
        }
    }
}

#[test]
fn round_trips_large_odd_frame() {
    for sub in SUBS {
        for (optimize, threads) in [(false, 1), (true, 2), (false, 4)] {
            let o = EncodeOptions { optimize_huffman: optimize, threads, ..opts(sub, 90) };
            check_round_trip(1281, 703, 3, &o, 30.0);
        }
    }
    check_round_trip(1281, 703, 4, &opts(Subsampling::S420, 75), 28.0);
    check_round_trip(1281, 703, 1, &opts(Subsampling::S420, 75), 28.0);
}

#[test]
fn strided_views_encode_like_packed_ones() {
    let (w, h) = (37, 21);
    let src = scene(w + 5, h, 3, 7);
    let strided = ImageView::new(&src, w, h, 3, (w + 5) * 3).unwrap();
    let packed: Vec<u8> = (0..h).flat_map(|y| strided.row(y).to_vec()).collect();
    let o = opts(Subsampling::S420, 80);
    assert_eq!(encode(&strided, &o).unwrap(), encode(&ImageView::packed(&packed, w, h, 3).unwrap(), &o).unwrap());
}

/// Sizes, layouts and qualities chosen to hit every tail path of the SIMD kernels.
fn simd_cases() -> Vec<(usize, usize, usize, Subsampling, u8)> {
    let mut v = Vec::new();
    let sizes = [
        (1, 1),
        (2, 2),
        (8, 8),
        (9, 3),
        (15, 17),
        (16, 16),
        (31, 9),
        (33, 40),
        (47, 47),
        (64, 8),
        (100, 37),
        (320, 176),
    ];
    for (i, &(w, h)) in sizes.iter().enumerate() {
        for (j, sub) in SUBS.into_iter().enumerate() {
            let ch = [3, 4, 1][(i + j) % 3];
            let q = [1, 10, 50, 75, 90, 100][(i * 4 + j) % 6];
            v.push((w, h, ch, sub, q));
        }
    }
    v
}

#[test]
fn every_simd_level_matches_portable() {
    let levels = SimdLevel::available();
    for (w, h, ch, sub, q) in simd_cases() {
        for kind in 0..3 {
            let src = match kind {
                0 => scene(w, h, ch, 3),
                1 => noise(w * h * ch, (w * h) as u32),
                // Extremes: a 0/255 checkerboard drives the DCT to its largest coefficients.
                _ => (0..w * h * ch).map(|i| if ((i / ch) % w + (i / ch) / w) % 2 == 0 { 0 } else { 255 }).collect(),
            };
            let img = ImageView::packed(&src, w, h, ch).unwrap();
            for optimize in [false, true] {
                let base =
                    EncodeOptions { optimize_huffman: optimize, simd: Some(SimdLevel::Portable), ..opts(sub, q) };
                let want = encode(&img, &base).unwrap();
                for &l in &levels {
                    let got = encode(&img, &EncodeOptions { simd: Some(l), ..base.clone() }).unwrap();
                    assert!(
                        got == want,
                        "{l:?} differs from portable: {w}x{h}x{ch} {sub:?} q{q} kind {kind} optimize {optimize}"
                    );
                }
            }
        }
    }
}

#[test]
fn extreme_blocks_stay_in_baseline_range() {
    // Every 8x8 sign pattern of a DCT basis function, at quality 100, must decode back closely:
    // a coefficient outside the baseline categories would corrupt the stream.
    let (w, h) = (64, 64);
    let mut src = vec![0u8; w * h];
    for by in 0..8 {
        for bx in 0..8 {
            for y in 0..8 {
                for x in 0..8 {
                    let cy = ((2 * y + 1) as f64 * by as f64 * std::f64::consts::PI / 16.0).cos();
                    let cx = ((2 * x + 1) as f64 * bx as f64 * std::f64::consts::PI / 16.0).cos();
                    src[(by * 8 + y) * w + bx * 8 + x] = if cx * cy >= 0.0 { 255 } else { 0 };
                }
            }
        }
    }
    let img = ImageView::packed(&src, w, h, 1).unwrap();
    for &l in &SimdLevel::available() {
        let jpeg = encode(&img, &EncodeOptions { simd: Some(l), ..opts(Subsampling::Gray, 100) }).unwrap();
        let (_, _, _, px) = decode(&jpeg);
        let p = psnr(&px, &src);
        assert!(p > 40.0, "{l:?}: psnr {p:.1}");
    }
}

/// (marker, body) of every segment before the scan data.
fn segments(jpeg: &[u8]) -> Vec<(u8, Vec<u8>)> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    assert_eq!(&jpeg[jpeg.len() - 2..], &[0xFF, 0xD9]);
    let mut at = 2;
    let mut v = Vec::new();
    loop {
        assert_eq!(jpeg[at], 0xFF);
        let m = jpeg[at + 1];
        let len = u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]) as usize;
        v.push((m, jpeg[at + 4..at + 2 + len].to_vec()));
        at += 2 + len;
        if m == 0xDA {
            return v;
        }
    }
}

#[test]
fn dqt_holds_the_requested_tables_in_zigzag_order() {
    let luma: Vec<u16> = (0..64).map(|i| 1 + i as u16 * 3).collect();
    let chroma: Vec<u16> = (0..64).map(|i| 255 - i as u16).collect();
    let t = QuantTables::new(&luma, &chroma).unwrap();
    let src = scene(40, 24, 3, 1);
    let img = ImageView::packed(&src, 40, 24, 3).unwrap();
    for (qt, sub) in [
        (t.clone(), Subsampling::S420),
        (QuantTables::from_quality(37).unwrap(), Subsampling::S444),
        (QuantTables::turbo(), Subsampling::S420),
    ] {
        let jpeg = encode(&img, &EncodeOptions { qtables: Some(qt.clone()), ..opts(sub, 75) }).unwrap();
        let dqt: Vec<_> = segments(&jpeg).into_iter().filter(|(m, _)| *m == 0xDB).collect();
        assert_eq!(dqt.len(), 1);
        let body = &dqt[0].1;
        assert_eq!(body.len(), 130);
        for (t, table) in [(0usize, &qt.luma), (1, &qt.chroma)] {
            assert_eq!(body[t * 65], t as u8);
            for k in 0..64 {
                assert_eq!(body[t * 65 + 1 + k] as u16, table[tables::ZIGZAG[k] as usize], "table {t} zigzag {k}");
            }
        }
    }
    // Gray files carry the luma table only; zigzag position 2 is natural index 8.
    let gray = encode(&img, &EncodeOptions { qtables: Some(t), ..opts(Subsampling::Gray, 75) }).unwrap();
    let dqt = segments(&gray).into_iter().find(|(m, _)| *m == 0xDB).unwrap().1;
    assert_eq!(dqt.len(), 65);
    assert_eq!(dqt[1 + 2], luma[8] as u8);
}

#[test]
fn quality_scaling_matches_libjpeg() {
    let q50 = QuantTables::from_quality(50).unwrap();
    assert_eq!(q50.luma, tables::LUMA_K1);
    assert_eq!(q50.chroma, tables::CHROMA_K2);
    let q75 = QuantTables::from_quality(75).unwrap();
    assert_eq!(&q75.luma[..8], &[8, 6, 5, 8, 12, 20, 26, 31]);
    let q100 = QuantTables::from_quality(100).unwrap();
    assert!(q100.luma.iter().chain(q100.chroma.iter()).all(|&v| v == 1));
    let q1 = QuantTables::from_quality(1).unwrap();
    assert!(q1.luma.iter().all(|&v| v == 255));
    let t = QuantTables::turbo();
    assert!(t.luma.iter().chain(t.chroma.iter()).all(|&v| (1..=255).contains(&v)));
}

#[test]
fn optimized_tables_are_smaller_and_decode_identically() {
    for sub in SUBS {
        for &(w, h, ch) in &[(320, 176, 3), (99, 61, 4), (64, 64, 1)] {
            let src = scene(w, h, ch, 11);
            let img = ImageView::packed(&src, w, h, ch).unwrap();
            let plain = encode(&img, &opts(sub, 75)).unwrap();
            let opt = encode(&img, &EncodeOptions { optimize_huffman: true, ..opts(sub, 75) }).unwrap();
            assert!(opt.len() <= plain.len(), "{sub:?} {w}x{h}: {} > {}", opt.len(), plain.len());
            assert_eq!(decode(&opt).3, decode(&plain).3);
        }
    }
}

#[test]
fn optimal_code_lengths_are_capped_and_complete() {
    // Fibonacci-like frequencies force a very deep tree before the cap.
    let mut f = huffman::Freq::default();
    let (mut a, mut b) = (1u32, 1u32);
    for i in 0..40 {
        f.0[i] = a;
        let c = a.saturating_add(b);
        a = b;
        b = c;
    }
    let spec = huffman::optimal_spec(&f);
    assert_eq!(spec.vals.len(), 40);
    assert_eq!(spec.bits.iter().map(|&b| b as usize).sum::<usize>(), 40);
    // Kraft: the codes fit, with room left for the reserved all-ones code.
    let kraft: f64 = spec.bits.iter().enumerate().map(|(i, &n)| n as f64 / 2f64.powi(i as i32 + 1)).sum();
    assert!(kraft < 1.0);
}

#[test]
fn threads_give_the_same_pixels_and_with_a_shared_interval_the_same_bytes() {
    let (w, h) = (200, 150);
    let src = scene(w, h, 3, 5);
    let img = ImageView::packed(&src, w, h, 3).unwrap();
    for sub in SUBS {
        for optimize in [false, true] {
            let one = EncodeOptions { optimize_huffman: optimize, ..opts(sub, 80) };
            let single = encode(&img, &one).unwrap();
            let pixels = decode(&single).3;
            let mcus_x = w.div_ceil(if sub == Subsampling::S444 || sub == Subsampling::Gray { 8 } else { 16 });
            for threads in 2..=4 {
                let many = encode(&img, &EncodeOptions { threads, ..one.clone() }).unwrap();
                assert_eq!(decode(&many).3, pixels, "{sub:?} threads {threads}");
                for restart in [mcus_x as u16, 3, 7] {
                    let a = encode(&img, &EncodeOptions { restart_interval: restart, ..one.clone() }).unwrap();
                    let b = encode(&img, &EncodeOptions { restart_interval: restart, threads, ..one.clone() }).unwrap();
                    assert!(a == b, "{sub:?} threads {threads} restart {restart}");
                    assert_eq!(decode(&b).3, pixels);
                }
            }
        }
    }
}

#[test]
fn slice_plan_puts_boundaries_on_restarts() {
    let lay = encoder::Layout::new(1280, 704, 3, Subsampling::S420);
    let p = encoder::plan(&lay, 2, 0);
    assert_eq!(p, encoder::Plan { restart: 22 * 80, rows_per_slice: 22, slices: 2 });
    let p = encoder::plan(&lay, 2, 3);
    assert_eq!(p.rows_per_slice % 3, 0);
    assert_eq!((p.rows_per_slice * 80) % 3, 0);
    assert_eq!(encoder::plan(&lay, 1, 5).slices, 1);
    let tiny = encoder::Layout::new(8, 8, 3, Subsampling::S420);
    assert_eq!(encoder::plan(&tiny, 4, 0).slices, 1);
}

#[test]
fn encoder_is_reusable_across_sizes() {
    let mut enc = JpegEncoder::new(opts(Subsampling::S420, 75)).unwrap();
    let mut out = Vec::new();
    for &(w, h) in &[(64, 64), (17, 9), (320, 176), (17, 9)] {
        let src = scene(w, h, 3, 2);
        let img = ImageView::packed(&src, w, h, 3).unwrap();
        enc.encode(&img, &mut out).unwrap();
        assert_eq!(out, encode(&img, enc.options()).unwrap());
    }
}

fn invalid_name(e: Error) -> &'static str {
    match e {
        Error::InvalidArgument { name, .. } => name,
        e => panic!("expected InvalidArgument, got {e:?}"),
    }
}

#[test]
fn bad_arguments_name_themselves() {
    for q in [0u8, 101, 255] {
        assert_eq!(invalid_name(QuantTables::from_quality(q).unwrap_err()), "quality");
        assert_eq!(
            invalid_name(JpegEncoder::new(EncodeOptions { quality: q, ..Default::default() }).err().unwrap()),
            "quality"
        );
    }
    for t in [0usize, 65] {
        assert_eq!(
            invalid_name(JpegEncoder::new(EncodeOptions { threads: t, ..Default::default() }).err().unwrap()),
            "threads"
        );
    }
    let ok = [10u16; 64];
    let e = QuantTables::new(&ok[..63], &ok).unwrap_err();
    assert!(e.to_string().contains("luma") && e.to_string().contains("63"), "{e}");
    let mut bad = ok;
    bad[9] = 256;
    let e = QuantTables::new(&ok, &bad).unwrap_err();
    assert!(
        e.to_string().contains("chroma") && e.to_string().contains("entry 9") && e.to_string().contains("256"),
        "{e}"
    );
    bad[9] = 0;
    assert_eq!(invalid_name(QuantTables::new(&bad, &ok).unwrap_err()), "qtables");
    let broken = QuantTables { luma: bad, chroma: ok };
    assert_eq!(
        invalid_name(JpegEncoder::new(EncodeOptions { qtables: Some(broken), ..Default::default() }).err().unwrap()),
        "qtables"
    );
    assert_eq!(invalid_name(Subsampling::parse("411").unwrap_err()), "subsampling");
}

#[test]
fn encode_into_reports_a_short_buffer() {
    let src = scene(64, 48, 3, 9);
    let img = ImageView::packed(&src, 64, 48, 3).unwrap();
    let mut enc = JpegEncoder::new(EncodeOptions::default()).unwrap();
    let full = encode(&img, enc.options()).unwrap();
    let mut tiny = [0u8; 16];
    match enc.encode_into(&img, &mut tiny) {
        Err(Error::BufferTooSmall { needed, available }) => assert_eq!((needed, available), (full.len(), 16)),
        r => panic!("expected BufferTooSmall, got {r:?}"),
    }
    let mut big = vec![0u8; JpegEncoder::max_encoded_size(64, 48, enc.options())];
    let n = enc.encode_into(&img, &mut big).unwrap();
    assert_eq!(&big[..n], &full[..]);
}

#[test]
fn max_encoded_size_bounds_noise_at_quality_100() {
    for sub in SUBS {
        let (w, h) = (45, 29);
        let src = noise(w * h * 3, 77);
        let img = ImageView::packed(&src, w, h, 3).unwrap();
        let o = EncodeOptions { restart_interval: 1, ..opts(sub, 100) };
        let jpeg = encode(&img, &o).unwrap();
        assert!(jpeg.len() <= JpegEncoder::max_encoded_size(w, h, &o));
        // Noise survives quality 100 except where chroma is subsampled.
        let min = if matches!(sub, Subsampling::S444 | Subsampling::Gray) { 40.0 } else { 12.0 };
        let p = psnr(&decode(&jpeg).3, &reference(&src, 3, sub == Subsampling::Gray));
        assert!(p > min, "{sub:?}: psnr {p:.1}");
    }
}

#[test]
fn extreme_aspect_ratios() {
    for &(w, h) in &[(4099, 1), (1, 301), (2, 2), (3, 17)] {
        for sub in SUBS {
            for threads in [1, 4] {
                let o = EncodeOptions { threads, ..opts(sub, 85) };
                check_round_trip(w, h, 3, &o, 15.0);
            }
        }
    }
}
