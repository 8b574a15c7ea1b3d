//! Plain-Rust kernels: the reference every SIMD path must match byte for byte, and the path
//! on CPUs without AVX2.

use super::tables::{Taps, HSHIFT, VSHIFT};
use super::BoxShape;
use crate::image::{ImageView, ImageViewMut};

/// Horizontal pass of one source row into `out` (`taps.start.len() * C` samples).
pub(crate) fn hpass(src: &[u8], c: usize, taps: &Taps, out: &mut [i16]) {
    hpass_range(src, c, taps, 0, out);
}

/// The horizontal pass for output pixels `x0..` only (SIMD row tails).
pub(crate) fn hpass_range(src: &[u8], c: usize, taps: &Taps, x0: usize, out: &mut [i16]) {
    match c {
        1 => hpass_c::<1>(src, taps, x0, out),
        3 => hpass_c::<3>(src, taps, x0, out),
        _ => hpass_c::<4>(src, taps, x0, out),
    }
}

fn hpass_c<const C: usize>(src: &[u8], taps: &Taps, x0: usize, out: &mut [i16]) {
    // Fixed tap counts let the compiler unroll the taps and drop the bounds checks.
    match taps.n {
        1 => hpass_cn::<C, 1>(src, taps, x0, out),
        2 => hpass_cn::<C, 2>(src, taps, x0, out),
        4 => hpass_cn::<C, 4>(src, taps, x0, out),
        _ => hpass_cd::<C>(src, taps, x0, out),
    }
}

fn hpass_cn<const C: usize, const N: usize>(src: &[u8], taps: &Taps, x0: usize, out: &mut [i16]) {
    for x in x0..taps.start.len() {
        let s = &src[taps.start[x] as usize * C..][..N * C];
        let w = &taps.weights[x * N..][..N];
        let o = &mut out[x * C..][..C];
        for ch in 0..C {
            let mut acc = 1i32 << (HSHIFT - 1);
            for k in 0..N {
                acc += w[k] as i32 * s[k * C + ch] as i32;
            }
            o[ch] = (acc >> HSHIFT) as i16;
        }
    }
}

fn hpass_cd<const C: usize>(src: &[u8], taps: &Taps, x0: usize, out: &mut [i16]) {
    let n = taps.n;
    for x in x0..taps.start.len() {
        let s = &src[taps.start[x] as usize * C..][..n * C];
        let w = &taps.weights[x * n..][..n];
        let mut acc = [1i32 << (HSHIFT - 1); C];
        for (px, &wk) in s.chunks_exact(C).zip(w) {
            for ch in 0..C {
                acc[ch] += wk as i32 * px[ch] as i32;
            }
        }
        for ch in 0..C {
            out[x * C + ch] = (acc[ch] >> HSHIFT) as i16;
        }
    }
}

/// Vertical pass: `out[i] = sum_j w[j] * rows[j][i]`, rounded, where row `j` is ring slot
/// `(first + j) % slots` of `ring` (slots of `out.len()` samples each).
pub(crate) fn vpass(ring: &[i16], slots: usize, first: usize, w: &[i16], out: &mut [u8]) {
    vpass_range(ring, slots, first, w, out, 0);
}

/// The vertical pass for samples `i0..` only (SIMD row tails).
pub(crate) fn vpass_range(ring: &[i16], slots: usize, first: usize, w: &[i16], out: &mut [u8], i0: usize) {
    let len = out.len();
    let row = |j: usize| &ring[((first + j) % slots) * len + i0..][..len - i0];
    let round = 1i32 << (VSHIFT - 1);
    if let [w0, w1] = *w {
        // The common two-tap case in one pass, which the compiler vectorises.
        let (a, b) = (row(0), row(1));
        for ((o, &x), &y) in out[i0..].iter_mut().zip(a).zip(b) {
            *o = ((round + w0 as i32 * x as i32 + w1 as i32 * y as i32) >> VSHIFT).clamp(0, 255) as u8;
        }
        return;
    }
    let mut acc = vec![round; len - i0];
    for (j, &wj) in w.iter().enumerate() {
        for (a, &h) in acc.iter_mut().zip(row(j)) {
            *a += wj as i32 * h as i32;
        }
    }
    for (o, a) in out[i0..].iter_mut().zip(acc) {
        *o = (a >> VSHIFT).clamp(0, 255) as u8;
    }
}

/// Copies pixel `xs[i]` (a byte offset into `src`) to output pixel `i`.
pub(crate) fn gather(src: &[u8], c: usize, xs: &[u32], out: &mut [u8]) {
    match c {
        1 => {
            for (o, &s) in out.iter_mut().zip(xs) {
                *o = src[s as usize];
            }
        }
        3 => {
            for (o, &s) in out.chunks_exact_mut(3).zip(xs) {
                o.copy_from_slice(&src[s as usize..s as usize + 3]);
            }
        }
        _ => {
            for (o, &s) in out.chunks_exact_mut(4).zip(xs) {
                o.copy_from_slice(&src[s as usize..s as usize + 4]);
            }
        }
    }
}

