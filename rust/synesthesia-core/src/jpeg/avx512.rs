//! AVX-512 (F + BW) forward DCT and quantization: the AVX2 kernel widened to four blocks per
//! step, with the zigzag nonzero mask taken from a two-source word permute. Colour conversion
//! and Huffman coding stay on their AVX2/BMI paths, where 512-bit vectors measured no gain.
//! Same arithmetic as `avx2::dct_pass` (see the bounds there), so the same bits as `portable`.

use std::arch::x86_64::*;

use super::huffman::Block;
use super::portable::{self, Divisors};
use super::tables::ZIGZAG_STORAGE;

#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn pair(lo: i32, hi: i32) -> __m512i {
    _mm512_set1_epi32((hi << 16) | (lo & 0xFFFF))
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn dct_pass<const FIRST: bool>(d: [__m512i; 8]) -> [__m512i; 8] {
    let tmp0 = _mm512_add_epi16(d[0], d[7]);
    let tmp7 = _mm512_sub_epi16(d[0], d[7]);
    let tmp1 = _mm512_add_epi16(d[1], d[6]);
    let tmp6 = _mm512_sub_epi16(d[1], d[6]);
    let tmp2 = _mm512_add_epi16(d[2], d[5]);
    let tmp5 = _mm512_sub_epi16(d[2], d[5]);
    let tmp3 = _mm512_add_epi16(d[3], d[4]);
    let tmp4 = _mm512_sub_epi16(d[3], d[4]);
    let tmp10 = _mm512_add_epi16(tmp0, tmp3);
    let tmp13 = _mm512_sub_epi16(tmp0, tmp3);
    let tmp11 = _mm512_add_epi16(tmp1, tmp2);
    let tmp12 = _mm512_sub_epi16(tmp1, tmp2);

    let (o0, o4, n, round) = if FIRST {
        let s = _mm512_add_epi16(_mm512_add_epi16(tmp10, tmp11), _mm512_set1_epi16(-1024));
        (_mm512_slli_epi16::<2>(s), _mm512_slli_epi16::<2>(_mm512_sub_epi16(tmp10, tmp11)), 11, 1 << 10)
    } else {
        let two = _mm512_set1_epi16(2);
        (
            _mm512_srai_epi16::<2>(_mm512_add_epi16(_mm512_add_epi16(tmp10, tmp11), two)),
            _mm512_srai_epi16::<2>(_mm512_add_epi16(_mm512_sub_epi16(tmp10, tmp11), two)),
            15,
            1 << 14,
        )
    };
    let r = _mm512_set1_epi32(round);
    let sh = _mm_cvtsi32_si128(n);
    let fin = |lo: __m512i, hi: __m512i| -> __m512i {
        _mm512_packs_epi32(_mm512_sra_epi32(_mm512_add_epi32(lo, r), sh), _mm512_sra_epi32(_mm512_add_epi32(hi, r), sh))
    };
    use portable::*;
    let e_lo = _mm512_unpacklo_epi16(tmp12, tmp13);
    let e_hi = _mm512_unpackhi_epi16(tmp12, tmp13);
    let c2 = pair(F0_541, F0_541 + F0_765);
    let c6 = pair(F0_541 - F1_847, F0_541);
    let o2 = fin(_mm512_madd_epi16(e_lo, c2), _mm512_madd_epi16(e_hi, c2));
    let o6 = fin(_mm512_madd_epi16(e_lo, c6), _mm512_madd_epi16(e_hi, c6));

    let a_lo = _mm512_unpacklo_epi16(tmp4, tmp5);
    let a_hi = _mm512_unpackhi_epi16(tmp4, tmp5);
    let b_lo = _mm512_unpacklo_epi16(tmp6, tmp7);
    let b_hi = _mm512_unpackhi_epi16(tmp6, tmp7);
    let odd = |c4: i32, c5: i32, c6: i32, c7: i32| -> __m512i {
        let ca = pair(c4, c5);
        let cb = pair(c6, c7);
        fin(
            _mm512_add_epi32(_mm512_madd_epi16(a_lo, ca), _mm512_madd_epi16(b_lo, cb)),
            _mm512_add_epi32(_mm512_madd_epi16(a_hi, ca), _mm512_madd_epi16(b_hi, cb)),
        )
    };
    let o1 = odd(F1_175 - F0_899, F1_175 - F0_390, F1_175, F1_501 - F0_899 - F0_390 + F1_175);
    let o3 = odd(F1_175 - F1_961, F1_175 - F2_562, F3_072 - F2_562 - F1_961 + F1_175, F1_175);
    let o5 = odd(F1_175, F2_053 - F2_562 - F0_390 + F1_175, F1_175 - F2_562, F1_175 - F0_390);
    let o7 = odd(F0_298 - F0_899 - F1_961 + F1_175, F1_175, F1_175 - F1_961, F1_175 - F0_899);
    [o0, o1, o2, o3, o4, o5, o6, o7]
}

