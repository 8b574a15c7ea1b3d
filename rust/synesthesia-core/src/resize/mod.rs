//! Resize kernels for interleaved uint8 images (C = 1, 3, 4).
//!
//! Semantics (the reference implementation in the tests follows these exactly):
//! - `Nearest`: pixel-centre aligned, `sx = floor((x + 0.5) * sw / dw)` (OpenCV
//!   INTER_NEAREST_EXACT, Pillow NEAREST).
//! - `Bilinear`: two taps per axis at half-pixel centres, edges clamped, no antialiasing
//!   (OpenCV INTER_LINEAR).
//! - `Area`: the mean of the source over each output pixel's footprint, with fractional
//!   weights at the edges of the footprint (OpenCV INTER_AREA when shrinking).
//! - Upscaling with `Area` uses the same definition (each footprint lies within one or two
//!   source pixels).
//!
//! Arithmetic is integer fixed point (Q14 weights, see `tables`), so results are within one
//! level of the exact real-valued definitions and identical on every [`SimdLevel`]: the SIMD
//! paths only reorder exact integer sums. Exact integer shrinks come out as `(sum + n/2) / n`
//! of the box (area at factors 2 and 4) or of the two middle taps (bilinear at even factors).
//!
//! Paths:
//! - Exact integer shrinks where a box applies (the above, and nearest at factors 2 and 4)
//!   take box kernels: no tables, one pass.
//! - Nearest otherwise gathers rows through a column table.
//! - Bilinear and area otherwise run separably through an i16 intermediate. Shrinking
//!   vertically, the vertical pass goes first (once per output row); otherwise the horizontal
//!   pass goes first into a ring of rows that vertical upscaling reuses.
//! - The general paths' tables (and their SIMD layouts) are built per size pair and kept per
//!   thread for the last pair used, which a pipeline resizing every frame alike always hits.
//!
//! Kernels: `portable` (plain Rust, the reference, and the path without AVX2), `avx2` and
//! `avx512`. The AVX-512 box and horizontal kernels also need VBMI (byte permutes), checked at
//! run time; without it they run AVX2.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;
mod tables;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::image::{ImageView, ImageViewMut};
use crate::simd::SimdLevel;
use tables::{nearest_index, Taps};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Nearest,
    Bilinear,
    Area,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Nearest => "nearest",
            Method::Bilinear => "bilinear",
            Method::Area => "area",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "nearest" => Ok(Method::Nearest),
            "bilinear" => Ok(Method::Bilinear),
            "area" => Ok(Method::Area),
            _ => Err(crate::Error::invalid(
                "method",
                format!("unknown method {name:?}; expected nearest, bilinear or area"),
            )),
        }
    }
}

/// Resize `src` into `dst` (whose size is the output size) on the process-wide SIMD level.
pub fn resize(src: &ImageView, dst: &mut ImageViewMut, method: Method) -> Result<()> {
    resize_with(src, dst, method, SimdLevel::active())
}

/// Resize on an explicit SIMD level (tests and benchmarks; the level must be available).
///
/// Kernels without a variant for `level` run the best lower level they have.
pub fn resize_with(src: &ImageView, dst: &mut ImageViewMut, method: Method, level: SimdLevel) -> Result<()> {
    if src.channels() != dst.channels() {
        return Err(Error::invalid(
            "out",
            format!("output has {} channels but the source has {}", dst.channels(), src.channels()),
        ));
    }
    if !level.is_available() {
        return Err(Error::SimdUnavailable { level: level.name() });
    }
    // Kernels index rows with 32-bit offsets (SIMD gathers take i32 lanes).
    for (name, w, h, c) in
        [("img", src.width(), src.height(), src.channels()), ("out", dst.width(), dst.height(), dst.channels())]
    {
        if w * c > i32::MAX as usize || h > i32::MAX as usize {
            return Err(Error::invalid(name, format!("{w}x{h}x{c} is too large to resize")));
        }
    }
    let (sw, sh, dw, dh) = (src.width(), src.height(), dst.width(), dst.height());
    if (sw, sh) == (dw, dh) {
        // Every method reproduces the source exactly at scale 1.
        for y in 0..sh {
            dst.row_mut(y).copy_from_slice(src.row(y));
        }
        return Ok(());
    }
    match BoxShape::detect(method, sw, sh, dw, dh) {
        Some(b) => box_filter(src, dst, b, level),
        None => general(src, dst, method, level),
    }
    Ok(())
}

