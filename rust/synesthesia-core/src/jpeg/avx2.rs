//! AVX2 kernels. Each reproduces its counterpart in `portable` exactly: the same integer
//! formulas, regrouped only where integer arithmetic makes the regrouping exact (products
//! summed with `madd` instead of one at a time), with intermediates that provably fit the
//! 16-bit lanes used (see the bounds noted at each step).

use std::arch::x86_64::*;

use super::huffman::Block;
use super::portable::{self, Divisors};
use super::tables::ZIGZAG_STORAGE;

#[inline]
#[target_feature(enable = "avx2")]
fn pair(lo: i32, hi: i32) -> __m256i {
    _mm256_set1_epi32((hi << 16) | (lo & 0xFFFF))
}

// ---- colour conversion ----------------------------------------------------------------------

/// pshufb masks picking, per 128-bit lane of 4 pixels, (R,G) and (B,0) as 16-bit pairs.
#[inline]
#[target_feature(enable = "avx2")]
fn masks(ch: usize) -> (__m256i, __m256i) {
    let s = ch as i8;
    let mut rg = [-1i8; 32];
    let mut b = [-1i8; 32];
    for lane in 0..2 {
        for p in 0..4 {
            let o = lane * 16 + p * 4;
            rg[o] = p as i8 * s;
            rg[o + 2] = p as i8 * s + 1;
            b[o] = p as i8 * s + 2;
        }
    }
    // SAFETY: both arrays hold 32 bytes.
    unsafe { (_mm256_loadu_si256(rg.as_ptr().cast()), _mm256_loadu_si256(b.as_ptr().cast())) }
}

/// Eight pixels at `p`, four per 128-bit lane. Reads 28 bytes for RGB, 32 for RGBA.
///
/// # Safety
/// `p` must be valid for those reads.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load8(p: *const u8, ch: usize) -> __m256i {
    if ch == 3 {
        _mm256_loadu2_m128i(p.add(12).cast(), p.cast())
    } else {
        _mm256_loadu_si256(p.cast())
    }
}

struct Consts {
    m_rg: __m256i,
    m_b: __m256i,
    y_rg: __m256i,
    y_b: __m256i,
    b_one: __m256i,
    cb_rg: __m256i,
    cr_rg: __m256i,
    cr_b: __m256i,
}

#[inline]
#[target_feature(enable = "avx2")]
fn consts(ch: usize) -> Consts {
    let (m_rg, m_b) = masks(ch);
    Consts {
        m_rg,
        m_b,
        // 38470 does not fit a signed 16-bit factor: use 38470 - 65536 and add G back after
        // the shift, which is exact because 65536 * G is a multiple of the divisor.
        y_rg: pair(portable::FIX_Y_R, portable::FIX_Y_G - 65536),
        // (B, 2) * (7471, 16384) supplies the rounding half (2 * 16384 = 32768) for free.
        y_b: pair(portable::FIX_Y_B, 16384),
        b_one: _mm256_set1_epi32(2 << 16),
        cb_rg: pair(-portable::FIX_CB_R, -portable::FIX_CB_G),
        // Cr's 32768 * R does not fit either: compute the negation of its R and G terms.
        cr_rg: pair(-32768, portable::FIX_CR_G),
        cr_b: pair(portable::FIX_CR_B, 0),
    }
}

/// Y of eight pixels as 32-bit lanes, plus the (R,G) pairs and B lanes for the chroma.
#[inline]
#[target_feature(enable = "avx2")]
fn luma8(v: __m256i, k: &Consts) -> (__m256i, __m256i, __m256i) {
    let rg = _mm256_shuffle_epi8(v, k.m_rg);
    let b = _mm256_shuffle_epi8(v, k.m_b);
    let g = _mm256_srli_epi32(rg, 16);
    let s = _mm256_add_epi32(_mm256_madd_epi16(rg, k.y_rg), _mm256_madd_epi16(_mm256_or_si256(b, k.b_one), k.y_b));
    (_mm256_add_epi32(_mm256_srai_epi32(s, 16), g), rg, b)
}

