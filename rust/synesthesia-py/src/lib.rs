//! `synesthesia._native`: the thin PyO3 layer over `synesthesia-core`.
//!
//! It only converts arguments, releases the GIL around the work (one helper, [`detached`]) and
//! maps core errors to Python (one site, [`to_py`]). Argument checks that need Python types
//! (dtype, ndim) live in the `synesthesia.kernels` facade; everything numeric is checked by the
//! core so Rust callers get the same errors.

use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyType};
use synesthesia_core::jpeg::{self, EncodeOptions, QuantTables, Subsampling};
use synesthesia_core::nano::NanoEncoder as CoreNano;
use synesthesia_core::resize::{self, Method};
use synesthesia_core::yuv;
use synesthesia_core::{Error, ImageView, ImageViewMut, SimdLevel};

mod ring;
mod world;

static ARGUMENT_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The one place core errors become Python exceptions: `synesthesia.errors.KernelArgumentError`
/// (a `ValueError`), carrying the offending argument's name.
pub(crate) fn to_py(py: Python<'_>, err: Error) -> PyErr {
    let argument = match &err {
        Error::InvalidArgument { name, .. } => *name,
        Error::BufferTooSmall { .. } => "out",
        Error::SimdUnavailable { .. } => "simd",
    };
    let class = ARGUMENT_ERROR.get_or_try_init(py, || -> PyResult<Py<PyType>> {
        let module = py.import("synesthesia.errors")?;
        Ok(module.getattr("KernelArgumentError")?.cast_into::<PyType>()?.unbind())
    });
    match class {
        Ok(class) => match class.bind(py).call1((err.to_string(), argument)) {
            Ok(instance) => PyErr::from_value(instance),
            Err(e) => e,
        },
        Err(e) => e,
    }
}

/// Run `f` with the GIL released. Arguments are extracted before and results built after.
pub(crate) fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T, Error> + Send) -> PyResult<T> {
    py.detach(f).map_err(|e| to_py(py, e))
}

fn parse_simd(py: Python<'_>, simd: Option<&str>) -> PyResult<Option<SimdLevel>> {
    simd.map(SimdLevel::parse).transpose().map_err(|e| to_py(py, e))
}

/// Borrow a (H, W) or (H, W, C) uint8 array as an image without copying. The facade has already
/// made sure that pixels and channels are contiguous and the row stride is positive.
pub(crate) fn view_parts(
    py: Python<'_>,
    name: &'static str,
    shape: &[usize],
    strides: &[isize],
    ptr: *const u8,
) -> PyResult<(*const u8, usize, usize, usize, usize, usize)> {
    let (h, w, c) = match *shape {
        [h, w] => (h, w, 1),
        [h, w, c] => (h, w, c),
        _ => return Err(to_py(py, Error::invalid(name, format!("expected 2 or 3 dimensions, got {}", shape.len())))),
    };
    let pixel_ok = w <= 1 || strides[1] == c as isize;
    let channel_ok = shape.len() == 2 || c <= 1 || strides[2] == 1;
    if !pixel_ok || !channel_ok || (h > 1 && strides[0] < (w * c) as isize) {
        return Err(to_py(
            py,
            Error::invalid(name, "pixels must be contiguous within a row (copy with numpy.ascontiguousarray)"),
        ));
    }
    let stride = if h > 1 { strides[0] as usize } else { w * c };
    let len = if h == 0 || w == 0 { 0 } else { (h - 1) * stride + w * c };
    Ok((ptr, len, w, h, c, stride))
}

fn image<'a>(py: Python<'_>, name: &'static str, arr: &'a PyReadonlyArrayDyn<'_, u8>) -> PyResult<ImageView<'a>> {
    let (ptr, len, w, h, c, stride) = view_parts(py, name, arr.shape(), arr.strides(), arr.data())?;
    // SAFETY: `arr` is a read-only borrow of a live numpy array for `'a`; `len` covers exactly
    // the bytes its shape and strides address.
    let data = unsafe { std::slice::from_raw_parts(ptr, len) };
    ImageView::new(data, w, h, c, stride).map_err(|e| to_py(py, e))
}

