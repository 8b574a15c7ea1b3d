//! The spectral pulse: energy in a few bands of the latest audio, the fast path by which sound
//! moves the picture before speech recognition has finished. Runs in the world stage process on
//! each frame, over the newest chunk of the audio ring.

use crate::error::{Error, Result};

/// Band edges in Hz: rumble and voice fundamentals, vowels, consonants, sibilance.
pub const BANDS_HZ: [(f32, f32); 4] = [(40.0, 250.0), (250.0, 1000.0), (1000.0, 3500.0), (3500.0, 8000.0)];
/// The most recent samples analysed; older ones in a longer slice are ignored.
pub const WINDOW: usize = 1024;
/// Loudness mapped to 0..1 over this many decibels below full scale.
const RANGE_DB: f32 = 60.0;

/// Band energies and overall level, each in [0, 1] (0 = silence, 1 = full scale).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pulse {
    pub bands: [f32; 4],
    pub level: f32,
}

impl Pulse {
    pub fn from_slice(v: &[f32]) -> Result<Self> {
        if v.len() != 5 {
            return Err(Error::invalid("pulse", format!("expected 5 values (4 bands, level), got {}", v.len())));
        }
        if let Some(bad) = v.iter().find(|x| !x.is_finite()) {
            return Err(Error::invalid("pulse", format!("values must be finite, got {bad}")));
        }
        let c = |x: f32| x.clamp(0.0, 1.0);
        Ok(Pulse { bands: [c(v[0]), c(v[1]), c(v[2]), c(v[3])], level: c(v[4]) })
    }

    pub fn to_array(self) -> [f32; 5] {
        [self.bands[0], self.bands[1], self.bands[2], self.bands[3], self.level]
    }
}

fn to_unit(power: f32) -> f32 {
    let db = 10.0 * (power + 1e-12).log10();
    ((db + RANGE_DB) / RANGE_DB).clamp(0.0, 1.0)
}

/// In-place iterative radix-2 FFT (`re.len()` a power of two).
fn fft(re: &mut [f32], im: &mut [f32]) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let ang = -std::f32::consts::TAU / len as f32;
        let (wr, wi) = (ang.cos(), ang.sin());
        for start in (0..n).step_by(len) {
            let (mut cr, mut ci) = (1.0f32, 0.0f32);
            for k in 0..len / 2 {
                let (a, b) = (start + k, start + k + len / 2);
                let (tr, ti) = (re[b] * cr - im[b] * ci, re[b] * ci + im[b] * cr);
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
                let ncr = cr * wr - ci * wi;
                ci = cr * wi + ci * wr;
                cr = ncr;
            }
        }
        len <<= 1;
    }
}

/// Band energies of `samples` (mono float32 in [-1, 1]) at `sample_rate` Hz.
///
/// The newest [`WINDOW`] samples (zero-padded when fewer) are Hann-windowed and transformed;
/// each band's energy is the mean power of its bins, scaled so a full-scale sine inside a band
/// reads about 0 dB there.
pub fn spectral_pulse(samples: &[f32], sample_rate: u32) -> Result<Pulse> {
    if !(8000..=192_000).contains(&sample_rate) {
        return Err(Error::invalid("sample_rate", format!("must be 8000..192000 Hz, got {sample_rate}")));
    }
    let x = &samples[samples.len().saturating_sub(WINDOW)..];
    let n = x.len();
    if x.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid("samples", "audio contains NaN or infinity"));
    }
    if n < 64 {
        return Ok(Pulse::default());
    }
    let mut re = vec![0.0f32; WINDOW];
    let mut im = vec![0.0f32; WINDOW];
    let step = std::f32::consts::TAU / (n - 1) as f32;
    let mut wsum = 0.0;
    for (i, v) in x.iter().enumerate() {
        let w = 0.5 - 0.5 * (step * i as f32).cos();
        re[i] = v * w;
        wsum += w;
    }
    fft(&mut re, &mut im);
    let hz_per_bin = sample_rate as f32 / WINDOW as f32;
    let norm = 4.0 / (wsum * wsum);
    let mut bands = [0.0f32; 4];
    for (b, &(lo, hi)) in BANDS_HZ.iter().enumerate() {
        let k0 = ((lo / hz_per_bin).floor() as usize).max(1);
        let k1 = ((hi / hz_per_bin).ceil() as usize).min(WINDOW / 2);
        if k1 <= k0 {
            continue;
        }
        // A tone spreads over the window's main lobe (about 1.5 bins of power), so the sum,
        // not the mean, is what a sine at full scale brings to about 1.
        let power: f32 = (k0..k1).map(|k| (re[k] * re[k] + im[k] * im[k]) * norm).sum::<f32>() / 1.5;
        bands[b] = to_unit(power);
    }
    let rms2 = x.iter().map(|v| v * v).sum::<f32>() / n as f32;
    Ok(Pulse { bands, level: to_unit(2.0 * rms2) })
}
