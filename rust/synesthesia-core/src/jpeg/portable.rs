//! Plain-Rust kernels: colour conversion, downsampling, forward DCT and quantization. These
//! define the output; every SIMD kernel must reproduce them bit for bit, which holds because
//! all of them are integer arithmetic evaluated in the same order of roundings.

use super::huffman::Block;
use super::tables::ZIGZAG_STORAGE;

// RGB -> YCbCr as in JFIF / libjpeg's jccolor.c: 16 fractional bits, rounded.
pub const FIX_Y_R: i32 = 19595;
pub const FIX_Y_G: i32 = 38470;
pub const FIX_Y_B: i32 = 7471;
pub const FIX_CB_R: i32 = 11059;
pub const FIX_CB_G: i32 = 21709;
pub const FIX_CR_G: i32 = 27439;
pub const FIX_CR_B: i32 = 5329;
pub const HALF: i32 = 1 << 15;
/// 128 in 16.16, minus one so that the rounding cannot lift 255.5 to 256.
pub const CBCR_OFFSET: i32 = (128 << 16) + HALF - 1;

#[inline(always)]
pub fn ycc(r: i32, g: i32, b: i32) -> (u8, u8, u8) {
    let y = (FIX_Y_R * r + FIX_Y_G * g + FIX_Y_B * b + HALF) >> 16;
    let cb = (-FIX_CB_R * r - FIX_CB_G * g + (b << 15) + CBCR_OFFSET) >> 16;
    let cr = ((r << 15) - FIX_CR_G * g - FIX_CR_B * b + CBCR_OFFSET) >> 16;
    (y as u8, cb as u8, cr as u8)
}

/// The pixel at column `x` of `src`, the last one standing in for columns past the edge
/// (libjpeg pads partial MCUs the same way).
#[inline(always)]
fn px(src: &[u8], ch: usize, w: usize, x: usize) -> (i32, i32, i32) {
    let i = x.min(w - 1) * ch;
    (src[i] as i32, src[i + 1] as i32, src[i + 2] as i32)
}

/// Columns `x0..pw` of a 4:4:4 conversion (SIMD kernels finish their rows with this).
#[allow(clippy::too_many_arguments)]
pub fn ycc_444_row_from(
    src: &[u8],
    ch: usize,
    w: usize,
    pw: usize,
    x0: usize,
    y: &mut [u8],
    cb: &mut [u8],
    cr: &mut [u8],
) {
    for x in x0..pw {
        let (r, g, b) = px(src, ch, w, x);
        (y[x], cb[x], cr[x]) = ycc(r, g, b);
    }
}

pub fn ycc_444_row(src: &[u8], ch: usize, w: usize, pw: usize, y: &mut [u8], cb: &mut [u8], cr: &mut [u8]) {
    ycc_444_row_from(src, ch, w, pw, 0, y, cb, cr)
}

/// Columns `x0..pw` of the luma of a colour row.
pub fn y_row_from(src: &[u8], ch: usize, w: usize, pw: usize, x0: usize, y: &mut [u8]) {
    for (x, v) in y[..pw].iter_mut().enumerate().skip(x0) {
        *v = ycc_luma(px(src, ch, w, x));
    }
}

pub fn y_row(src: &[u8], ch: usize, w: usize, pw: usize, y: &mut [u8]) {
    y_row_from(src, ch, w, pw, 0, y)
}

#[inline(always)]
fn ycc_luma((r, g, b): (i32, i32, i32)) -> u8 {
    ((FIX_Y_R * r + FIX_Y_G * g + FIX_Y_B * b + HALF) >> 16) as u8
}