/// Transposes the 8x8 16-bit matrix in each 128-bit lane.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn transpose(v: [__m512i; 8]) -> [__m512i; 8] {
    let a0 = _mm512_unpacklo_epi16(v[0], v[1]);
    let a1 = _mm512_unpackhi_epi16(v[0], v[1]);
    let a2 = _mm512_unpacklo_epi16(v[2], v[3]);
    let a3 = _mm512_unpackhi_epi16(v[2], v[3]);
    let a4 = _mm512_unpacklo_epi16(v[4], v[5]);
    let a5 = _mm512_unpackhi_epi16(v[4], v[5]);
    let a6 = _mm512_unpacklo_epi16(v[6], v[7]);
    let a7 = _mm512_unpackhi_epi16(v[6], v[7]);
    let b0 = _mm512_unpacklo_epi32(a0, a2);
    let b1 = _mm512_unpackhi_epi32(a0, a2);
    let b2 = _mm512_unpacklo_epi32(a1, a3);
    let b3 = _mm512_unpackhi_epi32(a1, a3);
    let b4 = _mm512_unpacklo_epi32(a4, a6);
    let b5 = _mm512_unpackhi_epi32(a4, a6);
    let b6 = _mm512_unpacklo_epi32(a5, a7);
    let b7 = _mm512_unpackhi_epi32(a5, a7);
    [
        _mm512_unpacklo_epi64(b0, b4),
        _mm512_unpackhi_epi64(b0, b4),
        _mm512_unpacklo_epi64(b1, b5),
        _mm512_unpackhi_epi64(b1, b5),
        _mm512_unpacklo_epi64(b2, b6),
        _mm512_unpackhi_epi64(b2, b6),
        _mm512_unpacklo_epi64(b3, b7),
        _mm512_unpackhi_epi64(b3, b7),
    ]
}

/// Word indices (into the concatenated storage-order halves) of zigzag positions 0..31 and
/// 32..63, for `vpermt2w`.
const ZZ_IDX: [[u16; 32]; 2] = {
    let mut t = [[0u16; 32]; 2];
    let mut k = 0;
    while k < 64 {
        t[k / 32][k % 32] = ZIGZAG_STORAGE[k] as u16;
        k += 1;
    }
    t
};

/// Gathers 128-bit lane `j` of four vectors into one: the 4x4 lane transpose that turns
/// "frequency u of four blocks" into "32 coefficients of one block".
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn lanes4(u: &[__m512i]) -> [__m512i; 4] {
    let t0 = _mm512_shuffle_i64x2::<0x44>(u[0], u[1]);
    let t1 = _mm512_shuffle_i64x2::<0xEE>(u[0], u[1]);
    let t2 = _mm512_shuffle_i64x2::<0x44>(u[2], u[3]);
    let t3 = _mm512_shuffle_i64x2::<0xEE>(u[2], u[3]);
    [
        _mm512_shuffle_i64x2::<0x88>(t0, t2),
        _mm512_shuffle_i64x2::<0xDD>(t0, t2),
        _mm512_shuffle_i64x2::<0x88>(t1, t3),
        _mm512_shuffle_i64x2::<0xDD>(t1, t3),
    ]
}

