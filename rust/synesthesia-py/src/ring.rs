//! Binding for the shared-memory rings of `synesthesia_core::ring`: `_native.Ring`, one handle
//! per process and ring, wrapping a mapping that Python's `multiprocessing.shared_memory` made.
//!
//! The handle holds a buffer export of the mapping, so Python cannot unmap it while Rust may
//! still touch it (`SharedMemory.close()` raises `BufferError` until `Ring.close()`), and every
//! blocking wait runs detached from the GIL in slices, checking for signals between them.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyBufferError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use synesthesia_core::ring::{self, Cursor, Geometry, Grant, Kind, Record, RingError, SlotMeta, WaitPolicy, TRACE_IDS};

use crate::detached;

/// How long one detached wait may last before we take the GIL back to run signal handlers, so
/// Ctrl-C reaches a reader blocked with no timeout. Data wakes a reader at once regardless.
const SIGNAL_SLICE: Duration = Duration::from_millis(500);

/// (seq, offset, missed, len, t_write_ns, t_publish_ns, t_source_ns, frame, flags, trace_ids)
type RecordTuple = (u64, usize, u64, u64, u64, u64, u64, u64, u64, [u64; TRACE_IDS]);

/// The one place ring errors become Python exceptions (classes in `synesthesia.errors`).
fn ring_to_py(py: Python<'_>, err: RingError) -> PyErr {
    let made = (|| -> PyResult<PyErr> {
        let errors = py.import("synesthesia.errors")?;
        let instance = match &err {
            RingError::Layout(m) => errors.getattr("RingLayoutError")?.call1((m.as_str(),))?,
            RingError::InvalidArgument { name, .. } => {
                errors.getattr("RingArgumentError")?.call1((err.to_string(), *name))?
            }
            RingError::WriterBusy { pid } => errors.getattr("RingBusyError")?.call1((err.to_string(), *pid))?,
        };
        Ok(PyErr::from_value(instance))
    })();
    made.unwrap_or_else(|e| e)
}

fn closed(py: Python<'_>) -> PyErr {
    ring_to_py(py, RingError::InvalidArgument { name: "ring", message: "the ring handle is closed".into() })
}

fn parse_kind(py: Python<'_>, kind: &str) -> PyResult<Kind> {
    match kind {
        "frame" => Ok(Kind::Frame),
        "bytes" => Ok(Kind::Bytes),
        other => Err(ring_to_py(
            py,
            RingError::InvalidArgument { name: "kind", message: format!("expected 'frame' or 'bytes', got {other:?}") },
        )),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // State behind these locks is plain data that stays consistent even if a holder panicked.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The mapping and the ring over it, alive as long as any call is using them.
struct Mapped {
    ring: ring::Ring,
    // Held, never read: the export keeps the mapping in place (see the module comment).
    _buffer: PyBuffer<u8>,
}

fn mapping(py: Python<'_>, buffer: &Bound<'_, PyAny>) -> PyResult<(PyBuffer<u8>, *mut u8, usize)> {
    let buf = PyBuffer::<u8>::get(buffer)?;
    if buf.readonly() || !buf.is_c_contiguous() {
        return Err(ring_to_py(
            py,
            RingError::InvalidArgument { name: "buffer", message: "need a writable, contiguous buffer".into() },
        ));
    }
    let (ptr, len) = (buf.buf_ptr() as *mut u8, buf.len_bytes());
    Ok((buf, ptr, len))
}

fn record_tuple(r: Record) -> RecordTuple {
    let m = r.meta;
    (r.seq, r.offset, r.missed, m.len, m.t_write_ns, m.t_publish_ns, m.t_source_ns, m.frame, m.flags, m.trace_ids)
}

/// A handle on one ring: a reader cursor, and the writer's open record if this process writes.
#[pyclass(module = "synesthesia._native", name = "Ring")]
pub(crate) struct PyRing {
    mapped: Mutex<Option<Arc<Mapped>>>,
    cursor: Mutex<Cursor>,
    grant: Mutex<Option<Grant>>,
    policy: Mutex<WaitPolicy>,
}

impl PyRing {
    fn new(ring: ring::Ring, buffer: PyBuffer<u8>) -> Self {
        let head = ring.head();
        PyRing {
            mapped: Mutex::new(Some(Arc::new(Mapped { ring, _buffer: buffer }))),
            // A new reader starts at the present: it gets records published from now on.
            cursor: Mutex::new(Cursor { next: head, missed: 0 }),
            grant: Mutex::new(None),
            policy: Mutex::new(WaitPolicy::default()),
        }
    }

    fn get(&self, py: Python<'_>) -> PyResult<Arc<Mapped>> {
        lock(&self.mapped).clone().ok_or_else(|| closed(py))
    }

    /// Take records with `take` until one comes or `timeout` (seconds; None = forever) passes.
    fn take(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        take: fn(&ring::Ring, &mut Cursor) -> Option<Record>,
    ) -> PyResult<Option<RecordTuple>> {
        let m = self.get(py)?;
        let deadline = match timeout {
            Some(t) if !(t >= 0.0 && t.is_finite()) => {
                return Err(ring_to_py(
                    py,
                    RingError::InvalidArgument {
                        name: "timeout",
                        message: format!("must be a finite number >= 0 or None, got {t}"),
                    },
                ))
            }
            Some(t) => Some(Instant::now() + Duration::from_secs_f64(t)),
            None => None,
        };
        let policy = *lock(&self.policy);
        loop {
            let after = {
                let mut cursor = lock(&self.cursor);
                if let Some(r) = take(&m.ring, &mut cursor) {
                    return Ok(Some(record_tuple(r)));
                }
                cursor.next
            };
            let slice = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    left.min(SIGNAL_SLICE)
                }
                None => SIGNAL_SLICE,
            };
            let ring = &m.ring;
            detached(py, || Ok(ring.wait(after, Some(slice), policy)))?;
            py.check_signals()?;
        }
    }
}

