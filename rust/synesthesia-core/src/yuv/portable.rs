//! The reference path: plain integer Rust, any CPU. Also finishes the SIMD paths' row tails.

use super::*;

#[inline(always)]
fn luma(p: &[u8]) -> u8 {
    let (r, g, b) = (p[0] as i32, p[1] as i32, p[2] as i32);
    (((YR * r + YG * g + YB * b + 128) >> 8) + 16) as u8
}

/// Convert pixel pairs from column `from` (even) to the end of the rows.
pub(crate) fn row_pair<const C: usize>(rows: Rows, from: usize) {
    let Rows { r0, r1, y0, y1, u, v } = rows;
    for cx in from / 2..u.len() {
        let x = 2 * cx;
        let px = [&r0[x * C..], &r0[(x + 1) * C..], &r1[x * C..], &r1[(x + 1) * C..]];
        y0[x] = luma(px[0]);
        y0[x + 1] = luma(px[1]);
        y1[x] = luma(px[2]);
        y1[x + 1] = luma(px[3]);
        let (mut su, mut sv) = (0i32, 0i32);
        for p in px {
            let (r, g, b) = (p[0] as i32, p[1] as i32, p[2] as i32);
            su += UR * r + UG * g + UB * b;
            sv += VR * r + VG * g + VB * b;
        }
        u[cx] = (((su + 512) >> 10) + 128) as u8;
        v[cx] = (((sv + 512) >> 10) + 128) as u8;
    }
}
