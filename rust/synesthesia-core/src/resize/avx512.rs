//! AVX-512 kernels. The box kernel also needs VBMI (`vpermt2b`, checked at run time on top of
//! the level): one cross-lane byte permute puts a whole chunk of pixels where `pmaddubsw`
//! wants them, for every channel count, and masked loads and stores handle row ends without
//! a scalar tail. Without VBMI the AVX2 kernel runs instead.

use std::arch::x86_64::*;

use super::tables::{HSHIFT, VSHIFT};
use super::BoxShape;
use crate::image::{ImageView, ImageViewMut};

/// # Safety
/// The CPU must support AVX-512 F/BW/VL/DQ (`SimdLevel::Avx512.is_available()`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(crate) unsafe fn box_filter(src: &ImageView, dst: &mut ImageViewMut, b: BoxShape) -> bool {
    if !is_x86_feature_detected!("avx512vbmi") {
        return false;
    }
    // Monomorphised per box size so the row loop and the fold unroll.
    // SAFETY: VBMI was just detected; the caller vouched for the rest.
    unsafe {
        match (b.bx, b.by) {
            (1, _) => box_vbmi::<1, 1>(src, dst, b),
            (2, 2) => box_vbmi::<2, 2>(src, dst, b),
            (2, _) => box_vbmi::<2, 4>(src, dst, b),
            (4, 2) => box_vbmi::<4, 2>(src, dst, b),
            _ => box_vbmi::<4, 4>(src, dst, b),
        }
    }
    true
}

/// How one chunk of `p` output pixels is gathered from up to 128 source bytes starting at its
/// first box column.
struct Plan {
    p: usize,
    span: usize,
    perm: [u8; 64],
}

/// Sample `t = o * c + ch` of output `o` in the permuted chunk:
/// - `bx == 1`: byte `t` is the picked pixel.
/// - `bx == 2`: i16 `t` sums the two box columns.
/// - `bx == 4`: i16 `t` sums columns 0-1 and i16 `16 + t` columns 2-3.
fn plan(c: usize, b: BoxShape) -> Plan {
    let samples = match b.bx {
        1 => 64,
        2 => 32,
        _ => 16,
    };
    let mut p = samples / c;
    while ((p - 1) * b.fx + b.bx) * c > 128 {
        p -= 1;
    }
    let mut perm = [0u8; 64];
    let at = |o: usize, col: usize, ch: usize| ((o * b.fx + col) * c + ch) as u8;
    for o in 0..p {
        for ch in 0..c {
            let t = o * c + ch;
            match b.bx {
                1 => perm[t] = at(o, 0, ch),
                2 => {
                    perm[2 * t] = at(o, 0, ch);
                    perm[2 * t + 1] = at(o, 1, ch);
                }
                _ => {
                    perm[2 * t] = at(o, 0, ch);
                    perm[2 * t + 1] = at(o, 1, ch);
                    perm[32 + 2 * t] = at(o, 2, ch);
                    perm[32 + 2 * t + 1] = at(o, 3, ch);
                }
            }
        }
    }
    Plan { p, span: ((p - 1) * b.fx + b.bx) * c, perm }
}