/// Chroma from (R,G) pair sums and B sums of 2^(shift-16) pixels.
#[inline]
#[target_feature(enable = "avx2")]
fn chroma(rg: __m256i, b: __m256i, k: &Consts, off: __m256i, shift: i32) -> (__m256i, __m256i) {
    let cb = _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(rg, k.cb_rg), _mm256_slli_epi32(b, 15)), off);
    let cr = _mm256_sub_epi32(_mm256_sub_epi32(off, _mm256_madd_epi16(rg, k.cr_rg)), _mm256_madd_epi16(b, k.cr_b));
    (_mm256_sra_epi32(cb, _mm_cvtsi32_si128(shift)), _mm256_sra_epi32(cr, _mm_cvtsi32_si128(shift)))
}

/// Sixteen 32-bit lanes (values 0..=255) of `a` then `b` as 16 bytes.
#[inline]
#[target_feature(enable = "avx2")]
fn pack16(a: __m256i, b: __m256i) -> __m128i {
    let w = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
    let u = _mm256_permute4x64_epi64(_mm256_packus_epi16(w, w), 0x08);
    _mm256_castsi256_si128(u)
}

/// Full-resolution conversion (4:4:4) of `w` pixels into rows padded to `pw` samples.
///
/// # Safety
/// AVX2 must be available. `src` holds `w * ch` bytes; `y`, `cb`, `cr` hold `pw` bytes.
#[target_feature(enable = "avx2")]
pub unsafe fn ycc_444_row(src: &[u8], ch: usize, w: usize, pw: usize, y: &mut [u8], cb: &mut [u8], cr: &mut [u8]) {
    assert!(src.len() >= w * ch && y.len() >= pw && cb.len() >= pw && cr.len() >= pw);
    let k = consts(ch);
    let off = _mm256_set1_epi32(portable::CBCR_OFFSET);
    let mut x = 0;
    // 16 pixels a step; an RGB load reads 4 bytes past its 8 pixels.
    while (x + 16) * ch + 4 <= src.len() && x + 16 <= w {
        let p = src.as_ptr().add(x * ch);
        let (ya, rga, ba) = luma8(load8(p, ch), &k);
        let (yb, rgb, bb) = luma8(load8(p.add(8 * ch), ch), &k);
        let (cba, cra) = chroma(rga, ba, &k, off, 16);
        let (cbb, crb) = chroma(rgb, bb, &k, off, 16);
        _mm_storeu_si128(y.as_mut_ptr().add(x).cast(), pack16(ya, yb));
        _mm_storeu_si128(cb.as_mut_ptr().add(x).cast(), pack16(cba, cbb));
        _mm_storeu_si128(cr.as_mut_ptr().add(x).cast(), pack16(cra, crb));
        x += 16;
    }
    portable::ycc_444_row_from(src, ch, w, pw, x, y, cb, cr);
}

/// Luma only, for gray output from colour input.
///
/// # Safety
/// AVX2 must be available. `src` holds `w * ch` bytes; `y` holds `pw` bytes.
#[target_feature(enable = "avx2")]
pub unsafe fn y_row(src: &[u8], ch: usize, w: usize, pw: usize, y: &mut [u8]) {
    assert!(src.len() >= w * ch && y.len() >= pw);
    let k = consts(ch);
    let mut x = 0;
    while (x + 16) * ch + 4 <= src.len() && x + 16 <= w {
        let p = src.as_ptr().add(x * ch);
        let (ya, _, _) = luma8(load8(p, ch), &k);
        let (yb, _, _) = luma8(load8(p.add(8 * ch), ch), &k);
        _mm_storeu_si128(y.as_mut_ptr().add(x).cast(), pack16(ya, yb));
        x += 16;
    }
    portable::y_row_from(src, ch, w, pw, x, y);
}

