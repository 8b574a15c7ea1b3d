//! The encoding pipeline: per MCU row, colour conversion and downsampling into small planes
//! (stage A), DCT and quantization into blocks (stage B), Huffman coding (stage C). Working one
//! MCU row at a time keeps every intermediate in cache; slices of whole MCU rows run in
//! parallel and are joined at restart markers.

use super::huffman::{self, BitWriter, Block, Freq, HuffEnc, McuShape, RowJob};
use super::portable::{self, Divisors};
use super::tables::{self, HuffSpec, ZIGZAG};
use crate::simd::SimdLevel;

#[cfg(target_arch = "x86_64")]
use super::{avx2, avx512};

/// Geometry of one encode: sampling factors, MCU grid and plane sizes.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    /// One component (gray input or gray output).
    pub gray: bool,
    /// Luma sampling factors (chroma is always 1x1).
    pub h: usize,
    pub v: usize,
    pub mcus_x: usize,
    pub mcus_y: usize,
    /// Blocks per MCU.
    pub bpm: usize,
    /// Row stride of the luma plane and the full-resolution chroma planes; one MCU row wide
    /// plus slack that lets SIMD kernels load whole vectors past the last block.
    pub ys: usize,
    /// Row stride of the downsampled chroma planes.
    pub cs: usize,
}

const SLACK: usize = 64;

impl Layout {
    pub fn new(width: usize, height: usize, channels: usize, sub: super::Subsampling) -> Layout {
        let gray = channels == 1 || sub == super::Subsampling::Gray;
        let (h, v) = if gray {
            (1, 1)
        } else {
            match sub {
                super::Subsampling::S444 => (1, 1),
                super::Subsampling::S422 => (2, 1),
                _ => (2, 2),
            }
        };
        let mcus_x = width.div_ceil(8 * h);
        let mcus_y = height.div_ceil(8 * v);
        let bpm = if gray { 1 } else { h * v + 2 };
        Layout {
            width,
            height,
            channels,
            gray,
            h,
            v,
            mcus_x,
            mcus_y,
            bpm,
            ys: mcus_x * 8 * h + SLACK,
            cs: mcus_x * 8 + SLACK,
        }
    }

    pub fn mcu_h(&self) -> usize {
        8 * self.v
    }

    pub fn blocks_per_row(&self) -> usize {
        self.mcus_x * self.bpm
    }
}

/// How the MCU rows are cut into slices, and the restart interval that makes every slice
/// boundary a restart boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub restart: usize,
    pub rows_per_slice: usize,
    pub slices: usize,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Slicing rule for `threads > 1`. Slices are runs of whole MCU rows, `k` rows each (the last
/// may be shorter), and each one starts right after a restart marker, because a slice is
/// coded without knowing the DC predictions and bit position left by the one before it.
/// - `restart_interval == 0`: the interval becomes `k * MCUs per row` with
///   `k = ceil(MCU rows / threads)`, so there is exactly one marker per slice boundary
///   (if that exceeds the 65535 allowed in DRI, `k` shrinks and there are more slices than threads).
/// - otherwise the caller's interval is kept, and `k` is rounded up to the next multiple of
///   `interval / gcd(interval, MCUs per row)` so that slice starts fall on restart boundaries;
///   if that leaves a single slice, the image is coded on one thread. Output bytes are then
///   identical to `threads = 1` with the same interval.
pub fn plan(lay: &Layout, threads: usize, restart: u16) -> Plan {
    let rows = lay.mcus_y;
    let mpr = lay.mcus_x;
    let single = Plan { restart: restart as usize, rows_per_slice: rows, slices: 1 };
    if threads <= 1 || rows < 2 {
        return single;
    }
    let k0 = rows.div_ceil(threads);
    let k = if restart == 0 {
        k0.min(65535 / mpr).max(1)
    } else {
        let r = restart as usize;
        let g = r / gcd(r, mpr);
        k0.div_ceil(g) * g
    };
    if k >= rows {
        return single;
    }
    let restart = if restart == 0 { k * mpr } else { restart as usize };
    Plan { restart, rows_per_slice: k, slices: rows.div_ceil(k) }
}

/// Per-slice working memory, kept by the encoder between frames.
#[derive(Default)]
pub struct SliceBufs {
    y: Vec<u8>,
    /// Where 4:2:2 sends the second luma row its chroma kernel produces.
    spare: Vec<u8>,
    cb: Vec<u8>,
    cr: Vec<u8>,
    blocks: Vec<Block>,
    /// DC luma, AC luma, DC chroma, AC chroma.
    freq: [Freq; 4],
}

#[derive(Default)]
pub struct Scratch {
    bufs: SliceBufs,
    out: Vec<u8>,
}

fn fit(v: &mut Vec<u8>, n: usize) {
    if v.len() < n {
        v.resize(n, 0);
    }
}

impl SliceBufs {
    fn prepare(&mut self, lay: &Layout, block_rows: usize) {
        let mh = lay.mcu_h();
        fit(&mut self.y, mh * lay.ys);
        if !lay.gray {
            fit(&mut self.spare, lay.ys);
            fit(&mut self.cb, 8 * lay.cs);
            fit(&mut self.cr, 8 * lay.cs);
        }
        let nb = block_rows * lay.blocks_per_row();
        if self.blocks.len() < nb {
            self.blocks.resize(nb, Block::default());
        }
        for f in self.freq.iter_mut() {
            *f = Freq::default();
        }
    }
}

/// Everything shared by the slices of one encode.
pub struct Ctx<'a> {
    pub level: SimdLevel,
    pub lay: Layout,
    pub div: [Divisors; 2],
    pub enc: Option<&'a [HuffEnc; 4]>,
    pub restart: usize,
}

