//! RGB(A) -> I420 (planar Y, U, V; 4:2:0) for the video encoder, BT.601 limited range.
//!
//! The integer definition every path computes exactly (the SIMD paths only reorder exact
//! integer sums, so every [`SimdLevel`] gives the same bytes):
//!
//! ```text
//! Y = ((66 R + 129 G + 25 B + 128) >> 8) + 16
//! U = ((sum over the 2x2 block of (-38 R -  74 G + 112 B)) + 512) >> 10) + 128
//! V = ((sum over the 2x2 block of (112 R -  94 G -  18 B)) + 512) >> 10) + 128
//! ```
//!
//! Chroma is the block's mean taken before rounding (one rounding instead of two), sited at
//! the block centre as MPEG-1/JPEG do; H.264 decoders expect left siting, a quarter of a
//! chroma sample away, which nobody sees at 1280x704. Both sizes must be even.
//!
//! Output is one contiguous buffer, `Y` (`w*h`) then `U` then `V` (`w/2*h/2` each): the
//! layout `av.VideoFrame.from_ndarray(..., format="yuv420p")` takes as an `(h*3/2, w)` array.

#[cfg(target_arch = "x86_64")]
mod avx2;
mod portable;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::image::ImageView;
use crate::simd::SimdLevel;

/// Bytes of the I420 picture for a `width` x `height` frame (both even).
pub fn i420_size(width: usize, height: usize) -> usize {
    width * height + 2 * (width / 2) * (height / 2)
}

/// Convert `src` (RGB or RGBA, any row stride) into `out` (see the module docs for the layout).
pub fn rgb_to_i420(src: &ImageView, out: &mut [u8], level: Option<SimdLevel>) -> Result<()> {
    let (w, h) = (src.width(), src.height());
    check(src)?;
    let needed = i420_size(w, h);
    if out.len() < needed {
        return Err(Error::BufferTooSmall { needed, available: out.len() });
    }
    let (y, rest) = out[..needed].split_at_mut(w * h);
    let (u, v) = rest.split_at_mut((w / 2) * (h / 2));
    rgb_to_i420_planes(src, y, u, v, level)
}

/// Convert `src` into three separate contiguous planes (`w*h`, `w/2*h/2`, `w/2*h/2` bytes), e.g.
/// straight into an encoder's picture buffers.
pub fn rgb_to_i420_planes(
    src: &ImageView,
    y: &mut [u8],
    u: &mut [u8],
    v: &mut [u8],
    level: Option<SimdLevel>,
) -> Result<()> {
    let level = SimdLevel::resolve(level)?;
    check(src)?;
    let (w, h) = (src.width(), src.height());
    for (name, plane, needed) in [("y", &*y, w * h), ("u", &*u, w / 2 * (h / 2)), ("v", &*v, w / 2 * (h / 2))] {
        if plane.len() != needed {
            return Err(Error::invalid(name, format!("plane holds {} bytes, {w}x{h} needs {needed}", plane.len())));
        }
    }
    for row in 0..h / 2 {
        let r0 = src.row(2 * row);
        let r1 = src.row(2 * row + 1);
        let (y0, y1) = y[2 * row * w..(2 * row + 2) * w].split_at_mut(w);
        let cu = &mut u[row * (w / 2)..(row + 1) * (w / 2)];
        let cv = &mut v[row * (w / 2)..(row + 1) * (w / 2)];
        let rows = Rows { r0, r1, y0, y1, u: cu, v: cv };
        match (level, src.channels()) {
            #[cfg(target_arch = "x86_64")]
            (SimdLevel::Avx2 | SimdLevel::Avx512, 3) => {
                // SAFETY: `resolve` only returns levels this CPU has (AVX2 is part of both).
                unsafe { avx2::row_pair::<3>(rows) }
            }
            #[cfg(target_arch = "x86_64")]
            (SimdLevel::Avx2 | SimdLevel::Avx512, _) => {
                // SAFETY: as above.
                unsafe { avx2::row_pair::<4>(rows) }
            }
            (_, 3) => portable::row_pair::<3>(rows, 0),
            _ => portable::row_pair::<4>(rows, 0),
        }
    }
    Ok(())
}

fn check(src: &ImageView) -> Result<()> {
    let (w, h) = (src.width(), src.height());
    if !matches!(src.channels(), 3 | 4) {
        return Err(Error::invalid("img", format!("expected 3 (RGB) or 4 (RGBA) channels, got {}", src.channels())));
    }
    if w % 2 != 0 || h % 2 != 0 {
        return Err(Error::invalid("img", format!("4:2:0 needs an even width and height, got {w}x{h}")));
    }
    Ok(())
}

/// Two source rows and the two luma rows and one chroma row pair they produce.
pub(crate) struct Rows<'a> {
    pub r0: &'a [u8],
    pub r1: &'a [u8],
    pub y0: &'a mut [u8],
    pub y1: &'a mut [u8],
    pub u: &'a mut [u8],
    pub v: &'a mut [u8],
}

pub(crate) const YR: i32 = 66;
pub(crate) const YG: i32 = 129;
pub(crate) const YB: i32 = 25;
pub(crate) const UR: i32 = -38;
pub(crate) const UG: i32 = -74;
pub(crate) const UB: i32 = 112;
pub(crate) const VR: i32 = 112;
pub(crate) const VG: i32 = -94;
pub(crate) const VB: i32 = -18;