#[pymethods]
impl PyRing {
    /// Initialise a ring in `buffer` (the creator's mapping) and return a handle on it.
    #[staticmethod]
    fn create(
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
        kind: &str,
        slots: u32,
        capacity: usize,
        descriptor: &[u8],
    ) -> PyResult<Self> {
        let kind = parse_kind(py, kind)?;
        let (buf, ptr, len) = mapping(py, buffer)?;
        // SAFETY: the export in `buf` keeps `len` writable bytes at `ptr` mapped for the life of
        // the handle; the segment was just created, so no other process uses it yet.
        let ring = unsafe { ring::Ring::create(ptr, len, Geometry { kind, slots, capacity }, descriptor) }
            .map_err(|e| ring_to_py(py, e))?;
        Ok(PyRing::new(ring, buf))
    }

    /// Check the header in `buffer` (an attached mapping) and return a handle on the ring.
    #[staticmethod]
    #[pyo3(signature = (buffer, kind=None, slots=None, capacity=None))]
    fn attach(
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
        kind: Option<&str>,
        slots: Option<u32>,
        capacity: Option<usize>,
    ) -> PyResult<Self> {
        let kind = kind.map(|k| parse_kind(py, k)).transpose()?;
        let (buf, ptr, len) = mapping(py, buffer)?;
        // SAFETY: as in `create`; the header is validated before any other access.
        let ring = unsafe { ring::Ring::attach(ptr, len, kind, slots, capacity) }.map_err(|e| ring_to_py(py, e))?;
        Ok(PyRing::new(ring, buf))
    }

    /// Bytes a segment needs for `slots` slots of `capacity` bytes.
    #[staticmethod]
    fn segment_size(py: Python<'_>, slots: u32, capacity: usize) -> PyResult<usize> {
        ring::layout::segment_size(slots, capacity).ok_or_else(|| {
            ring_to_py(py, RingError::InvalidArgument { name: "capacity", message: "ring too large".into() })
        })
    }

    #[getter]
    fn kind(&self, py: Python<'_>) -> PyResult<&'static str> {
        Ok(self.get(py)?.ring.geometry().kind.name())
    }

    #[getter]
    fn slots(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.get(py)?.ring.geometry().slots)
    }

