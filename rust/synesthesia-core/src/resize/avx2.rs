//! AVX2 kernels. Each computes exactly the integer sums of the portable path, only in a
//! different order, so the bytes match.

use std::arch::x86_64::*;

use super::portable;
use super::tables::{Taps, HSHIFT, VSHIFT};
use super::BoxShape;
use crate::image::{ImageView, ImageViewMut};

/// How the box kernel covers a row: each 128-bit lane reads 16 bytes starting at the first box
/// column of its first output and produces `k` outputs, as many as fit both the 16 bytes and
/// the lane's sample slots.
pub(super) struct BoxPlan {
    pub k: usize,
    /// The in-lane byte shuffle that turns the lane's bytes into what `pmaddubsw` with
    /// all-ones weights sums into box partial sums (or, for `bx == 1`, the picked pixels).
    /// Sample `t = o * c + ch` of output `o`:
    /// - `bx == 1`: byte `t` is the picked pixel.
    /// - `bx == 2`: i16 `t` sums the two box columns.
    /// - `bx == 4`: i16 `t` sums columns 0-1 and i16 `4 + t` columns 2-3, folded later.
    pub shuffle: [u8; 16],
    /// Bytes each lane stores (8 or 16; the first `k * c` are output).
    pub store: usize,
    /// Source pixels from a box-aligned lane start to the lane's first load (the box offset
    /// `ox` where it fits the 16 bytes, else 0: lanes aligned to the box grid split fewer
    /// cache lines).
    pub skip: usize,
}

impl BoxPlan {
    pub fn new(c: usize, b: BoxShape) -> BoxPlan {
        let slots = match b.bx {
            1 => 16,
            2 => 8,
            _ => 4,
        };
        let mut k = slots / c;
        while ((k - 1) * b.fx + b.bx) * c > 16 {
            k -= 1;
        }
        let skip = if ((k - 1) * b.fx + b.ox + b.bx) * c <= 16 { 0 } else { b.ox };
        let mut m = [0x80u8; 16];
        let at = |o: usize, col: usize, ch: usize| ((o * b.fx + b.ox - skip + col) * c + ch) as u8;
        for o in 0..k {
            for ch in 0..c {
                let t = o * c + ch;
                match b.bx {
                    1 => m[t] = at(o, 0, ch),
                    2 => {
                        m[2 * t] = at(o, 0, ch);
                        m[2 * t + 1] = at(o, 1, ch);
                    }
                    _ => {
                        m[2 * t] = at(o, 0, ch);
                        m[2 * t + 1] = at(o, 1, ch);
                        m[8 + 2 * t] = at(o, 2, ch);
                        m[8 + 2 * t + 1] = at(o, 3, ch);
                    }
                }
            }
        }
        BoxPlan { k, shuffle: m, store: if k * c > 8 { 16 } else { 8 }, skip }
    }

    /// How many lanes of a row may run with full 16-byte loads and `store`-byte stores
    /// without touching bytes outside the source or destination row.
    pub fn simd_lanes(&self, c: usize, b: BoxShape, sw: usize, dw: usize) -> usize {
        let (gin, kb) = (self.k * b.fx * c, self.k * c);
        let (in_len, out_len) = (sw * c, dw * c);
        let first = self.skip * c;
        let by_in = if in_len >= first + 16 { (in_len - first - 16) / gin + 1 } else { 0 };
        let by_out = if out_len >= self.store { (out_len - self.store) / kb + 1 } else { 0 };
        (dw / self.k).min(by_in).min(by_out)
    }
}