// ---- stage A --------------------------------------------------------------------------------

/// Fills the planes of MCU row `my`: converted samples, right edge and bottom edge replicated.
fn stage_a(ctx: &Ctx, img: &crate::image::ImageView, b: &mut SliceBufs, my: usize) {
    let lay = &ctx.lay;
    let mh = lay.mcu_h();
    let pw = lay.mcus_x * 8 * lay.h;
    let (w, ch) = (lay.width, lay.channels);
    let src = |r: usize| img.row((my * mh + r).min(lay.height - 1));
    #[cfg(target_arch = "x86_64")]
    let simd = ctx.level != SimdLevel::Portable;
    #[cfg(target_arch = "x86_64")]
    let vbmi = ctx.level == SimdLevel::Avx512 && is_x86_feature_detected!("avx512vbmi");
    #[cfg(not(target_arch = "x86_64"))]
    let simd = false;
    if lay.gray {
        for r in 0..mh {
            let y = &mut b.y[r * lay.ys..r * lay.ys + pw];
            let s = src(r);
            if ch == 1 {
                y[..w].copy_from_slice(&s[..w]);
                let last = y[w - 1];
                y[w..].fill(last);
            } else if simd {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `simd` means the level resolved to one whose CPU support was checked;
                // VBMI is checked here since the Avx512 level does not imply it.
                unsafe {
                    if vbmi {
                        avx512::ycc_full_row(s, ch, w, pw, false, y, &mut [], &mut [])
                    } else {
                        avx2::y_row(s, ch, w, pw, y)
                    }
                }
            } else {
                portable::y_row(s, ch, w, pw, y)
            }
        }
        return;
    }
    for r in 0..8 {
        let cb = &mut b.cb[r * lay.cs..r * lay.cs + pw / lay.h];
        let cr = &mut b.cr[r * lay.cs..r * lay.cs + pw / lay.h];
        if lay.h == 1 {
            let y = &mut b.y[r * lay.ys..r * lay.ys + pw];
            if simd {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                unsafe {
                    if vbmi {
                        avx512::ycc_full_row(src(r), ch, w, pw, true, y, cb, cr)
                    } else {
                        avx2::ycc_444_row(src(r), ch, w, pw, y, cb, cr)
                    }
                }
            } else {
                portable::ycc_444_row(src(r), ch, w, pw, y, cb, cr)
            }
            continue;
        }
        let (s0, s1, y0, y1) = if lay.v == 2 {
            let (top, bottom) = b.y.split_at_mut((2 * r + 1) * lay.ys);
            (src(2 * r), src(2 * r + 1), &mut top[2 * r * lay.ys..2 * r * lay.ys + pw], &mut bottom[..pw])
        } else {
            (src(r), src(r), &mut b.y[r * lay.ys..r * lay.ys + pw], &mut b.spare[..pw])
        };
        if simd {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            unsafe {
                if vbmi {
                    avx512::ycc_420_rows(s0, s1, ch, w, pw, y0, y1, cb, cr)
                } else {
                    avx2::ycc_420_rows(s0, s1, ch, w, pw, y0, y1, cb, cr)
                }
            }
        } else {
            portable::ycc_420_rows(s0, s1, ch, w, pw, y0, y1, cb, cr)
        }
    }
}