fn jpeg_options(
    py: Python<'_>,
    quality: u8,
    subsampling: &str,
    qtables: Option<(Vec<u16>, Vec<u16>)>,
    optimize: bool,
    restart_interval: u16,
    threads: usize,
    simd: Option<&str>,
) -> PyResult<EncodeOptions> {
    let subsampling = Subsampling::parse(subsampling).map_err(|e| to_py(py, e))?;
    let qtables = match qtables {
        Some((luma, chroma)) => Some(QuantTables::new(&luma, &chroma).map_err(|e| to_py(py, e))?),
        None => None,
    };
    Ok(EncodeOptions {
        quality,
        subsampling,
        qtables,
        optimize_huffman: optimize,
        restart_interval,
        threads,
        simd: parse_simd(py, simd)?,
    })
}

#[pyfunction]
fn simd_levels() -> Vec<&'static str> {
    SimdLevel::available().into_iter().map(SimdLevel::name).collect()
}

#[pyfunction]
fn simd_level() -> &'static str {
    SimdLevel::active().name()
}

#[pyfunction]
#[pyo3(signature = (level=None))]
fn force_simd(py: Python<'_>, level: Option<&str>) -> PyResult<()> {
    SimdLevel::force(parse_simd(py, level)?).map_err(|e| to_py(py, e))
}

/// Resize `img` into the preallocated `out` (its shape is the output size).
#[pyfunction]
#[pyo3(signature = (img, out, method, simd=None))]
fn resize_into(
    py: Python<'_>,
    img: PyReadonlyArrayDyn<'_, u8>,
    out: Bound<'_, PyArrayDyn<u8>>,
    method: &str,
    simd: Option<&str>,
) -> PyResult<()> {
    let method = Method::parse(method).map_err(|e| to_py(py, e))?;
    let level = SimdLevel::resolve(parse_simd(py, simd)?).map_err(|e| to_py(py, e))?;
    let src = image(py, "img", &img)?;
    let out = out.readwrite();
    let (ptr, len, w, h, c, stride) = view_parts(py, "out", out.shape(), out.strides(), out.data())?;
    // SAFETY: `out` is an exclusive (readwrite) borrow of a live numpy array; `len` covers the
    // bytes its shape and strides address. The facade never passes an `out` overlapping `img`.
    let data = unsafe { std::slice::from_raw_parts_mut(ptr as *mut u8, len) };
    let mut dst = ImageViewMut::new(data, w, h, c, stride).map_err(|e| to_py(py, e))?;
    detached(py, || resize::resize_with(&src, &mut dst, method, level))
}

#[pyfunction]
fn quality_tables(py: Python<'_>, quality: u8) -> PyResult<(Vec<u16>, Vec<u16>)> {
    let t = QuantTables::from_quality(quality).map_err(|e| to_py(py, e))?;
    Ok((t.luma.to_vec(), t.chroma.to_vec()))
}

#[pyfunction]
fn turbo_tables() -> (Vec<u16>, Vec<u16>) {
    let t = QuantTables::turbo();
    (t.luma.to_vec(), t.chroma.to_vec())
}

/// RGB(A) -> I420 into `out` (a contiguous uint8 buffer of `w*h*3/2` bytes), GIL released.
#[pyfunction]
#[pyo3(signature = (img, out, simd=None))]
fn rgb_to_i420_into(
    py: Python<'_>,
    img: PyReadonlyArrayDyn<'_, u8>,
    mut out: numpy::PyReadwriteArrayDyn<'_, u8>,
    simd: Option<&str>,
) -> PyResult<()> {
    let level = parse_simd(py, simd)?;
    let src = image(py, "img", &img)?;
    let dst = writable_bytes(&mut out);
    detached(py, || yuv::rgb_to_i420(&src, dst, level))
}

