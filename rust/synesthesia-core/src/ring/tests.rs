use super::*;
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::sync::Arc;
use std::thread;

/// A 64-byte aligned heap block standing in for a shared-memory mapping.
struct Mem {
    ptr: *mut u8,
    layout: Layout,
}

unsafe impl Send for Mem {}
unsafe impl Sync for Mem {}

impl Mem {
    fn new(len: usize) -> Mem {
        let layout = Layout::from_size_align(len, 64).unwrap();
        Mem { ptr: unsafe { alloc_zeroed(layout) }, layout }
    }
    fn len(&self) -> usize {
        self.layout.size()
    }
    fn bytes(&self, off: usize, n: usize) -> &[u8] {
        unsafe { std::slice::from_raw_parts(self.ptr.add(off), n) }
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

fn ring(slots: u32, capacity: usize) -> (Mem, Ring) {
    let mem = Mem::new(layout::segment_size(slots, capacity).unwrap());
    let r =
        unsafe { Ring::create(mem.ptr, mem.len(), Geometry { kind: Kind::Bytes, slots, capacity }, b"desc") }.unwrap();
    (mem, r)
}

fn meta(frame: u64) -> SlotMeta {
    SlotMeta { frame, trace_ids: [frame, 2, 3, 4], t_source_ns: 7, ..Default::default() }
}

#[test]
fn attach_reads_back_the_geometry_and_descriptor() {
    let (mem, _w) = ring(4, 100);
    let r = unsafe { Ring::attach(mem.ptr, mem.len(), Some(Kind::Bytes), Some(4), Some(100)) }.unwrap();
    assert_eq!(r.geometry(), Geometry { kind: Kind::Bytes, slots: 4, capacity: 100 });
    assert_eq!(r.descriptor(), b"desc");
    let any = unsafe { Ring::attach(mem.ptr, mem.len(), None, None, None) }.unwrap();
    assert_eq!(any.geometry().slots, 4);
}

#[test]
fn attach_rejects_mismatches_with_a_clear_reason() {
    let (mem, _w) = ring(4, 100);
    let (ptr, len) = (mem.ptr, mem.len());
    let err = move |k, s, c| match unsafe { Ring::attach(ptr, len, k, s, c) } {
        Err(RingError::Layout(m)) => m,
        other => panic!("expected a layout error, got {:?}", other.map(|r| r.geometry())),
    };
    assert!(err(Some(Kind::Frame), None, None).contains("bytes ring, expected a frame ring"));
    assert!(err(None, Some(8), None).contains("has 4 slots, expected 8"));
    assert!(err(None, None, Some(99)).contains("slot size is 100 bytes, expected 99"));
    let short = unsafe { Ring::attach(mem.ptr, mem.len() - 64, None, None, None) };
    assert!(matches!(short, Err(RingError::Layout(m)) if m.contains("needs")));
    unsafe { ptr.add(layout::OFF_VERSION).cast::<u32>().write(99) };
    assert!(err(None, None, None).contains("layout version 99"));
    unsafe { ptr.write(b'X') };
    assert!(err(None, None, None).contains("not a synesthesia ring"));
}

#[test]
fn create_checks_its_arguments() {
    let mem = Mem::new(4096);
    let g = |slots, capacity| Geometry { kind: Kind::Frame, slots, capacity };
    assert!(matches!(
        unsafe { Ring::create(mem.ptr, mem.len(), g(0, 8), b"") },
        Err(RingError::InvalidArgument { name: "slots", .. })
    ));
    assert!(matches!(
        unsafe { Ring::create(mem.ptr, mem.len(), g(2, 0), b"") },
        Err(RingError::InvalidArgument { name: "capacity", .. })
    ));
    assert!(matches!(
        unsafe { Ring::create(mem.ptr, mem.len(), g(64, 4096), b"") },
        Err(RingError::InvalidArgument { name: "buffer", .. })
    ));
    let long = [0u8; 300];
    assert!(matches!(
        unsafe { Ring::create(mem.ptr, mem.len(), g(1, 8), &long) },
        Err(RingError::InvalidArgument { name: "descriptor", .. })
    ));
}

#[test]
fn records_come_back_in_order_with_their_metadata() {
    let (mem, r) = ring(4, 16);
    let mut c = Cursor::default();
    assert_eq!(r.next_record(&mut c), None);
    for i in 0..3u8 {
        r.push(&[i; 5], &meta(i as u64 + 10)).unwrap();
    }
    for i in 0..3u8 {
        let rec = r.next_record(&mut c).unwrap();
        assert_eq!((rec.seq, rec.missed, rec.meta.len, rec.meta.frame), (i as u64, 0, 5, i as u64 + 10));
        assert_eq!(rec.meta.trace_ids, [i as u64 + 10, 2, 3, 4]);
        assert!(rec.meta.t_publish_ns >= rec.meta.t_write_ns && rec.meta.t_write_ns > 0);
        assert_eq!(mem.bytes(rec.offset, 5), &[i; 5]);
        assert!(r.is_valid(rec.seq));
    }
    assert_eq!(r.next_record(&mut c), None);
}

#[test]
fn a_lapped_reader_skips_to_the_oldest_record_and_counts_the_rest() {
    let (_mem, r) = ring(4, 8);
    let mut c = Cursor::default();
    for i in 0..10 {
        r.push(&[i as u8], &meta(i)).unwrap();
    }
    let rec = r.next_record(&mut c).unwrap();
    assert_eq!((rec.seq, rec.missed), (6, 6));
    assert_eq!(r.next_record(&mut c).map(|x| (x.seq, x.missed)), Some((7, 0)));
    assert!(!r.is_valid(0) && !r.is_valid(5) && r.is_valid(6));
}

#[test]
fn latest_mode_returns_the_newest_and_counts_what_it_jumped() {
    let (_mem, r) = ring(4, 8);
    let mut c = Cursor::default();
    assert_eq!(r.latest_record(&mut c), None);
    for i in 0..3 {
        r.push(&[0], &meta(i)).unwrap();
    }
    let rec = r.latest_record(&mut c).unwrap();
    assert_eq!((rec.seq, rec.missed), (2, 2));
    assert_eq!(r.latest_record(&mut c), None);
    r.push(&[0], &meta(3)).unwrap();
    assert_eq!(r.latest_record(&mut c).map(|x| (x.seq, x.missed)), Some((3, 0)));
}

#[test]
fn a_record_being_replaced_is_invalid_from_the_first_write() {
    let (_mem, r) = ring(2, 8);
    r.push(&[1], &meta(0)).unwrap();
    r.push(&[2], &meta(1)).unwrap();
    assert!(r.is_valid(0));
    let g = r.begin_write(false); // record 2 goes into record 0's slot
    assert_eq!(g.seq, 2);
    assert!(!r.is_valid(0));
    assert_eq!(r.peek(0), Peek::Overwritten);
    assert_eq!(r.peek(2), Peek::Pending);
    // A reader lapped onto the slot being written skips it rather than returning it torn.
    let mut c = Cursor::default();
    assert_eq!(r.next_record(&mut c).map(|x| (x.seq, x.missed)), Some((1, 1)));
}

#[test]
fn a_writer_that_died_mid_write_leaves_the_ring_usable() {
    let (_mem, r) = ring(3, 8);
    r.push(&[1], &meta(0)).unwrap();
    let _abandoned = r.begin_write(false); // the writer dies here: never publishes record 1
    assert_eq!(r.head(), 1);
    let mut c = Cursor::default();
    assert_eq!(r.next_record(&mut c).map(|x| x.seq), Some(0));
    assert!(!r.wait(c.next - 1 + 1, Some(Duration::from_millis(5)), WaitPolicy::default()));
    // Its successor claims the writer role and rewrites the same record number.
    r.claim_writer(2, |_| false).unwrap();
    r.push(&[9], &meta(1)).unwrap();
    let rec = r.next_record(&mut c).unwrap();
    assert_eq!((rec.seq, rec.missed, rec.meta.frame), (1, 0, 1));
}

#[test]
fn the_writer_role_is_exclusive_while_its_holder_lives() {
    let (_mem, r) = ring(2, 8);
    r.claim_writer(10, |_| true).unwrap();
    r.claim_writer(10, |_| true).unwrap();
    assert_eq!(r.claim_writer(11, |_| true), Err(RingError::WriterBusy { pid: 10 }));
    r.claim_writer(11, |pid| pid != 10).unwrap();
    assert_eq!(r.writer_pid(), 11);
    r.release_writer(10); // not the holder: no effect
    assert_eq!(r.writer_pid(), 11);
    r.release_writer(11);
    assert_eq!(r.writer_pid(), 0);
}

#[test]
fn oversized_records_and_stale_grants_are_refused() {
    let (_mem, r) = ring(2, 4);
    assert!(matches!(r.push(&[0; 5], &meta(0)), Err(RingError::InvalidArgument { name: "size", .. })));
    let g = r.begin_write(false);
    r.publish(g, 4, &meta(0)).unwrap();
    assert!(matches!(r.publish(g, 4, &meta(0)), Err(RingError::InvalidArgument { name: "grant", .. })));
}

#[test]
fn index_arithmetic_matches_a_model_for_every_small_geometry() {
    // Exhaustive over small cases: for each ring size, write `w` records then read in next
    // mode; the reader must get exactly the newest min(w, slots) records, in order, with the
    // skipped ones counted once.
    for slots in 1..6u32 {
        for w in 0..20u64 {
            for start in 0..=w {
                let (_mem, r) = ring(slots, 8);
                let mut c = Cursor { next: 0, missed: 0 };
                for i in 0..w {
                    if i == start {
                        c.next = r.head();
                    }
                    r.push(&i.to_le_bytes(), &meta(i)).unwrap();
                }
                if start == w {
                    c.next = w;
                }
                let mut got = vec![];
                let mut missed = 0;
                while let Some(rec) = r.next_record(&mut c) {
                    missed += rec.missed;
                    got.push(rec.seq);
                }
                let first = start.max(w.saturating_sub(slots as u64));
                assert_eq!(got, (first..w).collect::<Vec<_>>(), "slots {slots} writes {w} start {start}");
                assert_eq!(missed, first - start);
            }
        }
    }
}

#[test]
fn wait_times_out_and_is_woken_by_a_publish_in_another_thread() {
    let (mem, r) = ring(4, 8);
    let t0 = Instant::now();
    assert!(!r.wait(0, Some(Duration::from_millis(20)), WaitPolicy::default()));
    assert!(t0.elapsed() >= Duration::from_millis(20));
    let mem = Arc::new(mem);
    let m2 = mem.clone();
    let writer = thread::spawn(move || {
        let w = unsafe { Ring::attach(m2.ptr, m2.len(), None, None, None) }.unwrap();
        thread::sleep(Duration::from_millis(30));
        w.push(&[1], &meta(0)).unwrap();
    });
    let no_spin = WaitPolicy { spin: Duration::ZERO, anticipate: Duration::ZERO };
    assert!(r.wait(0, Some(Duration::from_secs(10)), no_spin));
    writer.join().unwrap();
    assert_eq!(r.waiters(), 0);
}

#[test]
fn concurrent_readers_never_see_a_torn_record() {
    // Each record is `len` copies of one byte plus that byte in `frame`; a reader that checks
    // `is_valid` after reading must never accept a mix.
    let (mem, _r) = ring(3, 4096);
    let mem = Arc::new(mem);
    let total = 20_000u64;
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let m = mem.clone();
            thread::spawn(move || {
                let r = unsafe { Ring::attach(m.ptr, m.len(), None, None, None) }.unwrap();
                let mut c = Cursor::default();
                let (mut seen, mut missed, mut torn_rejected) = (0u64, 0u64, 0u64);
                let policy = WaitPolicy { spin: Duration::from_micros(5), anticipate: Duration::ZERO };
                while c.next < total {
                    let Some(rec) = r.next_record(&mut c) else {
                        r.wait(c.next, Some(Duration::from_millis(100)), policy);
                        continue;
                    };
                    let data = m.bytes(rec.offset, rec.meta.len as usize).to_vec();
                    missed += rec.missed;
                    if !r.is_valid(rec.seq) {
                        torn_rejected += 1;
                        continue;
                    }
                    let b = rec.meta.frame as u8;
                    assert!(data.iter().all(|&x| x == b), "torn record {}", rec.seq);
                    assert_eq!(rec.meta.frame, rec.seq);
                    seen += 1;
                }
                (seen, missed + c.missed, torn_rejected)
            })
        })
        .collect();
    let w = unsafe { Ring::attach(mem.ptr, mem.len(), None, None, None) }.unwrap();
    for i in 0..total {
        let len = 1 + (i as usize * 37) % 4096;
        let g = w.begin_write(false);
        unsafe { std::ptr::write_bytes(mem.ptr.add(g.offset), i as u8, len) };
        w.publish(g, len, &SlotMeta { frame: i, ..Default::default() }).unwrap();
    }
    for h in readers {
        let (seen, missed, torn) = h.join().unwrap();
        assert!(seen > 0);
        assert_eq!(seen + missed + torn, total, "{seen} {missed} {torn}");
    }
}