/// See `portable::transform_band`; blocks are transformed four at a time.
///
/// # Safety
/// AVX-512 F and BW must be available. Every row `r < 8` of `band` (at `r * stride`) must be
/// readable for `nbx.next_multiple_of(4) * 8` bytes (the planes carry slack for this).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw")]
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
    assert!(band.len() >= 7 * stride + nbx.next_multiple_of(4) * 8);
    // h is 1 or 2: shifts and masks, not a division per block.
    assert!(h == 1 || h == 2);
    let hs = h - 1;
    let idx = |bx: usize| (bx >> hs) * bpm + base + (bx & hs);
    assert!(nbx == 0 || idx(nbx - 1) < out.len());
    let load = |a: &[u16; 64], i: usize| _mm512_loadu_si512(a.as_ptr().add(32 * i).cast());
    let recip = [load(&dv.recip, 0), load(&dv.recip, 1)];
    let shift = [load(&dv.shift, 0), load(&dv.shift, 1)];
    let bias = [load(&dv.bias, 0), load(&dv.bias, 1)];
    let zz0 = _mm512_loadu_si512(ZZ_IDX[0].as_ptr().cast());
    let zz1 = _mm512_loadu_si512(ZZ_IDX[1].as_ptr().cast());
    let zero = _mm512_setzero_si512();
    let mut bx = 0;
    while bx < nbx {
        let p = band.as_ptr().add(bx * 8);
        let mut rows = [zero; 8];
        for (r, row) in rows.iter_mut().enumerate() {
            *row = _mm512_cvtepu8_epi16(_mm256_loadu_si256(p.add(r * stride).cast()));
        }
        let u = dct_pass::<false>(transpose(dct_pass::<true>(rows)));
        let lo = lanes4(&u[..4]);
        let hi = lanes4(&u[4..]);
        for j in 0..4.min(nbx - bx) {
            let mut q = [lo[j], hi[j]];
            for (i, c) in q.iter_mut().enumerate() {
                let neg = _mm512_movepi16_mask(*c);
                let n = _mm512_add_epi16(_mm512_abs_epi16(*c), bias[i]);
                // `>> s` where the other kernels multiply by 2^(16-s) and keep the high half.
                let m = _mm512_srlv_epi16(_mm512_mulhi_epu16(n, recip[i]), shift[i]);
                *c = _mm512_mask_sub_epi16(m, neg, zero, m);
            }
            let blk = &mut out[idx(bx + j)];
            _mm512_storeu_si512(blk.coef.as_mut_ptr().cast(), q[0]);
            _mm512_storeu_si512(blk.coef.as_mut_ptr().add(32).cast(), q[1]);
            let z0 = _mm512_permutex2var_epi16(q[0], zz0, q[1]);
            let z1 = _mm512_permutex2var_epi16(q[0], zz1, q[1]);
            blk.mask = _mm512_test_epi16_mask(z0, z0) as u64 | ((_mm512_test_epi16_mask(z1, z1) as u64) << 32);
        }
        bx += 4;
    }
}

// ---- colour conversion (AVX-512 VBMI) ----------------------------------------------------------

/// `vpermb` controls and zeroing masks that spread 16 pixels (RGB or RGBA bytes) into
/// (R,G) and (B,0) 16-bit pairs, one pixel per 32-bit lane.
fn spread(ch: usize) -> ([u8; 64], u64, [u8; 64], u64) {
    let (mut rg, mut b) = ([0u8; 64], [0u8; 64]);
    let (mut krg, mut kb) = (0u64, 0u64);
    for p in 0..16 {
        rg[4 * p] = (ch * p) as u8;
        rg[4 * p + 2] = (ch * p + 1) as u8;
        b[4 * p] = (ch * p + 2) as u8;
        krg |= (1 << (4 * p)) | (1 << (4 * p + 2));
        kb |= 1 << (4 * p);
    }
    (rg, krg, b, kb)
}

/// What both colour converters load once per call: the byte shuffles that spread `ch`-byte
/// pixels into (R,G) pairs and B lanes, their masks, and the fixed-point factors.
struct Ycc {
    rg_idx: __m512i,
    krg: u64,
    b_idx: __m512i,
    kb: u64,
    y_rg: __m512i,
    y_b: __m512i,
    b_one: __m512i,
    cb_rg: __m512i,
    cr_rg: __m512i,
    cr_b: __m512i,
}

impl Ycc {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn new(ch: usize) -> Ycc {
        let (rg_idx, krg, b_idx, kb) = spread(ch);
        Ycc {
            // SAFETY: both tables are 64 bytes, one unaligned 512-bit load each.
            rg_idx: unsafe { _mm512_loadu_si512(rg_idx.as_ptr().cast()) },
            krg,
            b_idx: unsafe { _mm512_loadu_si512(b_idx.as_ptr().cast()) },
            kb,
            y_rg: pair(portable::FIX_Y_R, portable::FIX_Y_G - 65536),
            y_b: pair(portable::FIX_Y_B, 16384),
            b_one: _mm512_set1_epi32(2 << 16),
            cb_rg: pair(-portable::FIX_CB_R, -portable::FIX_CB_G),
            cr_rg: pair(-32768, portable::FIX_CR_G),
            cr_b: pair(portable::FIX_CR_B, 0),
        }
    }
}