/// # Safety
/// The CPU must support AVX2 (`SimdLevel::Avx2.is_available()`).
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn box_filter(src: &ImageView, dst: &mut ImageViewMut, b: BoxShape) {
    // Monomorphised per box size so the row loop and the fold unroll.
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

#[target_feature(enable = "avx2")]
unsafe fn box_c<const C: usize, const BX: usize, const BY: usize>(
    src: &ImageView,
    dst: &mut ImageViewMut,
    b: BoxShape,
) {
    debug_assert_eq!((b.bx, b.by), (BX, BY));
    let plan = BoxPlan::new(C, b);
    let (k, gin) = (plan.k, plan.k * b.fx * C);
    let kb = k * C;
    let dw = dst.width();
    let ng = plan.simd_lanes(C, b, src.width(), dw);
    let first = plan.skip * C;
    let mask = _mm256_broadcastsi128_si256(_mm_loadu_si128(plan.shuffle.as_ptr().cast()));
    let ones = _mm256_set1_epi8(1);
    let n = BX * BY;
    let round = _mm256_set1_epi16((n / 2) as i16);
    let shift = _mm_cvtsi32_si128(n.trailing_zeros() as i32);
    for y in 0..dst.height() {
        let rows: [&[u8]; BY] = std::array::from_fn(|j| src.row(b.fy * y + b.oy + j));
        let out = dst.row_mut(y);
        let o = out.as_mut_ptr();
        let mut gi = 0;
        while gi + 2 <= ng {
            let at = first + gi * gin;
            let v = if BX == 1 {
                _mm256_shuffle_epi8(load2(rows[0].as_ptr().add(at), gin), mask)
            } else {
                let mut acc = _mm256_setzero_si256();
                for r in &rows {
                    let p = _mm256_shuffle_epi8(load2(r.as_ptr().add(at), gin), mask);
                    acc = _mm256_add_epi16(acc, _mm256_maddubs_epi16(p, ones));
                }
                if BX == 4 {
                    acc = _mm256_add_epi16(acc, _mm256_bsrli_epi128::<8>(acc));
                }
                let acc = _mm256_srl_epi16(_mm256_add_epi16(acc, round), shift);
                _mm256_packus_epi16(acc, acc)
            };
            // Lane 1 is stored second so that it overwrites lane 0's unused tail bytes.
            let (lo, hi) = (_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
            if plan.store == 16 {
                _mm_storeu_si128(o.add(gi * kb).cast(), lo);
                _mm_storeu_si128(o.add((gi + 1) * kb).cast(), hi);
            } else {
                _mm_storel_epi64(o.add(gi * kb).cast(), lo);
                _mm_storel_epi64(o.add((gi + 1) * kb).cast(), hi);
            }
            gi += 2;
        }
        for x in gi * k..dw {
            portable::box_pixel(&rows, C, b, x, out);
        }
    }
}

/// Two 16-byte loads, `step` bytes apart, into the two lanes.
///
/// # Safety
/// AVX2; both 16-byte ranges must be readable.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load2(p: *const u8, step: usize) -> __m256i {
    let lo = _mm_loadu_si128(p.cast());
    let hi = _mm_loadu_si128(p.add(step).cast());
    _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi)
}

/// Nearest-neighbour row gather: output pixel `i` is the source pixel at byte offset `xs[i]`.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn gather(src: &[u8], c: usize, xs: &[u32], out: &mut [u8]) {
    // The gathers read 4 bytes per pixel and the stores write up to 32 bytes per 8 pixels, so
    // blocks near either row end go through the plain path (offsets only grow, so they form a
    // tail).
    let mut xe = 0;
    while xe + 8 <= xs.len() && xs[xe + 7] as usize + 4 <= src.len() && xe * c + 32 <= out.len() {
        xe += 8;
    }
    let base = src.as_ptr() as *const i32;
    let o = out.as_mut_ptr();
    let mut x = 0;
    match c {
        4 => {
            while x + 8 <= xe {
                let idx = _mm256_loadu_si256(xs.as_ptr().add(x).cast());
                let v = _mm256_i32gather_epi32::<1>(base, idx);
                _mm256_storeu_si256(o.add(x * 4).cast(), v);
                x += 8;
            }
        }
        3 => {
            let pack = _mm256_setr_epi8(
                0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1, 0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1,
                -1, -1,
            );
            let join = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7);
            while x + 8 <= xe {
                let idx = _mm256_loadu_si256(xs.as_ptr().add(x).cast());
                let v = _mm256_i32gather_epi32::<1>(base, idx);
                let v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, pack), join);
                _mm256_storeu_si256(o.add(x * 3).cast(), v);
                x += 8;
            }
        }
        _ => {
            let pack = _mm256_setr_epi8(
                0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1,
                -1, -1, -1, -1, -1,
            );
            let join = _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0);
            while x + 8 <= xe {
                let idx = _mm256_loadu_si256(xs.as_ptr().add(x).cast());
                let v = _mm256_i32gather_epi32::<1>(base, idx);
                let v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, pack), join);
                _mm_storel_epi64(o.add(x).cast(), _mm256_castsi256_si128(v));
                x += 8;
            }
        }
    }
    portable::gather(src, c, &xs[x..], &mut out[x * c..]);
}

