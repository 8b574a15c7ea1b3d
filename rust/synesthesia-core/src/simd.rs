//! Runtime SIMD dispatch. Kernels pick their instruction set from a [`SimdLevel`]; the
//! process-wide level is the best the CPU has unless forced (tests and benchmarks force each
//! level in turn to prove that every path produces the same bytes).

use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdLevel {
    /// Plain Rust, any CPU. The reference every other path must match byte for byte.
    Portable,
    /// x86-64 AVX2 (+FMA, BMI2 where used).
    Avx2,
    /// x86-64 AVX-512 F/BW/VL/DQ. Used only by kernels where it pays; others fall back to AVX2.
    Avx512,
}

const ALL: [SimdLevel; 3] = [SimdLevel::Portable, SimdLevel::Avx2, SimdLevel::Avx512];

/// 0 = not forced; otherwise `level as u8 + 1`.
static FORCED: AtomicU8 = AtomicU8::new(0);

impl SimdLevel {
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Portable => "portable",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        ALL.into_iter().find(|l| l.name() == name).ok_or_else(|| {
            Error::invalid("simd", format!("unknown level {name:?}; expected one of portable, avx2, avx512"))
        })
    }

    /// Whether this CPU can run kernels compiled for the level.
    pub fn is_available(self) -> bool {
        match self {
            SimdLevel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("bmi2")
                    && is_x86_feature_detected!("lzcnt")
            }
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => {
                SimdLevel::Avx2.is_available()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512dq")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every level this CPU can run, slowest first.
    pub fn available() -> Vec<SimdLevel> {
        ALL.into_iter().filter(|l| l.is_available()).collect()
    }

    /// The best level this CPU can run.
    pub fn detect() -> SimdLevel {
        *Self::available().last().expect("portable is always available")
    }

    /// The level kernels use when the caller does not name one: forced, or detected.
    pub fn active() -> SimdLevel {
        match FORCED.load(Ordering::Relaxed) {
            0 => Self::detect(),
            n => ALL[(n - 1) as usize],
        }
    }

    /// Force every kernel in this process onto `level` (None: back to detection).
    pub fn force(level: Option<SimdLevel>) -> Result<()> {
        match level {
            None => FORCED.store(0, Ordering::Relaxed),
            Some(l) if !l.is_available() => return Err(Error::SimdUnavailable { level: l.name() }),
            Some(l) => FORCED.store(l as u8 + 1, Ordering::Relaxed),
        }
        Ok(())
    }

    /// Resolve an optional per-call request against the process-wide level.
    pub fn resolve(requested: Option<SimdLevel>) -> Result<SimdLevel> {
        match requested {
            None => Ok(Self::active()),
            Some(l) if l.is_available() => Ok(l),
            Some(l) => Err(Error::SimdUnavailable { level: l.name() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_and_rejects_unknown() {
        for l in ALL {
            assert_eq!(SimdLevel::parse(l.name()).unwrap(), l);
        }
        assert!(SimdLevel::parse("sse9").is_err());
    }

    #[test]
    fn portable_is_always_available() {
        assert!(SimdLevel::available().contains(&SimdLevel::Portable));
        assert!(SimdLevel::detect() >= SimdLevel::Portable);
    }
}
