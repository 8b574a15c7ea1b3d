//! Shared-memory rings: one writer, any number of readers, overwrite-oldest, never blocking the
//! writer. Pure Rust over a caller-provided mapping (the Python facade maps it with
//! `multiprocessing.shared_memory`); used in-process by every stage that reads or writes a ring.
//!
//! Each slot is a seqlock: the writer stores `begin = seq + 1` before touching the payload and
//! `end = seq + 1` after it, so a reader that sees `end == begin == seq + 1` around its read
//! knows the record was whole. `head` counts published records; record `seq` lives in slot
//! `seq % slots`. Readers keep their own cursor (nothing of theirs is in the segment except a
//! waiter count), so a reader that dies can never wedge the writer or other readers; a writer
//! that dies mid-write leaves `head` where it was and the slot marked torn, and the next writer
//! simply rewrites that record.

pub mod futex;
pub mod layout;
#[cfg(test)]
mod tests;

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use futex::{monotonic_ns, process_alive};
use layout::*;
pub use layout::{Kind, LAYOUT_VERSION, TRACE_IDS};

/// Why a ring operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingError {
    /// The segment is not a ring this build can use: bad magic, other layout version, other kind,
    /// other geometry than the caller expected, or smaller than its header claims.
    Layout(String),
    /// An argument is unusable; `name` is the argument as callers know it.
    InvalidArgument { name: &'static str, message: String },
    /// Another live process holds the writer role.
    WriterBusy { pid: u32 },
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::Layout(m) => write!(f, "{m}"),
            RingError::InvalidArgument { name, message } => write!(f, "{name}: {message}"),
            RingError::WriterBusy { pid } => write!(f, "the ring already has a live writer (pid {pid})"),
        }
    }
}

impl std::error::Error for RingError {}

fn invalid(name: &'static str, message: impl Into<String>) -> RingError {
    RingError::InvalidArgument { name, message: message.into() }
}

/// Per-record metadata stored in the slot header. `len`, `t_write_ns` and `t_publish_ns` are
/// filled by the ring; the rest is the writer's to set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotMeta {
    pub len: u64,
    pub t_write_ns: u64,
    pub t_publish_ns: u64,
    /// When the data was born upstream (capture time, render time), for per-hop latencies.
    pub t_source_ns: u64,
    pub frame: u64,
    pub flags: u64,
    pub trace_ids: [u64; TRACE_IDS],
}

/// Geometry of a ring as read from (or written into) its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub kind: Kind,
    pub slots: u32,
    pub capacity: usize,
}

/// A record the writer is filling: its payload starts `offset` bytes into the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub seq: u64,
    pub offset: usize,
    pub t_write_ns: u64,
}

/// What a reader found at a record number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    Ready(SlotMeta),
    /// Not written yet (or its writer died before publishing it).
    Pending,
    /// Overwritten by a newer record, or being overwritten right now.
    Overwritten,
}

/// A reader's position: the next record it wants, and skips not yet reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    pub next: u64,
    pub missed: u64,
}

/// A record handed to a reader: `missed` counts the records it skipped since its last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub offset: usize,
    pub missed: u64,
    pub meta: SlotMeta,
}

/// How a reader waits. Waking an idle vCPU costs tens of microseconds, so a reader may spin
/// briefly: `spin` right before blocking, and, when the writer publishes at a steady rate,
/// from `anticipate` before the next expected publish until `anticipate` after it. An idle
/// ring costs no CPU: once the expected moment has passed the reader blocks in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitPolicy {
    pub spin: Duration,
    pub anticipate: Duration,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy { spin: Duration::from_micros(20), anticipate: Duration::from_micros(300) }
    }
}

/// A view of one ring segment. It does not own the mapping: the caller keeps it alive and
/// unmaps it only after dropping this value.
pub struct Ring {
    base: NonNull<u8>,
    len: usize,
    geometry: Geometry,
    stride: usize,
}

// SAFETY: all shared state is accessed through atomics or under the seqlock protocol; the
// mapping is process-shared memory whose lifetime the owner guarantees.
unsafe impl Send for Ring {}
unsafe impl Sync for Ring {}

