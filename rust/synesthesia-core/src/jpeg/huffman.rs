//! Huffman coding: code tables from DHT specs (T.81 Annex C), optimal tables from symbol
//! statistics (Annex K.2), and the entropy coder for one block (F.1.2).
//!
//! The coder is scalar on every SIMD level: the work per block is a handful of table lookups
//! per nonzero coefficient, driven by a 64-bit mask of nonzero coefficients in zigzag order that
//! the transform kernels hand over, so zero runs cost one trailing-zero count each.

use super::tables::{HuffSpec, ZIGZAG_STORAGE};

/// One quantized block as the transform kernels leave it: coefficients in storage order
/// (transposed, see [`ZIGZAG_STORAGE`]) and bit `k` of `mask` set when zigzag position `k` is
/// nonzero.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Block {
    pub coef: [i16; 64],
    pub mask: u64,
}

impl Default for Block {
    fn default() -> Self {
        Block { coef: [0; 64], mask: 0 }
    }
}

/// Encoding side of one table: code and code length per symbol (length 0: not in the table).
#[derive(Clone)]
pub struct HuffEnc {
    pub code: [u32; 256],
    pub len: [u32; 256],
}

impl HuffEnc {
    pub fn from_spec(spec: &HuffSpec) -> HuffEnc {
        let mut enc = HuffEnc { code: [0; 256], len: [0; 256] };
        let mut code = 0u32;
        let mut k = 0usize;
        for (i, &count) in spec.bits.iter().enumerate() {
            for _ in 0..count {
                let sym = spec.vals[k] as usize;
                enc.code[sym] = code;
                enc.len[sym] = i as u32 + 1;
                code += 1;
                k += 1;
            }
            code <<= 1;
        }
        enc
    }
}

/// Symbol statistics for one table; index 256 is unused by data (K.2 reserves one code point
/// so that no code is all ones).
#[derive(Clone)]
pub struct Freq(pub [u32; 257]);

impl Default for Freq {
    fn default() -> Self {
        Freq([0; 257])
    }
}

impl Freq {
    pub fn merge(&mut self, other: &Freq) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += *b;
        }
    }
}

/// Annex K.2: code lengths by repeatedly merging the two least frequent subtrees, lengths
/// capped at 16 by the spec's BITS adjustment, symbols listed by increasing code length.
pub fn optimal_spec(freq: &Freq) -> HuffSpec {
    let mut counts: [u64; 256] = std::array::from_fn(|i| freq.0[i] as u64);
    if counts.iter().all(|&c| c == 0) {
        // A table no block uses (the chroma pair of a gray file): any valid table will do.
        let mut bits = [0; 16];
        bits[0] = 1;
        return HuffSpec { bits, vals: vec![0] };
    }
    loop {
        if let Some(spec) = try_optimal_spec(&counts) {
            return spec;
        }
        // A tree deeper than 32 needs a skewed distribution over billions of symbols; flattening
        // it costs nothing measurable and keeps the adjustment below within its bounds.
        for c in counts.iter_mut() {
            if *c > 0 {
                *c = c.div_ceil(2);
            }
        }
    }
}

