//! Baseline sequential JPEG encoder (ITU T.81) with custom quantization tables; used by the
//! encode stage and the fused nano path (in the encode process).
//!
//! Output is JFIF with 8-bit DQT, SOF0, DHT (Annex K tables, or tables optimized for the image),
//! optional DRI with RSTn markers, one interleaved scan. The pipeline (see `encoder`) works one
//! MCU row at a time: colour conversion with fused 2x2 / 2x1 chroma averaging, the accurate
//! integer DCT (libjpeg's islow factorization, 13-bit constants), quantization rounded to
//! nearest by exact reciprocal multiplication, and a 64-bit-buffer Huffman coder driven by a
//! nonzero-coefficient bitmask.
//!
//! Every [`SimdLevel`] produces the same bytes: the portable kernels are the definition, the
//! SIMD ones evaluate the same integer expressions (tests compare them over many layouts).
//! Quality scaling and tables match libjpeg, so `quality` means the same as there; the only
//! deliberate difference is that subsampled chroma is averaged from exact values and rounded
//! once, where libjpeg rounds per pixel and again after averaging.

use crate::error::{Error, Result};
use crate::image::ImageView;
use crate::simd::SimdLevel;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod encoder;
mod huffman;
mod portable;
mod tables;
#[cfg(test)]
mod tests;

use encoder::{Ctx, Layout, Scratch};
use portable::Divisors;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subsampling {
    /// 4:4:4, no chroma subsampling.
    S444,
    /// 4:2:2, chroma halved horizontally.
    S422,
    /// 4:2:0, chroma halved both ways.
    S420,
    /// One luma component (colour input is converted to luma).
    Gray,
}

impl Subsampling {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "444" | "4:4:4" => Ok(Subsampling::S444),
            "422" | "4:2:2" => Ok(Subsampling::S422),
            "420" | "4:2:0" => Ok(Subsampling::S420),
            "gray" | "grey" => Ok(Subsampling::Gray),
            _ => Err(Error::invalid(
                "subsampling",
                format!("unknown subsampling {name:?}; expected \"444\", \"422\", \"420\" or \"gray\""),
            )),
        }
    }
}

/// Luma and chroma quantization tables, 64 entries each in natural (row-major) order, 1..=255.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantTables {
    pub luma: [u16; 64],
    pub chroma: [u16; 64],
}

#[derive(Clone, Debug)]
pub struct EncodeOptions {
    /// 1..=100, used to scale the Annex K tables when `qtables` is None.
    pub quality: u8,
    pub subsampling: Subsampling,
    /// Tables used as given (not scaled by `quality`).
    pub qtables: Option<QuantTables>,
    /// Two-pass encoding with Huffman tables optimized for the image.
    pub optimize_huffman: bool,
    /// Restart interval in MCUs (0: none). With `threads > 1` the interval also bounds
    /// where slices may start; see `encoder::plan` for the rule.
    pub restart_interval: u16,
    /// Slices encoded in parallel (1: single-threaded), 1..=64. Slices are horizontal bands of
    /// whole MCU rows joined at restart markers: with `restart_interval` 0 an interval of one
    /// slice is chosen (so the file has a DRI), otherwise the output is byte-identical to
    /// `threads = 1` with the same interval.
    pub threads: usize,
    /// None: the process-wide level.
    pub simd: Option<SimdLevel>,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            quality: 75,
            subsampling: Subsampling::S420,
            qtables: None,
            optimize_huffman: false,
            restart_interval: 0,
            threads: 1,
            simd: None,
        }
    }
}

impl QuantTables {
    /// The Annex K tables scaled by `quality` the way libjpeg's `jpeg_quality_scaling` does,
    /// so that a given quality means the same tables as in libjpeg(-turbo).
    pub fn from_quality(quality: u8) -> Result<QuantTables> {
        check_quality(quality)?;
        let f = |t: &[u16; 64]| t.map(|v| scaled(v, quality as u32) as u16);
        Ok(QuantTables { luma: f(&tables::LUMA_K1), chroma: f(&tables::CHROMA_K2) })
    }