/// Two source rows to two luma rows and one row of 2x2-averaged chroma (4:2:0; 4:2:2 passes
/// the same row twice, see `portable::ycc_420_rows_from`).
///
/// # Safety
/// AVX2 must be available. `s0`, `s1` hold `w * ch` bytes; `y0`, `y1` hold `pw` bytes and
/// `cb`, `cr` `pw / 2` bytes; `pw` is even.
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn ycc_420_rows(
    s0: &[u8],
    s1: &[u8],
    ch: usize,
    w: usize,
    pw: usize,
    y0: &mut [u8],
    y1: &mut [u8],
    cb: &mut [u8],
    cr: &mut [u8],
) {
    assert!(s0.len() >= w * ch && s1.len() >= w * ch && y0.len() >= pw && y1.len() >= pw);
    assert!(pw.is_multiple_of(2) && cb.len() >= pw / 2 && cr.len() >= pw / 2);
    let k = consts(ch);
    // Sums of four pixels: 1020 at most per channel, so the (R,G) pairs of two rows and two
    // columns add as plain 32-bit lanes without carrying between the halves.
    let off = _mm256_set1_epi32((128 << 18) + (1 << 17) - 1);
    let gather = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let mut x = 0;
    let n = s0.len().min(s1.len());
    while (x + 16) * ch + 4 <= n && x + 16 <= w {
        let p0 = s0.as_ptr().add(x * ch);
        let p1 = s1.as_ptr().add(x * ch);
        let (y0a, rg0a, b0a) = luma8(load8(p0, ch), &k);
        let (y0b, rg0b, b0b) = luma8(load8(p0.add(8 * ch), ch), &k);
        let (y1a, rg1a, b1a) = luma8(load8(p1, ch), &k);
        let (y1b, rg1b, b1b) = luma8(load8(p1.add(8 * ch), ch), &k);
        _mm_storeu_si128(y0.as_mut_ptr().add(x).cast(), pack16(y0a, y0b));
        _mm_storeu_si128(y1.as_mut_ptr().add(x).cast(), pack16(y1a, y1b));
        let rga = _mm256_add_epi32(rg0a, rg1a);
        let rgb = _mm256_add_epi32(rg0b, rg1b);
        let ba = _mm256_add_epi32(b0a, b1a);
        let bb = _mm256_add_epi32(b0b, b1b);
        // Horizontal pairs: lane order becomes a0 a1 b0 b1 | a2 a3 b2 b3 (pairs of pixels).
        let rg = _mm256_permute4x64_epi64(_mm256_hadd_epi32(rga, rgb), 0xD8);
        let b = _mm256_permute4x64_epi64(_mm256_hadd_epi32(ba, bb), 0xD8);
        let (vcb, vcr) = chroma(rg, b, &k, off, 18);
        let w16 = _mm256_packs_epi32(vcb, vcr); // cb0-3 cr0-3 | cb4-7 cr4-7
        let u8s = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(w16, w16), gather);
        let lo = _mm256_castsi256_si128(u8s); // cb0-3 cb4-7 cr0-3 cr4-7
        _mm_storel_epi64(cb.as_mut_ptr().add(x / 2).cast(), lo);
        _mm_storel_epi64(cr.as_mut_ptr().add(x / 2).cast(), _mm_unpackhi_epi64(lo, lo));
        x += 16;
    }
    portable::ycc_420_rows_from(s0, s1, ch, w, pw, x, y0, y1, cb, cr);
}

// ---- DCT and quantization ---------------------------------------------------------------------