#[test]
fn anticipation_catches_a_periodic_writer_without_spinning_forever() {
    let (mem, r) = ring(4, 8);
    let mem = Arc::new(mem);
    let m2 = mem.clone();
    let writer = thread::spawn(move || {
        let w = unsafe { Ring::attach(m2.ptr, m2.len(), None, None, None) }.unwrap();
        for i in 0..20 {
            w.push(&[0], &meta(i)).unwrap();
            thread::sleep(Duration::from_millis(2));
        }
    });
    let mut c = Cursor::default();
    let mut got = 0;
    while got < 20 {
        if r.next_record(&mut c).is_some() {
            got += 1;
        } else {
            assert!(r.wait(c.next, Some(Duration::from_secs(10)), WaitPolicy::default()));
        }
    }
    writer.join().unwrap();
    assert!(r.period_ns() > 1_000_000, "period estimate {}", r.period_ns());
    // Idle now: a wait must block and time out rather than spin or return early.
    assert!(!r.wait(c.next, Some(Duration::from_millis(10)), WaitPolicy::default()));
}

#[test]
#[ignore = "diagnostic: prints wake-up latencies; run with --ignored --nocapture"]
fn diag_latency_of_announced_writes() {
    let cap: usize = std::env::var("DIAG_CAP").ok().and_then(|v| v.parse().ok()).unwrap_or(704 * 1280 * 3);
    let (mem, r) = ring(4, cap);
    let mem = Arc::new(mem);
    let m2 = mem.clone();
    let src = vec![7u8; cap];
    let writer = thread::spawn(move || {
        let w = unsafe { Ring::attach(m2.ptr, m2.len(), None, None, None) }.unwrap();
        thread::sleep(Duration::from_millis(100));
        for i in 0..40u64 {
            thread::sleep(Duration::from_millis(40));
            let g = w.begin_write(true);
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), m2.ptr.add(g.offset), cap) };
            w.publish(g, cap, &meta(i)).unwrap();
        }
    });
    let lat = publish_latencies_us(&r, 40);
    writer.join().unwrap();
    println!("latencies us: {lat:?}; fill {} us", r.a64(OFF_FILL).load(Ordering::Relaxed) / 1000);
}

