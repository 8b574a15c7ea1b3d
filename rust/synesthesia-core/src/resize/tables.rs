//! Per-axis sampling tables shared by every instruction set, so that all levels read the same
//! indices and the same fixed-point weights and can only differ in how fast they add them up.
//!
//! Fixed point: weights are Q14 (they sum to exactly `ONE` per output sample). The first pass
//! of a separable resize (horizontal or vertical, whichever goes first) drops `HSHIFT` bits of
//! the full product, rounding, so that its result fits an i16 (at most 255 << 7 = 32640), which
//! is what `pmaddwd` consumes in the second pass; the second pass removes the remaining
//! `VSHIFT` bits with rounding. For power-of-two box factors every step is exact, so these
//! reduce to `(sum + n/2) / n`.

pub(crate) const WBITS: u32 = 14;
pub(crate) const ONE: i32 = 1 << WBITS;
/// Bits the first pass drops (named for the horizontal-first order).
pub(crate) const HSHIFT: u32 = 7;
/// Bits the second pass drops.
pub(crate) const VSHIFT: u32 = 2 * WBITS - HSHIFT;

/// `n` taps per output sample, starting at source index `start[i]`, weights `weights[i*n..][..n]`.
///
/// Every window lies inside the source (`start + n <= src`), so kernels never clamp; samples
/// that need fewer than `n` taps carry zero weights.
pub(crate) struct Taps {
    /// Source length on this axis.
    pub src: usize,
    pub n: usize,
    pub start: Vec<u32>,
    pub weights: Vec<i16>,
}

impl Taps {
    /// Two taps at half-pixel centres, `src = (i + 0.5) * s / d - 0.5`, clamped to the edge.
    pub fn bilinear(src: usize, dst: usize) -> Taps {
        let mut t = Taps::zeroed(src, dst, 2);
        let last = src as i64 - 1;
        let den = 2 * dst as i64;
        for i in 0..dst {
            // Exact rational position: `num / den`, so the weights never depend on float rounding.
            let num = (2 * i as i64 + 1) * src as i64 - dst as i64;
            let i0 = num.div_euclid(den);
            let r = num.rem_euclid(den);
            if i0 < 0 {
                t.set(i, 0, &[ONE]);
            } else if i0 >= last {
                t.set(i, last as usize, &[ONE]);
            } else {
                let w1 = (((r << (WBITS + 1)) + den) / (2 * den)) as i32;
                t.set(i, i0 as usize, &[ONE - w1, w1]);
            }
        }
        t
    }

    /// Each source pixel weighted by how much of the output footprint it covers.
    pub fn area(src: usize, dst: usize) -> Taps {
        let (s, d) = (src as u64, dst as u64);
        // In units of 1/dst the footprint of output i is [i*s, (i+1)*s) and pixel j is
        // [j*d, (j+1)*d), so every overlap is an integer and the exact weight is overlap / s.
        // Weights are differences of the rounded cumulative coverage, so they sum to exactly
        // ONE, are never negative, and rounding errors do not pile up on one tap however many
        // taps there are. The coverage up to pixel boundary m within output i rounds to
        // `edge[m] - i * ONE`, where `edge[m] = round(m * d * ONE / s)`.
        //
        // Everything is stepped incrementally (quotient and remainder): a division per tap
        // would cost more than the kernels themselves for frame-sized rows.
        let mut edge = Vec::with_capacity(src + 1);
        let (step, den) = (d << (WBITS + 1), 2 * s);
        let (sq, sr) = (step / den, step % den);
        let (mut q, mut r) = (0u64, s);
        for _ in 0..=src {
            edge.push(q);
            q += sq;
            r += sr;
            if r >= den {
                r -= den;
                q += 1;
            }
        }
        // Footprint of output i: source pixels first..=last, from the running i*s = aq*d + ar.
        let mut spans = Vec::with_capacity(dst);
        let (dq, dr) = (s / d, s % d);
        let (mut aq, mut ar) = (0u64, 0u64);
        for _ in 0..dst {
            let first = aq;
            aq += dq;
            ar += dr;
            if ar >= d {
                ar -= d;
                aq += 1;
            }
            let last = if ar == 0 { aq - 1 } else { aq };
            spans.push((first as usize, last as usize));
        }
        let most = spans.iter().map(|&(f, l)| l - f + 1).max().unwrap_or(1);
        let mut t = Taps::zeroed(src, dst, most);
        let mut w = vec![0i32; most];
        for (i, &(first, last)) in spans.iter().enumerate() {
            let base = i as u64 * ONE as u64;
            let mut below = 0u64;
            for (k, j) in (first..=last).enumerate() {
                let above = if j == last { ONE as u64 } else { edge[j + 1] - base };
                w[k] = (above - below) as i32;
                below = above;
            }
            t.set(i, first, &w[..last - first + 1]);
        }
        t
    }

    fn zeroed(src: usize, dst: usize, most: usize) -> Taps {
        let mut n = most.min(src);
        // SIMD kernels take taps in pairs; an even count (a zero-weight spare) spares them an
        // odd tail wherever the source is wide enough to hold the extra tap.
        if n % 2 == 1 && n < src {
            n += 1;
        }
        Taps { src, n, start: vec![0; dst], weights: vec![0; dst * n] }
    }

    /// Output `i` takes taps `first..first + w.len()`; the window is shifted left where it
    /// would overhang the source end, with zero weights in front.
    fn set(&mut self, i: usize, first: usize, w: &[i32]) {
        let s = first.min(self.src - self.n);
        self.start[i] = s as u32;
        let off = first - s;
        for (k, &wk) in w.iter().enumerate() {
            self.weights[i * self.n + off + k] = wk as i16;
        }
    }
}

/// Pixel-centre aligned nearest index, `floor((i + 0.5) * src / dst)`, in exact integers.
#[inline]
pub(crate) fn nearest_index(i: usize, src: usize, dst: usize) -> usize {
    ((2 * i + 1) * src) / (2 * dst)
}