#[inline]
fn mask64(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// # Safety
/// The CPU must support AVX-512 F/BW/VL/DQ and VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi")]
unsafe fn box_vbmi<const BX: usize, const BY: usize>(src: &ImageView, dst: &mut ImageViewMut, b: BoxShape) {
    debug_assert_eq!((b.bx, b.by), (BX, BY));
    let c = src.channels();
    let (dw, dh) = (dst.width(), dst.height());
    let pl = plan(c, b);
    let idx = _mm512_loadu_si512(pl.perm.as_ptr().cast());
    let two = pl.span > 64;
    let ones = _mm512_set1_epi8(1);
    let n = BX * BY;
    let round = _mm512_set1_epi16((n / 2) as i16);
    let shift = _mm_cvtsi32_si128(n.trailing_zeros() as i32);
    let in_len = src.width() * c;
    // Masked-off bytes are never accessed, so a chunk may hang over the end of the row (and of
    // the buffer); the pointers are formed with wrapping arithmetic for the same reason.
    let load = |row: &[u8], base: usize, full: bool| {
        let p = row.as_ptr().wrapping_add(base);
        let (m0, m1) = if full {
            (u64::MAX, u64::MAX)
        } else {
            let avail = in_len - base;
            (mask64(avail), mask64(avail.saturating_sub(64)))
        };
        let lo = _mm512_maskz_loadu_epi8(m0, p.cast());
        if two {
            let hi = _mm512_maskz_loadu_epi8(m1, p.wrapping_add(64).cast());
            _mm512_permutex2var_epi8(lo, idx, hi)
        } else {
            _mm512_permutexvar_epi8(idx, lo)
        }
    };
    // Chunks before `fast` load their whole window from inside the row and store a whole
    // register inside the output row (the next chunk overwrites the spare bytes), so they
    // skip the mask arithmetic.
    let stored = if BX == 1 { 64 } else { 32 };
    let window = if two { 128 } else { 64 };
    let mut fast = 0;
    while fast + pl.p <= dw && (fast * b.fx + b.ox) * c + window <= in_len && fast * c + stored <= dw * c {
        fast += pl.p;
    }
    for y in 0..dh {
        let rows: [&[u8]; BY] = std::array::from_fn(|j| src.row(b.fy * y + b.oy + j));
        let out = dst.row_mut(y).as_mut_ptr();
        let mut x0 = 0;
        while x0 < dw {
            let full = x0 < fast;
            let base = (x0 * b.fx + b.ox) * c;
            let keep = if full { u64::MAX } else { mask64(pl.p.min(dw - x0) * c) };
            let o = out.add(x0 * c).cast();
            if BX == 1 {
                _mm512_mask_storeu_epi8(o, keep, load(rows[0], base, full));
            } else {
                let mut acc = _mm512_setzero_si512();
                for r in &rows {
                    acc = _mm512_add_epi16(acc, _mm512_maddubs_epi16(load(r, base, full), ones));
                }
                if BX == 4 {
                    acc = _mm512_add_epi16(acc, _mm512_shuffle_i64x2::<0xEE>(acc, acc));
                }
                let acc = _mm512_srl_epi16(_mm512_add_epi16(acc, round), shift);
                _mm256_mask_storeu_epi8(o, keep as u32, _mm512_cvtepi16_epi8(acc));
            }
            x0 += pl.p;
        }
    }
}

/// A horizontal pass prepared for one source width: the output row is cut into chunks of up to
/// 16 samples whose taps all lie within 128 source bytes, and each (chunk, tap pair) gets a
/// byte permute that lays the taps out as zero-extended i16 pairs and the matching `pmaddwd`
/// weights. One permute, one multiply-add per tap pair then yields 16 samples.
pub(crate) struct HPlan {
    c: usize,
    pairs: usize,
    chunks: Vec<Chunk>,
    idx: Vec<[u8; 64]>,
    weights: Vec<[u32; 16]>,
}

struct Chunk {
    /// Byte offset of the chunk's window in the source row.
    base: usize,
    /// First output sample.
    first: usize,
    /// The window's bytes that lie inside the row (low and high 64 bytes), and the chunk's
    /// output samples.
    load: [u64; 2],
    store: u16,
}

impl HPlan {
    /// None when some pixel's taps alone span more than 128 bytes (extreme shrinks); the AVX2
    /// pass handles those.
    pub(crate) fn new(c: usize, taps: &super::tables::Taps) -> Option<HPlan> {
        let n = taps.n;
        // An odd tap count gets a phantom tap of weight zero; it may point past the row end,
        // where the masked loads read zeros.
        let pairs = n.div_ceil(2);
        let dw = taps.start.len();
        let per = 16 / c;
        let mut plan = HPlan { c, pairs, chunks: Vec::new(), idx: Vec::new(), weights: Vec::new() };
        let mut x = 0;
        while x < dw {
            let base = taps.start[x] as usize;
            let mut p = 0;
            while p < per && x + p < dw && (taps.start[x + p] as usize + 2 * pairs - base) * c <= 128 {
                p += 1;
            }
            if p == 0 {
                return None;
            }
            for pair in 0..pairs {
                let mut idx = [0u8; 64];
                let mut w = [0u32; 16];
                for o in 0..p {
                    let first_tap = taps.start[x + o] as usize - base + 2 * pair;
                    let tw = &taps.weights[(x + o) * n..][..n];
                    let wa = tw[2 * pair] as u16 as u32;
                    let wb = tw.get(2 * pair + 1).map_or(0, |&v| v as u16 as u32);
                    for ch in 0..c {
                        let t = o * c + ch;
                        idx[4 * t] = (first_tap * c + ch) as u8;
                        idx[4 * t + 2] = ((first_tap + 1) * c + ch) as u8;
                        w[t] = wa | (wb << 16);
                    }
                }
                plan.idx.push(idx);
                plan.weights.push(w);
            }
            let avail = (taps.src - base) * c;
            plan.chunks.push(Chunk {
                base: base * c,
                first: x * c,
                load: [mask64(avail), mask64(avail.saturating_sub(64))],
                store: mask64(p * c) as u16,
            });
            x += p;
        }
        Some(plan)
    }
}

/// Horizontal pass (see `portable::hpass`) driven by an [`HPlan`] for this source row width.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/DQ and VBMI; `plan` was built for a row of
/// `src.len() / c` source pixels and `out.len() / c` output pixels.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi")]
pub(crate) unsafe fn hpass(src: &[u8], plan: &HPlan, out: &mut [i16]) {
    debug_assert_eq!(out.len() % plan.c, 0);
    let round = _mm512_set1_epi32(1 << (HSHIFT - 1));
    let o = out.as_mut_ptr();
    for (ci, ch) in plan.chunks.iter().enumerate() {
        // Masked-off bytes are never accessed, hence the wrapping pointer arithmetic.
        let p = src.as_ptr().wrapping_add(ch.base);
        let lo = _mm512_maskz_loadu_epi8(ch.load[0], p.cast());
        let hi = _mm512_maskz_loadu_epi8(ch.load[1], p.wrapping_add(64).cast());
        let mut acc = round;
        for k in ci * plan.pairs..(ci + 1) * plan.pairs {
            let idx = _mm512_loadu_si512(plan.idx.get_unchecked(k).as_ptr().cast());
            let w = _mm512_loadu_si512(plan.weights.get_unchecked(k).as_ptr().cast());
            // Odd bytes masked to zero: the permute also zero-extends the taps to i16.
            let v = _mm512_maskz_permutex2var_epi8(0x5555_5555_5555_5555, lo, idx, hi);
            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(v, w));
        }
        let v = _mm512_cvtepi32_epi16(_mm512_srai_epi32::<{ HSHIFT }>(acc));
        _mm256_mask_storeu_epi16(o.add(ch.first).cast(), ch.store, v);
    }
}