/// Every method for any sizes (box shapes included: the tests check both paths agree).
fn general(src: &ImageView, dst: &mut ImageViewMut, method: Method, level: SimdLevel) {
    let key =
        Key { method, c: src.channels(), sw: src.width(), sh: src.height(), dw: dst.width(), dh: dst.height(), level };
    let plan = Plan::get(key);
    match &*plan {
        Plan::Nearest { xs } => nearest(src, dst, xs, level),
        Plan::HFirst { xt, yt, hk } => hfirst(src, dst, xt, yt, hk, level),
        Plan::VFirst { xt, yt, hl } => vfirst(src, dst, xt, yt, hl, level),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    method: Method,
    c: usize,
    sw: usize,
    sh: usize,
    dw: usize,
    dh: usize,
    level: SimdLevel,
}

/// Tables (and SIMD layouts of them) for one size pair. Building them costs a few
/// microseconds for frame-sized rows, which a pipeline would pay on every frame for the same
/// sizes, so each thread keeps the last one it built.
enum Plan {
    Nearest { xs: Vec<u32> },
    HFirst { xt: Taps, yt: Taps, hk: HKernel },
    VFirst { xt: Taps, yt: Taps, hl: HLast },
}

thread_local! {
    static LAST_PLAN: RefCell<Option<(Key, Rc<Plan>)>> = const { RefCell::new(None) };
}

impl Plan {
    fn get(key: Key) -> Rc<Plan> {
        LAST_PLAN.with(|last| {
            if let Some((k, plan)) = &*last.borrow() {
                if *k == key {
                    return plan.clone();
                }
            }
            let plan = Rc::new(Plan::build(key));
            *last.borrow_mut() = Some((key, plan.clone()));
            plan
        })
    }

    fn build(k: Key) -> Plan {
        // Shrinking vertically, the vertical pass goes first: it runs once per output row over
        // contiguous samples, and the costlier horizontal gather then runs once per output row
        // instead of once per source row. Otherwise (vertical upscale) the horizontal pass
        // goes first and each source row's result is reused by every output row that needs it.
        let separable = |xt: Taps, yt: Taps| {
            if k.dh < k.sh {
                let hl = HLast::new(k.c, &xt, k.level);
                Plan::VFirst { xt, yt, hl }
            } else {
                let hk = HKernel::new(k.c, &xt, k.level);
                Plan::HFirst { xt, yt, hk }
            }
        };
        match k.method {
            Method::Nearest => {
                Plan::Nearest { xs: (0..k.dw).map(|x| (nearest_index(x, k.sw, k.dw) * k.c) as u32).collect() }
            }
            Method::Bilinear => separable(Taps::bilinear(k.sw, k.dw), Taps::bilinear(k.sh, k.dh)),
            Method::Area => separable(Taps::area(k.sw, k.dw), Taps::area(k.sh, k.dh)),
        }
    }
}

/// An exact integer shrink expressed as a box: output pixel (x, y) is the rounded mean of the
/// `bx` x `by` source pixels starting at `(fx*x + ox, fy*y + oy)`, with `bx, by` in {1, 2, 4}.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BoxShape {
    pub fx: usize,
    pub fy: usize,
    pub bx: usize,
    pub by: usize,
    pub ox: usize,
    pub oy: usize,
}

impl BoxShape {
    fn detect(method: Method, sw: usize, sh: usize, dw: usize, dh: usize) -> Option<BoxShape> {
        let factor = |s: usize, d: usize| (s % d == 0 && s >= 2 * d).then_some(s / d);
        let (fx, fy) = (factor(sw, dw)?, factor(sh, dh)?);
        // Per axis at integer factor f: nearest picks index f*i + f/2; bilinear at even f
        // averages taps f*i + f/2 - 1 and f*i + f/2 (the sample point falls halfway between
        // them); area averages the whole block (kernels for f = 2 and 4 only). Nearest at wider
        // factors reads so little of each row that the gather path is faster.
        let (bx, ox, by, oy) = match method {
            Method::Nearest if matches!(fx, 2 | 4) => (1, fx / 2, 1, fy / 2),
            Method::Bilinear if fx % 2 == 0 && fy % 2 == 0 => (2, fx / 2 - 1, 2, fy / 2 - 1),
            Method::Area if matches!(fx, 2 | 4) && matches!(fy, 2 | 4) => (fx, 0, fy, 0),
            _ => return None,
        };
        Some(BoxShape { fx, fy, bx, by, ox, oy })
    }
}

