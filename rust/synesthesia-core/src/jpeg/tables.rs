//! Constant tables from ITU T.81: Annex K quantization and Huffman tables, the zigzag order.

/// Table K.1, natural order.
pub const LUMA_K1: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, //
    12, 12, 14, 19, 26, 58, 60, 55, //
    14, 13, 16, 24, 40, 57, 69, 56, //
    14, 17, 22, 29, 51, 87, 80, 62, //
    18, 22, 37, 56, 68, 109, 103, 77, //
    24, 35, 55, 64, 81, 104, 113, 92, //
    49, 64, 78, 87, 103, 121, 120, 101, //
    72, 92, 95, 98, 112, 100, 103, 99,
];

/// Table K.2, natural order.
pub const CHROMA_K2: [u16; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, //
    18, 21, 26, 66, 99, 99, 99, 99, //
    24, 26, 56, 99, 99, 99, 99, 99, //
    47, 66, 99, 99, 99, 99, 99, 99, //
    99, 99, 99, 99, 99, 99, 99, 99, //
    99, 99, 99, 99, 99, 99, 99, 99, //
    99, 99, 99, 99, 99, 99, 99, 99, //
    99, 99, 99, 99, 99, 99, 99, 99,
];

/// Natural (row-major) index of the coefficient at each zigzag position.
pub const ZIGZAG: [u8; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, //
    17, 24, 32, 25, 18, 11, 4, 5, //
    12, 19, 26, 33, 40, 48, 41, 34, //
    27, 20, 13, 6, 7, 14, 21, 28, //
    35, 42, 49, 56, 57, 50, 43, 36, //
    29, 22, 15, 23, 30, 37, 44, 51, //
    58, 59, 52, 45, 38, 31, 39, 46, //
    53, 60, 61, 54, 47, 55, 62, 63,
];

/// The DCT kernels leave each block transposed (storage index `u * 8 + v` holds the
/// coefficient of natural index `v * 8 + u`), which saves a transpose per block; this maps
/// zigzag positions straight to storage indices.
pub const ZIGZAG_STORAGE: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut k = 0;
    while k < 64 {
        let n = ZIGZAG[k] as usize;
        t[k] = ((n % 8) * 8 + n / 8) as u8;
        k += 1;
    }
    t
};

/// A Huffman table as it is written to DHT: code counts per length 1..=16 and the symbols.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HuffSpec {
    pub bits: [u8; 16],
    pub vals: Vec<u8>,
}

const fn range(lo: u8, hi: u8, out: &mut [u8; 162], mut at: usize) -> usize {
    let mut v = lo;
    while v <= hi {
        out[at] = v;
        at += 1;
        v += 1;
    }
    at
}

/// The long tail of both AC tables is runs 4..15 with categories 3..10 in order; building it
/// by ranges keeps the literal short enough to check by eye against Tables K.5 and K.6.
const fn ac_vals(head: &[u8], tails: &[(u8, u8)]) -> [u8; 162] {
    let mut out = [0u8; 162];
    let mut at = 0;
    while at < head.len() {
        out[at] = head[at];
        at += 1;
    }
    let mut i = 0;
    while i < tails.len() {
        at = range(tails[i].0, tails[i].1, &mut out, at);
        i += 1;
    }
    assert!(at == 162);
    out
}

pub const DC_LUMA_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
pub const DC_CHROMA_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
pub const DC_VALS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

pub const AC_LUMA_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
pub const AC_LUMA_VALS: [u8; 162] = ac_vals(
    &[
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71,
        0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72,
        0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37,
        0x38, 0x39, 0x3a,
    ],
    &[
        (0x43, 0x4a),
        (0x53, 0x5a),
        (0x63, 0x6a),
        (0x73, 0x7a),
        (0x83, 0x8a),
        (0x92, 0x9a),
        (0xa2, 0xaa),
        (0xb2, 0xba),
        (0xc2, 0xca),
        (0xd2, 0xda),
        (0xe1, 0xea),
        (0xf1, 0xfa),
    ],
);

pub const AC_CHROMA_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
pub const AC_CHROMA_VALS: [u8; 162] = ac_vals(
    &[
        0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13, 0x22,
        0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1,
        0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x35, 0x36,
        0x37, 0x38, 0x39, 0x3a,
    ],
    &[
        (0x43, 0x4a),
        (0x53, 0x5a),
        (0x63, 0x6a),
        (0x73, 0x7a),
        (0x82, 0x8a),
        (0x92, 0x9a),
        (0xa2, 0xaa),
        (0xb2, 0xba),
        (0xc2, 0xca),
        (0xd2, 0xda),
        (0xe2, 0xea),
        (0xf2, 0xfa),
    ],
);

pub fn std_dc_luma() -> HuffSpec {
    HuffSpec { bits: DC_LUMA_BITS, vals: DC_VALS.to_vec() }
}
pub fn std_dc_chroma() -> HuffSpec {
    HuffSpec { bits: DC_CHROMA_BITS, vals: DC_VALS.to_vec() }
}
pub fn std_ac_luma() -> HuffSpec {
    HuffSpec { bits: AC_LUMA_BITS, vals: AC_LUMA_VALS.to_vec() }
}
pub fn std_ac_chroma() -> HuffSpec {
    HuffSpec { bits: AC_CHROMA_BITS, vals: AC_CHROMA_VALS.to_vec() }
}
