//! The procedural renderer: a pure function of (seed, state, world time, pulse) into an RGB
//! buffer. Runs in the world stage process, one frame per call, on one core.
//!
//! Cost is kept low by doing each kind of work at the resolution it needs:
//! - smooth layers (sky gradient, halo, clouds, aurora, nebula, planet) at 1/4 resolution in
//!   f32, upsampled by the SIMD bilinear resize kernel;
//! - terrain as per-column ridge heights and shading plus per-row colours, so the per-pixel
//!   work is a few compares and an integer blend;
//! - water as a per-row shifted copy of the rows above the horizon with one multiply-add per
//!   byte;
//! - stars, rain, snow, flames and lightning as sparse sprites.

use super::noise::{fbm1, floor_i, hash, hash2, noise1, ridged1, unit, Lattice};
use super::pulse::Pulse;
use super::state::{p, SceneState};
use crate::error::{Error, Result};
use crate::image::{ImageView, ImageViewMut};
use crate::resize::{self, Method};

type Rgb = [f32; 3];

/// Internal downscale of the smooth sky layers (the sun disc and stars are drawn at full size).
const LOW: usize = 6;
const STAR_COUNT: usize = 3000;
/// Terrain layers: three behind the water line, then the foreground.
const LAYERS: usize = 4;
/// World seconds between possible lightning strikes, and how long a strike lasts.
const STRIKE_PERIOD: f32 = 1.6;
const STRIKE_LIFE: f32 = 0.4;

struct TimeLook {
    zenith: Rgb,
    horizon: Rgb,
    sun: Rgb,
    sun_x: f32,
    /// Height above the horizon as a fraction of the sky's height.
    sun_h: f32,
    sun_r: f32,
    halo: f32,
    halo_tight: f32,
    light: f32,
    dark: f32,
}

// night, day, sunset, sunrise (the order of the state's time group)
const TIMES: [TimeLook; 4] = [
    TimeLook {
        zenith: [3.0, 6.0, 22.0],
        horizon: [22.0, 34.0, 70.0],
        sun: [215.0, 225.0, 255.0],
        sun_x: 0.74,
        sun_h: 0.72,
        sun_r: 0.030,
        halo: 0.35,
        halo_tight: 260.0,
        light: 0.28,
        dark: 1.0,
    },
    TimeLook {
        zenith: [38.0, 98.0, 200.0],
        horizon: [175.0, 210.0, 238.0],
        sun: [255.0, 250.0, 232.0],
        sun_x: 0.62,
        sun_h: 0.86,
        sun_r: 0.032,
        halo: 0.55,
        halo_tight: 90.0,
        light: 1.0,
        dark: 0.0,
    },
    TimeLook {
        zenith: [36.0, 34.0, 92.0],
        horizon: [255.0, 118.0, 48.0],
        sun: [255.0, 175.0, 80.0],
        sun_x: 0.66,
        sun_h: 0.07,
        sun_r: 0.045,
        halo: 1.0,
        halo_tight: 14.0,
        light: 0.62,
        dark: 0.45,
    },
    TimeLook {
        zenith: [78.0, 98.0, 170.0],
        horizon: [255.0, 188.0, 168.0],
        sun: [255.0, 228.0, 180.0],
        sun_x: 0.30,
        sun_h: 0.12,
        sun_r: 0.040,
        halo: 0.85,
        halo_tight: 22.0,
        light: 0.75,
        dark: 0.3,
    },
];

struct SceneLook {
    far: Rgb,
    near: Rgb,
    fore: Rgb,
    ground: Rgb,
    water: Rgb,
    horizon: f32,
    water_amount: f32,
}

// ocean, forest, desert, city, mountains, space (the order of the state's scene group)
const SCENES: [SceneLook; 6] = [
    SceneLook {
        far: [72.0, 88.0, 112.0],
        near: [40.0, 50.0, 64.0],
        fore: [30.0, 28.0, 30.0],
        ground: [194.0, 176.0, 128.0],
        water: [16.0, 62.0, 100.0],
        horizon: 0.54,
        water_amount: 1.0,
    },
    SceneLook {
        far: [68.0, 104.0, 96.0],
        near: [20.0, 46.0, 28.0],
        fore: [8.0, 22.0, 12.0],
        ground: [34.0, 58.0, 26.0],
        water: [18.0, 48.0, 46.0],
        horizon: 0.60,
        water_amount: 0.75,
    },
    SceneLook {
        far: [222.0, 170.0, 118.0],
        near: [196.0, 124.0, 62.0],
        fore: [196.0, 124.0, 64.0],
        ground: [214.0, 152.0, 88.0],
        water: [60.0, 88.0, 96.0],
        horizon: 0.58,
        water_amount: 0.0,
    },
    SceneLook {
        far: [66.0, 72.0, 98.0],
        near: [26.0, 28.0, 40.0],
        fore: [14.0, 14.0, 20.0],
        ground: [40.0, 40.0, 50.0],
        water: [22.0, 32.0, 58.0],
        horizon: 0.66,
        water_amount: 0.85,
    },
    SceneLook {
        far: [124.0, 134.0, 166.0],
        near: [42.0, 48.0, 62.0],
        fore: [20.0, 22.0, 26.0],
        ground: [52.0, 58.0, 48.0],
        water: [26.0, 48.0, 70.0],
        horizon: 0.66,
        water_amount: 0.85,
    },
    SceneLook {
        far: [60.0, 60.0, 70.0],
        near: [30.0, 30.0, 36.0],
        fore: [10.0, 10.0, 12.0],
        ground: [30.0, 30.0, 36.0],
        water: [10.0, 10.0, 20.0],
        horizon: 1.0,
        water_amount: 0.0,
    },
];

#[inline]
fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}

#[inline]
fn scale(a: Rgb, s: f32) -> Rgb {
    [a[0] * s, a[1] * s, a[2] * s]
}