/// A horizontal pass prepared for one pair of row widths (C = 3 or 4, even tap count): two
/// output pixels per register, each lane holding one pixel's tap pair as i16
/// (channel, tap) pairs that `pmaddwd` weighs and adds, with the weights already laid out
/// per lane.
pub(crate) struct HPlan {
    c: usize,
    pairs: usize,
    /// Pixels `0..simd` take the SIMD loop: every 8-byte tap-pair load and 4-sample store of
    /// theirs stays inside the row; windows only move right, so the rest form a tail.
    simd: usize,
    /// Source byte offset of each output pixel's first tap.
    offs: Vec<u32>,
    /// Per (pixel pair, tap pair): lane 0 the first pixel's two weights, lane 1 the second's.
    weights: Vec<[u32; 8]>,
}

impl HPlan {
    pub(crate) fn new(c: usize, taps: &Taps) -> Option<HPlan> {
        let n = taps.n;
        if !matches!(c, 3 | 4) || n & 1 == 1 {
            return None;
        }
        let dw = taps.start.len();
        let (in_len, out_len) = (taps.src * c, dw * c);
        let fits = |x: usize| (taps.start[x] as usize + n - 2) * c + 8 <= in_len && x * c + 4 <= out_len;
        let mut simd = dw;
        while simd > 0 && !fits(simd - 1) {
            simd -= 1;
        }
        simd &= !1;
        let offs = taps.start.iter().map(|&s| s * c as u32).collect();
        Some(HPlan { c, pairs: n / 2, simd, offs, weights: lane_weights(taps, simd) })
    }
}

/// Per (pixel pair, tap pair) of pixels `0..simd`: lane 0 the first pixel's two weights,
/// lane 1 the second's, each repeated for the four i32 channel slots.
fn lane_weights(taps: &Taps, simd: usize) -> Vec<[u32; 8]> {
    let n = taps.n;
    let pair = |x: usize, k: usize| {
        let w = &taps.weights[x * n + 2 * k..][..2];
        w[0] as u16 as u32 | (w[1] as u16 as u32) << 16
    };
    let mut weights = Vec::with_capacity(simd / 2 * n / 2);
    for x in (0..simd).step_by(2) {
        for k in 0..n / 2 {
            let (a, b) = (pair(x, k), pair(x + 1, k));
            weights.push([a, a, a, a, b, b, b, b]);
        }
    }
    weights
}

/// Horizontal pass (see `portable::hpass`) driven by an [`HPlan`].
///
/// # Safety
/// The CPU must support AVX2; `plan` was built from `taps` for a row of `src.len() / c` source
/// pixels and `out.len() / c` output pixels.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn hpass(src: &[u8], taps: &Taps, plan: &HPlan, out: &mut [i16]) {
    match (plan.c, plan.pairs) {
        (3, 1) => hpass_c::<3, 1>(src, plan, out),
        (3, _) => hpass_c::<3, 0>(src, plan, out),
        (_, 1) => hpass_c::<4, 1>(src, plan, out),
        _ => hpass_c::<4, 0>(src, plan, out),
    }
    portable::hpass_range(src, plan.c, taps, plan.simd, out);
}

/// `PAIRS` is the tap-pair count when fixed at compile time (the two-tap bilinear case),
/// 0 when read from the plan.
#[target_feature(enable = "avx2")]
unsafe fn hpass_c<const C: usize, const PAIRS: usize>(src: &[u8], plan: &HPlan, out: &mut [i16]) {
    let pairs = if PAIRS == 0 { plan.pairs } else { PAIRS };
    let mask = if C == 4 {
        _mm256_setr_epi8(
            0, -1, 4, -1, 1, -1, 5, -1, 2, -1, 6, -1, 3, -1, 7, -1, 0, -1, 4, -1, 1, -1, 5, -1, 2, -1, 6, -1, 3, -1, 7,
            -1,
        )
    } else {
        _mm256_setr_epi8(
            0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1, 0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1,
            -1, -1,
        )
    };
    let round = _mm256_set1_epi32(1 << (HSHIFT - 1));
    let (sp, o) = (src.as_ptr(), out.as_mut_ptr());
    let mut wp = plan.weights.as_ptr();
    for x in (0..plan.simd).step_by(2) {
        let s0 = sp.add(*plan.offs.get_unchecked(x) as usize);
        let s1 = sp.add(*plan.offs.get_unchecked(x + 1) as usize);
        let mut acc = round;
        for k in 0..pairs {
            let lo = _mm_loadl_epi64(s0.add(2 * k * C).cast());
            let hi = _mm_loadl_epi64(s1.add(2 * k * C).cast());
            let p = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi);
            let p = _mm256_shuffle_epi8(p, mask);
            let w = _mm256_loadu_si256(wp.cast());
            wp = wp.add(1);
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, w));
        }
        let v = _mm256_srai_epi32::<{ HSHIFT as i32 }>(acc);
        let v = _mm256_packs_epi32(v, v);
        // Pixel x+1 is stored second so that it overwrites the spare fourth sample of x (C=3).
        _mm_storel_epi64(o.add(x * C).cast(), _mm256_castsi256_si128(v));
        _mm_storel_epi64(o.add((x + 1) * C).cast(), _mm256_extracti128_si256::<1>(v));
    }
}