    #[getter]
    fn capacity(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.get(py)?.ring.geometry().capacity)
    }

    #[getter]
    fn descriptor<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.get(py)?.ring.descriptor()))
    }

    #[getter]
    fn head(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.get(py)?.ring.head())
    }

    #[getter]
    fn writer_pid(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.get(py)?.ring.writer_pid())
    }

    #[getter]
    fn period_ns(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.get(py)?.ring.period_ns())
    }

    #[getter]
    fn closed(&self) -> bool {
        lock(&self.mapped).is_none()
    }

    /// Offset of record `seq`'s payload from the start of the mapping.
    fn payload_offset(&self, py: Python<'_>, seq: u64) -> PyResult<usize> {
        Ok(self.get(py)?.ring.payload_offset(seq))
    }

    /// Set how readers of this handle wait: spin `spin_us` before blocking, and from
    /// `anticipate_us` before a steady writer's next expected publish (0 turns either off).
    fn set_wait_policy(&self, py: Python<'_>, spin_us: f64, anticipate_us: f64) -> PyResult<()> {
        for (name, v) in [("spin_us", spin_us), ("anticipate_us", anticipate_us)] {
            if !(v >= 0.0 && v <= 1e6) {
                return Err(ring_to_py(
                    py,
                    RingError::InvalidArgument {
                        name,
                        message: format!("must be within 0..=1e6 microseconds, got {v}"),
                    },
                ));
            }
        }
        *lock(&self.policy) = WaitPolicy {
            spin: Duration::from_secs_f64(spin_us / 1e6),
            anticipate: Duration::from_secs_f64(anticipate_us / 1e6),
        };
        Ok(())
    }

    /// Take the writer role (replacing a holder that has exited) and open the next record;
    /// returns (seq, payload offset). `announce` wakes blocked readers now (see the core).
    #[pyo3(signature = (announce=true))]
    fn begin_write(&self, py: Python<'_>, announce: bool) -> PyResult<(u64, usize)> {
        let m = self.get(py)?;
        m.ring.claim_writer_here().map_err(|e| ring_to_py(py, e))?;
        let g = m.ring.begin_write(announce);
        *lock(&self.grant) = Some(g);
        Ok((g.seq, g.offset))
    }

    /// Publish the open record with `size` payload bytes; returns its publish time (ns).
    #[pyo3(signature = (size, frame, flags=0, t_source_ns=0, trace_ids=[0; TRACE_IDS]))]
    fn publish(
        &self,
        py: Python<'_>,
        size: usize,
        frame: u64,
        flags: u64,
        t_source_ns: u64,
        trace_ids: [u64; TRACE_IDS],
    ) -> PyResult<u64> {
        let m = self.get(py)?;
        let grant = lock(&self.grant).ok_or_else(|| {
            ring_to_py(
                py,
                RingError::InvalidArgument {
                    name: "publish",
                    message: "no record is open (call begin_write first)".into(),
                },
            )
        })?;
        let meta = SlotMeta { frame, flags, t_source_ns, trace_ids, ..Default::default() };
        let out = m.ring.publish(grant, size, &meta).map_err(|e| ring_to_py(py, e))?;
        *lock(&self.grant) = None;
        Ok(out.t_publish_ns)
    }

    /// Copy `data` (any contiguous bytes-like object) into the next record and publish it;
    /// returns (seq, publish time ns).
    #[pyo3(signature = (data, frame=None, flags=0, t_source_ns=0, trace_ids=[0; TRACE_IDS]))]
    fn push(
        &self,
        py: Python<'_>,
        data: PyBuffer<u8>,
        frame: Option<u64>,
        flags: u64,
        t_source_ns: u64,
        trace_ids: [u64; TRACE_IDS],
    ) -> PyResult<(u64, u64)> {
        let m = self.get(py)?;
        if !data.is_c_contiguous() {
            return Err(PyBufferError::new_err("data must be a contiguous buffer"));
        }
        m.ring.claim_writer_here().map_err(|e| ring_to_py(py, e))?;
        // SAFETY: `data` is a live, contiguous export of `len_bytes()` bytes, held for the call.
        let bytes = unsafe { std::slice::from_raw_parts(data.buf_ptr() as *const u8, data.len_bytes()) };
        let seq = m.ring.head();
        let meta = SlotMeta { frame: frame.unwrap_or(seq), flags, t_source_ns, trace_ids, ..Default::default() };
        let out = m.ring.push(bytes, &meta).map_err(|e| ring_to_py(py, e))?;
        Ok((seq, out.t_publish_ns))
    }

    /// Give up the writer role if this process holds it.
    fn release_writer(&self, py: Python<'_>) -> PyResult<()> {
        self.get(py)?.ring.release_writer(std::process::id());
        Ok(())
    }

    /// The next unread record, waiting up to `timeout` seconds (None: no limit); None on timeout.
    #[pyo3(signature = (timeout=None))]
    fn next(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<RecordTuple>> {
        self.take(py, timeout, ring::Ring::next_record)
    }

    /// The newest record if newer than the last one returned, waiting as `next` does.
    #[pyo3(signature = (timeout=None))]
    fn latest(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<RecordTuple>> {
        self.take(py, timeout, ring::Ring::latest_record)
    }

    /// True while record `seq` is whole: call after using its payload.
    fn valid(&self, py: Python<'_>, seq: u64) -> PyResult<bool> {
        Ok(self.get(py)?.ring.is_valid(seq))
    }

    /// Move this handle's reader cursor (e.g. back to the oldest record, or to the present).
    fn seek(&self, py: Python<'_>, seq: u64) -> PyResult<()> {
        let _ = self.get(py)?;
        *lock(&self.cursor) = Cursor { next: seq, missed: 0 };
        Ok(())
    }

    #[getter]
    fn cursor(&self) -> u64 {
        lock(&self.cursor).next
    }

    /// Wake every reader blocked on this ring, in any process, without publishing.
    fn wake_all(&self, py: Python<'_>) -> PyResult<()> {
        self.get(py)?.ring.wake_all();
        Ok(())
    }

    /// Drop the mapping export. Idempotent; a wait still running in another thread keeps the
    /// mapping until it returns.
    fn close(&self) {
        lock(&self.mapped).take();
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRing>()?;
    m.add_function(wrap_pyfunction!(monotonic_ns, m)?)?;
    Ok(())
}

/// `CLOCK_MONOTONIC` in ns, the clock of every ring timestamp.
#[pyfunction]
fn monotonic_ns() -> u64 {
    ring::monotonic_ns()
}