/// Runs the best box kernel for the level.
fn box_filter(src: &ImageView, dst: &mut ImageViewMut, b: BoxShape, level: SimdLevel) {
    #[cfg(target_arch = "x86_64")]
    {
        if level >= SimdLevel::Avx512 {
            // SAFETY: resize_with checked that the level is available.
            if unsafe { avx512::box_filter(src, dst, b) } {
                return;
            }
        }
        if level >= SimdLevel::Avx2 {
            // SAFETY: as above; Avx512 availability implies Avx2.
            unsafe { avx2::box_filter(src, dst, b) };
            return;
        }
    }
    let _ = level;
    portable::box_filter(src, dst, b);
}

/// Row gathers through `xs` (the source byte offset of each output pixel).
fn nearest(src: &ImageView, dst: &mut ImageViewMut, xs: &[u32], level: SimdLevel) {
    let (c, dh) = (src.channels(), dst.height());
    let mut prev = usize::MAX;
    for y in 0..dh {
        let sy = nearest_index(y, src.height(), dh);
        if sy == prev {
            // Upscaling repeats rows: copy the finished one instead of gathering it again.
            let (stride, len) = (dst.stride(), dst.row_bytes());
            let at = y * stride;
            dst.data_mut().copy_within(at - stride..at - stride + len, at);
            continue;
        }
        prev = sy;
        let row = src.row(sy);
        let out = dst.row_mut(y);
        #[cfg(target_arch = "x86_64")]
        if level >= SimdLevel::Avx2 {
            // SAFETY: resize_with checked that the level is available.
            unsafe { avx2::gather(row, c, xs, out) };
            continue;
        }
        let _ = level;
        portable::gather(row, c, xs, out);
    }
}

/// The horizontal pass chosen for one call, with whatever it prepared for the source width.
enum HKernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2(avx2::HPlan),
    #[cfg(target_arch = "x86_64")]
    Avx512(avx512::HPlan),
}

impl HKernel {
    fn new(c: usize, xt: &Taps, level: SimdLevel) -> HKernel {
        #[cfg(target_arch = "x86_64")]
        {
            if level >= SimdLevel::Avx512 && std::arch::is_x86_feature_detected!("avx512vbmi") {
                if let Some(plan) = avx512::HPlan::new(c, xt) {
                    return HKernel::Avx512(plan);
                }
            }
            if level >= SimdLevel::Avx2 {
                if let Some(plan) = avx2::HPlan::new(c, xt) {
                    return HKernel::Avx2(plan);
                }
            }
        }
        let _ = (c, xt, level);
        HKernel::Portable
    }

    fn run(&self, row: &[u8], c: usize, xt: &Taps, out: &mut [i16]) {
        match self {
            HKernel::Portable => portable::hpass(row, c, xt, out),
            // SAFETY: only built by `new` when the level (and VBMI) is available; the plan was
            // built from `xt` for this call's widths.
            #[cfg(target_arch = "x86_64")]
            HKernel::Avx2(plan) => unsafe { avx2::hpass(row, xt, plan, out) },
            #[cfg(target_arch = "x86_64")]
            HKernel::Avx512(plan) => unsafe { avx512::hpass(row, plan, out) },
        }
    }
}