// ---- stage B --------------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
fn transform_band(
    level: SimdLevel,
    band: &[u8],
    stride: usize,
    nbx: usize,
    dv: &Divisors,
    out: &mut [Block],
    h: usize,
    bpm: usize,
    base: usize,
) {
    match level {
        // SAFETY (both): the level was resolved against this CPU's features, and every plane
        // carries SLACK bytes past its last block for the vector loads.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => unsafe { avx2::transform_band(band, stride, nbx, dv, out, h, bpm, base) },
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => unsafe { avx512::transform_band(band, stride, nbx, dv, out, h, bpm, base) },
        _ => portable::transform_band(band, stride, nbx, dv, out, h, bpm, base),
    }
}

/// DCT + quantization of MCUs `m0..m0 + n` of the current MCU row into `out` (MCU order).
fn stage_b(ctx: &Ctx, b: &SliceBufs, m0: usize, n: usize, out: &mut [Block]) {
    let lay = &ctx.lay;
    for by in 0..lay.v {
        let band = &b.y[by * 8 * lay.ys + m0 * 8 * lay.h..];
        transform_band(ctx.level, band, lay.ys, n * lay.h, &ctx.div[0], out, lay.h, lay.bpm, by * lay.h);
    }
    if !lay.gray {
        let base = lay.h * lay.v;
        transform_band(ctx.level, &b.cb[m0 * 8..], lay.cs, n, &ctx.div[1], out, 1, lay.bpm, base);
        transform_band(ctx.level, &b.cr[m0 * 8..], lay.cs, n, &ctx.div[1], out, 1, lay.bpm, base + 1);
    }
}

/// MCUs transformed and then coded together when nothing needs the whole row's blocks: few
/// enough that their blocks (~9 KB at 4:2:0) stay in L1 between the two stages.
const CHUNK_MCUS: usize = 8;

// ---- stage C --------------------------------------------------------------------------------

fn mcu_shape(lay: &Layout) -> McuShape {
    let luma = lay.h * lay.v;
    let mut shape = McuShape { bpm: lay.bpm, table: [0; 6], comp: [0; 6] };
    for i in luma..lay.bpm {
        shape.table[i] = 2;
        shape.comp[i] = (1 + i - luma) as u8;
    }
    shape
}

fn encode_row(
    level: SimdLevel,
    w: &mut BitWriter,
    job: &RowJob,
    shape: &McuShape,
    enc: &[HuffEnc; 4],
    preds: &mut [i32; 3],
) {
    match level {
        // SAFETY: levels above Portable are only resolved on CPUs with BMI1/2 and LZCNT.
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 | SimdLevel::Avx512 => unsafe { huffman::encode_row_bmi(w, job, shape, enc, preds) },
        _ => huffman::encode_row_portable(w, job, shape, enc, preds),
    }
}

fn count_row(
    lay: &Layout,
    restart: usize,
    slice_start: usize,
    my: usize,
    blocks: &[Block],
    preds: &mut [i32; 3],
    freq: &mut [Freq; 4],
) {
    let luma = lay.h * lay.v;
    let (fl, fc) = freq.split_at_mut(2);
    let (dcl, acl) = fl.split_at_mut(1);
    let (dcc, acc) = fc.split_at_mut(1);
    for mx in 0..lay.mcus_x {
        let mcu = my * lay.mcus_x + mx;
        if restart > 0 && mcu.is_multiple_of(restart) && mcu != slice_start {
            *preds = [0; 3];
        }
        for (i, blk) in blocks[mx * lay.bpm..(mx + 1) * lay.bpm].iter().enumerate() {
            if i < luma {
                huffman::count_block(blk, &mut preds[0], &mut dcl[0], &mut acl[0]);
            } else {
                huffman::count_block(blk, &mut preds[1 + i - luma], &mut dcc[0], &mut acc[0]);
            }
        }
    }
}