/// RGB(A) -> I420 into three separate contiguous planes (e.g. an encoder's picture), GIL released.
#[pyfunction]
#[pyo3(signature = (img, y, u, v, simd=None))]
fn rgb_to_i420_planes_into(
    py: Python<'_>,
    img: PyReadonlyArrayDyn<'_, u8>,
    mut y: numpy::PyReadwriteArrayDyn<'_, u8>,
    mut u: numpy::PyReadwriteArrayDyn<'_, u8>,
    mut v: numpy::PyReadwriteArrayDyn<'_, u8>,
    simd: Option<&str>,
) -> PyResult<()> {
    let level = parse_simd(py, simd)?;
    let src = image(py, "img", &img)?;
    let (y, u, v) = (writable_bytes(&mut y), writable_bytes(&mut u), writable_bytes(&mut v));
    detached(py, || yuv::rgb_to_i420_planes(&src, y, u, v, level))
}

fn writable_bytes<'a>(out: &'a mut numpy::PyReadwriteArrayDyn<'_, u8>) -> &'a mut [u8] {
    // The facade passes a 1-D contiguous uint8 view of the caller's buffer.
    out.as_slice_mut().expect("facade passes a contiguous 1-D buffer")
}

/// What the two encoder classes share: an image in, a whole JPEG out (to a Vec or a buffer).
trait FrameEncoder: Send {
    fn to_vec(&mut self, img: &ImageView, out: &mut Vec<u8>) -> Result<(), Error>;
    fn to_slice(&mut self, img: &ImageView, out: &mut [u8]) -> Result<usize, Error>;
}

impl FrameEncoder for jpeg::JpegEncoder {
    fn to_vec(&mut self, img: &ImageView, out: &mut Vec<u8>) -> Result<(), Error> {
        self.encode(img, out)
    }
    fn to_slice(&mut self, img: &ImageView, out: &mut [u8]) -> Result<usize, Error> {
        self.encode_into(img, out)
    }
}

impl FrameEncoder for CoreNano {
    fn to_vec(&mut self, img: &ImageView, out: &mut Vec<u8>) -> Result<(), Error> {
        self.encode(img, out)
    }
    fn to_slice(&mut self, img: &ImageView, out: &mut [u8]) -> Result<usize, Error> {
        self.encode_into(img, out)
    }
}

/// Encode with the GIL released into the encoder's reused buffer, then copy once into `bytes`.
fn encode_to_bytes<'py>(
    py: Python<'py>,
    enc: &mut impl FrameEncoder,
    buf: &mut Vec<u8>,
    name: &'static str,
    img: &PyReadonlyArrayDyn<'_, u8>,
) -> PyResult<Bound<'py, PyBytes>> {
    let src = image(py, name, img)?;
    detached(py, || enc.to_vec(&src, buf))?;
    Ok(PyBytes::new(py, buf))
}

/// Encode with the GIL released straight into the caller's buffer; returns the bytes written.
fn encode_to_buffer(
    py: Python<'_>,
    enc: &mut impl FrameEncoder,
    name: &'static str,
    img: &PyReadonlyArrayDyn<'_, u8>,
    out: &mut numpy::PyReadwriteArrayDyn<'_, u8>,
) -> PyResult<usize> {
    let src = image(py, name, img)?;
    let dst = writable_bytes(out);
    detached(py, || enc.to_slice(&src, dst))
}

/// A reusable JPEG encoder: its scratch buffers and output buffer live across frames.
#[pyclass(module = "synesthesia._native")]
struct JpegEncoder {
    inner: jpeg::JpegEncoder,
    buf: Vec<u8>,
}