impl Ring {
    /// Write a fresh header for `geometry` into the mapping and return the ring.
    ///
    /// # Safety
    /// `base` must point to `len` writable bytes, 64-byte aligned, that stay mapped for the
    /// life of the returned value, and no other process may use them until this returns.
    pub unsafe fn create(base: *mut u8, len: usize, geometry: Geometry, descriptor: &[u8]) -> Result<Ring, RingError> {
        let base = NonNull::new(base).ok_or_else(|| invalid("buffer", "null mapping"))?;
        if base.as_ptr() as usize % 64 != 0 {
            return Err(invalid("buffer", "mapping must be 64-byte aligned"));
        }
        if geometry.slots == 0 {
            return Err(invalid("slots", "must be at least 1"));
        }
        if geometry.capacity == 0 {
            return Err(invalid("capacity", "must be at least 1 byte"));
        }
        if descriptor.len() > DESC_MAX {
            return Err(invalid("descriptor", format!("at most {DESC_MAX} bytes, got {}", descriptor.len())));
        }
        let need =
            segment_size(geometry.slots, geometry.capacity).ok_or_else(|| invalid("capacity", "ring too large"))?;
        if len < need {
            return Err(invalid("buffer", format!("ring needs {need} bytes, mapping has {len}")));
        }
        // SAFETY: the caller guarantees `len` writable bytes at `base`.
        unsafe { std::ptr::write_bytes(base.as_ptr(), 0, need) };
        let ring = Ring { base, len, geometry, stride: stride(geometry.capacity) };
        unsafe {
            ring.raw(OFF_MAGIC).copy_from_nonoverlapping(MAGIC.as_ptr(), 8);
            ring.put_u32(OFF_VERSION, LAYOUT_VERSION);
            ring.put_u32(OFF_KIND, geometry.kind as u32);
            ring.put_u32(OFF_SLOTS, geometry.slots);
            ring.put_u32(OFF_SLOT_HEADER, SLOT_HEADER as u32);
            ring.put_u64(OFF_CAPACITY, geometry.capacity as u64);
            ring.put_u64(OFF_STRIDE, ring.stride as u64);
            ring.put_u64(OFF_DATA, DATA_OFFSET as u64);
            ring.put_u64(OFF_TOTAL, need as u64);
            ring.put_u32(OFF_DESC_LEN, descriptor.len() as u32);
            ring.raw(OFF_DESC).copy_from_nonoverlapping(descriptor.as_ptr(), descriptor.len());
        }
        ring.a32(OFF_READY).store(READY, Ordering::Release);
        Ok(ring)
    }