// ---- slices ---------------------------------------------------------------------------------

/// One pass over a slice of MCU rows `rows`.
/// - `enc` given, not `stored`: stages A, B and C row by row into `out`.
/// - `enc` None: stages A and B for the whole slice into `b.blocks`, counting symbols.
/// - `stored`: stage C only, from the blocks a previous counting pass left.
fn run_slice(
    ctx: &Ctx,
    img: &crate::image::ImageView,
    b: &mut SliceBufs,
    rows: std::ops::Range<usize>,
    stored: bool,
    out: &mut Vec<u8>,
) {
    let lay = &ctx.lay;
    let bpr = lay.blocks_per_row();
    let slice_start = rows.start * lay.mcus_x;
    match ctx.enc {
        None => {
            let mut preds = [0i32; 3];
            for (i, my) in rows.clone().enumerate() {
                stage_a(ctx, img, b, my);
                let mut blocks = std::mem::take(&mut b.blocks);
                let row = &mut blocks[i * bpr..(i + 1) * bpr];
                stage_b(ctx, b, 0, lay.mcus_x, row);
                count_row(lay, ctx.restart, slice_start, my, row, &mut preds, &mut b.freq);
                b.blocks = blocks;
            }
        }
        Some(enc) => {
            let shape = mcu_shape(lay);
            let mut preds = [0i32; 3];
            let mut w = BitWriter::new(out);
            for (i, my) in rows.clone().enumerate() {
                if stored {
                    let blocks = &b.blocks[i * bpr..(i + 1) * bpr];
                    let job = RowJob { blocks, mcu0: my * lay.mcus_x, restart: ctx.restart, slice_start };
                    encode_row(ctx.level, &mut w, &job, &shape, enc, &mut preds);
                    continue;
                }
                stage_a(ctx, img, b, my);
                let mut blocks = std::mem::take(&mut b.blocks);
                for m0 in (0..lay.mcus_x).step_by(CHUNK_MCUS) {
                    let n = CHUNK_MCUS.min(lay.mcus_x - m0);
                    let chunk = &mut blocks[..n * lay.bpm];
                    stage_b(ctx, b, m0, n, chunk);
                    let job = RowJob { blocks: chunk, mcu0: my * lay.mcus_x + m0, restart: ctx.restart, slice_start };
                    encode_row(ctx.level, &mut w, &job, &shape, enc, &mut preds);
                }
                b.blocks = blocks;
            }
            w.finish();
        }
    }
}

/// Runs every slice (in parallel when there are several) and returns nothing; slice outputs
/// land in `out` (one slice) or in each scratch's own buffer.
fn run_all(
    ctx: &Ctx,
    img: &crate::image::ImageView,
    plan: &Plan,
    scratch: &mut [Scratch],
    stored: bool,
    out: &mut Vec<u8>,
) {
    let k = plan.rows_per_slice;
    let rows = ctx.lay.mcus_y;
    if plan.slices == 1 {
        run_slice(ctx, img, &mut scratch[0].bufs, 0..rows, stored, out);
        return;
    }
    let slice = |s: usize, sc: &mut Scratch| {
        let r = s * k..((s + 1) * k).min(rows);
        sc.out.clear();
        run_slice(ctx, img, &mut sc.bufs, r, stored, &mut sc.out);
    };
    // The calling thread codes the first slice itself instead of sleeping while the pool
    // works: one thread fewer to wake, which is most of the cost at these frame sizes.
    let (first, rest) = scratch[..plan.slices].split_at_mut(1);
    rayon::in_place_scope(|scope| {
        for (i, sc) in rest.iter_mut().enumerate() {
            scope.spawn(move |_| slice(i + 1, sc));
        }
        slice(0, &mut first[0]);
    });
}

// ---- markers --------------------------------------------------------------------------------

fn segment(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(body);
}