/// Horizontal pass into a ring of intermediate rows (one per vertical tap, so upscaling
/// reuses each source row's pass), then the vertical pass straight into the output row.
fn hfirst(src: &ImageView, dst: &mut ImageViewMut, xt: &Taps, yt: &Taps, hk: &HKernel, level: SimdLevel) {
    let c = src.channels();
    let len = dst.width() * c;
    let slots = yt.n;
    let mut ring = vec![0i16; slots * len];
    let mut tag = vec![usize::MAX; slots];
    for y in 0..dst.height() {
        let s0 = yt.start[y] as usize;
        for sy in s0..s0 + slots {
            let slot = sy % slots;
            if tag[slot] != sy {
                tag[slot] = sy;
                hk.run(src.row(sy), c, xt, &mut ring[slot * len..][..len]);
            }
        }
        let w = &yt.weights[y * slots..][..slots];
        vpass(&ring, slots, s0 % slots, w, dst.row_mut(y), level);
    }
}

fn vpass(ring: &[i16], slots: usize, first: usize, w: &[i16], out: &mut [u8], level: SimdLevel) {
    #[cfg(target_arch = "x86_64")]
    {
        if level >= SimdLevel::Avx512 {
            // SAFETY: resize_with checked that the level is available.
            unsafe { avx512::vpass(ring, slots, first, w, out) };
            return;
        }
        if level >= SimdLevel::Avx2 {
            // SAFETY: as above.
            unsafe { avx2::vpass(ring, slots, first, w, out) };
            return;
        }
    }
    let _ = level;
    portable::vpass(ring, slots, first, w, out);
}

/// The last (horizontal) pass of the vertical-first order, with its prepared layout.
enum HLast {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2(avx2::HLastPlan),
    #[cfg(target_arch = "x86_64")]
    Avx512(avx512::HLastPlan),
}

/// Spare i16 samples after the intermediate row, so SIMD loads near its end stay inside it.
const MID_PAD: usize = 64;

impl HLast {
    fn new(c: usize, xt: &Taps, level: SimdLevel) -> HLast {
        #[cfg(target_arch = "x86_64")]
        {
            if level >= SimdLevel::Avx512 && std::arch::is_x86_feature_detected!("avx512vbmi") {
                if let Some(plan) = avx512::HLastPlan::new(c, xt) {
                    return HLast::Avx512(plan);
                }
            }
            if level >= SimdLevel::Avx2 {
                if let Some(plan) = avx2::HLastPlan::new(c, xt) {
                    return HLast::Avx2(plan);
                }
            }
        }
        let _ = (c, xt, level);
        HLast::Portable
    }

    /// `mid` holds the row plus `MID_PAD` spare samples.
    fn run(&self, mid: &[i16], c: usize, xt: &Taps, out: &mut [u8]) {
        debug_assert_eq!(mid.len(), xt.src * c + MID_PAD);
        match self {
            HLast::Portable => portable::hlast(mid, c, xt, out),
            // SAFETY: only built by `new` when the level (and VBMI) is available; the plan was
            // built from `xt`, and `mid` carries the padding the SIMD loads may reach into.
            #[cfg(target_arch = "x86_64")]
            HLast::Avx2(plan) => unsafe { avx2::hlast(mid, xt, plan, out) },
            #[cfg(target_arch = "x86_64")]
            HLast::Avx512(plan) => unsafe { avx512::hlast(mid, plan, out) },
        }
    }
}

/// Vertical pass of the output row's source rows into one intermediate row, then the
/// horizontal pass into the output row.
fn vfirst(src: &ImageView, dst: &mut ImageViewMut, xt: &Taps, yt: &Taps, hl: &HLast, level: SimdLevel) {
    let c = src.channels();
    let n = yt.n;
    let mut mid = vec![0i16; src.row_bytes() + MID_PAD];
    for y in 0..dst.height() {
        let (s0, w) = (yt.start[y] as usize, &yt.weights[y * n..][..n]);
        #[cfg(target_arch = "x86_64")]
        let done = if level >= SimdLevel::Avx512 {
            // SAFETY: resize_with checked that the level is available.
            unsafe { avx512::vfirst(src, s0, w, &mut mid) };
            true
        } else if level >= SimdLevel::Avx2 {
            // SAFETY: as above.
            unsafe { avx2::vfirst(src, s0, w, &mut mid) };
            true
        } else {
            false
        };
        #[cfg(not(target_arch = "x86_64"))]
        let done = false;
        if !done {
            portable::vfirst(src, s0, w, &mut mid);
        }
        hl.run(&mid, c, xt, dst.row_mut(y));
    }
    let _ = level;
}