/// Exact 2x/4x shrinks as rounded box means (see [`BoxShape`]).
pub(crate) fn box_filter(src: &ImageView, dst: &mut ImageViewMut, b: BoxShape) {
    // Monomorphised per shape so the sums unroll.
    macro_rules! by_shape {
        ($c:literal) => {
            match (b.bx, b.by) {
                (1, _) => box_c::<$c, 1, 1>(src, dst, b),
                (2, 2) => box_c::<$c, 2, 2>(src, dst, b),
                (2, _) => box_c::<$c, 2, 4>(src, dst, b),
                (4, 2) => box_c::<$c, 4, 2>(src, dst, b),
                _ => box_c::<$c, 4, 4>(src, dst, b),
            }
        };
    }
    match src.channels() {
        1 => by_shape!(1),
        3 => by_shape!(3),
        _ => by_shape!(4),
    }
}

fn box_c<const C: usize, const BX: usize, const BY: usize>(src: &ImageView, dst: &mut ImageViewMut, b: BoxShape) {
    let n = (BX * BY) as u32;
    for y in 0..dst.height() {
        let rows: [&[u8]; BY] = std::array::from_fn(|j| src.row(b.fy * y + b.oy + j));
        let out = dst.row_mut(y);
        for (x, o) in out.chunks_exact_mut(C).enumerate() {
            let at = (x * b.fx + b.ox) * C;
            let mut sum = [0u32; C];
            for row in &rows {
                let px = &row[at..][..BX * C];
                for i in 0..BX {
                    for ch in 0..C {
                        sum[ch] += px[i * C + ch] as u32;
                    }
                }
            }
            for ch in 0..C {
                o[ch] = ((sum[ch] + n / 2) >> n.trailing_zeros()) as u8;
            }
        }
    }
}

/// One output pixel of a box shape, for the SIMD kernels' row tails.
pub(crate) fn box_pixel(rows: &[&[u8]], c: usize, b: BoxShape, x: usize, out: &mut [u8]) {
    let n = (b.bx * b.by) as u32;
    let at = (x * b.fx + b.ox) * c;
    for ch in 0..c {
        let mut sum = 0u32;
        for row in rows {
            for i in 0..b.bx {
                sum += row[at + i * c + ch] as u32;
            }
        }
        out[x * c + ch] = ((sum + n / 2) >> n.trailing_zeros()) as u8;
    }
}

/// Vertical pass first (used when shrinking vertically): source rows `s0..s0 + w.len()` into
/// one i16 row at the same scale `hpass` produces, so `hlast` can finish it.
pub(crate) fn vfirst(src: &ImageView, s0: usize, w: &[i16], out: &mut [i16]) {
    vfirst_range(src, s0, w, out, 0);
}

/// `vfirst` for samples `i0..` only (SIMD row tails).
pub(crate) fn vfirst_range(src: &ImageView, s0: usize, w: &[i16], out: &mut [i16], i0: usize) {
    let round = 1i32 << (HSHIFT - 1);
    let out = &mut out[i0..src.row_bytes()];
    if let [w0, w1] = *w {
        // The common two-tap case in one pass, which the compiler vectorises.
        let (a, b) = (&src.row(s0)[i0..], &src.row(s0 + 1)[i0..]);
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = ((round + w0 as i32 * x as i32 + w1 as i32 * y as i32) >> HSHIFT) as i16;
        }
        return;
    }
    let mut acc = vec![round; out.len()];
    for (j, &wj) in w.iter().enumerate() {
        for (a, &p) in acc.iter_mut().zip(&src.row(s0 + j)[i0..]) {
            *a += wj as i32 * p as i32;
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o = (a >> HSHIFT) as i16;
    }
}

/// Horizontal pass last: one `vfirst` row into an output row.
pub(crate) fn hlast(src: &[i16], c: usize, taps: &Taps, out: &mut [u8]) {
    hlast_range(src, c, taps, 0, out);
}

/// `hlast` for output pixels `x0..` only (SIMD row tails).
pub(crate) fn hlast_range(src: &[i16], c: usize, taps: &Taps, x0: usize, out: &mut [u8]) {
    match c {
        1 => hlast_c::<1>(src, taps, x0, out),
        3 => hlast_c::<3>(src, taps, x0, out),
        _ => hlast_c::<4>(src, taps, x0, out),
    }
}

fn hlast_c<const C: usize>(src: &[i16], taps: &Taps, x0: usize, out: &mut [u8]) {
    let n = taps.n;
    for x in x0..taps.start.len() {
        let s = &src[taps.start[x] as usize * C..][..n * C];
        let w = &taps.weights[x * n..][..n];
        let mut acc = [1i32 << (VSHIFT - 1); C];
        for (px, &wk) in s.chunks_exact(C).zip(w) {
            for ch in 0..C {
                acc[ch] += wk as i32 * px[ch] as i32;
            }
        }
        for ch in 0..C {
            out[x * C + ch] = (acc[ch] >> VSHIFT).clamp(0, 255) as u8;
        }
    }
}