fn try_optimal_spec(counts: &[u64; 256]) -> Option<HuffSpec> {
    let mut f: [u64; 257] = [0; 257];
    f[..256].copy_from_slice(counts);
    f[256] = 1;
    let mut codesize = [0u32; 257];
    let mut others = [-1i32; 257];
    loop {
        // v1: least frequency (largest symbol on ties), v2: the next least.
        let mut v1 = -1i32;
        let mut v2 = -1i32;
        for i in 0..257 {
            if f[i] == 0 {
                continue;
            }
            if v1 < 0 || f[i] <= f[v1 as usize] {
                v2 = v1;
                v1 = i as i32;
            } else if v2 < 0 || f[i] <= f[v2 as usize] {
                v2 = i as i32;
            }
        }
        if v2 < 0 {
            break;
        }
        let (v1, v2) = (v1 as usize, v2 as usize);
        f[v1] += f[v2];
        f[v2] = 0;
        let mut c = v1;
        codesize[c] += 1;
        while others[c] >= 0 {
            c = others[c] as usize;
            codesize[c] += 1;
        }
        others[c] = v2 as i32;
        let mut c = v2;
        codesize[c] += 1;
        while others[c] >= 0 {
            c = others[c] as usize;
            codesize[c] += 1;
        }
    }
    let mut bits = [0u32; 33];
    for &cs in codesize.iter() {
        if cs > 32 {
            return None;
        }
        if cs > 0 {
            bits[cs as usize] += 1;
        }
    }
    // Lengths above 16: move pairs down, as in Figure K.3.
    let mut i = 32;
    while i > 16 {
        while bits[i] > 0 {
            let mut j = i - 2;
            while bits[j] == 0 {
                j -= 1;
            }
            bits[i] -= 2;
            bits[i - 1] += 1;
            bits[j + 1] += 2;
            bits[j] -= 1;
        }
        i -= 1;
    }
    // Drop the reserved code point (it has the longest code).
    let mut i = 16;
    while bits[i] == 0 {
        i -= 1;
    }
    bits[i] -= 1;
    let mut spec = HuffSpec { bits: [0; 16], vals: Vec::new() };
    for (dst, &n) in spec.bits.iter_mut().zip(&bits[1..=16]) {
        *dst = n as u8;
    }
    for len in 1..=32u32 {
        spec.vals.extend((0..256).filter(|&sym| codesize[sym] == len).map(|sym| sym as u8));
    }
    Some(spec)
}

/// Bits to encode `v` (its magnitude category, F.1.2.1) and the low-order bits written after
/// the Huffman code (ones' complement for negative values).
#[inline(always)]
fn category(v: i32) -> (u32, u32) {
    let nb = 32 - v.unsigned_abs().leading_zeros();
    let bits = (v + (v >> 31)) as u32 & ((1u32 << nb) - 1);
    (nb, bits)
}

/// Big-endian bit sink with JPEG byte stuffing. Bits collect in a 64-bit word and go out eight
/// bytes at a time; only a word that holds an 0xFF byte takes the byte-by-byte stuffing path.
pub struct BitWriter<'a> {
    acc: u64,
    /// Free bit positions in `acc`; bits above the valid ones are garbage that the shift at
    /// flush time discards.
    free: u32,
    pub out: &'a mut Vec<u8>,
}

/// Most bytes one block can produce: 27 + 63 * 26 bits is 28 words of 8 bytes, each of
/// which stuffing can double.
const BLOCK_MAX_BYTES: usize = 28 * 16;

/// The writer's state in locals for the span of one block, so that the accumulator stays in
/// registers (through `&mut Vec` it would be stored and reloaded around every write).
struct Sink {
    acc: u64,
    free: u32,
    ptr: *mut u8,
    len: usize,
}

impl Sink {
    /// # Safety
    /// The buffer at `ptr` must have room for [`BLOCK_MAX_BYTES`] bytes past `len` for the
    /// whole span of one block (reserved in [`encode_block`]).
    #[inline(always)]
    unsafe fn put(&mut self, bits: u32, n: u32) {
        debug_assert!(n <= 32 && (n == 32 || bits >> n == 0));
        if n < self.free {
            self.acc = (self.acc << n) | bits as u64;
            self.free -= n;
        } else {
            let over = n - self.free;
            let word = (self.acc << self.free) | ((bits as u64) >> over);
            self.acc = bits as u64;
            self.free = 64 - over;
            // A byte of `word` is 0xFF iff that byte of !word is zero.
            let x = !word;
            let has_ff = x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080;
            if has_ff == 0 {
                self.ptr.add(self.len).cast::<u64>().write_unaligned(word.to_be());
                self.len += 8;
            } else {
                self.len = stuff(self.ptr, self.len, word);
            }
        }
    }
}

