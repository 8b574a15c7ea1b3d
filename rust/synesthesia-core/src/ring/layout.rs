//! Byte layout of a ring segment. Every offset here is part of the on-disk (in-/dev/shm)
//! contract between processes: change any of them and bump [`LAYOUT_VERSION`].
//!
//! ```text
//! 0    magic "SYNRING\0", version u32, kind u32, slots u32, slot header size u32,
//!      capacity u64, stride u64, data offset u64, total size u64, ready u32, descriptor len u32
//! 64   descriptor: 192 opaque bytes the facade uses (dtype and shape of a frame ring)
//! 256  publish times of the last 8 records (writer's history for the period estimate)
//! 320  head u64 (records published), period_ns u64 (mean of the last 8 intervals), last publish ns,
//!      fill_ns u64 (typical begin-to-publish time), writing u64 (record being written + 1, or 0)
//! 384  writer pid u32
//! 448  notify u32 (the futex word), waiters u32
//! 512  slot 0: 128-byte header, then `capacity` payload bytes padded to 64; slot 1; ...
//! ```
//! Hot words sit on their own cache lines so readers polling `head` do not bounce the line
//! the writer touches for `writer pid` or a reader's `waiters` increment.

pub const MAGIC: [u8; 8] = *b"SYNRING\0";
pub const LAYOUT_VERSION: u32 = 1;

pub const OFF_MAGIC: usize = 0;
pub const OFF_VERSION: usize = 8;
pub const OFF_KIND: usize = 12;
pub const OFF_SLOTS: usize = 16;
pub const OFF_SLOT_HEADER: usize = 20;
pub const OFF_CAPACITY: usize = 24;
pub const OFF_STRIDE: usize = 32;
pub const OFF_DATA: usize = 40;
pub const OFF_TOTAL: usize = 48;
pub const OFF_READY: usize = 56;
pub const OFF_DESC_LEN: usize = 60;
pub const OFF_DESC: usize = 64;
pub const DESC_MAX: usize = 192;
pub const OFF_HISTORY: usize = 256;
pub const HISTORY: u64 = 8;
pub const OFF_HEAD: usize = 320;
pub const OFF_PERIOD: usize = 328;
pub const OFF_LAST_PUBLISH: usize = 336;
pub const OFF_FILL: usize = 344;
pub const OFF_WRITING: usize = 352;
pub const OFF_WRITER: usize = 384;
pub const OFF_NOTIFY: usize = 448;
pub const OFF_WAITERS: usize = 452;
pub const DATA_OFFSET: usize = 512;

pub const SLOT_HEADER: usize = 128;
pub const S_BEGIN: usize = 0;
pub const S_END: usize = 8;
pub const S_LEN: usize = 16;
pub const S_T_WRITE: usize = 24;
pub const S_T_PUBLISH: usize = 32;
pub const S_T_SOURCE: usize = 40;
pub const S_FRAME: usize = 48;
pub const S_FLAGS: usize = 56;
pub const S_TRACE: usize = 64;
pub const TRACE_IDS: usize = 4;

/// Written into `ready` once the creator has filled the header, so an attach that races a
/// create sees "not initialised" rather than a half-written header.
pub const READY: u32 = 0x5245_4459;

/// What the payload of a slot is, so a frame ring is never attached as a byte ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Frame = 1,
    Bytes = 2,
}

impl Kind {
    pub fn from_u32(v: u32) -> Option<Kind> {
        match v {
            1 => Some(Kind::Frame),
            2 => Some(Kind::Bytes),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Frame => "frame",
            Kind::Bytes => "bytes",
        }
    }
}

pub fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// Distance between consecutive slots for a payload capacity.
pub fn stride(capacity: usize) -> usize {
    SLOT_HEADER + round_up(capacity.max(1), 64)
}

/// Bytes a segment needs for `slots` slots of `capacity` payload bytes, or `None` on overflow.
pub fn segment_size(slots: u32, capacity: usize) -> Option<usize> {
    let stride = SLOT_HEADER.checked_add(capacity.max(1).checked_add(63)? / 64 * 64)?;
    stride.checked_mul(slots as usize)?.checked_add(DATA_OFFSET)
}

/// Slot holding record `seq`: the ring wraps by record number, so the newest `slots` records
/// are always the ones present.
pub fn slot_of(seq: u64, slots: u32) -> u32 {
    (seq % slots as u64) as u32
}

/// Oldest record still present (or being overwritten) when `head` records were published.
pub fn oldest(head: u64, slots: u32) -> u64 {
    head.saturating_sub(slots as u64)
}