/// One 8-point pass over 16 columns (two blocks side by side), 16-bit lanes. Pass 1 gets
/// unshifted samples (0..=255) and folds the level shift into the DC term; every pass-1
/// output is within +-4096 and every pass-2 sum within +-32640 for 8-bit input, so the
/// 16-bit lanes hold them; products and their sums are taken in 32 bits by `madd`.
#[inline]
#[target_feature(enable = "avx2")]
fn dct_pass<const FIRST: bool>(d: [__m256i; 8]) -> [__m256i; 8] {
    let tmp0 = _mm256_add_epi16(d[0], d[7]);
    let tmp7 = _mm256_sub_epi16(d[0], d[7]);
    let tmp1 = _mm256_add_epi16(d[1], d[6]);
    let tmp6 = _mm256_sub_epi16(d[1], d[6]);
    let tmp2 = _mm256_add_epi16(d[2], d[5]);
    let tmp5 = _mm256_sub_epi16(d[2], d[5]);
    let tmp3 = _mm256_add_epi16(d[3], d[4]);
    let tmp4 = _mm256_sub_epi16(d[3], d[4]);
    let tmp10 = _mm256_add_epi16(tmp0, tmp3);
    let tmp13 = _mm256_sub_epi16(tmp0, tmp3);
    let tmp11 = _mm256_add_epi16(tmp1, tmp2);
    let tmp12 = _mm256_sub_epi16(tmp1, tmp2);

    let (o0, o4, n, round) = if FIRST {
        let s = _mm256_add_epi16(_mm256_add_epi16(tmp10, tmp11), _mm256_set1_epi16(-1024));
        (_mm256_slli_epi16(s, 2), _mm256_slli_epi16(_mm256_sub_epi16(tmp10, tmp11), 2), 11, 1 << 10)
    } else {
        let two = _mm256_set1_epi16(2);
        (
            _mm256_srai_epi16(_mm256_add_epi16(_mm256_add_epi16(tmp10, tmp11), two), 2),
            _mm256_srai_epi16(_mm256_add_epi16(_mm256_sub_epi16(tmp10, tmp11), two), 2),
            15,
            1 << 14,
        )
    };
    let r = _mm256_set1_epi32(round);
    let sh = _mm_cvtsi32_si128(n);
    let fin = |lo: __m256i, hi: __m256i| -> __m256i {
        _mm256_packs_epi32(_mm256_sra_epi32(_mm256_add_epi32(lo, r), sh), _mm256_sra_epi32(_mm256_add_epi32(hi, r), sh))
    };
    use portable::*;
    let e_lo = _mm256_unpacklo_epi16(tmp12, tmp13);
    let e_hi = _mm256_unpackhi_epi16(tmp12, tmp13);
    let c2 = pair(F0_541, F0_541 + F0_765);
    let c6 = pair(F0_541 - F1_847, F0_541);
    let o2 = fin(_mm256_madd_epi16(e_lo, c2), _mm256_madd_epi16(e_hi, c2));
    let o6 = fin(_mm256_madd_epi16(e_lo, c6), _mm256_madd_epi16(e_hi, c6));

    // The odd part expanded into one factor per input (z1..z5 distributed out).
    let a_lo = _mm256_unpacklo_epi16(tmp4, tmp5);
    let a_hi = _mm256_unpackhi_epi16(tmp4, tmp5);
    let b_lo = _mm256_unpacklo_epi16(tmp6, tmp7);
    let b_hi = _mm256_unpackhi_epi16(tmp6, tmp7);
    let odd = |c4: i32, c5: i32, c6: i32, c7: i32| -> __m256i {
        let ca = pair(c4, c5);
        let cb = pair(c6, c7);
        fin(
            _mm256_add_epi32(_mm256_madd_epi16(a_lo, ca), _mm256_madd_epi16(b_lo, cb)),
            _mm256_add_epi32(_mm256_madd_epi16(a_hi, ca), _mm256_madd_epi16(b_hi, cb)),
        )
    };
    let o1 = odd(F1_175 - F0_899, F1_175 - F0_390, F1_175, F1_501 - F0_899 - F0_390 + F1_175);
    let o3 = odd(F1_175 - F1_961, F1_175 - F2_562, F3_072 - F2_562 - F1_961 + F1_175, F1_175);
    let o5 = odd(F1_175, F2_053 - F2_562 - F0_390 + F1_175, F1_175 - F2_562, F1_175 - F0_390);
    let o7 = odd(F0_298 - F0_899 - F1_961 + F1_175, F1_175, F1_175 - F1_961, F1_175 - F0_899);
    [o0, o1, o2, o3, o4, o5, o6, o7]
}