/// Writes `word` with a zero byte after each 0xFF; returns the new length. Takes plain values
/// rather than `&mut Sink` so that the sink never needs an address and stays in registers.
///
/// # Safety
/// `ptr` must be writable for 16 bytes past `len`.
#[cold]
#[inline(never)]
unsafe fn stuff(ptr: *mut u8, mut len: usize, word: u64) -> usize {
    for b in word.to_be_bytes() {
        *ptr.add(len) = b;
        len += 1;
        if b == 0xFF {
            *ptr.add(len) = 0;
            len += 1;
        }
    }
    len
}

impl Sink {
    /// Pads to a byte boundary with ones (F.1.2.3), writes out every pending byte, then the
    /// marker `0xFF, marker` if given.
    ///
    /// # Safety
    /// Room for 18 bytes past `len`.
    #[inline(never)]
    unsafe fn finish(&mut self, marker: Option<u8>) {
        let mut n = 64 - self.free;
        let pad = (8 - n % 8) % 8;
        let acc = if pad > 0 { (self.acc << pad) | ((1u64 << pad) - 1) } else { self.acc };
        n += pad;
        while n > 0 {
            n -= 8;
            let b = (acc >> n) as u8;
            *self.ptr.add(self.len) = b;
            self.len += 1;
            if b == 0xFF {
                *self.ptr.add(self.len) = 0;
                self.len += 1;
            }
        }
        if let Some(m) = marker {
            *self.ptr.add(self.len) = 0xFF;
            *self.ptr.add(self.len + 1) = m;
            self.len += 2;
        }
        self.acc = 0;
        self.free = 64;
    }
}

impl<'a> BitWriter<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter { acc: 0, free: 64, out }
    }

    /// The writer as a [`Sink`] with room reserved for `bytes` more bytes.
    #[inline(always)]
    fn sink(&mut self, bytes: usize) -> Sink {
        self.out.reserve(bytes);
        Sink { acc: self.acc, free: self.free, ptr: self.out.as_mut_ptr(), len: self.out.len() }
    }

    #[inline(always)]
    fn store(&mut self, s: Sink) {
        debug_assert!(s.len <= self.out.capacity());
        // SAFETY: `Sink` wrote every byte below `s.len`, within the capacity `sink` reserved.
        unsafe { self.out.set_len(s.len) };
        self.acc = s.acc;
        self.free = s.free;
    }

    /// Pads the last byte with ones (F.1.2.3) and writes out everything pending.
    pub fn finish(&mut self) {
        let mut s = self.sink(32);
        // SAFETY: 32 bytes reserved; finishing writes at most 16.
        unsafe { s.finish(None) };
        self.store(s);
    }
}

/// Which Huffman tables (0: luma, 2: chroma; DC at `t`, AC at `t + 1`) and which DC
/// predictor each block of an MCU uses.
#[derive(Clone, Copy, Debug)]
pub struct McuShape {
    pub bpm: usize,
    pub table: [u8; 6],
    pub comp: [u8; 6],
}

/// One MCU row to code: its blocks, the global index of its first MCU, the restart interval
/// (0: none) and the first MCU of the slice (which follows a marker written by the joiner).
pub struct RowJob<'a> {
    pub blocks: &'a [Block],
    pub mcu0: usize,
    pub restart: usize,
    pub slice_start: usize,
}

/// Codes a run of MCUs with the writer state in locals (a per-block function would pay a call,
/// a capacity check and a state reload per block; this pays them once per run; measured
/// fewer instructions overall than an outlined block coder).
#[inline(always)]
fn encode_row_impl(w: &mut BitWriter, job: &RowJob, shape: &McuShape, enc: &[HuffEnc; 4], preds: &mut [i32; 3]) {
    let mcus = job.blocks.len() / shape.bpm;
    let mut s = w.sink(job.blocks.len() * BLOCK_MAX_BYTES + mcus * 18 + 16);
    for (mx, mcu_blocks) in job.blocks.chunks_exact(shape.bpm).enumerate() {
        let mcu = job.mcu0 + mx;
        if job.restart > 0 && mcu.is_multiple_of(job.restart) && mcu != job.slice_start {
            // SAFETY: the reservation above counts 18 bytes per MCU for this.
            unsafe { s.finish(Some(0xD0 + ((mcu / job.restart - 1) % 8) as u8)) };
            *preds = [0; 3];
        }
        for (i, b) in mcu_blocks.iter().enumerate() {
            let t = shape.table[i] as usize;
            let pred = &mut preds[shape.comp[i] as usize];
            // SAFETY: the reservation above counts BLOCK_MAX_BYTES per block.
            unsafe { encode_block(&mut s, b, pred, &enc[t], &enc[t + 1]) };
        }
    }
    w.store(s);
}