    /// Tables given in natural (row-major) order, 64 entries of 1..=255 each.
    pub fn new(luma: &[u16], chroma: &[u16]) -> Result<QuantTables> {
        Ok(QuantTables { luma: check_table("luma", luma)?, chroma: check_table("chroma", chroma)? })
    }

    /// Preset for the nano stream (320x176, 4:2:0, about 10 KB a frame for ~2 Mbit/s at
    /// 25 fps).
    ///
    /// Luma is the Annex K table at quality 75, with the outermost diagonals (u + v >= 10)
    /// 10% coarser per step (up to 1.5x at the corner): at this size those terms are pixel-scale
    /// texture that costs bits and is lost anyway when the frame is shown upscaled. Chroma,
    /// a quarter of the samples after 4:2:0 and the detail the eye resolves least, is the
    /// Annex K table at quality 70, i.e. flat (59) outside its first few terms. On detailed
    /// photographs scaled to 320x176 this averages ~9.5 KB with luma PSNR within 0.1 dB of
    /// plain quality 75, which takes ~2% more bytes.
    pub fn turbo() -> QuantTables {
        QuantTables { luma: TURBO_LUMA, chroma: TURBO_CHROMA }
    }

    fn check(&self) -> Result<()> {
        check_table("luma", &self.luma)?;
        check_table("chroma", &self.chroma)?;
        Ok(())
    }
}

/// libjpeg's quality scaling of one Annex K entry.
const fn scaled(t: u16, quality: u32) -> u32 {
    let s = if quality < 50 { 5000 / quality } else { 200 - 2 * quality };
    let v = (t as u32 * s + 50) / 100;
    if v < 1 {
        1
    } else if v > 255 {
        255
    } else {
        v
    }
}

const TURBO_LUMA: [u16; 64] = {
    let mut t = [0u16; 64];
    let mut n = 0;
    while n < 64 {
        let d = (n % 8 + n / 8) as u32;
        let base = scaled(tables::LUMA_K1[n], 75);
        let v = if d >= 10 { (base * (d + 1) + 5) / 10 } else { base };
        t[n] = if v > 255 { 255 } else { v as u16 };
        n += 1;
    }
    t
};

const TURBO_CHROMA: [u16; 64] = {
    let mut t = [0u16; 64];
    let mut n = 0;
    while n < 64 {
        t[n] = scaled(tables::CHROMA_K2[n], 70) as u16;
        n += 1;
    }
    t
};

fn check_quality(quality: u8) -> Result<()> {
    if !(1..=100).contains(&quality) {
        return Err(Error::invalid("quality", format!("must be 1..=100, got {quality}")));
    }
    Ok(())
}

fn check_table(which: &str, t: &[u16]) -> Result<[u16; 64]> {
    if t.len() != 64 {
        return Err(Error::invalid("qtables", format!("{which} table must have 64 entries, got {}", t.len())));
    }
    for (i, &v) in t.iter().enumerate() {
        if !(1..=255).contains(&v) {
            return Err(Error::invalid(
                "qtables",
                format!("{which} table entry {i} (row {}, column {}) is {v}; entries must be 1..=255", i / 8, i % 8),
            ));
        }
    }
    let mut out = [0u16; 64];
    out.copy_from_slice(t);
    Ok(out)
}

/// Largest width or height a baseline JPEG frame header can carry.
const MAX_DIM: usize = 65535;

/// A reusable encoder: options are validated once and working buffers are kept between
/// frames, so steady-state encoding does not allocate (beyond growing `out`).
pub struct JpegEncoder {
    opts: EncodeOptions,
    tables: QuantTables,
    div: [Divisors; 2],
    scratch: Vec<Scratch>,
    buf: Vec<u8>,
}