/// The AVX-512 VBMI version of `avx2::ycc_420_rows` (same formulas and rounding): 32 pixels
/// of two rows a step, pixels gathered into lanes by one `vpermb` each.
///
/// # Safety
/// AVX-512 F, BW, VL and VBMI must be available. Lengths as for `avx2::ycc_420_rows`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
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
    let Ycc { rg_idx, krg, b_idx, kb, y_rg, y_b, b_one, cb_rg, cr_rg, cr_b } = Ycc::new(ch);
    let off = _mm512_set1_epi32((128 << 18) + (1 << 17) - 1);
    // Y of 16 pixels (32-bit lanes), with their (R,G) pairs and B lanes for the chroma sums.
    let px16 = |p: *const u8, k: u64| -> (__m512i, __m512i, __m512i) {
        // Masked-off bytes are neither read nor faulted on.
        let v = _mm512_maskz_loadu_epi8(k, p.cast());
        let rg = _mm512_maskz_permutexvar_epi8(krg, rg_idx, v);
        let b = _mm512_maskz_permutexvar_epi8(kb, b_idx, v);
        let g = _mm512_srli_epi32::<16>(rg);
        let s = _mm512_add_epi32(_mm512_madd_epi16(rg, y_rg), _mm512_madd_epi16(_mm512_or_si512(b, b_one), y_b));
        (_mm512_add_epi32(_mm512_srai_epi32::<16>(s), g), rg, b)
    };
    // Lane 2i gets lanes 2i + 2i+1 added; keep those, packed into 8 lanes.
    let hsum = |v: __m512i| _mm512_cvtepi64_epi32(_mm512_add_epi32(v, _mm512_srli_epi64::<32>(v)));
    let n = s0.len().min(s1.len());
    // Bytes of a row readable from `at`, as a load mask (the tail reads only what exists).
    let avail = |at: usize| -> u64 {
        match n.saturating_sub(at) {
            r if r >= 64 => u64::MAX,
            r => (1u64 << r) - 1,
        }
    };
    // Lanes (bytes) of an output store, for the tail.
    let keep = |count: usize| -> u16 { ((1u32 << count.min(16)) - 1) as u16 };
    let mut x = 0;
    // Whole steps: 64-byte loads, the second group of a step reading up to 16 * ch + 64 bytes in.
    // Then a masked step or two up to the last even column; `portable` finishes the odd column
    // and the padding.
    let xe = w & !1;
    while x < xe {
        let full = x + 32 <= w && x * ch + 16 * ch + 64 <= n;
        let m = if full { 32 } else { (xe - x).min(32) };
        let (l0, l1) = (avail(x * ch), avail((x + 16) * ch));
        // In the tail the second group may start past the row (its load mask is then empty):
        // wrapping arithmetic keeps forming that address defined.
        let p0 = s0.as_ptr().wrapping_add(x * ch);
        let p1 = s1.as_ptr().wrapping_add(x * ch);
        let (y0a, rg0a, b0a) = px16(p0, l0);
        let (y0b, rg0b, b0b) = px16(p0.wrapping_add(16 * ch), l1);
        let (y1a, rg1a, b1a) = px16(p1, l0);
        let (y1b, rg1b, b1b) = px16(p1.wrapping_add(16 * ch), l1);
        let (ka, kb2, kc) = (keep(m), keep(m.saturating_sub(16)), keep(m / 2));
        _mm_mask_storeu_epi8(y0.as_mut_ptr().add(x).cast(), ka, _mm512_cvtepi32_epi8(y0a));
        _mm_mask_storeu_epi8(y0.as_mut_ptr().wrapping_add(x + 16).cast(), kb2, _mm512_cvtepi32_epi8(y0b));
        _mm_mask_storeu_epi8(y1.as_mut_ptr().add(x).cast(), ka, _mm512_cvtepi32_epi8(y1a));
        _mm_mask_storeu_epi8(y1.as_mut_ptr().wrapping_add(x + 16).cast(), kb2, _mm512_cvtepi32_epi8(y1b));
        // Four-pixel sums stay below 1024 per channel: the packed pairs add as 32-bit lanes.
        let rg_a = hsum(_mm512_add_epi32(rg0a, rg1a));
        let rg_b = hsum(_mm512_add_epi32(rg0b, rg1b));
        let b_a = hsum(_mm512_add_epi32(b0a, b1a));
        let b_b = hsum(_mm512_add_epi32(b0b, b1b));
        let rg = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(rg_a), rg_b);
        let b = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(b_a), b_b);
        let vcb = _mm512_add_epi32(_mm512_add_epi32(_mm512_madd_epi16(rg, cb_rg), _mm512_slli_epi32::<15>(b)), off);
        let vcr = _mm512_sub_epi32(_mm512_sub_epi32(off, _mm512_madd_epi16(rg, cr_rg)), _mm512_madd_epi16(b, cr_b));
        _mm_mask_storeu_epi8(cb.as_mut_ptr().add(x / 2).cast(), kc, _mm512_cvtepi32_epi8(_mm512_srai_epi32::<18>(vcb)));
        _mm_mask_storeu_epi8(cr.as_mut_ptr().add(x / 2).cast(), kc, _mm512_cvtepi32_epi8(_mm512_srai_epi32::<18>(vcr)));
        x += m;
    }
    portable::ycc_420_rows_from(s0, s1, ch, w, pw, x, y0, y1, cb, cr);
}