/// Encodes one block (F.1.2.1 and F.1.2.2); `pred` is the component's DC predictor.
///
/// # Safety
/// `s` must have room for [`BLOCK_MAX_BYTES`].
#[inline(always)]
unsafe fn encode_block(s: &mut Sink, b: &Block, pred: &mut i32, dc: &HuffEnc, ac: &HuffEnc) {
    let v = b.coef[0] as i32;
    let diff = v - *pred;
    *pred = v;
    let (nb, bits) = category(diff);
    s.put((dc.code[nb as usize] << nb) | bits, dc.len[nb as usize] + nb);

    // Walking set bits by clearing the lowest one keeps the loop-carried chain to one
    // instruction; the position and run come off it.
    let mut m = b.mask & !1;
    let mut next = 1u32;
    while m != 0 {
        let k = m.trailing_zeros();
        m &= m - 1;
        let mut run = k - next;
        next = k + 1;
        while run >= 16 {
            s.put(ac.code[0xF0], ac.len[0xF0]);
            run -= 16;
        }
        let v = b.coef[ZIGZAG_STORAGE[k as usize] as usize] as i32;
        let (nb, bits) = category(v);
        let sym = ((run << 4) | nb) as usize;
        s.put((ac.code[sym] << nb) | bits, ac.len[sym] + nb);
    }
    if next < 64 {
        s.put(ac.code[0], ac.len[0]);
    }
}

#[inline(never)]
pub fn encode_row_portable(
    w: &mut BitWriter,
    job: &RowJob,
    shape: &McuShape,
    enc: &[HuffEnc; 4],
    preds: &mut [i32; 3],
) {
    encode_row_impl(w, job, shape, enc, preds)
}

/// The row coder compiled with BMI1/BMI2/LZCNT: zero runs, categories and shifts become
/// single instructions (`tzcnt`, `blsr`, `lzcnt`, `shlx`).
///
/// # Safety
/// The CPU must support BMI1, BMI2 and LZCNT (implied by `SimdLevel::Avx2.is_available()`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi1,bmi2,lzcnt")]
#[inline(never)]
pub unsafe fn encode_row_bmi(
    w: &mut BitWriter,
    job: &RowJob,
    shape: &McuShape,
    enc: &[HuffEnc; 4],
    preds: &mut [i32; 3],
) {
    encode_row_impl(w, job, shape, enc, preds)
}

/// Counts the symbols [`encode_block`] would emit.
#[inline(always)]
pub fn count_block(b: &Block, pred: &mut i32, dc: &mut Freq, ac: &mut Freq) {
    let v = b.coef[0] as i32;
    let (nb, _) = category(v - *pred);
    *pred = v;
    dc.0[nb as usize] += 1;
    let mut m = b.mask & !1;
    let mut next = 1u32;
    while m != 0 {
        let k = m.trailing_zeros();
        m &= m - 1;
        let mut run = k - next;
        next = k + 1;
        while run >= 16 {
            ac.0[0xF0] += 1;
            run -= 16;
        }
        let v = b.coef[ZIGZAG_STORAGE[k as usize] as usize] as i32;
        let (nb, _) = category(v);
        ac.0[((run << 4) | nb) as usize] += 1;
    }
    if next < 64 {
        ac.0[0] += 1;
    }
}
