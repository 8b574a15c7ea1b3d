//! Synesthesia's compute core: everything that computes, with no Python in sight.
//!
//! The PyO3 binding (`synesthesia-py`) only converts types, releases the GIL and maps
//! [`Error`] to Python exceptions; everything here is usable and testable from plain Rust.

pub mod error;
pub mod image;
pub mod jpeg;
pub mod nano;
pub mod resize;
pub mod ring;
pub mod simd;
pub mod world;
pub mod yuv;

pub use error::{Error, Result};
pub use image::{ImageView, ImageViewMut};
pub use simd::SimdLevel;