/// Vertical pass (see `portable::vpass`), 32 samples per step; masked loads and stores cover
/// the row end.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/DQ.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(crate) unsafe fn vpass(ring: &[i16], slots: usize, first: usize, w: &[i16], out: &mut [u8]) {
    const MAX_TAPS: usize = 32;
    let len = out.len();
    let nt = w.len();
    if nt > MAX_TAPS {
        return super::portable::vpass(ring, slots, first, w, out);
    }
    let mut rows = [std::ptr::null::<i16>(); MAX_TAPS + 1];
    for (j, r) in rows.iter_mut().enumerate().take(nt) {
        *r = ring[((first + j) % slots) * len..][..len].as_ptr();
    }
    // An odd last tap is paired with itself at weight zero.
    rows[nt] = rows[nt - 1];
    let pairs = nt.div_ceil(2);
    let mut wv = [_mm512_setzero_si512(); MAX_TAPS / 2];
    for (p, v) in wv.iter_mut().enumerate().take(pairs) {
        let a = w[2 * p] as u16 as u32;
        let b = w.get(2 * p + 1).map_or(0, |&v| v as u16 as u32);
        *v = _mm512_set1_epi32((a | (b << 16)) as i32);
    }
    let round = _mm512_set1_epi32(1 << (VSHIFT - 1));
    let o = out.as_mut_ptr();
    let mut i = 0;
    while i < len {
        let m = mask64(len - i) as u32;
        let (mut lo, mut hi) = (round, round);
        for (p, &wp) in wv.iter().enumerate().take(pairs) {
            let a = _mm512_maskz_loadu_epi16(m, rows[2 * p].wrapping_add(i).cast());
            let b = _mm512_maskz_loadu_epi16(m, rows[2 * p + 1].wrapping_add(i).cast());
            lo = _mm512_add_epi32(lo, _mm512_madd_epi16(_mm512_unpacklo_epi16(a, b), wp));
            hi = _mm512_add_epi32(hi, _mm512_madd_epi16(_mm512_unpackhi_epi16(a, b), wp));
        }
        let lo = _mm512_srai_epi32::<{ VSHIFT }>(lo);
        let hi = _mm512_srai_epi32::<{ VSHIFT }>(hi);
        // Results are 0..=255, so narrowing i16 -> u8 without saturation is exact.
        let v = _mm512_cvtepi16_epi8(_mm512_packs_epi32(lo, hi));
        _mm256_mask_storeu_epi8(o.add(i).cast(), m, v);
        i += 32;
    }
}