pub fn write_headers(out: &mut Vec<u8>, lay: &Layout, q: [&[u16; 64]; 2], specs: &[HuffSpec; 4], restart: usize) {
    out.extend_from_slice(&[0xFF, 0xD8]);
    // JFIF 1.01, no units, 1:1 pixel aspect, no thumbnail.
    segment(out, 0xE0, b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00");
    let ntab = if lay.gray { 1 } else { 2 };
    let mut dqt = Vec::with_capacity(130);
    for (t, table) in q.iter().enumerate().take(ntab) {
        dqt.push(t as u8);
        dqt.extend(ZIGZAG.iter().map(|&n| table[n as usize] as u8));
    }
    segment(out, 0xDB, &dqt);
    let nc = if lay.gray { 1 } else { 3 };
    let mut sof = vec![8];
    sof.extend_from_slice(&(lay.height as u16).to_be_bytes());
    sof.extend_from_slice(&(lay.width as u16).to_be_bytes());
    sof.push(nc as u8);
    sof.extend_from_slice(&[1, ((lay.h << 4) | lay.v) as u8, 0]);
    if !lay.gray {
        sof.extend_from_slice(&[2, 0x11, 1, 3, 0x11, 1]);
    }
    segment(out, 0xC0, &sof);
    let mut dht = Vec::with_capacity(432);
    for (i, spec) in specs.iter().enumerate().take(2 * ntab) {
        // Order is DC luma, AC luma, DC chroma, AC chroma: class in the high nibble, id low.
        dht.push((((i & 1) << 4) | (i >> 1)) as u8);
        dht.extend_from_slice(&spec.bits);
        dht.extend_from_slice(&spec.vals);
    }
    segment(out, 0xC4, &dht);
    if restart > 0 {
        segment(out, 0xDD, &(restart as u16).to_be_bytes());
    }
    let mut sos = vec![nc as u8, 1, 0x00];
    if !lay.gray {
        sos.extend_from_slice(&[2, 0x11, 3, 0x11]);
    }
    sos.extend_from_slice(&[0, 63, 0]);
    segment(out, 0xDA, &sos);
}

/// Whole-file encode into `out` (cleared first).
pub fn encode_file(
    ctx_base: Ctx,
    img: &crate::image::ImageView,
    plan: &Plan,
    optimize: bool,
    q: [&[u16; 64]; 2],
    scratch: &mut Vec<Scratch>,
    out: &mut Vec<u8>,
) {
    let lay = ctx_base.lay;
    while scratch.len() < plan.slices {
        scratch.push(Scratch::default());
    }
    let block_rows = if optimize { plan.rows_per_slice } else { 1 };
    for sc in scratch[..plan.slices].iter_mut() {
        sc.bufs.prepare(&lay, block_rows);
    }
    out.clear();
    let specs: [HuffSpec; 4] = if optimize {
        run_all(&ctx_base, img, plan, scratch, false, out);
        let mut freq: [Freq; 4] = Default::default();
        for sc in scratch[..plan.slices].iter() {
            for (f, g) in freq.iter_mut().zip(sc.bufs.freq.iter()) {
                f.merge(g);
            }
        }
        [
            huffman::optimal_spec(&freq[0]),
            huffman::optimal_spec(&freq[1]),
            huffman::optimal_spec(&freq[2]),
            huffman::optimal_spec(&freq[3]),
        ]
    } else {
        [tables::std_dc_luma(), tables::std_ac_luma(), tables::std_dc_chroma(), tables::std_ac_chroma()]
    };
    let enc = [
        HuffEnc::from_spec(&specs[0]),
        HuffEnc::from_spec(&specs[1]),
        HuffEnc::from_spec(&specs[2]),
        HuffEnc::from_spec(&specs[3]),
    ];
    write_headers(out, &lay, q, &specs, ctx_base.restart);
    let ctx = Ctx { enc: Some(&enc), ..ctx_base };
    run_all(&ctx, img, plan, scratch, optimize, out);
    if plan.slices > 1 {
        for (s, sc) in scratch[..plan.slices].iter().enumerate() {
            if s > 0 {
                let mcu = s * plan.rows_per_slice * lay.mcus_x;
                out.extend_from_slice(&[0xFF, 0xD0 + ((mcu / ctx.restart - 1) % 8) as u8]);
            }
            out.extend_from_slice(&sc.out);
        }
    }
    out.extend_from_slice(&[0xFF, 0xD9]);
}