/// The most vertical taps the AVX2 vertical pass keeps in registers' worth of stack.
const MAX_VTAPS: usize = 32;

/// Vertical pass (see `portable::vpass`), 16 samples per step, tap rows interleaved in pairs
/// for `pmaddwd`.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn vpass(ring: &[i16], slots: usize, first: usize, w: &[i16], out: &mut [u8]) {
    let len = out.len();
    let nt = w.len();
    if nt > MAX_VTAPS {
        return portable::vpass(ring, slots, first, w, out);
    }
    let mut rows = [std::ptr::null::<i16>(); MAX_VTAPS + 1];
    for (j, r) in rows.iter_mut().enumerate().take(nt) {
        *r = ring[((first + j) % slots) * len..][..len].as_ptr();
    }
    // An odd last tap is paired with itself at weight zero.
    rows[nt] = rows[nt - 1];
    let mut wv = [_mm256_setzero_si256(); MAX_VTAPS / 2 + 1];
    for (p, v) in wv.iter_mut().enumerate().take(nt.div_ceil(2)) {
        let a = w[2 * p] as u16 as u32;
        let b = w.get(2 * p + 1).copied().unwrap_or(0) as u16 as u32;
        *v = _mm256_set1_epi32((a | (b << 16)) as i32);
    }
    let round = _mm256_set1_epi32(1 << (VSHIFT - 1));
    let o = out.as_mut_ptr();
    let mut i = 0;
    while i + 16 <= len {
        let (mut lo, mut hi) = (round, round);
        for (p, &wp) in wv.iter().enumerate().take(nt.div_ceil(2)) {
            let a = _mm256_loadu_si256(rows[2 * p].add(i).cast());
            let b = _mm256_loadu_si256(rows[2 * p + 1].add(i).cast());
            lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), wp));
            hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), wp));
        }
        let lo = _mm256_srai_epi32::<{ VSHIFT as i32 }>(lo);
        let hi = _mm256_srai_epi32::<{ VSHIFT as i32 }>(hi);
        let v = _mm256_packus_epi16(_mm256_packs_epi32(lo, hi), _mm256_setzero_si256());
        let v = _mm256_permute4x64_epi64::<0b1000>(v);
        _mm_storeu_si128(o.add(i).cast(), _mm256_castsi256_si128(v));
        i += 16;
    }
    portable::vpass_range(ring, slots, first, w, out, i);
}

/// Vertical pass first (see `portable::vfirst`), 16 samples per step.
///
/// # Safety
/// The CPU must support AVX2; rows `s0..s0 + w.len()` exist and `out` holds a row.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn vfirst(src: &ImageView, s0: usize, w: &[i16], out: &mut [i16]) {
    let nt = w.len();
    let len = src.row_bytes();
    if nt > MAX_VTAPS || out.len() < len {
        return portable::vfirst(src, s0, w, out);
    }
    let mut rows = [std::ptr::null::<u8>(); MAX_VTAPS + 1];
    for (j, r) in rows.iter_mut().enumerate().take(nt) {
        *r = src.row(s0 + j).as_ptr();
    }
    // An odd last tap is paired with itself at weight zero.
    rows[nt] = rows[nt - 1];
    let pairs = nt.div_ceil(2);
    let mut wv = [_mm256_setzero_si256(); MAX_VTAPS / 2 + 1];
    for (p, v) in wv.iter_mut().enumerate().take(pairs) {
        let a = w[2 * p] as u16 as u32;
        let b = w.get(2 * p + 1).map_or(0, |&v| v as u16 as u32);
        *v = _mm256_set1_epi32((a | (b << 16)) as i32);
    }
    let round = _mm256_set1_epi32(1 << (HSHIFT - 1));
    let o = out.as_mut_ptr();
    let mut i = 0;
    while i + 16 <= len {
        let (mut lo, mut hi) = (round, round);
        for (p, &wp) in wv.iter().enumerate().take(pairs) {
            let a = _mm256_cvtepu8_epi16(_mm_loadu_si128(rows[2 * p].add(i).cast()));
            let b = _mm256_cvtepu8_epi16(_mm_loadu_si128(rows[2 * p + 1].add(i).cast()));
            lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), wp));
            hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), wp));
        }
        let lo = _mm256_srai_epi32::<{ HSHIFT as i32 }>(lo);
        let hi = _mm256_srai_epi32::<{ HSHIFT as i32 }>(hi);
        _mm256_storeu_si256(o.add(i).cast(), _mm256_packs_epi32(lo, hi));
        i += 16;
    }
    portable::vfirst_range(src, s0, w, out, i);
}