/// Columns `x0..pw` (`x0` even) of two luma rows and one chroma row averaged over 2x2 pixels.
///
/// The chroma of the four pixels is summed exactly and rounded once,
/// `(sum + 4 * 128 * 2^16 + 2^17 - 1) >> 18`, rather than rounded per pixel and again after
/// averaging as libjpeg does: one rounding instead of two, and a quarter of the chroma work.
/// 4:2:2 passes the same row as `s0` and `s1`; that is exactly the two-pixel average rounded
/// once, `(sum2 + 2 * 128 * 2^16 + 2^16 - 1) >> 17`, since doubling both sides of an integer
/// floor division by 2^17 changes nothing.
#[allow(clippy::too_many_arguments)]
pub fn ycc_420_rows_from(
    s0: &[u8],
    s1: &[u8],
    ch: usize,
    w: usize,
    pw: usize,
    x0: usize,
    y0: &mut [u8],
    y1: &mut [u8],
    cb: &mut [u8],
    cr: &mut [u8],
) {
    const OFF: i32 = (128 << 18) + (1 << 17) - 1;
    let mut x = x0;
    while x < pw {
        let p = [px(s0, ch, w, x), px(s0, ch, w, x + 1), px(s1, ch, w, x), px(s1, ch, w, x + 1)];
        y0[x] = ycc_luma(p[0]);
        y0[x + 1] = ycc_luma(p[1]);
        y1[x] = ycc_luma(p[2]);
        y1[x + 1] = ycc_luma(p[3]);
        let (r, g, b) = p.iter().fold((0, 0, 0), |a, q| (a.0 + q.0, a.1 + q.1, a.2 + q.2));
        cb[x / 2] = ((-FIX_CB_R * r - FIX_CB_G * g + (b << 15) + OFF) >> 18) as u8;
        cr[x / 2] = (((r << 15) - FIX_CR_G * g - FIX_CR_B * b + OFF) >> 18) as u8;
        x += 2;
    }
}

#[allow(clippy::too_many_arguments)]
pub fn ycc_420_rows(
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
    ycc_420_rows_from(s0, s1, ch, w, pw, 0, y0, y1, cb, cr)
}

/// Quantizer for one table in storage order. Division by `d = 8 * q` (the DCT leaves its
/// output scaled by 8) rounded to nearest is done as `(((|x| + d/2) * recip) >> 16) * scale >> 16`,
/// with `recip = ceil(2^(16+s) / d)`, `scale = 2^(16-s)`, `s = ceil(log2 d) - 1`; this is exact
/// for every `|x| + d/2 < 2^15` (the error term `n * (recip * d - 2^(16+s))` stays below
/// `2^(16+s)`), and |x| never exceeds 8192 for 8-bit samples.
#[derive(Clone)]
#[repr(C, align(32))]
pub struct Divisors {
    pub recip: [u16; 64],
    pub scale: [u16; 64],
    pub bias: [u16; 64],
    /// `s`, for kernels that shift instead of multiplying by `scale`.
    pub shift: [u16; 64],
}

impl Divisors {
    /// `q` in natural order, each 1..=255.
    pub fn new(q: &[u16; 64]) -> Divisors {
        let mut dv = Divisors { recip: [0; 64], scale: [0; 64], bias: [0; 64], shift: [0; 64] };
        for (n, &qn) in q.iter().enumerate() {
            let s_idx = (n % 8) * 8 + n / 8;
            let d = 8 * qn as u32;
            let s = 32 - (d - 1).leading_zeros() - 1;
            let recip = (1u32 << (16 + s)).div_ceil(d);
            debug_assert!(recip < 65536);
            dv.recip[s_idx] = recip as u16;
            dv.scale[s_idx] = (1u32 << (16 - s)) as u16;
            dv.bias[s_idx] = (d / 2) as u16;
            dv.shift[s_idx] = s as u16;
        }
        dv
    }
}

#[inline(always)]
pub fn quantize(x: i32, recip: u16, scale: u16, bias: u16) -> i16 {
    let n = x.unsigned_abs() + bias as u32;
    let t = (n * recip as u32) >> 16;
    let q = ((t * scale as u32) >> 16) as i32;
    (if x < 0 { -q } else { q }) as i16
}

pub const CONST_BITS: i32 = 13;
pub const PASS1_BITS: i32 = 2;
pub const F0_298: i32 = 2446;
pub const F0_390: i32 = 3196;
pub const F0_541: i32 = 4433;
pub const F0_765: i32 = 6270;
pub const F0_899: i32 = 7373;
pub const F1_175: i32 = 9633;
pub const F1_501: i32 = 12299;
pub const F1_847: i32 = 15137;
pub const F1_961: i32 = 16069;
pub const F2_053: i32 = 16819;
pub const F2_562: i32 = 20995;
pub const F3_072: i32 = 25172;

#[inline(always)]
fn descale(x: i32, n: i32) -> i32 {
    (x + (1 << (n - 1))) >> n
}

