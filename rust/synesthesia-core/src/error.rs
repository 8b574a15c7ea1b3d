//! The one error type of the core; the binding maps it to Python in a single place.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// An argument is unusable; `name` is the argument as callers know it.
    InvalidArgument { name: &'static str, message: String },
    /// A caller-supplied output buffer cannot hold the result.
    BufferTooSmall { needed: usize, available: usize },
    /// A SIMD level was requested that this CPU does not have.
    SimdUnavailable { level: &'static str },
}

impl Error {
    pub fn invalid(name: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument { name, message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument { name, message } => write!(f, "{name}: {message}"),
            Error::BufferTooSmall { needed, available } => {
                write!(f, "out: buffer too small: needs at least {needed} bytes, has {available}")
            }
            Error::SimdUnavailable { level } => {
                write!(f, "simd: {level} is not supported by this CPU")
            }
        }
    }
}

impl std::error::Error for Error {}