impl JpegEncoder {
    pub fn new(opts: EncodeOptions) -> Result<Self> {
        check_quality(opts.quality)?;
        if !(1..=64).contains(&opts.threads) {
            return Err(Error::invalid("threads", format!("must be 1..=64, got {}", opts.threads)));
        }
        let tables = match &opts.qtables {
            Some(t) => {
                t.check()?;
                t.clone()
            }
            None => QuantTables::from_quality(opts.quality)?,
        };
        SimdLevel::resolve(opts.simd)?;
        let div = [Divisors::new(&tables.luma), Divisors::new(&tables.chroma)];
        Ok(JpegEncoder { opts, tables, div, scratch: Vec::new(), buf: Vec::new() })
    }

    pub fn options(&self) -> &EncodeOptions {
        &self.opts
    }

    /// The quantization tables in use (natural order).
    pub fn tables(&self) -> &QuantTables {
        &self.tables
    }

    /// Encodes `img` as a complete JFIF file into `out`, replacing its contents.
    pub fn encode(&mut self, img: &ImageView, out: &mut Vec<u8>) -> Result<()> {
        if img.width() > MAX_DIM || img.height() > MAX_DIM {
            return Err(Error::invalid(
                "img",
                format!("{}x{} exceeds the JPEG limit of {MAX_DIM} pixels a side", img.width(), img.height()),
            ));
        }
        let level = SimdLevel::resolve(self.opts.simd)?;
        let lay = Layout::new(img.width(), img.height(), img.channels(), self.opts.subsampling);
        let plan = encoder::plan(&lay, self.opts.threads, self.opts.restart_interval);
        let ctx = Ctx { level, lay, div: self.div.clone(), enc: None, restart: plan.restart };
        out.clear();
        out.reserve(lay.width * lay.height / 4 + 4096);
        encoder::encode_file(
            ctx,
            img,
            &plan,
            self.opts.optimize_huffman,
            [&self.tables.luma, &self.tables.chroma],
            &mut self.scratch,
            out,
        );
        Ok(())
    }

    /// Encodes into a caller-supplied buffer and returns the number of bytes written.
    pub fn encode_into(&mut self, img: &ImageView, out: &mut [u8]) -> Result<usize> {
        let mut buf = std::mem::take(&mut self.buf);
        let r = self.encode(img, &mut buf);
        let r = r.and_then(|()| {
            if buf.len() > out.len() {
                Err(Error::BufferTooSmall { needed: buf.len(), available: out.len() })
            } else {
                out[..buf.len()].copy_from_slice(&buf);
                Ok(buf.len())
            }
        });
        self.buf = buf;
        r
    }

    /// An upper bound on the size of any encoding of a `width` x `height` image with `opts`
    /// (whatever the pixels, channel count, restart or thread settings).
    pub fn max_encoded_size(width: usize, height: usize, opts: &EncodeOptions) -> usize {
        let (mw, mh, bpm) = match opts.subsampling {
            Subsampling::S444 => (8, 8, 3),
            Subsampling::S422 => (16, 8, 4),
            // Gray input still follows `subsampling`'s grid only when it is colour; 4:2:0 blocks
            // bound both.
            Subsampling::S420 | Subsampling::Gray => (16, 16, 6),
        };
        let mcus = (width.div_ceil(mw) as u64) * (height.div_ceil(mh) as u64);
        // Per block: 27 bits of DC and at most 63 AC codes of 26 bits, doubled for stuffing
        // (418 bytes); per MCU, a possible restart marker with its padding byte.
        let bound = 2048 + mcus * (bpm * 420 + 4);
        usize::try_from(bound).unwrap_or(usize::MAX)
    }
}

/// One-shot encode of `img` with `opts`.
pub fn encode(img: &ImageView, opts: &EncodeOptions) -> Result<Vec<u8>> {
    let mut enc = JpegEncoder::new(opts.clone())?;
    let mut out = Vec::new();
    enc.encode(img, &mut out)?;
    Ok(out)
}
