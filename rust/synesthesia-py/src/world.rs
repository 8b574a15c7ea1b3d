//! Python binding of the procedural world (`synesthesia-core::world`): scene state and easing,
//! the renderer writing into a caller's numpy array with the GIL released, and the spectral
//! pulse. Used by `synesthesia.world` in the world stage process.

use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::prelude::*;
use synesthesia_core::world::{self, Pulse, Scene, SceneState};
use synesthesia_core::{Error, ImageViewMut};

use crate::{detached, to_py, view_parts};

fn state_of(py: Python<'_>, values: Option<Vec<f32>>) -> PyResult<SceneState> {
    match values {
        Some(v) => SceneState::from_slice(&v).map_err(|e| to_py(py, e)),
        None => Ok(SceneState::default()),
    }
}

#[pyfunction]
fn world_vocabulary() -> Vec<(&'static str, &'static str)> {
    world::VOCABULARY.iter().map(|(w, c)| (*w, c.name())).collect()
}

#[pyfunction]
fn world_state_names() -> Vec<&'static str> {
    world::STATE_NAMES.to_vec()
}

#[pyfunction]
fn world_default_state() -> Vec<f32> {
    SceneState::default().values.to_vec()
}

/// Band energies (4 bands, then the overall level), each in [0, 1].
#[pyfunction]
#[pyo3(signature = (samples, sample_rate=16000))]
fn spectral_pulse(py: Python<'_>, samples: PyReadonlyArray1<'_, f32>, sample_rate: u32) -> PyResult<Vec<f32>> {
    let x =
        samples.as_slice().map_err(|_| to_py(py, Error::invalid("samples", "must be a contiguous float32 array")))?;
    let pulse = detached(py, || world::spectral_pulse(x, sample_rate))?;
    Ok(pulse.to_array().to_vec())
}

/// A session's scene: current and target state, easing, and world time.
#[pyclass(module = "synesthesia._native")]
struct WorldScene {
    inner: Scene,
}

#[pymethods]
impl WorldScene {
    #[new]
    #[pyo3(signature = (tau, jump, initial=None))]
    fn new(py: Python<'_>, tau: f32, jump: f32, initial: Option<Vec<f32>>) -> PyResult<Self> {
        let state = state_of(py, initial)?;
        Ok(Self { inner: Scene::new(state, tau, jump).map_err(|e| to_py(py, e))? })
    }

    fn apply(&mut self, py: Python<'_>, words: Vec<(String, f32)>) -> PyResult<()> {
        let borrowed: Vec<(&str, f32)> = words.iter().map(|(w, x)| (w.as_str(), *x)).collect();
        self.inner.apply(&borrowed).map_err(|e| to_py(py, e))
    }

    fn advance(&mut self, py: Python<'_>, dt: f32) -> PyResult<()> {
        self.inner.advance(dt).map_err(|e| to_py(py, e))
    }

    fn settle(&mut self) {
        self.inner.settle();
    }

    fn current(&self) -> Vec<f32> {
        self.inner.current().values.to_vec()
    }

    fn target(&self) -> Vec<f32> {
        self.inner.target().values.to_vec()
    }

    fn world_time(&self) -> f64 {
        self.inner.world_time()
    }

    fn set_world_time(&mut self, t: f64) {
        self.inner.set_world_time(t);
    }
}

/// Renders states into caller-owned (H, W, 3) uint8 arrays.
#[pyclass(module = "synesthesia._native")]
struct WorldRenderer {
    inner: world::Renderer,
}

#[pymethods]
impl WorldRenderer {
    #[new]
    fn new(seed: u64) -> Self {
        Self { inner: world::Renderer::new(seed) }
    }

    #[pyo3(signature = (out, state, t, pulse=None))]
    fn render_into(
        &mut self,
        py: Python<'_>,
        out: Bound<'_, PyArrayDyn<u8>>,
        state: Vec<f32>,
        t: f64,
        pulse: Option<Vec<f32>>,
    ) -> PyResult<()> {
        let state = SceneState::from_slice(&state).map_err(|e| to_py(py, e))?;
        let pulse = match pulse {
            Some(v) => Pulse::from_slice(&v).map_err(|e| to_py(py, e))?,
            None => Pulse::default(),
        };
        let out = out.readwrite();
        let (ptr, len, w, h, c, stride) = view_parts(py, "out", out.shape(), out.strides(), out.data())?;
        // SAFETY: `out` is an exclusive (readwrite) borrow of a live numpy array; `len` covers
        // the bytes its shape and strides address.
        let data = unsafe { std::slice::from_raw_parts_mut(ptr as *mut u8, len) };
        let mut dst = ImageViewMut::new(data, w, h, c, stride).map_err(|e| to_py(py, e))?;
        let inner = &mut self.inner;
        detached(py, || inner.render(&state, t, &pulse, &mut dst))
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(world_vocabulary, m)?)?;
    m.add_function(wrap_pyfunction!(world_state_names, m)?)?;
    m.add_function(wrap_pyfunction!(world_default_state, m)?)?;
    m.add_function(wrap_pyfunction!(spectral_pulse, m)?)?;
    m.add_class::<WorldScene>()?;
    m.add_class::<WorldRenderer>()?;
    Ok(())
}