/// Vertical pass first (see `portable::vfirst`), 32 samples per step; masked loads and stores
/// cover the row end.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/DQ; rows `s0..s0 + w.len()` exist and `out` holds a
/// row.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(crate) unsafe fn vfirst(src: &ImageView, s0: usize, w: &[i16], out: &mut [i16]) {
    const MAX_TAPS: usize = 32;
    let nt = w.len();
    let len = src.row_bytes();
    if nt > MAX_TAPS || out.len() < len {
        return super::portable::vfirst(src, s0, w, out);
    }
    let mut rows = [std::ptr::null::<u8>(); MAX_TAPS + 1];
    for (j, r) in rows.iter_mut().enumerate().take(nt) {
        *r = src.row(s0 + j).as_ptr();
    }
    // An odd last tap is paired with itself at weight zero.
    rows[nt] = rows[nt - 1];
    let pairs = nt.div_ceil(2);
    let mut wv = [_mm512_setzero_si512(); MAX_TAPS / 2];
    for (p, v) in wv.iter_mut().enumerate().take(pairs) {
        let a = w[2 * p] as u16 as u32;
        let b = w.get(2 * p + 1).map_or(0, |&v| v as u16 as u32);
        *v = _mm512_set1_epi32((a | (b << 16)) as i32);
    }
    let round = _mm512_set1_epi32(1 << (HSHIFT - 1));
    let o = out.as_mut_ptr();
    let mut i = 0;
    while i < len {
        let m = mask64(len - i) as u32;
        let (mut lo, mut hi) = (round, round);
        for (p, &wp) in wv.iter().enumerate().take(pairs) {
            let a = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, rows[2 * p].wrapping_add(i).cast()));
            let b = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, rows[2 * p + 1].wrapping_add(i).cast()));
            lo = _mm512_add_epi32(lo, _mm512_madd_epi16(_mm512_unpacklo_epi16(a, b), wp));
            hi = _mm512_add_epi32(hi, _mm512_madd_epi16(_mm512_unpackhi_epi16(a, b), wp));
        }
        let lo = _mm512_srai_epi32::<{ HSHIFT }>(lo);
        let hi = _mm512_srai_epi32::<{ HSHIFT }>(hi);
        _mm512_mask_storeu_epi16(o.add(i).cast(), m, _mm512_packs_epi32(lo, hi));
        i += 32;
    }
}