#[inline]
fn add(a: Rgb, b: Rgb) -> Rgb {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

#[inline]
fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[inline]
fn to_u8(c: f32) -> u8 {
    c.clamp(0.0, 255.0) as u8
}

/// Everything derived from the state once per frame.
struct Look {
    w: usize,
    h: usize,
    hf: f32,
    t: f32,
    seed: u32,
    horizon: f32,
    zenith: Rgb,
    sky_h: Rgb,
    sun: Rgb,
    sun_x: f32,
    sun_y: f32,
    sun_r: f32,
    halo: f32,
    halo_tight: f32,
    light: f32,
    dark: f32,
    night: f32,
    scenes: [f32; 6],
    water: f32,
    far: Rgb,
    near: Rgb,
    fore: Rgb,
    ground: Rgb,
    water_col: Rgb,
    fog_col: Rgb,
    s: SceneState,
    tint: Rgb,
    /// The colour word's colour at its own brightness (per unit of the pixel's luminance), and
    /// how far the grade recolours toward it.
    wash: Rgb,
    wash_k: f32,
    /// Tempo as a look: saturation and contrast rise with speed; a slow world is softer and cooler.
    sat: f32,
    contrast: f32,
    chill: f32,
    flash: f32,
    strike: Option<u32>,
    pulse: Pulse,
}

impl Look {
    fn new(seed: u32, st: &SceneState, t: f32, pulse: &Pulse, w: usize, h: usize) -> Look {
        let hf = h as f32;
        // Falling snow fills the air: it thickens the haze the way a light fog does.
        let mut air = *st;
        air.values[p::FOG] = (st.get(p::FOG) + 0.35 * st.get(p::SNOW)).min(1.0);
        let st = &air;
        let times = st.times();
        let scenes = st.scenes();
        let tmix = |f: &dyn Fn(&TimeLook) -> f32| times.iter().zip(TIMES.iter()).map(|(w, l)| w * f(l)).sum::<f32>();
        let tcol = |f: &dyn Fn(&TimeLook) -> Rgb| {
            times.iter().zip(TIMES.iter()).fold([0.0; 3], |acc, (w, l)| add(acc, scale(f(l), *w)))
        };
        let smix = |f: &dyn Fn(&SceneLook) -> f32| scenes.iter().zip(SCENES.iter()).map(|(w, l)| w * f(l)).sum::<f32>();
        let scol = |f: &dyn Fn(&SceneLook) -> Rgb| {
            scenes.iter().zip(SCENES.iter()).fold([0.0; 3], |acc, (w, l)| add(acc, scale(f(l), *w)))
        };
        let g = |i: usize| st.get(i);
        let horizon = smix(&|l| l.horizon) * hf;
        let space = scenes[5];
        let storm = g(p::STORM);
        let dim = (1.0 - 0.3 * g(p::RAIN) - 0.4 * storm - 0.25 * g(p::CLOUDS) * g(p::CLOUDS)).max(0.3);

        // Lightning: a strike may start at each period boundary; whether it does is hashed.
        let mut flash = 0.0;
        let mut strike = None;
        let lightning = g(p::LIGHTNING);
        if lightning > 0.02 {
            let idx = (t / STRIKE_PERIOD).floor();
            let age = t - idx * STRIKE_PERIOD;
            let idx = idx as i32 as u32;
            if unit(hash2(seed, idx, 0x5eed)) < 0.25 + 0.75 * lightning && age < STRIKE_LIFE {
                let k = 1.0 - age / STRIKE_LIFE;
                // Two return strokes: the flash flickers rather than fading smoothly.
                let flicker = if age > 0.08 && age < 0.14 { 0.35 } else { 1.0 };
                flash = lightning * k * k * flicker;
                strike = Some(idx);
            }
        }

        let sky_h = tcol(&|l| l.horizon);
        let zenith = mix(tcol(&|l| l.zenith), [4.0, 4.0, 14.0], space);
        let storm_grey = [70.0, 74.0, 84.0];
        let sky_h = mix(sky_h, scale(storm_grey, tmix(&|l| l.light)), 0.7 * storm);
        let zenith = mix(zenith, scale(storm_grey, 0.6 * tmix(&|l| l.light)), 0.6 * storm);
        let light = tmix(&|l| l.light) * dim;
        let fog_col = mix(sky_h, scale([190.0, 195.0, 200.0], 0.25 + 0.75 * light), 0.55);
        let fog_col = mix(fog_col, scale([236.0, 240.0, 248.0], 0.3 + 0.7 * light), 0.6 * g(p::SNOW));

        let tint_target = [g(p::TINT_R), g(p::TINT_G), g(p::TINT_B)];
        let lum = (0.2126 * tint_target[0] + 0.7152 * tint_target[1] + 0.0722 * tint_target[2]).max(0.05);
        let exposure = 1.0 + 0.15 * pulse.level;
        let tint = [0, 1, 2].map(|c| (1.0 + g(p::TINT) * (tint_target[c] / lum - 1.0)).max(0.2) * exposure);
        // The word's colour at its own brightness: gold and green light the picture, red,
        // blue and purple deepen it.
        let wash = [0, 1, 2].map(|c| tint_target[c] / 0.62 * exposure);
        let wash_k = (1.1 * g(p::TINT)).min(0.9);
        // Tempo, as a look (a still frame shows it too): faster is punchier, slower softer.
        let pace = g(p::SPEED).max(0.05).log2().clamp(-1.5, 1.5) - 0.3 * g(p::CALM);
        let pace = pace.clamp(-1.5, 1.5);
        // Clear air: colours more vivid than under a veil of cloud.
        let clarity = (0.5 - g(p::CLOUDS)).max(0.0) * 2.0 * (1.0 - g(p::FOG));

        let sun_h = tmix(&|l| l.sun_h);
        Look {
            w,
            h,
            hf,
            t,
            seed,
            horizon,
            zenith,
            sky_h,
            sun: tcol(&|l| l.sun),
            sun_x: tmix(&|l| l.sun_x) * w as f32,
            sun_y: horizon.min(0.66 * hf) * (1.0 - sun_h),
            sun_r: tmix(&|l| l.sun_r) * hf * (1.0 + 0.15 * pulse.bands[0]),
            halo: tmix(&|l| l.halo) * (1.0 - 0.8 * storm) * (1.0 - 0.5 * space) * (1.0 + 0.6 * pulse.bands[0]),
            halo_tight: tmix(&|l| l.halo_tight),
            light: light + 0.6 * flash,
            dark: tmix(&|l| l.dark).max(space),
            night: times[0],
            scenes,
            water: smix(&|l| l.water_amount),
            far: scol(&|l| l.far),
            near: scol(&|l| l.near),
            fore: scol(&|l| l.fore),
            ground: scol(&|l| l.ground),
            water_col: scol(&|l| l.water),
            fog_col,
            s: *st,
            tint,
            wash,
            wash_k,
            sat: (1.0 + 0.4 * pace) * (1.0 + 0.45 * clarity),
            contrast: (1.0 + 0.15 * pace) * (1.0 + 0.12 * clarity),
            chill: (-pace).max(0.0) * 0.1,
            flash,
            strike,
            pulse: *pulse,
        }
    }

    #[inline]
    fn grade(&self, c: Rgb) -> Rgb {
        let mut c = [c[0] * self.tint[0], c[1] * self.tint[1], c[2] * self.tint[2]];
        if self.wash_k > 0.0 {
            let l = 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
            // Recolour toward the word's hue at the pixel's own luminance: the sky, the light,
            // the water and the land all take the colour, not only the channels it shares.
            c = mix(c, scale(self.wash, l), self.wash_k);
        }
        if self.sat != 1.0 || self.chill > 0.0 {
            let l = 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
            c = [0, 1, 2].map(|i| 110.0 + (l + (c[i] - l) * self.sat - 110.0) * self.contrast);
            c = mix(c, [150.0, 190.0, 245.0], self.chill);
        }
        c
    }

    fn g(&self, i: usize) -> f32 {
        self.s.get(i)
    }
}

/// Renders frames; owns scratch buffers reused across frames and the seed's star field.
pub struct Renderer {
    seed: u32,
    lattice: Lattice,
    stars: Vec<[f32; 4]>,
    sky: Vec<u8>,
    cloud: Vec<f32>,
    ridge: Vec<i32>,
    shade: Vec<u16>,
    cap: Vec<i32>,
    wincol: Vec<u32>,
    row_lit: Vec<[u16; 3]>,
    row_dark: Vec<[u16; 3]>,
    row_snow: Vec<[u16; 3]>,
    scratch: Vec<f32>,
    scratch2: Vec<f32>,
}

impl Renderer {
    pub fn new(seed: u64) -> Renderer {
        let seed = (seed ^ (seed >> 32)) as u32;
        let stars = (0..STAR_COUNT as u32)
            .map(|i| {
                let h = hash2(seed, i, 0x57a2);
                let m = unit(hash(h ^ 3));
                // Many faint stars, few bright ones.
                [unit(h), unit(hash(h)), m * m * m, unit(hash(h ^ 7))]
            })
            .collect();
        Renderer {
            seed,
            lattice: Lattice::new(seed),
            stars,
            sky: Vec::new(),
            cloud: Vec::new(),
            ridge: Vec::new(),
            shade: Vec::new(),
            cap: Vec::new(),
            wincol: Vec::new(),
            row_lit: Vec::new(),
            row_dark: Vec::new(),
            row_snow: Vec::new(),
            scratch: Vec::new(),
            scratch2: Vec::new(),
        }
    }

    /// Render `state` at world time `t` (seconds) into `out` (RGB, any size from 32x32).
    pub fn render(&mut self, state: &SceneState, t: f64, pulse: &Pulse, out: &mut ImageViewMut) -> Result<()> {
        if out.channels() != 3 {
            return Err(Error::invalid("out", format!("expected 3 channels (RGB), got {}", out.channels())));
        }
        let (w, h) = (out.width(), out.height());
        if w < 32 || h < 32 || w > 16384 || h > 16384 {
            return Err(Error::invalid("out", format!("size must be 32..16384 on each side, got {w}x{h}")));
        }
        if !t.is_finite() {
            return Err(Error::invalid("t", format!("world time must be finite, got {t}")));
        }
        // Wrap world time so f32 keeps sub-millisecond precision in long sessions. The period
        // is a whole number of lightning periods; other motions jump once per 2.7 hours.
        let t = (t.rem_euclid(STRIKE_PERIOD as f64 * 6000.0)) as f32;
        let lk = Look::new(self.seed, state, t, pulse, w, h);
        let stride = out.stride();
        self.sky_layer(&lk, out)?;
        let buf = out.data_mut();
        self.sun_disc(&lk, buf, stride);
        self.star_field(&lk, buf, stride);
        if let Some(idx) = lk.strike {
            bolt(&lk, idx, buf, stride);
        }
        self.terrain(&lk);
        self.back_layers(&lk, buf, stride);
        self.water(&lk, buf, stride);
        self.foreground(&lk, buf, stride);
        fire(&lk, &self.ridge, buf, stride);
        precipitation(&lk, buf, stride);
        Ok(())
    }

    fn sky_layer(&mut self, lk: &Look, out: &mut ImageViewMut) -> Result<()> {
        let (w, h, hf) = (lk.w, lk.h, lk.hf);
        let sky_rows = (lk.horizon.ceil() as usize + 1).min(h);
        let lw = w.div_ceil(LOW);
        let lh = sky_rows.div_ceil(LOW).max(2);
        self.sky.resize(lw * lh * 3, 0);
        self.cloud.resize(lw * lh, 0.0);
        let t = lk.t;
        let seed = lk.seed;
        let clouds = lk.g(p::CLOUDS);
        let storm = lk.g(p::STORM);
        let wind = lk.g(p::WIND);
        let aurora = lk.g(p::AURORA) * (0.3 + 0.7 * lk.dark) * (1.0 + 0.6 * lk.pulse.bands[1]);
        let space = lk.scenes[5];
        let fog = lk.g(p::FOG);
        let fire = lk.g(p::FIRE);
        let cloud_lit = mix(mix(lk.sky_h, [235.0, 232.0, 228.0], 0.55), lk.sun, 0.25);
        let cloud_lit = scale(cloud_lit, (0.25 + 0.75 * lk.light).min(1.1) * (1.0 + 0.25 * lk.pulse.bands[1]));
        let cloud_dark = scale([58.0, 60.0, 70.0], 0.3 + 0.7 * lk.light);
        let sx = lk.sun_x;
        let sy = lk.sun_y;
        let horizon = lk.horizon.max(1.0);
        let (pcx, pcy, pr) = planet(lk);
        let ldir = [0.62f32, -0.48, 0.62];

        // Per-column aurora terms: the curtain's base line and its ray brightness.
        self.scratch.resize(lw * 2, 0.0);
        if aurora > 0.01 {
            for lx in 0..lw {
                let u = (lx as f32 + 0.5) * LOW as f32 / hf;
                let base = horizon
                    * (0.50
                        + 0.10 * (u * 2.1 + t * 0.12).sin()
                        + 0.14 * (noise1(seed ^ 0xa0, u * 1.7 + t * 0.05) - 0.5));
                let ray = noise1(seed ^ 0xa1, u * 22.0 + t * 0.5);
                self.scratch[lx * 2] = base;
                self.scratch[lx * 2 + 1] = 0.25 + 0.75 * ray * ray;
            }
        }
        for ly in 0..lh {
            let fy = (ly as f32 + 0.5) * LOW as f32;
            let v = (fy / horizon).clamp(0.0, 1.0);
            let mut base = mix(lk.zenith, lk.sky_h, v.powf(1.7));
            if space > 0.0 {
                base = mix(base, mix([2.0, 2.0, 8.0], [12.0, 6.0, 26.0], fy / hf), space);
            }
            if fire > 0.01 {
                // A burning ridge glows on the horizon; its smoke darkens the sky above.
                base = add(base, scale([190.0, 60.0, 14.0], fire * v.powi(3) * 0.8));
                base = mix(base, [48.0, 36.0, 40.0], fire * 0.3 * (1.0 - v));
            }
            let up = 1.0 - v;
            let z = 1.0 / (up + 0.12);
            let fog_a = (fog * 0.9 * (0.25 + 0.75 * v)).min(0.95);
            for lx in 0..lw {
                let fx = (lx as f32 + 0.5) * LOW as f32;
                let mut c = base;
                let (dx, dy) = ((fx - sx) / hf, (fy - sy) / hf);
                let d2 = dx * dx + dy * dy;
                // A wide halo, and a flat band along the horizon under a low sun.
                let halo = lk.halo * (0.55 / (1.0 + d2 * lk.halo_tight) + 0.35 / (1.0 + d2 * lk.halo_tight * 8.0));
                let band = lk.halo * (1.0 - lk.night) * v.powi(6) * 0.5 / (1.0 + dx * dx * 3.0);
                c = add(c, scale(lk.sun, halo + band));
                if space > 0.01 {
                    let n = self.lattice.fbm2(fx / hf * 1.4 + 40.0, fy / hf * 1.4 + 0.01 * t, 4);
                    let neb = smoothstep(0.42, 0.78, n) * space;
                    let hue = self.lattice.noise2(fx / hf * 2.0 + 90.0, fy / hf * 2.0);
                    c = add(c, scale(mix([110.0, 30.0, 150.0], [20.0, 90.0, 150.0], hue), neb * 0.9));
                }
                if aurora > 0.01 {
                    let base_y = self.scratch[lx * 2];
                    let above = base_y - fy;
                    let k = if above > 0.0 { (-above / (0.2 * hf)).exp() } else { (above / (0.012 * hf)).exp() };
                    let i = aurora * self.scratch[lx * 2 + 1] * k;
                    let col = mix([50.0, 255.0, 130.0], [190.0, 60.0, 255.0], (above / (0.3 * hf)).clamp(0.0, 1.0));
                    c = add(c, scale(col, i * 0.9));
                }
                let mut alpha = 0.0;
                if clouds > 0.01 && up > 0.0 {
                    // Strong wind draws the clouds out into streaks.
                    let stretch = 1.0 + 2.0 * (wind - 0.3).max(0.0);
                    let cu = (fx - 0.5 * w as f32) / hf * z * 0.45 / stretch + t * (0.01 + 0.06 * wind);
                    let cv = z * 0.9 + t * 0.004;
                    let n = self.lattice.fbm2(cu * 1.5, cv * 1.5, 4);
                    let edge = 1.0 - clouds * 0.8 - 0.12;
                    alpha = smoothstep(edge, edge + 0.3, n) * (0.55 + 0.45 * clouds) * smoothstep(0.0, 0.08, up);
                    let shade = ((n - edge) * 2.5).clamp(0.0, 1.0) * (0.35 + 0.65 * storm);
                    c = mix(c, mix(cloud_lit, cloud_dark, shade), alpha);
                }
                c = mix(c, lk.fog_col, fog_a);
                if lk.flash > 0.0 {
                    c = add(c, scale([190.0, 195.0, 235.0], lk.flash * (1.0 - 0.4 * v)));
                }
                if space > 0.05 {
                    let (ux, uy) = ((fx - pcx) / pr, (fy - pcy) / pr);
                    let r2 = ux * ux + uy * uy;
                    if r2 < 1.0 {
                        let nz = (1.0 - r2).sqrt();
                        let diffuse = (ux * ldir[0] + uy * ldir[1] + nz * ldir[2]).max(0.0);
                        let bands = noise1(seed ^ 0x91, uy * 7.0 + 0.6 * noise1(seed ^ 0x92, ux * 3.0 + uy * 5.0));
                        let surface = mix([150.0, 90.0, 60.0], [235.0, 200.0, 150.0], bands);
                        let rim = (1.0 - nz).powi(3);
                        let planet = add(scale(surface, 0.05 + 0.95 * diffuse), scale([70.0, 130.0, 255.0], rim * 0.8));
                        let edge = ((1.0 - r2.sqrt()) * pr / 2.0).clamp(0.0, 1.0);
                        c = mix(c, planet, space * edge);
                        alpha = 0.0;
                    } else if r2 < 1.25 {
                        let glow = (1.25 - r2) / 0.25;
                        c = add(c, scale([60.0, 110.0, 230.0], glow * glow * space * 0.6));
                    }
                }
                let c = lk.grade(c);
                let o = (ly * lw + lx) * 3;
                self.sky[o] = to_u8(c[0]);
                self.sky[o + 1] = to_u8(c[1]);
                self.sky[o + 2] = to_u8(c[2]);
                self.cloud[ly * lw + lx] = alpha;
            }
        }
        let rows = (lh * LOW).min(h);
        let src = ImageView::packed(&self.sky, lw, lh, 3)?;
        let stride = out.stride();
        let data = &mut out.data_mut()[..(rows - 1) * stride + w * 3];
        let mut dst = ImageViewMut::new(data, w, rows, 3, stride)?;
        resize::resize(&src, &mut dst, Method::Bilinear)
    }

    fn cloud_at(&self, lk: &Look, x: f32, y: f32) -> f32 {
        let lw = lk.w.div_ceil(LOW);
        let lh = self.cloud.len() / lw.max(1);
        let (lx, ly) = ((x as usize / LOW).min(lw - 1), (y as usize / LOW).min(lh.saturating_sub(1)));
        self.cloud[ly * lw + lx]
    }

    fn sun_disc(&self, lk: &Look, buf: &mut [u8], stride: usize) {
        let r = lk.sun_r;
        let vis = 1.0 - 0.9 * lk.g(p::STORM) - 0.6 * lk.g(p::FOG) - lk.scenes[5];
        if vis <= 0.0 {
            return;
        }
        // The moon is paler and cooler than the sun's core.
        let core = mix(mix(lk.sun, [255.0, 255.0, 245.0], 0.6), [235.0, 238.0, 250.0], lk.night);
        let core = lk.grade(core);
        let occl = 1.0 - self.cloud_at(lk, lk.sun_x, lk.sun_y.max(0.0));
        let y0 = (lk.sun_y - r - 2.0).max(0.0) as usize;
        let y1 = ((lk.sun_y + r + 2.0).min(lk.horizon)).max(0.0) as usize;
        let x0 = (lk.sun_x - r - 2.0).max(0.0) as usize;
        let x1 = ((lk.sun_x + r + 2.0) as usize).min(lk.w);
        for y in y0..y1.min(lk.h) {
            for x in x0..x1 {
                let d = ((x as f32 - lk.sun_x).powi(2) + (y as f32 - lk.sun_y).powi(2)).sqrt();
                let a = (r - d + 0.5).clamp(0.0, 1.0) * vis * occl;
                if a > 0.0 {
                    let o = y * stride + x * 3;
                    for c in 0..3 {
                        let v = buf[o + c] as f32;
                        buf[o + c] = to_u8(v + (core[c] - v) * a);
                    }
                }
            }
        }
    }

    fn star_field(&self, lk: &Look, buf: &mut [u8], stride: usize) {
        let space = lk.scenes[5];
        let vis = ((lk.g(p::STARS) * (0.3 + 0.7 * lk.dark) + lk.night * 0.4 + space) * (1.0 - 0.9 * lk.g(p::FOG)))
            .clamp(0.0, 1.0)
            * (1.0 - lk.scenes[5] * 0.0)
            * smoothstep(0.1, 0.6, lk.dark);
        let n = (vis * STAR_COUNT as f32) as usize;
        let twinkle = 1.0 + 1.2 * lk.pulse.bands[2];
        let sky_bottom = lk.horizon - 1.0;
        for s in &self.stars[..n] {
            let (x, y) = (s[0] * lk.w as f32, s[1] * sky_bottom);
            let tw = 0.65 + 0.35 * (lk.t * (1.0 + 3.0 * s[3]) + s[3] * 40.0).sin() * twinkle;
            let b = (40.0 + 215.0 * s[2]) * tw * (1.0 - self.cloud_at(lk, x, y)) * (0.5 + 0.5 * vis);
            if space > 0.05 {
                let (pcx, pcy, pr) = planet(lk);
                if (x - pcx).powi(2) + (y - pcy).powi(2) < pr * pr * 1.02 {
                    continue;
                }
            }
            let (xi, yi) = (x as usize, y as usize);
            plus(buf, stride, lk.w, lk.h, xi, yi, b, s[2] > 0.6);
        }
    }

    /// Per-column ridge rows, shading and snow caps for every layer.
    fn terrain(&mut self, lk: &Look) {
        let (w, hf, t) = (lk.w, lk.hf, lk.t);
        self.ridge.resize(LAYERS * w, 0);
        self.shade.resize(LAYERS * w, 0);
        self.cap.resize(LAYERS * w, 0);
        self.wincol.resize(LAYERS * w, 0);
        self.scratch.resize(w, 0.0);
        self.scratch2.resize(w, 0.0);
        let sw = lk.scenes;
        let space = sw[5];
        let seed = lk.seed;
        let sun_side = if lk.sun_x > 0.5 * w as f32 { 1.0 } else { -1.0 };
        let directional = 1.0 - 0.6 * lk.s.times()[1];
        let snowy = lk.g(p::SNOW);
        let cell_w = (hf / 110.0).max(3.0);
        for k in 0..LAYERS {
            let ks = seed.wrapping_add(k as u32 * 7919);
            let pan = [0.004, 0.010, 0.022, 0.05][k] * t;
            // Heights at every other column, linearly filled between: half the noise work,
            // and a 2-pixel step is below what a silhouette edge shows.
            for x in (0..w).step_by(2) {
                let u = x as f32 / hf + pan;
                let edge = {
                    let e = (x as f32 / w as f32 - 0.5) * 2.0;
                    e * e
                };
                let mut height = 0.0;
                for (s, &wt) in sw.iter().enumerate() {
                    if wt < 1e-3 || s == 5 {
                        continue;
                    }
                    height += wt * shape(s, k, ks, u, edge);
                }
                height -= space * 0.6;
                self.scratch[x] = height * hf;
            }
            for x in (1..w).step_by(2) {
                self.scratch[x] =
                    if x + 1 < w { 0.5 * (self.scratch[x - 1] + self.scratch[x + 1]) } else { self.scratch[x - 1] };
            }
            for x in 0..w {
                let hgt = self.scratch[x];
                let base = if k < 3 { lk.horizon } else { lk.h as f32 };
                let ry = (base - hgt).round() as i32;
                self.ridge[k * w + x] = if hgt <= 0.0 { i32::MAX } else { ry };
                // Slope over a wide window: faces lit or shaded as wholes, not per column.
                let reach = (0.02 * hf) as usize + 1;
                let (a, b) = (x.saturating_sub(reach), (x + reach).min(w - 1));
                let slope = (self.scratch[b] - self.scratch[a]) / ((b - a).max(1) as f32);
                let lit = (0.55 - slope * sun_side * 1.6 * directional).clamp(0.0, 1.0);
                self.shade[k * w + x] = (lit * 256.0) as u16;
                self.scratch2[x] = lit;
                // Snow caps on high mountain crests, and everywhere when it snows.
                let alt = hgt / hf;
                let mountains = sw[4];
                let dusting = if k == 0 { snowy * 0.015 } else { 0.0 };
                // Ragged snow lines: the cap depth wanders from column to column.
                let ragged = 0.5 + noise1(ks ^ 0x5c, x as f32 / hf * 30.0 + pan * 30.0);
                let capd = ((alt - 0.17).max(0.0) * 0.7 * mountains * ragged + dusting) * hf;
                self.cap[k * w + x] = ry + capd as i32;
                let wx = (x as f32 + pan * hf) / cell_w;
                let wi = floor_i(wx);
                let frac = wx - wi as f32;
                self.wincol[k * w + x] =
                    if sw[3] > 0.05 && frac > 0.3 && frac < 0.75 { hash((wi as u32) ^ ks) | 1 } else { 0 };
            }
            // Box-filter the shading (running sum) so small bumps do not streak the faces.
            let r = ((0.012 * hf) as usize).max(1);
            let mut acc: f32 = self.scratch2[..r.min(w)].iter().sum();
            for x in 0..w {
                if x + r < w {
                    acc += self.scratch2[x + r];
                }
                if x > r {
                    acc -= self.scratch2[x - r - 1];
                }
                let n = ((x + r).min(w - 1) - x.saturating_sub(r) + 1) as f32;
                self.shade[k * w + x] = ((acc / n) * 256.0) as u16;
            }
        }
    }

    fn layer_rows(&mut self, lk: &Look, k: usize, rows: std::ops::Range<usize>) {
        let h = lk.h;
        self.row_lit.resize(LAYERS * h, [0; 3]);
        self.row_dark.resize(LAYERS * h, [0; 3]);
        self.row_snow.resize(LAYERS * h, [0; 3]);
        // Snow caps sit in the same air as the rock under them.
        let snow_lit = scale([236.0, 240.0, 250.0], 0.3 + 0.8 * lk.light);
        let base = if k < 3 { mix(lk.far, lk.near, [0.0, 0.55, 0.95][k]) } else { lk.fore };
        // Clear air (few clouds) shows the far ridges crisper.
        let haze = [0.5, 0.3, 0.14, 0.03][k] * (0.55 + 0.9 * lk.g(p::CLOUDS)).min(1.0);
        let fogk = [0.92, 0.8, 0.6, 0.35][k] * lk.g(p::FOG);
        let snow = lk.g(p::SNOW) * [0.8, 0.75, 0.7, 0.6][k];
        // Firelight: the burning ridge and the campfire light the near land most.
        let fire = lk.g(p::FIRE) * [0.25, 0.45, 0.7, 1.0][k];
        let light = lk.light;
        let lit_col = scale(mix(base, [240.0, 242.0, 250.0], snow), 0.35 + 0.85 * light);
        let lit_col =
            add(mix(lit_col, mul(lit_col, scale(lk.sun, 1.0 / 200.0)), 0.4), scale([150.0, 55.0, 12.0], fire));
        // Distance turns ridges toward the sky between zenith and horizon (aerial perspective).
        let haze_col = mix(lk.fog_col, mix(lk.sky_h, lk.zenith, 0.45), (1.0 - lk.g(p::FOG)) * 0.6);
        let dark_col = add(mul(scale(lit_col, 0.5), [0.9, 0.95, 1.1]), scale([90.0, 30.0, 6.0], fire));
        for y in rows {
            // Valley fog pools just above the water line.
            let near_horizon = (-(lk.horizon - y as f32).abs() / (0.06 * lk.hf)).exp();
            let vert = if k < 3 { 1.0 } else { 1.0 - 0.5 * ((y as f32 - lk.horizon) / lk.hf).clamp(0.0, 1.0) };
            let mist = if k < 3 { 0.22 * near_horizon * (1.0 - haze) } else { 0.0 };
            let f = (haze + mist + fogk * (0.6 + 0.4 * near_horizon)).min(0.97);
            let l = lk.grade(mix(scale(lit_col, vert), haze_col, f));
            let d = lk.grade(mix(scale(dark_col, vert), haze_col, f));
            self.row_lit[k * h + y] = l.map(|c| c.clamp(0.0, 255.0) as u16);
            self.row_dark[k * h + y] = d.map(|c| c.clamp(0.0, 255.0) as u16);
            self.row_snow[k * h + y] = lk.grade(mix(snow_lit, haze_col, f)).map(|c| c.clamp(0.0, 255.0) as u16);
        }
    }

    fn back_layers(&mut self, lk: &Look, buf: &mut [u8], stride: usize) {
        let (w, h) = (lk.w, lk.h);
        let hy = (lk.horizon.round() as usize).min(h);
        let top = self.ridge[..3 * w].iter().copied().min().unwrap_or(i32::MAX).max(0) as usize;
        if top >= hy {
            return;
        }
        for k in 0..3 {
            self.layer_rows(lk, k, top..hy);
        }
        let lit_p = ((lk.scenes[3] * (0.12 + 0.5 * lk.dark)) * 1024.0) as u32;
        let win = lk.grade(scale([255.0, 200.0, 120.0], 0.6 + 0.4 * lk.dark)).map(to_u8);
        let ch = ((lk.hf / 70.0) as usize).max(4);
        let (r0, r1, r2) = (&self.ridge[..w], &self.ridge[w..2 * w], &self.ridge[2 * w..3 * w]);
        // Facet shading fades out over this depth below the crest (0.15 of the frame height).
        let face_k = ((256.0 / (0.15 * lk.hf)) as u32).max(1);
        for y in top..hy {
            let yi = y as i32;
            let row = &mut buf[y * stride..y * stride + w * 3];
            let up = hy - y;
            let win_row = if up % ch >= ch / 3 && up % ch < ch - 1 { hash(up as u32 / ch as u32) } else { 0 };
            let rows = [
                (self.row_lit[y], self.row_dark[y], self.row_snow[y]),
                (self.row_lit[h + y], self.row_dark[h + y], self.row_snow[h + y]),
                (self.row_lit[2 * h + y], self.row_dark[2 * h + y], self.row_snow[2 * h + y]),
            ];
            for x in 0..w {
                let k = if yi >= r2[x] {
                    2
                } else if yi >= r1[x] {
                    1
                } else if yi >= r0[x] {
                    0
                } else {
                    continue;
                };
                let i = k * w + x;
                let (l, d, snow_col) = rows[k];
                // Faces are lit or shaded near the crest and fade to flat ambient further down,
                // where the eye expects haze rather than sharp facets.
                let depth = (yi - self.ridge[i]).max(0) as u32;
                let g = 256u32.saturating_sub(depth * face_k);
                let s = ((128 * (256 - g) + self.shade[i] as u32 * g) >> 8) as u16;
                let mut c = [0u8; 3];
                for ch in 0..3 {
                    c[ch] = ((d[ch] * (256 - s) + l[ch] * s) >> 8) as u8;
                }
                if yi < self.cap[i] {
                    for ch in 0..3 {
                        c[ch] = ((snow_col[ch] * (128 + s / 2)) >> 8) as u8;
                    }
                }
                let wc = self.wincol[i];
                if wc != 0
                    && win_row != 0
                    && k < 2
                    && yi > self.ridge[i] + ch as i32
                    && (hash(wc ^ win_row) & 1023) < lit_p
                {
                    c = win;
                }
                row[x * 3..x * 3 + 3].copy_from_slice(&c);
            }
        }
    }

    fn water(&mut self, lk: &Look, buf: &mut [u8], stride: usize) {
        let (w, h, hf, t) = (lk.w, lk.h, lk.hf, lk.t);
        let hy = (lk.horizon.round() as usize).min(h);
        if hy >= h || hy < 2 {
            return;
        }
        let (above, below) = buf.split_at_mut(hy * stride);
        let wind = lk.g(p::WIND);
        let storm = lk.g(p::STORM);
        let calm = lk.g(p::CALM);
        let fog = lk.g(p::FOG);
        let wa = lk.water;
        let amp0 = (0.3 + wind + 1.5 * storm) * (1.0 - 0.85 * calm) * (1.0 + 1.5 * lk.pulse.bands[0]);
        let water_col = mix(scale(lk.water_col, 0.3 + 0.8 * lk.light), lk.sky_h, 0.25);
        let ground = scale(mix(lk.ground, [240.0, 242.0, 250.0], 0.6 * lk.g(p::SNOW)), 0.3 + 0.8 * lk.light);
        let glitter_half = hf * 0.5;
        let sun_vis =
            (1.0 - storm) * (1.0 - 0.7 * fog) * (1.0 - lk.scenes[5]) * if lk.sun_y < lk.horizon { 1.0 } else { 0.0 };
        let glitter_col = lk.grade(scale(lk.sun, 0.9));
        let glitter_p = ((40.0 + 120.0 * lk.pulse.bands[2]) * sun_vis) as u32;
        let frame_tick = (t * 8.0) as u32;
        let mut tmp = vec![0u8; w * 3];
        for y in hy..h {
            let persp = (y - hy) as f32 / (h - hy) as f32;
            let zw = 1.0 / (persp + 0.03);
            let amp = hf * (0.001 + 0.012 * persp) * amp0;
            let ph = zw * 2.3 + t * 1.7;
            let dx = (amp * (ph.sin() + 0.5 * (ph * 2.3 + t * 1.1 + y as f32).sin())).round() as isize;
            let jitter = (amp * 0.3 * (ph * 1.7).sin()).round() as isize;
            let sy = (hy as isize - 1 - (y - hy) as isize + jitter).clamp(0, hy as isize - 1) as usize;
            let refl = (0.85 - 0.4 * persp) * (1.0 - 0.45 * storm);
            let f = (fog * 0.7 * (1.0 - 0.6 * persp)).min(0.9);
            let wc = mix(scale(water_col, 1.0 - 0.3 * persp), lk.fog_col, f);
            // Low ripples of ground receding to the horizon (perspective-spaced bands).
            let ripple = 1.0 + 0.07 * (zw * 5.0).sin() * smoothstep(0.04, 0.3, persp) * (1.0 - persp);
            let gc = mix(scale(ground, (0.75 + 0.25 * (1.0 - persp)) * ripple), lk.fog_col, f);
            let (wc, gc) = (lk.grade(wc), lk.grade(gc));
            // out = src * a + k: reflection, water colour, fog and ground folded into one.
            let a = (refl * (1.0 - f) * wa * 256.0) as u32;
            let k = [0, 1, 2].map(|c| {
                ((wc[c] * (1.0 - refl * (1.0 - f)) * wa + gc[c] * (1.0 - wa)).clamp(0.0, 255.0) * 256.0) as u32
            });
            let src = &above[sy * stride..sy * stride + w * 3];
            let shift = dx.clamp(-(w as isize - 1), w as isize - 1);
            if shift >= 0 {
                let s = shift as usize * 3;
                tmp[..w * 3 - s].copy_from_slice(&src[s..]);
                for x in (w - shift as usize)..w {
                    tmp[x * 3..x * 3 + 3].copy_from_slice(&src[(w - 1) * 3..w * 3]);
                }
            } else {
                let s = (-shift) as usize * 3;
                tmp[s..].copy_from_slice(&src[..w * 3 - s]);
                for x in 0..(-shift) as usize {
                    tmp[x * 3..x * 3 + 3].copy_from_slice(&src[..3]);
                }
            }
            let off = (y - hy) * stride;
            let row = &mut below[off..off + w * 3];
            for (d, s) in row.chunks_exact_mut(3).zip(tmp.chunks_exact(3)) {
                d[0] = ((s[0] as u32 * a + k[0]) >> 8) as u8;
                d[1] = ((s[1] as u32 * a + k[1]) >> 8) as u8;
                d[2] = ((s[2] as u32 * a + k[2]) >> 8) as u8;
            }
            if glitter_p > 0 && wa > 0.3 {
                let half = (glitter_half * (0.03 + 0.25 * persp)).max(2.0);
                let x0 = (lk.sun_x - half).max(0.0) as usize;
                let x1 = ((lk.sun_x + half) as usize).min(w);
                let yh = hash((y as u32).wrapping_mul(0x9e37) ^ frame_tick);
                for x in x0..x1 {
                    let hsh = hash((x as u32 >> 1) ^ yh);
                    let fall = 1.0 - (x as f32 - lk.sun_x).abs() / half;
                    if (hsh & 1023) < (glitter_p as f32 * fall * wa) as u32 {
                        let o = x * 3;
                        for c in 0..3 {
                            row[o + c] = to_u8(row[o + c] as f32 + glitter_col[c] * fall);
                        }
                    }
                }
            }
        }
    }

    fn foreground(&mut self, lk: &Look, buf: &mut [u8], stride: usize) {
        let (w, h) = (lk.w, lk.h);
        let fg = &self.ridge[3 * w..4 * w];
        let top = fg.iter().copied().min().unwrap_or(i32::MAX).max(0) as usize;
        if top >= h {
            return;
        }
        self.layer_rows(lk, 3, top..h);
        let fg = &self.ridge[3 * w..4 * w];
        for y in top..h {
            let yi = y as i32;
            let (l, d) = (self.row_lit[3 * h + y], self.row_dark[3 * h + y]);
            let row = &mut buf[y * stride..y * stride + w * 3];
            for x in 0..w {
                if yi < fg[x] {
                    continue;
                }
                let s = self.shade[3 * w + x];
                for ch in 0..3 {
                    row[x * 3 + ch] = ((d[ch] * (256 - s) + l[ch] * s) >> 8) as u8;
                }
            }
        }
    }
}

#[inline]
fn mul(a: Rgb, b: Rgb) -> Rgb {
    [a[0] * b[0], a[1] * b[1], a[2] * b[2]]
}

/// Height above the layer's base (fraction of frame height) of scene `s`'s layer `k` at `u`.
fn shape(s: usize, k: usize, seed: u32, u: f32, edge: f32) -> f32 {
    match (s, k) {
        // ocean: far islands only, rocks at the frame edges in front
        (0, 0) => (fbm1(seed, u * 1.4, 3) - 0.55).max(0.0) * 0.3,
        (0, 3) => edge * edge * (0.03 + 0.1 * fbm1(seed, u * 6.0, 3)),
        (0, _) => 0.0,
        // forest: rolling hills, then conifers, big trees framing the view in front
        (1, 0) => 0.03 + 0.07 * fbm1(seed, u * 2.0, 3),
        (1, 1) => 0.02 + 0.03 * fbm1(seed, u * 3.0, 2) + trees(seed, u, 0.014, 0.045),
        (1, 2) => 0.005 + trees(seed, u, 0.022, 0.07) * (0.4 + 0.6 * fbm1(seed ^ 9, u, 2)),
        (1, _) => 0.05 + 0.05 * edge + trees(seed, u, 0.05, 0.12 + 0.55 * edge),
        // desert: dunes with soft crests, a dune crest in front
        (2, 0) => {
            0.04 + 0.14 * {
                let n = fbm1(seed, u * 1.1, 2);
                n * n.sqrt()
            }
        }
        (2, 1) => 0.02 + 0.11 * dune(seed, u * 1.6),
        (2, 2) => 0.01 + 0.07 * dune(seed, u * 2.4),
        (2, _) => 0.16 + 0.2 * dune(seed, u * 0.9),
        // city: two skylines and an embankment
        (3, 0) => buildings(seed, u, 0.022, 0.05, 0.2),
        (3, 1) => buildings(seed, u, 0.036, 0.03, 0.3),
        (3, 2) => 0.012 + buildings(seed, u, 0.05, 0.0, 0.04),
        (3, _) => 0.05 + 0.05 * edge,
        // mountains: ridged ranges fading into distance, forested foothills, rocks in front
        (4, 0) => {
            let m = ridged1(seed, u * 0.9, 5);
            0.03 + 0.55 * m * m * (0.35 + fbm1(seed ^ 3, u * 0.35, 2))
        }
        (4, 1) => {
            let m = ridged1(seed, u * 1.6, 4);
            0.015 + 0.32 * m * m * (0.3 + fbm1(seed ^ 5, u * 0.5, 2))
        }
        (4, 2) => {
            let patch = smoothstep(0.45, 0.6, fbm1(seed ^ 11, u * 1.5, 2));
            0.008 + 0.05 * fbm1(seed, u * 4.0, 3) + patch * trees(seed, u, 0.009, 0.03)
        }
        (4, _) => edge * (0.04 + 0.16 * fbm1(seed, u * 5.0, 4)),
        _ => 0.0,
    }
}

fn dune(seed: u32, u: f32) -> f32 {
    // Rounded dunes with sharp crests (a ridged term), continuous everywhere.
    let n = fbm1(seed, u, 2);
    let crest = 1.0 - (2.0 * noise1(seed ^ 0xd0, u * 1.7 + 0.8 * n) - 1.0).abs();
    n * (0.55 + 0.45 * crest * crest)
}

fn trees(seed: u32, u: f32, spacing: f32, height: f32) -> f32 {
    let cell = floor_i(u / spacing) as f32;
    let mut best: f32 = 0.0;
    for dc in -1..=1 {
        let c = cell as i32 + dc;
        let r = hash2(seed, c as u32, 0x7ee);
        let centre = (c as f32 + 0.2 + 0.6 * unit(r)) * spacing;
        let th = height * (0.5 + 0.5 * unit(hash(r)));
        let half = spacing * 0.5 * (0.7 + 0.5 * unit(hash(r ^ 1)));
        let d = (u - centre).abs() / half;
        if d < 1.0 {
            // Conifer: a narrow spire with slightly drooping tiers.
            let q = (1.0 - d) * 9.0;
            let tiers = 1.0 - 0.12 * (q - q as i32 as f32);
            best = best.max(th * (1.0 - d) * (0.6 + 0.4 * (1.0 - d)) * tiers);
        }
    }
    best
}

fn buildings(seed: u32, u: f32, cell: f32, hmin: f32, hmax: f32) -> f32 {
    let c = floor_i(u / cell) as f32;
    let local = u / cell - c;
    let r = hash2(seed, c as i32 as u32, 0xb1d);
    let hgt = hmin
        + (hmax - hmin) * {
            let q = unit(r);
            q * q
        };
    // Setbacks on tall towers and the odd antenna.
    let setback = if unit(hash(r ^ 5)) > 0.5 && !(0.2..=0.8).contains(&local) { 0.8 } else { 1.0 };
    let antenna = if unit(hash(r ^ 9)) > 0.75 && (local - 0.5).abs() < 0.03 { 0.025 } else { 0.0 };
    if local > 0.94 {
        hgt * 0.5
    } else {
        hgt * setback + antenna
    }
}

/// The planet of the space scene: centre and radius in pixels. It hangs low in the frame.
fn planet(lk: &Look) -> (f32, f32, f32) {
    (0.27 * lk.w as f32, 0.86 * lk.hf, 0.42 * lk.hf)
}

/// A star: a soft point, a small cross when bright.
fn plus(buf: &mut [u8], stride: usize, w: usize, h: usize, x: usize, y: usize, b: f32, big: bool) {
    if x + 1 >= w || y + 1 >= h || x == 0 || y == 0 {
        return;
    }
    let mut put = |x: usize, y: usize, b: f32| {
        let o = y * stride + x * 3;
        buf[o] = to_u8(buf[o] as f32 + b * 0.9);
        buf[o + 1] = to_u8(buf[o + 1] as f32 + b * 0.93);
        buf[o + 2] = to_u8(buf[o + 2] as f32 + b);
    };
    put(x, y, b);
    if big {
        put(x + 1, y, b * 0.4);
        put(x - 1, y, b * 0.4);
        put(x, y + 1, b * 0.4);
        put(x, y - 1, b * 0.4);
    }
}

#[inline]
fn add_px(buf: &mut [u8], stride: usize, w: usize, h: usize, x: i32, y: i32, c: Rgb, a: f32) {
    if x < 0 || y < 0 || x as usize >= w || y as usize >= h {
        return;
    }
    let o = y as usize * stride + x as usize * 3;
    for i in 0..3 {
        buf[o + i] = to_u8(buf[o + i] as f32 + c[i] * a);
    }
}

#[inline]
fn blend_px(buf: &mut [u8], stride: usize, w: usize, h: usize, x: i32, y: i32, c: Rgb, a: f32) {
    if x < 0 || y < 0 || x as usize >= w || y as usize >= h {
        return;
    }
    let o = y as usize * stride + x as usize * 3;
    for i in 0..3 {
        let v = buf[o + i] as f32;
        buf[o + i] = to_u8(v + (c[i] - v) * a);
    }
}

/// A forked lightning bolt from the cloud base to the horizon, with a blue glow.
fn bolt(lk: &Look, idx: u32, buf: &mut [u8], stride: usize) {
    let (w, h, hf) = (lk.w, lk.h, lk.hf);
    let seed = hash2(lk.seed, idx, 0xb017);
    let mut x = (0.12 + 0.76 * unit(seed)) * w as f32;
    let end = lk.horizon.min(h as f32) - 0.02 * hf;
    let steps = 28;
    let dy = end / steps as f32;
    let bright = lk.flash.sqrt();
    let width = (hf / 350.0).max(1.0);
    let mut branch: Option<(f32, f32, i32)> = None;
    for i in 0..steps {
        let y = i as f32 * dy;
        let nx = x + (unit(hash(seed ^ (i as u32 * 31 + 1))) - 0.5) * 0.05 * hf;
        stroke(buf, stride, w, h, x, y, nx, y + dy, width, bright);
        if i == steps / 3 {
            branch = Some((nx, y + dy, if unit(hash(seed ^ 0xf0)) > 0.5 { 1 } else { -1 }));
        }
        x = nx;
    }
    if let Some((mut bx, mut by, dir)) = branch {
        for i in 0..10 {
            let nx = bx + dir as f32 * (0.01 + 0.02 * unit(hash(seed ^ (i * 17 + 3)))) * hf;
            stroke(buf, stride, w, h, bx, by, nx, by + dy * 0.8, width * 0.6, bright * 0.7);
            bx = nx;
            by += dy * 0.8;
        }
    }
}

fn stroke(buf: &mut [u8], stride: usize, w: usize, h: usize, x0: f32, y0: f32, x1: f32, y1: f32, width: f32, b: f32) {
    let n = ((y1 - y0).abs().max((x1 - x0).abs())).ceil().max(1.0) as i32;
    let glow = (width * 4.0) as i32;
    for j in 0..=n {
        let f = j as f32 / n as f32;
        let (x, y) = (x0 + (x1 - x0) * f, y0 + (y1 - y0) * f);
        for gx in -glow..=glow {
            let d = gx.abs() as f32;
            if d <= width {
                blend_px(buf, stride, w, h, x as i32 + gx, y as i32, [250.0, 250.0, 255.0], b);
            } else {
                let a = (1.0 - d / (glow as f32 + 1.0)) * 0.35 * b;
                add_px(buf, stride, w, h, x as i32 + gx, y as i32, [120.0, 130.0, 255.0], a);
            }
        }
    }
}

/// Flames: a campfire in the foreground and, when the fire is strong, a burning ridge line.
fn fire(lk: &Look, ridge: &[i32], buf: &mut [u8], stride: usize) {
    let f = lk.g(p::FIRE);
    if f < 0.02 {
        return;
    }
    let (w, h, hf, t) = (lk.w, lk.h, lk.hf, lk.t);
    let flicker = 0.85 + 0.15 * (t * 11.0).sin() * (t * 7.3).cos() + 0.3 * lk.pulse.bands[0];
    let mut sources: Vec<(f32, f32, f32)> = Vec::new();
    let cx = 0.58 * w as f32;
    // On the ground in the foreground, in front of everything else.
    let base = 0.92 * hf;
    sources.push((cx, base, 1.0));
    if f > 0.3 {
        for i in 0..12 {
            let x = (0.04 + 0.08 * i as f32 + 0.03 * unit(hash2(lk.seed, i, 0xf1))) * w as f32;
            let r = ridge[2 * w + (x as usize).min(w - 1)];
            if r != i32::MAX && (r as f32) < lk.horizon {
                sources.push((x, r as f32 + 1.0, 0.3 + 0.2 * unit(hash2(lk.seed, i, 0xf2))));
            }
        }
    }
    // Warm light thrown around the campfire, wider than high (it lights the ground).
    let gr = 0.5 * hf * (0.4 + 0.6 * f);
    let (gy0, gy1) = ((base - gr).max(0.0) as usize, ((base + gr * 0.4) as usize).min(h));
    let glow = scale([255.0, 120.0, 40.0], 0.6 * f * flicker);
    for y in gy0..gy1 {
        let dy = (y as f32 - base) / gr;
        disc_row(buf, stride, w, y, cx, 1.8 * gr, 1.0 - dy * dy, glow, 2);
    }
    for (si, &(sx, sy, size)) in sources.iter().enumerate() {
        let fh = 0.32 * hf * size * (0.4 + 0.6 * f);
        let count = (120.0 * size.max(0.3)) as u32;
        for i in 0..count {
            let r = hash2(lk.seed, i, si as u32 + 0xf00);
            let life = 0.7 + 0.6 * unit(hash(r));
            let ph = (t / life + unit(r)).fract();
            let spread = (unit(hash(r ^ 2)) - 0.5) * 0.35 * fh;
            let x = sx + spread * (1.0 - ph) + (t * 5.0 + i as f32).sin() * 0.05 * fh * ph;
            let y = sy - ph * fh * (0.55 + 0.45 * unit(hash(r ^ 3)));
            let rad = ((1.0 - ph) * 0.16 * fh * (0.5 + 0.5 * unit(hash(r ^ 4)))).max(1.0);
            let col = if ph < 0.25 {
                mix([255.0, 245.0, 180.0], [255.0, 170.0, 50.0], ph * 4.0)
            } else {
                mix([255.0, 170.0, 50.0], [190.0, 40.0, 10.0], ((ph - 0.25) / 0.75).min(1.0))
            };
            let col = scale(col, (1.0 - ph) * 0.55 * flicker);
            let ri = rad.ceil() as i32;
            let (xc, yc) = ((x as i32) as f32, y as i32);
            for oy in -ri..=ri {
                let yy = yc + oy;
                if yy >= 0 && (yy as usize) < h {
                    let q = (oy * oy) as f32 / (rad * rad);
                    disc_row(buf, stride, w, yy as usize, xc, rad, 1.0 - q, col, 1);
                }
            }
        }
    }
    // Embers drift up and sideways with the wind.
    let wind = lk.g(p::WIND);
    for i in 0..(90.0 * f) as u32 {
        let r = hash2(lk.seed, i, 0xe3b);
        let life = 2.0 + 2.0 * unit(r);
        let ph = (t / life + unit(hash(r))).fract();
        let x = cx
            + (unit(hash(r ^ 1)) - 0.5) * 0.1 * hf
            + ph * (0.1 + 0.3 * wind) * hf
            + (t * 2.0 + i as f32).sin() * 0.02 * hf;
        let y = base - ph * 0.55 * hf;
        add_px(buf, stride, w, h, x as i32, y as i32, [255.0, 150.0, 50.0], 1.0 - ph);
    }
}

/// Add `col` times a radial falloff along one row of a disc (or ellipse) centred on `cx` with
/// horizontal radius `rx`: `rem` is 1 - (the row's vertical offset / vertical radius)^2, and
/// the falloff is (1 - d^2)^`power` with d the normalised distance from the centre.
#[allow(clippy::too_many_arguments)]
fn disc_row(buf: &mut [u8], stride: usize, w: usize, y: usize, cx: f32, rx: f32, rem: f32, col: Rgb, power: i32) {
    if rem <= 0.0 {
        return;
    }
    let half = rem.sqrt() * rx;
    let x0 = (cx - half).ceil().max(0.0) as usize;
    let x1 = ((cx + half).floor() + 1.0).clamp(0.0, w as f32) as usize;
    if x0 >= x1 {
        return;
    }
    let inv = 1.0 / (rx * rx);
    // Fixed point: one float-to-int conversion per pixel, integer adds per channel.
    let colq = col.map(|c| (c.clamp(0.0, 1024.0) * 256.0) as u32);
    let row = &mut buf[y * stride + x0 * 3..y * stride + x1 * 3];
    for (i, px) in row.chunks_exact_mut(3).enumerate() {
        let dx = (x0 + i) as f32 - cx;
        let q = (rem - dx * dx * inv).max(0.0);
        let a = ((if power == 2 { q * q } else { q }) * 256.0) as u32;
        for c in 0..3 {
            px[c] = (px[c] as u32 + ((colq[c] * a) >> 16)).min(255) as u8;
        }
    }
}

/// Rain streaks and snowflakes, drawn over everything.
fn precipitation(lk: &Look, buf: &mut [u8], stride: usize) {
    let (w, h, hf, t) = (lk.w, lk.h, lk.hf, lk.t);
    let area = (w * h) as f32 / (1280.0 * 704.0);
    let wind = lk.g(p::WIND);
    let rain = (lk.g(p::RAIN) * 0.7 + lk.g(p::STORM) * 0.5).min(1.0);
    if rain > 0.02 {
        let col = lk.grade(scale([175.0, 185.0, 205.0], 0.35 + 0.65 * lk.light + lk.flash));
        let slant = 0.08 + 0.5 * wind;
        let n = (rain * 2400.0 * area) as u32;
        for i in 0..n {
            let r = hash2(lk.seed, i, 0x5a1);
            let near = unit(hash(r ^ 1));
            let len = (0.015 + 0.03 * near) * hf;
            let vy = (1.2 + 1.3 * near) * hf;
            let span = h as f32 + len;
            let y = (unit(r) * span + t * vy).rem_euclid(span) - len;
            let x = (unit(hash(r)) * w as f32 + slant * (y + t * vy)).rem_euclid(w as f32);
            let a = 0.18 + 0.3 * near;
            let steps = len as i32;
            for j in 0..steps {
                let fy = y + j as f32;
                let fx = x + slant * j as f32;
                blend_px(buf, stride, w, h, fx as i32, fy as i32, col, a * (j as f32 / len + 0.3).min(1.0));
            }
        }
    }
    let snow = lk.g(p::SNOW);
    if snow > 0.02 {
        let col = lk.grade(scale([245.0, 248.0, 255.0], 0.45 + 0.55 * lk.light));
        let n = (snow * 5000.0 * area) as u32;
        for i in 0..n {
            let r = hash2(lk.seed, i, 0x5e0);
            let near = unit(hash(r ^ 1));
            let vy = (0.04 + 0.1 * near) * hf;
            let span = h as f32 + 4.0;
            let y = (unit(r) * span + t * vy).rem_euclid(span) - 2.0;
            let sway = (t * (0.6 + near) + unit(hash(r ^ 2)) * 6.28).sin() * 0.012 * hf;
            let x = (unit(hash(r)) * w as f32 + sway + t * wind * 0.06 * hf * (0.5 + near)).rem_euclid(w as f32);
            let size = 1 + (near * near * hf / 350.0) as i32;
            let a = 0.55 + 0.45 * near;
            for oy in 0..size {
                for ox in 0..size {
                    blend_px(buf, stride, w, h, x as i32 + ox, y as i32 + oy, col, a);
                }
            }
        }
    }
}
