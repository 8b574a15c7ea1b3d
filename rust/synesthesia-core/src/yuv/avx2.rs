//! AVX2: 16 pixels of two rows per step. Each 128-bit lane holds four pixels; a byte shuffle
//! widens them into (R, G) and (B, 1) i16 pairs, and `vpmaddwd` makes the three dot products
//! in i32 with the exact integer coefficients of the reference, so results match it bit for bit.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::*;

const fn masks<const C: usize>() -> ([i8; 16], [i8; 16]) {
    let mut rg = [-1i8; 16];
    let mut b = [-1i8; 16];
    let mut k = 0;
    while k < 4 {
        rg[4 * k] = (k * C) as i8;
        rg[4 * k + 2] = (k * C + 1) as i8;
        b[4 * k] = (k * C + 2) as i8;
        k += 1;
    }
    (rg, b)
}

/// (R, G) and (B, 1) as i16 pairs for the eight pixels at `p` (lane 0: pixels 0-3, lane 1: 4-7).
///
/// # Safety
/// AVX2 must be available and `p .. p + 4*C + 16` readable.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn widen<const C: usize>(p: *const u8, mrg: __m256i, mb: __m256i, one: __m256i) -> (__m256i, __m256i) {
    let lo = _mm_loadu_si128(p as *const __m128i);
    let hi = _mm_loadu_si128(p.add(4 * C) as *const __m128i);
    let x = _mm256_set_m128i(hi, lo);
    (_mm256_shuffle_epi8(x, mrg), _mm256_or_si256(_mm256_shuffle_epi8(x, mb), one))
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn dot(rg: __m256i, b1: __m256i, crg: __m256i, cb: __m256i) -> __m256i {
    _mm256_add_epi32(_mm256_madd_epi16(rg, crg), _mm256_madd_epi16(b1, cb))
}

#[inline]
fn pair(lo: i32, hi: i32) -> i32 {
    (lo & 0xffff) | (hi << 16)
}

/// # Safety
/// AVX2 must be available. The rows are the slices built by [`rgb_to_i420`](super::rgb_to_i420):
/// `r0`/`r1` hold `w*C` bytes, `y0`/`y1` `w`, `u`/`v` `w/2`; every access below stays inside them.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn row_pair<const C: usize>(rows: Rows) {
    let w = rows.y0.len();
    let (mrg, mb) = masks::<C>();
    let mrg = _mm256_broadcastsi128_si256(_mm_loadu_si128(mrg.as_ptr() as *const __m128i));
    let mb = _mm256_broadcastsi128_si256(_mm_loadu_si128(mb.as_ptr() as *const __m128i));
    let one = _mm256_set1_epi32(1 << 16);
    let cy_rg = _mm256_set1_epi32(pair(YR, YG));
    let cy_b = _mm256_set1_epi32(pair(YB, 128 + (16 << 8)));
    let cu_rg = _mm256_set1_epi32(pair(UR, UG));
    let cu_b = _mm256_set1_epi32(pair(UB, 0));
    let cv_rg = _mm256_set1_epi32(pair(VR, VG));
    let cv_b = _mm256_set1_epi32(pair(VB, 0));
    let c_round = _mm256_set1_epi32(512 + (128 << 10));
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let split = _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
    let (r0, r1) = (rows.r0.as_ptr(), rows.r1.as_ptr());
    let len = rows.r0.len();
    let mut x = 0;
    // The last load of a step reads 12*C + 16 bytes from the step's first pixel.
    while x + 16 <= w && x * C + 12 * C + 16 <= len {
        let mut du = [_mm256_setzero_si256(); 2];
        let mut dv = [_mm256_setzero_si256(); 2];
        for (r, src) in [r0, r1].into_iter().enumerate() {
            let mut ys = [_mm256_setzero_si256(); 2];
            for g in 0..2 {
                let (rg, b1) = widen::<C>(src.add((x + 8 * g) * C), mrg, mb, one);
                ys[g] = _mm256_srai_epi32::<8>(dot(rg, b1, cy_rg, cy_b));
                du[g] = _mm256_add_epi32(du[g], dot(rg, b1, cu_rg, cu_b));
                dv[g] = _mm256_add_epi32(dv[g], dot(rg, b1, cv_rg, cv_b));
            }
            let y16 = _mm256_packs_epi32(ys[0], ys[1]);
            let y8 = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(y16, y16), order);
            let dst = if r == 0 { rows.y0.as_mut_ptr() } else { rows.y1.as_mut_ptr() };
            _mm_storeu_si128(dst.add(x) as *mut __m128i, _mm256_castsi256_si128(y8));
        }
        let mut c = [_mm256_setzero_si256(); 2];
        for g in 0..2 {
            // Per lane: [u01, u23, v01, v23] summed over both rows.
            c[g] = _mm256_srai_epi32::<10>(_mm256_add_epi32(_mm256_hadd_epi32(du[g], dv[g]), c_round));
        }
        let c16 = _mm256_packs_epi32(c[0], c[1]);
        let c8 = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(c16, c16), order);
        let uv = _mm_shuffle_epi8(_mm256_castsi256_si128(c8), split);
        _mm_storel_epi64(rows.u.as_mut_ptr().add(x / 2) as *mut __m128i, uv);
        _mm_storel_epi64(rows.v.as_mut_ptr().add(x / 2) as *mut __m128i, _mm_unpackhi_epi64(uv, uv));
        x += 16;
    }
    if x < w {
        super::portable::row_pair::<C>(rows, x);
    }
}