/// The horizontal-last pass prepared for one pair of row widths: like [`HPlan`], but the
/// permutes pick whole i16 samples (two bytes each) from a 128-byte window of the
/// intermediate row.
pub(crate) struct HLastPlan {
    pairs: usize,
    chunks: Vec<LastChunk>,
    idx: Vec<[u8; 64]>,
    weights: Vec<[u32; 16]>,
}

struct LastChunk {
    /// Byte offset of the window in the intermediate row.
    base: usize,
    /// First output byte and the chunk's output bytes.
    first: usize,
    store: u16,
}

impl HLastPlan {
    /// None when some pixel's taps alone span more than the window (extreme shrinks).
    pub(crate) fn new(c: usize, taps: &super::tables::Taps) -> Option<HLastPlan> {
        // The window is read with plain 128-byte loads, which the row's padding must cover.
        if super::MID_PAD * 2 < 128 {
            return None;
        }
        let n = taps.n;
        // An odd tap count gets a phantom tap of weight zero, reading padding or a real sample.
        let pairs = n.div_ceil(2);
        let dw = taps.start.len();
        let per = 16 / c;
        let mut plan = HLastPlan { pairs, chunks: Vec::new(), idx: Vec::new(), weights: Vec::new() };
        let mut x = 0;
        while x < dw {
            let base = taps.start[x] as usize;
            let mut p = 0;
            while p < per && x + p < dw && (taps.start[x + p] as usize + 2 * pairs - base) * c * 2 <= 128 {
                p += 1;
            }
            if p == 0 {
                return None;
            }
            for pair in 0..pairs {
                let mut idx = [0u8; 64];
                let mut w = [0u32; 16];
                for o in 0..p {
                    let first_tap = taps.start[x + o] as usize - base + 2 * pair;
                    let tw = &taps.weights[(x + o) * n..][..n];
                    let wa = tw[2 * pair] as u16 as u32;
                    let wb = tw.get(2 * pair + 1).map_or(0, |&v| v as u16 as u32);
                    for ch in 0..c {
                        let t = o * c + ch;
                        let a = ((first_tap * c + ch) * 2) as u8;
                        let b = (((first_tap + 1) * c + ch) * 2) as u8;
                        idx[4 * t..4 * t + 4].copy_from_slice(&[a, a + 1, b, b + 1]);
                        w[t] = wa | (wb << 16);
                    }
                }
                plan.idx.push(idx);
                plan.weights.push(w);
            }
            plan.chunks.push(LastChunk { base: base * c * 2, first: x * c, store: mask64(p * c) as u16 });
            x += p;
        }
        Some(plan)
    }
}

/// Horizontal pass last (see `portable::hlast`) driven by an [`HLastPlan`].
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/DQ and VBMI; `plan` was built for this call's widths;
/// `src` holds the intermediate row plus `MID_PAD` samples; `out` holds an output row.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi")]
pub(crate) unsafe fn hlast(src: &[i16], plan: &HLastPlan, out: &mut [u8]) {
    let round = _mm512_set1_epi32(1 << (VSHIFT - 1));
    let (sp, o) = (src.as_ptr() as *const u8, out.as_mut_ptr());
    for (ci, ch) in plan.chunks.iter().enumerate() {
        let lo = _mm512_loadu_si512(sp.add(ch.base).cast());
        let hi = _mm512_loadu_si512(sp.add(ch.base + 64).cast());
        let mut acc = round;
        for k in ci * plan.pairs..(ci + 1) * plan.pairs {
            let idx = _mm512_loadu_si512(plan.idx.get_unchecked(k).as_ptr().cast());
            let w = _mm512_loadu_si512(plan.weights.get_unchecked(k).as_ptr().cast());
            let v = _mm512_permutex2var_epi8(lo, idx, hi);
            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(v, w));
        }
        // Results are 0..=255, so narrowing i32 -> u8 without saturation is exact.
        let v = _mm512_cvtepi32_epi8(_mm512_srai_epi32::<{ VSHIFT }>(acc));
        _mm_mask_storeu_epi8(o.add(ch.first).cast(), ch.store, v);
    }
}