/// Publish -> seen latencies (us) of the next `n` records, waiting as a stage would.
fn publish_latencies_us(r: &Ring, n: usize) -> Vec<u64> {
    let mut c = Cursor::default();
    let mut lat = vec![];
    while lat.len() < n {
        if let Some(rec) = r.next_record(&mut c) {
            lat.push((monotonic_ns() - rec.meta.t_publish_ns) / 1000);
        } else {
            r.wait(c.next, Some(Duration::from_secs(5)), WaitPolicy::default());
        }
    }
    lat
}

#[test]
#[ignore = "diagnostic: cross-process wake-up latencies; run with --ignored --nocapture"]
fn diag_latency_across_processes() {
    let cap: usize = std::env::var("DIAG_CAP").ok().and_then(|v| v.parse().ok()).unwrap_or(704 * 1280 * 3);
    let len = layout::segment_size(4, cap).unwrap();
    // SAFETY: a fresh shared anonymous mapping, inherited by the forked child.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    } as *mut u8;
    let r = unsafe { Ring::create(ptr, len, Geometry { kind: Kind::Bytes, slots: 4, capacity: cap }, b"") }.unwrap();
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let src = vec![7u8; cap];
        thread::sleep(Duration::from_millis(200));
        for i in 0..40u64 {
            thread::sleep(Duration::from_millis(40));
            let g = r.begin_write(true);
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), ptr.add(g.offset), cap) };
            r.publish(g, cap, &meta(i)).unwrap();
        }
        unsafe { libc::_exit(0) };
    }
    let mut lat = publish_latencies_us(&r, 40);
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    lat.sort();
    println!("latencies us (sorted): {lat:?}");
}