/// One 8-point pass of the accurate integer DCT (the Loeffler-Ligtenberg-Moschytz
/// factorization with 13-bit constants, as in libjpeg's jfdctint.c). `first` selects the
/// scaling of the first pass (outputs kept PASS1_BITS above the final scale) or the second.
#[inline(always)]
fn dct8(d: [i32; 8], first: bool) -> [i32; 8] {
    let tmp0 = d[0] + d[7];
    let tmp7 = d[0] - d[7];
    let tmp1 = d[1] + d[6];
    let tmp6 = d[1] - d[6];
    let tmp2 = d[2] + d[5];
    let tmp5 = d[2] - d[5];
    let tmp3 = d[3] + d[4];
    let tmp4 = d[3] - d[4];

    let tmp10 = tmp0 + tmp3;
    let tmp13 = tmp0 - tmp3;
    let tmp11 = tmp1 + tmp2;
    let tmp12 = tmp1 - tmp2;

    let (s0, s) = if first { (0, CONST_BITS - PASS1_BITS) } else { (PASS1_BITS, CONST_BITS + PASS1_BITS) };
    let mut o = [0i32; 8];
    if first {
        o[0] = (tmp10 + tmp11) << PASS1_BITS;
        o[4] = (tmp10 - tmp11) << PASS1_BITS;
    } else {
        o[0] = descale(tmp10 + tmp11, s0);
        o[4] = descale(tmp10 - tmp11, s0);
    }
    let z1 = (tmp12 + tmp13) * F0_541;
    o[2] = descale(z1 + tmp13 * F0_765, s);
    o[6] = descale(z1 - tmp12 * F1_847, s);

    let z1 = tmp4 + tmp7;
    let z2 = tmp5 + tmp6;
    let z3 = tmp4 + tmp6;
    let z4 = tmp5 + tmp7;
    let z5 = (z3 + z4) * F1_175;
    let t4 = tmp4 * F0_298;
    let t5 = tmp5 * F2_053;
    let t6 = tmp6 * F3_072;
    let t7 = tmp7 * F1_501;
    let z1 = -z1 * F0_899;
    let z2 = -z2 * F2_562;
    let z3 = -z3 * F1_961 + z5;
    let z4 = -z4 * F0_390 + z5;
    o[7] = descale(t4 + z1 + z3, s);
    o[5] = descale(t5 + z2 + z4, s);
    o[3] = descale(t6 + z2 + z3, s);
    o[1] = descale(t7 + z1 + z4, s);
    o
}

/// DCT and quantization of the 8x8 block whose top-left sample is `src[0]`. Columns are
/// transformed first, then rows, and the result is stored transposed, which is the order
/// the SIMD kernels produce without a second transpose.
pub fn fdct_quant(src: &[u8], stride: usize, dv: &Divisors, out: &mut Block) {
    let mut ws = [[0i32; 8]; 8]; // ws[v][c]: vertical frequency v of column c
    for c in 0..8 {
        let d: [i32; 8] = std::array::from_fn(|r| src[r * stride + c] as i32 - 128);
        for (row, o) in ws.iter_mut().zip(dct8(d, true)) {
            row[c] = o;
        }
    }
    for (v, row) in ws.iter().enumerate() {
        for (u, o) in dct8(*row, false).into_iter().enumerate() {
            let s = u * 8 + v;
            out.coef[s] = quantize(o, dv.recip[s], dv.scale[s], dv.bias[s]);
        }
    }
    out.mask = zigzag_mask(&out.coef);
}

pub fn zigzag_mask(coef: &[i16; 64]) -> u64 {
    let mut m = 0u64;
    for (k, &s) in ZIGZAG_STORAGE.iter().enumerate() {
        m |= ((coef[s as usize] != 0) as u64) << k;
    }
    m
}

/// Transforms one band of 8 sample rows, `nbx` blocks wide, into `out`. Block `bx` goes to
/// index `(bx / h) * bpm + base + bx % h`: `h` blocks of this component per MCU, `bpm` blocks
/// per MCU, `base` this band's first slot in the MCU.
#[allow(clippy::too_many_arguments)]
pub fn transform_band(
    band: &[u8],
    stride: usize,
    nbx: usize,
    dv: &Divisors,
    out: &mut [Block],
    h: usize,
    bpm: usize,
    base: usize,
) {
    for bx in 0..nbx {
        let idx = (bx / h) * bpm + base + bx % h;
        fdct_quant(&band[bx * 8..], stride, dv, &mut out[idx]);
    }
}