/// The AVX-512 VBMI version of `avx2::ycc_444_row` (`chroma` true) and `avx2::y_row`
/// (`chroma` false, `cb`/`cr` unused): 16 pixels a step, masked loads and stores for the tail.
///
/// # Safety
/// AVX-512 F, BW, VL and VBMI must be available. `src` holds `w * ch` bytes; `y` (and with
/// `chroma`, `cb` and `cr`) hold `pw` bytes.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
pub unsafe fn ycc_full_row(
    src: &[u8],
    ch: usize,
    w: usize,
    pw: usize,
    chroma: bool,
    y: &mut [u8],
    cb: &mut [u8],
    cr: &mut [u8],
) {
    assert!(src.len() >= w * ch && y.len() >= pw);
    assert!(!chroma || (cb.len() >= pw && cr.len() >= pw));
    let Ycc { rg_idx, krg, b_idx, kb, y_rg, y_b, b_one, cb_rg, cr_rg, cr_b } = Ycc::new(ch);
    let off = _mm512_set1_epi32(portable::CBCR_OFFSET);
    let n = src.len();
    let mut x = 0;
    while x < w {
        let m = (w - x).min(16);
        let k = match n - x * ch {
            r if r >= 64 => u64::MAX,
            r => (1u64 << r) - 1,
        };
        let keep = ((1u32 << m) - 1) as u16;
        // Masked-off bytes are neither read nor faulted on.
        let v = _mm512_maskz_loadu_epi8(k, src.as_ptr().add(x * ch).cast());
        let rg = _mm512_maskz_permutexvar_epi8(krg, rg_idx, v);
        let b = _mm512_maskz_permutexvar_epi8(kb, b_idx, v);
        let s = _mm512_add_epi32(_mm512_madd_epi16(rg, y_rg), _mm512_madd_epi16(_mm512_or_si512(b, b_one), y_b));
        let vy = _mm512_add_epi32(_mm512_srai_epi32::<16>(s), _mm512_srli_epi32::<16>(rg));
        _mm_mask_storeu_epi8(y.as_mut_ptr().add(x).cast(), keep, _mm512_cvtepi32_epi8(vy));
        if chroma {
            let vcb = _mm512_add_epi32(_mm512_add_epi32(_mm512_madd_epi16(rg, cb_rg), _mm512_slli_epi32::<15>(b)), off);
            let vcr = _mm512_sub_epi32(_mm512_sub_epi32(off, _mm512_madd_epi16(rg, cr_rg)), _mm512_madd_epi16(b, cr_b));
            _mm_mask_storeu_epi8(
                cb.as_mut_ptr().add(x).cast(),
                keep,
                _mm512_cvtepi32_epi8(_mm512_srai_epi32::<16>(vcb)),
            );
            _mm_mask_storeu_epi8(
                cr.as_mut_ptr().add(x).cast(),
                keep,
                _mm512_cvtepi32_epi8(_mm512_srai_epi32::<16>(vcr)),
            );
        }
        x += m;
    }
    if chroma {
        portable::ycc_444_row_from(src, ch, w, pw, w, y, cb, cr);
    } else {
        portable::y_row_from(src, ch, w, pw, w, y);
    }
}