/// Transposes the 8x8 16-bit matrix in each 128-bit half.
#[inline]
#[target_feature(enable = "avx2")]
fn transpose(v: [__m256i; 8]) -> [__m256i; 8] {
    let a0 = _mm256_unpacklo_epi16(v[0], v[1]);
    let a1 = _mm256_unpackhi_epi16(v[0], v[1]);
    let a2 = _mm256_unpacklo_epi16(v[2], v[3]);
    let a3 = _mm256_unpackhi_epi16(v[2], v[3]);
    let a4 = _mm256_unpacklo_epi16(v[4], v[5]);
    let a5 = _mm256_unpackhi_epi16(v[4], v[5]);
    let a6 = _mm256_unpacklo_epi16(v[6], v[7]);
    let a7 = _mm256_unpackhi_epi16(v[6], v[7]);
    let b0 = _mm256_unpacklo_epi32(a0, a2);
    let b1 = _mm256_unpackhi_epi32(a0, a2);
    let b2 = _mm256_unpacklo_epi32(a1, a3);
    let b3 = _mm256_unpackhi_epi32(a1, a3);
    let b4 = _mm256_unpacklo_epi32(a4, a6);
    let b5 = _mm256_unpackhi_epi32(a4, a6);
    let b6 = _mm256_unpacklo_epi32(a5, a7);
    let b7 = _mm256_unpackhi_epi32(a5, a7);
    [
        _mm256_unpacklo_epi64(b0, b4),
        _mm256_unpackhi_epi64(b0, b4),
        _mm256_unpacklo_epi64(b1, b5),
        _mm256_unpackhi_epi64(b1, b5),
        _mm256_unpacklo_epi64(b2, b6),
        _mm256_unpackhi_epi64(b2, b6),
        _mm256_unpacklo_epi64(b3, b7),
        _mm256_unpackhi_epi64(b3, b7),
    ]
}

/// pshufb controls that gather the nonzero flags of a block into zigzag order. The flags
/// arrive as `packs(Q0, Q1)`, `packs(Q2, Q3)` (storage order, 128-bit lanes interleaved);
/// `ZZ_SHUF[j][half]` picks the bytes of source lane `j` (broadcast to both halves) that
/// belong in output half `half` (zigzag 0..31, 32..63), 0x80 elsewhere.
const ZZ_SHUF: [[[u8; 32]; 2]; 4] = {
    let mut t = [[[0x80u8; 32]; 2]; 4];
    let mut k = 0;
    while k < 64 {
        let s = ZIGZAG_STORAGE[k] as usize;
        let u = s % 32;
        let lane = (s / 32) * 2 + (u / 8) % 2;
        let byte = (u / 16) * 8 + u % 8;
        t[lane][k / 32][k % 32] = byte as u8;
        k += 1;
    }
    t
};

/// `vpmulhuw` kept opaque: given two in a row, LLVM rewrites them as widening 32-bit
/// multiplies (`vpmulld`), several times slower.
#[inline]
#[target_feature(enable = "avx2")]
fn mulhi(a: __m256i, b: __m256i) -> __m256i {
    let r: __m256i;
    // SAFETY: a register-only AVX2 instruction, and AVX2 is enabled here.
    unsafe {
        std::arch::asm!("vpmulhuw {r}, {a}, {b}", r = lateout(ymm_reg) r, a = in(ymm_reg) a, b = in(ymm_reg) b, options(pure, nomem, nostack, preserves_flags));
    }
    r
}