/// The horizontal-last pass prepared for one pair of row widths (C = 3 or 4, even tap count),
/// laid out like [`HPlan`] but reading i16 samples.
pub(crate) struct HLastPlan {
    c: usize,
    pairs: usize,
    /// Pixels `0..simd` take the SIMD loop (their 4-byte stores stay inside the output row;
    /// loads may run into the intermediate row's padding).
    simd: usize,
    /// Intermediate-row sample offset of each output pixel's first tap.
    offs: Vec<u32>,
    weights: Vec<[u32; 8]>,
}

impl HLastPlan {
    pub(crate) fn new(c: usize, taps: &Taps) -> Option<HLastPlan> {
        let n = taps.n;
        // A 16-byte load must cover a tap pair (2c samples) and stay within the row's padding.
        if !matches!(c, 3 | 4) || n & 1 == 1 || super::MID_PAD < 8 {
            return None;
        }
        let dw = taps.start.len();
        let mut simd = dw;
        while simd > 0 && (simd - 1) * c + 4 > dw * c {
            simd -= 1;
        }
        simd &= !1;
        let offs = taps.start.iter().map(|&s| s * c as u32).collect();
        Some(HLastPlan { c, pairs: n / 2, simd, offs, weights: lane_weights(taps, simd) })
    }
}

/// Horizontal pass last (see `portable::hlast`) driven by an [`HLastPlan`].
///
/// # Safety
/// The CPU must support AVX2; `plan` was built from `taps`; `src` holds the intermediate row
/// plus `MID_PAD` samples; `out` holds an output row.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn hlast(src: &[i16], taps: &Taps, plan: &HLastPlan, out: &mut [u8]) {
    match (plan.c, plan.pairs) {
        (3, 1) => hlast_c::<3, 1>(src, plan, out),
        (3, _) => hlast_c::<3, 0>(src, plan, out),
        (_, 1) => hlast_c::<4, 1>(src, plan, out),
        _ => hlast_c::<4, 0>(src, plan, out),
    }
    portable::hlast_range(src, plan.c, taps, plan.simd, out);
}

#[target_feature(enable = "avx2")]
unsafe fn hlast_c<const C: usize, const PAIRS: usize>(src: &[i16], plan: &HLastPlan, out: &mut [u8]) {
    let pairs = if PAIRS == 0 { plan.pairs } else { PAIRS };
    // Interleave the two taps' samples channel by channel into (tap a, tap b) i16 pairs.
    let mask = if C == 4 {
        _mm256_setr_epi8(
            0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15, 0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15,
        )
    } else {
        _mm256_setr_epi8(
            0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11, -1, -1, -1, -1, 0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11, -1, -1, -1, -1,
        )
    };
    let round = _mm256_set1_epi32(1 << (VSHIFT - 1));
    let (sp, o) = (src.as_ptr(), out.as_mut_ptr());
    let mut wp = plan.weights.as_ptr();
    for x in (0..plan.simd).step_by(2) {
        let s0 = sp.add(*plan.offs.get_unchecked(x) as usize);
        let s1 = sp.add(*plan.offs.get_unchecked(x + 1) as usize);
        let mut acc = round;
        for k in 0..pairs {
            let lo = _mm_loadu_si128(s0.add(2 * k * C).cast());
            let hi = _mm_loadu_si128(s1.add(2 * k * C).cast());
            let p = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi);
            let p = _mm256_shuffle_epi8(p, mask);
            let w = _mm256_loadu_si256(wp.cast());
            wp = wp.add(1);
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, w));
        }
        let v = _mm256_srai_epi32::<{ VSHIFT as i32 }>(acc);
        let v = _mm256_packs_epi32(v, v);
        let v = _mm256_packus_epi16(v, v);
        // Pixel x+1 is stored second so that it overwrites the spare fourth byte of x (C=3).
        (o.add(x * C) as *mut i32).write_unaligned(_mm256_cvtsi256_si32(v));
        (o.add((x + 1) * C) as *mut i32).write_unaligned(_mm_cvtsi128_si32(_mm256_extracti128_si256::<1>(v)));
    }
}