#[pymethods]
impl JpegEncoder {
    #[new]
    #[pyo3(signature = (quality, subsampling, qtables, optimize, restart_interval, threads, simd))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        quality: u8,
        subsampling: &str,
        qtables: Option<(Vec<u16>, Vec<u16>)>,
        optimize: bool,
        restart_interval: u16,
        threads: usize,
        simd: Option<&str>,
    ) -> PyResult<Self> {
        let opts = jpeg_options(py, quality, subsampling, qtables, optimize, restart_interval, threads, simd)?;
        let inner = jpeg::JpegEncoder::new(opts).map_err(|e| to_py(py, e))?;
        Ok(Self { inner, buf: Vec::new() })
    }

    fn encode<'py>(&mut self, py: Python<'py>, img: PyReadonlyArrayDyn<'_, u8>) -> PyResult<Bound<'py, PyBytes>> {
        encode_to_bytes(py, &mut self.inner, &mut self.buf, "img", &img)
    }

    fn encode_into(
        &mut self,
        py: Python<'_>,
        img: PyReadonlyArrayDyn<'_, u8>,
        mut out: numpy::PyReadwriteArrayDyn<'_, u8>,
    ) -> PyResult<usize> {
        encode_to_buffer(py, &mut self.inner, "img", &img, &mut out)
    }

    fn max_encoded_size(&self, width: usize, height: usize) -> usize {
        jpeg::JpegEncoder::max_encoded_size(width, height, self.inner.options())
    }
}

/// The fused nano path: full frame in, JPEG of the frame downscaled by `scale` out.
#[pyclass(module = "synesthesia._native")]
struct NanoEncoder {
    inner: CoreNano,
    buf: Vec<u8>,
}

#[pymethods]
impl NanoEncoder {
    #[new]
    #[pyo3(signature = (scale, method, quality, subsampling, qtables, optimize, restart_interval, threads, simd))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        scale: usize,
        method: &str,
        quality: u8,
        subsampling: &str,
        qtables: Option<(Vec<u16>, Vec<u16>)>,
        optimize: bool,
        restart_interval: u16,
        threads: usize,
        simd: Option<&str>,
    ) -> PyResult<Self> {
        let method = Method::parse(method).map_err(|e| to_py(py, e))?;
        let opts = jpeg_options(py, quality, subsampling, qtables, optimize, restart_interval, threads, simd)?;
        let inner = CoreNano::new(scale, method, opts).map_err(|e| to_py(py, e))?;
        Ok(Self { inner, buf: Vec::new() })
    }

    fn output_size(&self, width: usize, height: usize) -> (usize, usize) {
        self.inner.output_size(width, height)
    }

    fn encode<'py>(&mut self, py: Python<'py>, frame: PyReadonlyArrayDyn<'_, u8>) -> PyResult<Bound<'py, PyBytes>> {
        encode_to_bytes(py, &mut self.inner, &mut self.buf, "frame", &frame)
    }

    fn encode_into(
        &mut self,
        py: Python<'_>,
        frame: PyReadonlyArrayDyn<'_, u8>,
        mut out: numpy::PyReadwriteArrayDyn<'_, u8>,
    ) -> PyResult<usize> {
        encode_to_buffer(py, &mut self.inner, "frame", &frame, &mut out)
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(simd_levels, m)?)?;
    m.add_function(wrap_pyfunction!(simd_level, m)?)?;
    m.add_function(wrap_pyfunction!(force_simd, m)?)?;
    m.add_function(wrap_pyfunction!(resize_into, m)?)?;
    m.add_function(wrap_pyfunction!(quality_tables, m)?)?;
    m.add_function(wrap_pyfunction!(turbo_tables, m)?)?;
    m.add_function(wrap_pyfunction!(rgb_to_i420_into, m)?)?;
    m.add_function(wrap_pyfunction!(rgb_to_i420_planes_into, m)?)?;
    m.add_class::<JpegEncoder>()?;
    m.add_class::<NanoEncoder>()?;
    ring::register(m)?;
    world::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