#[inline]
#[target_feature(enable = "avx2")]
fn quantize_store(c: __m256i, s: usize, dv: &Divisors) -> __m256i {
    // SAFETY: s + 16 <= 64 for every caller; the tables hold 64 entries.
    unsafe {
        let recip = _mm256_loadu_si256(dv.recip.as_ptr().add(s).cast());
        let scale = _mm256_loadu_si256(dv.scale.as_ptr().add(s).cast());
        let bias = _mm256_loadu_si256(dv.bias.as_ptr().add(s).cast());
        let n = _mm256_add_epi16(_mm256_abs_epi16(c), bias);
        let q = mulhi(mulhi(n, recip), scale);
        _mm256_sign_epi16(q, c)
    }
}

#[inline]
#[target_feature(enable = "avx2")]
fn finish_block(q: [__m256i; 4], out: &mut Block) {
    // SAFETY: `coef` is 128 bytes.
    unsafe {
        for (i, v) in q.iter().enumerate() {
            _mm256_storeu_si256(out.coef.as_mut_ptr().add(16 * i).cast(), *v);
        }
    }
    let p01 = _mm256_packs_epi16(q[0], q[1]);
    let p23 = _mm256_packs_epi16(q[2], q[3]);
    let src = [
        _mm256_permute2x128_si256(p01, p01, 0x00),
        _mm256_permute2x128_si256(p01, p01, 0x11),
        _mm256_permute2x128_si256(p23, p23, 0x00),
        _mm256_permute2x128_si256(p23, p23, 0x11),
    ];
    let zero = _mm256_setzero_si256();
    let mut mask = 0u64;
    for half in 0..2 {
        let mut z = zero;
        for (s, ctls) in src.iter().zip(ZZ_SHUF.iter()) {
            // SAFETY: each control is 32 bytes.
            let ctl = unsafe { _mm256_loadu_si256(ctls[half].as_ptr().cast()) };
            z = _mm256_or_si256(z, _mm256_shuffle_epi8(*s, ctl));
        }
        let zeros = _mm256_movemask_epi8(_mm256_cmpeq_epi8(z, zero)) as u32;
        mask |= ((!zeros) as u64) << (32 * half);
    }
    out.mask = mask;
}

/// See `portable::transform_band`; blocks are transformed two at a time.
///
/// # Safety
/// AVX2 must be available. Every row `r < 8` of `band` (at `r * stride`) must be readable
/// for `nbx * 8 + 8` bytes (the planes carry slack past the last block for this).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
pub unsafe fn transform_band(
    band: &[u8],
    stride: usize,
    nbx: usize,
    dv: &Divisors,
    out: &mut [Block],
    h: usize,
    bpm: usize,
    base: usize,
) {
    assert!(band.len() >= 7 * stride + nbx * 8 + 8);
    // h is 1 or 2: shifts and masks, not a division per block.
    assert!(h == 1 || h == 2);
    let hs = h - 1;
    let idx = |bx: usize| (bx >> hs) * bpm + base + (bx & hs);
    assert!(nbx == 0 || idx(nbx - 1) < out.len());
    let mut bx = 0;
    while bx < nbx {
        let p = band.as_ptr().add(bx * 8);
        let mut rows = [_mm256_setzero_si256(); 8];
        for (r, row) in rows.iter_mut().enumerate() {
            *row = _mm256_cvtepu8_epi16(_mm_loadu_si128(p.add(r * stride).cast()));
        }
        let u = dct_pass::<false>(transpose(dct_pass::<true>(rows)));
        let mut qa = [_mm256_setzero_si256(); 4];
        let mut qb = [_mm256_setzero_si256(); 4];
        for i in 0..4 {
            qa[i] = quantize_store(_mm256_permute2x128_si256(u[2 * i], u[2 * i + 1], 0x20), 16 * i, dv);
            qb[i] = quantize_store(_mm256_permute2x128_si256(u[2 * i], u[2 * i + 1], 0x31), 16 * i, dv);
        }
        finish_block(qa, &mut out[idx(bx)]);
        if bx + 1 < nbx {
            finish_block(qb, &mut out[idx(bx + 1)]);
        }
        bx += 2;
    }
}