    /// Validate the header of an existing ring. `expect` pins what the caller needs; `None`
    /// fields accept whatever the creator chose.
    ///
    /// # Safety
    /// `base` must point to `len` readable and writable bytes, 64-byte aligned, that stay mapped
    /// for the life of the returned value.
    pub unsafe fn attach(
        base: *mut u8,
        len: usize,
        kind: Option<Kind>,
        slots: Option<u32>,
        capacity: Option<usize>,
    ) -> Result<Ring, RingError> {
        let base = NonNull::new(base).ok_or_else(|| invalid("buffer", "null mapping"))?;
        if base.as_ptr() as usize % 64 != 0 {
            return Err(invalid("buffer", "mapping must be 64-byte aligned"));
        }
        if len < DATA_OFFSET {
            return Err(RingError::Layout(format!(
                "segment is {len} bytes, smaller than a ring header ({DATA_OFFSET})"
            )));
        }
        let probe = Ring { base, len, geometry: Geometry { kind: Kind::Bytes, slots: 1, capacity: 1 }, stride: 0 };
        let mut magic = [0u8; 8];
        unsafe { magic.as_mut_ptr().copy_from_nonoverlapping(probe.raw(OFF_MAGIC), 8) };
        if magic != MAGIC {
            return Err(RingError::Layout(format!("not a synesthesia ring (magic {magic:02x?})")));
        }
        if probe.a32(OFF_READY).load(Ordering::Acquire) != READY {
            return Err(RingError::Layout(
                "ring header is not initialised (creator still writing it, or it died)".into(),
            ));
        }
        let version = probe.get_u32(OFF_VERSION);
        if version != LAYOUT_VERSION {
            return Err(RingError::Layout(format!(
                "ring layout version {version}, this build reads version {LAYOUT_VERSION}"
            )));
        }
        let got_kind = Kind::from_u32(probe.get_u32(OFF_KIND))
            .ok_or_else(|| RingError::Layout(format!("unknown ring kind {}", probe.get_u32(OFF_KIND))))?;
        if let Some(k) = kind {
            if k != got_kind {
                return Err(RingError::Layout(format!(
                    "ring is a {} ring, expected a {} ring",
                    got_kind.name(),
                    k.name()
                )));
            }
        }
        let got_slots = probe.get_u32(OFF_SLOTS);
        let got_capacity = probe.get_u64(OFF_CAPACITY) as usize;
        if let Some(s) = slots {
            if s != got_slots {
                return Err(RingError::Layout(format!("ring has {got_slots} slots, expected {s}")));
            }
        }
        if let Some(c) = capacity {
            if c != got_capacity {
                return Err(RingError::Layout(format!("ring slot size is {got_capacity} bytes, expected {c}")));
            }
        }
        let slot_header = probe.get_u32(OFF_SLOT_HEADER) as usize;
        let got_stride = probe.get_u64(OFF_STRIDE) as usize;
        let data = probe.get_u64(OFF_DATA) as usize;
        if got_slots == 0
            || got_capacity == 0
            || slot_header != SLOT_HEADER
            || got_stride != stride(got_capacity)
            || data != DATA_OFFSET
        {
            return Err(RingError::Layout(format!(
                "inconsistent ring header (slots {got_slots}, slot size {got_capacity}, stride {got_stride}, slot header {slot_header})"
            )));
        }
        let need =
            segment_size(got_slots, got_capacity).ok_or_else(|| RingError::Layout("ring size overflows".into()))?;
        if len < need || probe.get_u64(OFF_TOTAL) as usize != need {
            return Err(RingError::Layout(format!("segment is {len} bytes, its header needs {need}")));
        }
        Ok(Ring {
            base,
            len,
            geometry: Geometry { kind: got_kind, slots: got_slots, capacity: got_capacity },
            stride: got_stride,
        })
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    pub fn mapping_len(&self) -> usize {
        self.len
    }

    pub fn descriptor(&self) -> Vec<u8> {
        let n = (self.get_u32(OFF_DESC_LEN) as usize).min(DESC_MAX);
        let mut out = vec![0u8; n];
        // SAFETY: the descriptor area lies inside the validated header.
        unsafe { out.as_mut_ptr().copy_from_nonoverlapping(self.raw(OFF_DESC), n) };
        out
    }

    /// Offset of the payload of record `seq` from the start of the mapping.
    pub fn payload_offset(&self, seq: u64) -> usize {
        DATA_OFFSET + slot_of(seq, self.geometry.slots) as usize * self.stride + SLOT_HEADER
    }

    /// Records published so far.
    pub fn head(&self) -> u64 {
        self.a64(OFF_HEAD).load(Ordering::Acquire)
    }

    /// The writer's mean publish interval over its last 8 records, in ns (0 until two records
    /// were published, or after a pause of seconds).
    pub fn period_ns(&self) -> u64 {
        self.a64(OFF_PERIOD).load(Ordering::Relaxed)
    }

    pub fn writer_pid(&self) -> u32 {
        self.a32(OFF_WRITER).load(Ordering::Acquire)
    }

    /// Readers currently blocked (or dead while blocked: a stale count only costs the writer
    /// one needless wake syscall per publish).
    pub fn waiters(&self) -> u32 {
        self.a32(OFF_WAITERS).load(Ordering::Relaxed)
    }

    /// Take the writer role for `pid`. A previous writer that `alive` says is gone is replaced,
    /// which is how a restarted stage resumes a ring its crashed predecessor was writing.
    pub fn claim_writer(&self, pid: u32, alive: impl Fn(u32) -> bool) -> Result<(), RingError> {
        if pid == 0 {
            return Err(invalid("pid", "must be non-zero"));
        }
        let word = self.a32(OFF_WRITER);
        loop {
            let cur = word.load(Ordering::Acquire);
            if cur == pid {
                return Ok(());
            }
            if cur != 0 && alive(cur) {
                return Err(RingError::WriterBusy { pid: cur });
            }
            if word.compare_exchange(cur, pid, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                return Ok(());
            }
        }
    }

    /// Take the writer role for this process, replacing a holder that has exited.
    pub fn claim_writer_here(&self) -> Result<(), RingError> {
        self.claim_writer(std::process::id(), process_alive)
    }

    pub fn release_writer(&self, pid: u32) {
        let _ = self.a32(OFF_WRITER).compare_exchange(pid, 0, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Start writing the next record: marks its slot torn, so readers still holding the record
    /// it replaces see `valid() == false` from here on. Only the writer may call this.
    ///
    /// With `announce`, blocked readers are woken now rather than at publish, so their wake-up
    /// (tens of microseconds on a VM, paid partly by the writer's syscall) overlaps the fill and
    /// they catch the publish spinning. Worth it when filling takes longer than a wake-up (a
    /// frame, an encode); for a small copy it only adds a syscall.
    pub fn begin_write(&self, announce: bool) -> Grant {
        let seq = self.a64(OFF_HEAD).load(Ordering::Relaxed);
        let slot = self.slot_base(seq);
        self.slot64(slot, S_BEGIN).store(seq + 1, Ordering::Relaxed);
        // Orders the `begin` store before every payload store that follows, pairing with the
        // acquire fence readers issue before re-checking `begin`.
        fence(Ordering::Release);
        let t_write_ns = monotonic_ns();
        self.slot64(slot, S_T_WRITE).store(t_write_ns, Ordering::Relaxed);
        // Only a hint: the publish wake is what correctness rests on.
        if announce {
            self.a64(OFF_WRITING).store(seq + 1, Ordering::SeqCst);
            self.a32(OFF_NOTIFY).fetch_add(1, Ordering::SeqCst);
            if self.a32(OFF_WAITERS).load(Ordering::SeqCst) > 0 {
                futex::wake_all(self.a32(OFF_NOTIFY));
            }
        }
        Grant { seq, offset: self.payload_offset(seq), t_write_ns }
    }

    /// Publish the record `grant` opened, with `len` payload bytes and the writer's metadata
    /// (`meta.len`, `t_write_ns` and `t_publish_ns` are ignored), and wake every waiting reader.
    pub fn publish(&self, grant: Grant, len: usize, meta: &SlotMeta) -> Result<SlotMeta, RingError> {
        if len > self.geometry.capacity {
            return Err(invalid("size", format!("record is {len} bytes, slot size is {}", self.geometry.capacity)));
        }
        if grant.seq != self.a64(OFF_HEAD).load(Ordering::Relaxed) {
            return Err(invalid("grant", "not the record being written (was it already published?)"));
        }
        let slot = self.slot_base(grant.seq);
        let now = monotonic_ns();
        let out = SlotMeta { len: len as u64, t_write_ns: grant.t_write_ns, t_publish_ns: now, ..*meta };
        self.store_meta(slot, &out);
        self.slot64(slot, S_END).store(grant.seq + 1, Ordering::Release);
        self.a64(OFF_LAST_PUBLISH).store(now, Ordering::Relaxed);
        let fill = now.saturating_sub(grant.t_write_ns);
        let old_fill = self.a64(OFF_FILL).load(Ordering::Relaxed);
        let new_fill =
            if old_fill == 0 { fill } else { (old_fill as i64 + (fill as i64 - old_fill as i64) / 4) as u64 };
        self.a64(OFF_FILL).store(new_fill, Ordering::Relaxed);
        // Period = mean of the last HISTORY intervals: quick to settle after a start or a rate
        // change, and steady against one late publish (an EWMA seeded by a start-up interval
        // stays biased for dozens of records, so readers would anticipate the wrong moment).
        let seq = grant.seq;
        let hist = |s: u64| self.a64(OFF_HISTORY + 8 * (s % HISTORY) as usize);
        let oldest_known = if seq >= HISTORY {
            Some((hist(seq).load(Ordering::Relaxed), HISTORY))
        } else if seq > 0 {
            Some((hist(0).load(Ordering::Relaxed), seq))
        } else {
            None
        };
        hist(seq).store(now, Ordering::Relaxed);
        if let Some((then, n)) = oldest_known {
            let span = now.saturating_sub(then);
            // A pause longer than a few seconds is not a rate; readers just block meanwhile.
            let period = if then > 0 && span < 5_000_000_000 * n { span / n } else { 0 };
            self.a64(OFF_PERIOD).store(period, Ordering::Relaxed);
        }
        // SeqCst on head, notify and waiters: a reader that registers as a waiter after our
        // `waiters` load is ordered after the head store, so it sees the record and never sleeps
        // through it.
        self.a64(OFF_HEAD).store(grant.seq + 1, Ordering::SeqCst);
        self.a64(OFF_WRITING).store(0, Ordering::Relaxed);
        self.a32(OFF_NOTIFY).fetch_add(1, Ordering::SeqCst);
        if self.a32(OFF_WAITERS).load(Ordering::SeqCst) > 0 {
            futex::wake_all(self.a32(OFF_NOTIFY));
        }
        Ok(out)
    }

    /// Copy `data` into the next record and publish it: the one-call path for small records.
    pub fn push(&self, data: &[u8], meta: &SlotMeta) -> Result<SlotMeta, RingError> {
        if data.len() > self.geometry.capacity {
            return Err(invalid(
                "size",
                format!("record is {} bytes, slot size is {}", data.len(), self.geometry.capacity),
            ));
        }
        let grant = self.begin_write(false);
        // SAFETY: the payload area of the granted slot holds `capacity >= data.len()` bytes and
        // only the writer stores into it.
        unsafe { self.raw(grant.offset).copy_from_nonoverlapping(data.as_ptr(), data.len()) };
        self.publish(grant, data.len(), meta)
    }

    /// Look at record `seq` without waiting. On `Ready` the metadata is consistent; the payload
    /// is whole until [`Ring::is_valid`] says otherwise.
    pub fn peek(&self, seq: u64) -> Peek {
        let slot = self.slot_base(seq);
        let end = self.slot64(slot, S_END).load(Ordering::Acquire);
        if end < seq + 1 {
            return Peek::Pending;
        }
        if end != seq + 1 {
            return Peek::Overwritten;
        }
        let meta = self.load_meta(slot);
        if self.is_valid(seq) {
            Peek::Ready(meta)
        } else {
            Peek::Overwritten
        }
    }

    /// True while record `seq` is published and the writer has not started replacing it. Call
    /// after using a payload: everything read before the call is then known to be untorn.
    pub fn is_valid(&self, seq: u64) -> bool {
        let slot = self.slot_base(seq);
        fence(Ordering::Acquire);
        self.slot64(slot, S_BEGIN).load(Ordering::Relaxed) == seq + 1
            && self.slot64(slot, S_END).load(Ordering::Relaxed) == seq + 1
    }

    /// The oldest unread record at or after the cursor, advancing the cursor past it. Records
    /// already overwritten are skipped and counted in `missed`.
    pub fn next_record(&self, cursor: &mut Cursor) -> Option<Record> {
        loop {
            let head = self.head();
            if cursor.next >= head {
                return None;
            }
            let oldest = oldest(head, self.geometry.slots);
            if cursor.next < oldest {
                cursor.missed += oldest - cursor.next;
                cursor.next = oldest;
            }
            let seq = cursor.next;
            cursor.next = seq + 1;
            match self.peek(seq) {
                Peek::Ready(meta) => {
                    let missed = std::mem::take(&mut cursor.missed);
                    return Some(Record { seq, offset: self.payload_offset(seq), missed, meta });
                }
                // Being overwritten right now (the writer is one lap ahead): count it and move on.
                Peek::Overwritten | Peek::Pending => cursor.missed += 1,
            }
        }
    }

    /// The newest record if it is newer than the cursor; `missed` counts the records between.
    pub fn latest_record(&self, cursor: &mut Cursor) -> Option<Record> {
        loop {
            let head = self.head();
            if head <= cursor.next {
                return None;
            }
            let seq = head - 1;
            if let Peek::Ready(meta) = self.peek(seq) {
                let missed = std::mem::take(&mut cursor.missed) + (seq - cursor.next);
                cursor.next = head;
                return Some(Record { seq, offset: self.payload_offset(seq), missed, meta });
            }
            // The writer lapped the whole ring between our two loads; take the new newest.
        }
    }

    /// Block until more than `after` records are published or `timeout` passes (None: no
    /// limit). Returns whether they were.
    ///
    /// Waking a sleeping vCPU costs tens of microseconds, so the reader tries to be awake when
    /// the record lands: it naps until shortly before the writer's next expected publish (from
    /// its steady rate), the writer wakes it when it *opens* a record (so the wake-up overlaps
    /// the fill), and it spins across the expected moment. Every spin is bounded by the policy,
    /// and a silent ring leaves the reader asleep in the kernel.
    pub fn wait(&self, after: u64, timeout: Option<Duration>, policy: WaitPolicy) -> bool {
        if self.head() > after {
            return true;
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let lead = policy.anticipate.as_nanos() as u64;
        let left = |cap: Duration| deadline.map_or(cap, |d| cap.min(d.saturating_duration_since(Instant::now())));

        // The writer's steady rate says when the next publish should come.
        let period = self.period_ns();
        let last = self.a64(OFF_LAST_PUBLISH).load(Ordering::Relaxed);
        let expected =
            if lead > 0 && period > 0 && last > 0 && after == self.head() { Some(last + period) } else { None };
        if let Some(expected) = expected {
            let now = monotonic_ns();
            if now + lead < expected && self.block(after, Some(left(Duration::from_nanos(expected - lead - now)))) {
                return true;
            }
        }
        let mut spun = false;
        loop {
            if self.catch_announced(after, lead, deadline) {
                return true;
            }
            if !spun {
                spun = true;
                // Spin across the expected publish, or for the plain pre-block spin.
                let now = monotonic_ns();
                let until = match expected {
                    Some(e) if now < e + lead => (e + lead).min(now + 2 * lead),
                    _ => now + policy.spin.as_nanos() as u64,
                };
                if self.spin_until(after, until, deadline) {
                    return true;
                }
                continue;
            }
            let remaining = match deadline {
                Some(d) => {
                    let r = d.saturating_duration_since(Instant::now());
                    if r.is_zero() {
                        return self.head() > after;
                    }
                    Some(r)
                }
                None => None,
            };
            if self.block(after, remaining) {
                return true;
            }
        }
    }

    fn spin_until(&self, after: u64, until_ns: u64, deadline: Option<Instant>) -> bool {
        while monotonic_ns() < until_ns && deadline.is_none_or(|d| Instant::now() < d) {
            if self.head() > after {
                return true;
            }
            std::hint::spin_loop();
        }
        self.head() > after
    }

    // If the writer has opened record `after` (see `begin_write`), spin until its usual fill time
    // is up (napping first if that is far off). Bounded: a writer that died mid-write, or one far
    // slower than usual, costs at most `4 * lead` of spinning per call.
    fn catch_announced(&self, after: u64, lead: u64, deadline: Option<Instant>) -> bool {
        if lead == 0 || self.a64(OFF_WRITING).load(Ordering::SeqCst) != after + 1 {
            return false;
        }
        let began = self.slot64(self.slot_base(after), S_T_WRITE).load(Ordering::Relaxed);
        let expected = began + self.a64(OFF_FILL).load(Ordering::Relaxed);
        let now = monotonic_ns();
        if began == 0 || now >= expected + lead {
            return false;
        }
        // A second nap would cost a second cold wake-up, whose lateness under load easily exceeds
        // the lead; only worth it when the fill is far from done.
        if now + 4 * lead < expected {
            let nap = Duration::from_nanos(expected - lead - now);
            let nap = deadline.map_or(nap, |d| nap.min(d.saturating_duration_since(Instant::now())));
            if self.block(after, Some(nap)) {
                return true;
            }
        }
        self.spin_until(after, expected + lead, deadline)
    }

    // One futex sleep of at most `timeout`; true if the record arrived.
    fn block(&self, after: u64, timeout: Option<Duration>) -> bool {
        let waiters = self.a32(OFF_WAITERS);
        let notify = self.a32(OFF_NOTIFY);
        waiters.fetch_add(1, Ordering::SeqCst);
        let seen = notify.load(Ordering::SeqCst);
        if self.head() <= after {
            futex::wait(notify, seen, timeout);
        }
        waiters.fetch_sub(1, Ordering::SeqCst);
        self.head() > after
    }

    /// Wake every blocked reader without publishing (they re-check and go back to sleep), e.g.
    /// so a process can interrupt its own reader threads at shutdown.
    pub fn wake_all(&self) {
        self.a32(OFF_NOTIFY).fetch_add(1, Ordering::SeqCst);
        futex::wake_all(self.a32(OFF_NOTIFY));
    }

    // --- raw access -------------------------------------------------------------------------

    fn raw(&self, off: usize) -> *mut u8 {
        debug_assert!(off < self.len);
        // SAFETY: every offset used is inside the validated mapping.
        unsafe { self.base.as_ptr().add(off) }
    }

    fn a64(&self, off: usize) -> &AtomicU64 {
        // SAFETY: 8-aligned offset inside the mapping; shared words are only touched atomically.
        unsafe { &*(self.raw(off) as *const AtomicU64) }
    }

    fn a32(&self, off: usize) -> &AtomicU32 {
        // SAFETY: 4-aligned offset inside the mapping.
        unsafe { &*(self.raw(off) as *const AtomicU32) }
    }

    fn get_u32(&self, off: usize) -> u32 {
        self.a32(off).load(Ordering::Relaxed)
    }

    fn get_u64(&self, off: usize) -> u64 {
        self.a64(off).load(Ordering::Relaxed)
    }

    fn put_u32(&self, off: usize, v: u32) {
        self.a32(off).store(v, Ordering::Relaxed)
    }

    fn put_u64(&self, off: usize, v: u64) {
        self.a64(off).store(v, Ordering::Relaxed)
    }

    fn slot_base(&self, seq: u64) -> usize {
        DATA_OFFSET + slot_of(seq, self.geometry.slots) as usize * self.stride
    }

    fn slot64(&self, slot: usize, field: usize) -> &AtomicU64 {
        self.a64(slot + field)
    }

    fn store_meta(&self, slot: usize, m: &SlotMeta) {
        let fields = [
            (S_LEN, m.len),
            (S_T_WRITE, m.t_write_ns),
            (S_T_PUBLISH, m.t_publish_ns),
            (S_T_SOURCE, m.t_source_ns),
            (S_FRAME, m.frame),
            (S_FLAGS, m.flags),
        ];
        for (off, v) in fields {
            self.slot64(slot, off).store(v, Ordering::Relaxed);
        }
        for (i, id) in m.trace_ids.iter().enumerate() {
            self.slot64(slot, S_TRACE + 8 * i).store(*id, Ordering::Relaxed);
        }
    }

    fn load_meta(&self, slot: usize) -> SlotMeta {
        let g = |off| self.slot64(slot, off).load(Ordering::Relaxed);
        let mut trace_ids = [0u64; TRACE_IDS];
        for (i, id) in trace_ids.iter_mut().enumerate() {
            *id = g(S_TRACE + 8 * i);
        }
        SlotMeta {
            len: g(S_LEN).min(self.geometry.capacity as u64),
            t_write_ns: g(S_T_WRITE),
            t_publish_ns: g(S_T_PUBLISH),
            t_source_ns: g(S_T_SOURCE),
            frame: g(S_FRAME),
            flags: g(S_FLAGS),
            trace_ids,
        }
    }
}
