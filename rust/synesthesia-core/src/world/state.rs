//! The latent scene state, the vocabulary that steers it, and the easing between states.
//!
//! A state is a short vector of named numbers (scene mixture, time-of-day mixture, weather,
//! effects, tempo, colour grade). The renderer is a pure function of (seed, state, world time,
//! pulse); [`Scene`] owns the state a session is in and moves it when intents arrive, so a log
//! of `apply`/`advance` calls replays a session exactly.

use crate::error::{Error, Result};

macro_rules! params {
    ($($idx:literal $konst:ident $name:literal = $default:literal max $max:literal;)*) => {
        /// Indices into [`SceneState::values`], one per named parameter.
        pub mod p {
            $(pub const $konst: usize = $idx;)*
        }
        /// Parameter names in vector order (the ONNX backend's conditioning layout too).
        pub const NAMES: &[&str] = &[$($name),*];
        const DEFAULTS: [f32; N] = [$($default),*];
        const MAXIMA: [f32; N] = [$($max),*];
    };
}

/// Number of parameters in a state vector.
pub const N: usize = 26;

params! {
    0 OCEAN "ocean" = 0.0 max 1.0;
    1 FOREST "forest" = 0.0 max 1.0;
    2 DESERT "desert" = 0.0 max 1.0;
    3 CITY "city" = 0.0 max 1.0;
    4 MOUNTAINS "mountains" = 1.0 max 1.0;
    5 SPACE "space" = 0.0 max 1.0;
    6 NIGHT "night" = 0.0 max 1.0;
    7 DAY "day" = 0.0 max 1.0;
    8 SUNSET "sunset" = 1.0 max 1.0;
    9 SUNRISE "sunrise" = 0.0 max 1.0;
    10 RAIN "rain" = 0.0 max 1.0;
    11 SNOW "snow" = 0.0 max 1.0;
    12 STORM "storm" = 0.0 max 1.0;
    13 FOG "fog" = 0.0 max 1.0;
    14 CLOUDS "clouds" = 0.5 max 1.0;
    15 FIRE "fire" = 0.0 max 1.0;
    16 LIGHTNING "lightning" = 0.0 max 1.0;
    17 AURORA "aurora" = 0.0 max 1.0;
    18 STARS "stars" = 0.0 max 1.0;
    19 SPEED "speed" = 1.0 max 4.0;
    20 WIND "wind" = 0.3 max 1.0;
    21 CALM "calm" = 0.0 max 1.0;
    22 TINT_R "tint_r" = 1.0 max 1.0;
    23 TINT_G "tint_g" = 1.0 max 1.0;
    24 TINT_B "tint_b" = 1.0 max 1.0;
    25 TINT "tint" = 0.0 max 1.0;
}

const SCENES: [usize; 6] = [p::OCEAN, p::FOREST, p::DESERT, p::CITY, p::MOUNTAINS, p::SPACE];
const TIMES: [usize; 4] = [p::NIGHT, p::DAY, p::SUNSET, p::SUNRISE];
const PRECIPITATION: [usize; 3] = [p::RAIN, p::SNOW, p::STORM];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    Scene,
    Weather,
    Time,
    Effect,
    Tempo,
    Colour,
}

impl Category {
    pub fn name(self) -> &'static str {
        match self {
            Category::Scene => "scene",
            Category::Weather => "weather",
            Category::Time => "time",
            Category::Effect => "effect",
            Category::Tempo => "tempo",
            Category::Colour => "colour",
        }
    }
}

/// The default vocabulary: every word moves the state somewhere recognisably different.
pub const VOCABULARY: &[(&str, Category)] = &[
    ("ocean", Category::Scene),
    ("forest", Category::Scene),
    ("desert", Category::Scene),
    ("city", Category::Scene),
    ("mountains", Category::Scene),
    ("space", Category::Scene),
    ("rain", Category::Weather),
    ("snow", Category::Weather),
    ("storm", Category::Weather),
    ("fog", Category::Weather),
    ("clear", Category::Weather),
    ("night", Category::Time),
    ("day", Category::Time),
    ("sunset", Category::Time),
    ("sunrise", Category::Time),
    ("fire", Category::Effect),
    ("lightning", Category::Effect),
    ("aurora", Category::Effect),
    ("stars", Category::Effect),
    ("faster", Category::Tempo),
    ("slower", Category::Tempo),
    ("calm", Category::Tempo),
    ("freeze", Category::Tempo),
    ("red", Category::Colour),
    ("blue", Category::Colour),
    ("green", Category::Colour),
    ("gold", Category::Colour),
    ("purple", Category::Colour),
];

/// Grade colours, roughly equal in luminance so a tint shifts hue more than exposure.
fn tint_colour(word: &str) -> Option<[f32; 3]> {
    Some(match word {
        "red" => [1.0, 0.32, 0.28],
        "blue" => [0.30, 0.52, 1.0],
        "green" => [0.35, 1.0, 0.45],
        "gold" => [1.0, 0.78, 0.30],
        "purple" => [0.72, 0.32, 1.0],
        _ => return None,
    })
}

pub fn category(word: &str) -> Option<Category> {
    VOCABULARY.iter().find(|(w, _)| *w == word).map(|(_, c)| *c)
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SceneState {
    pub values: [f32; N],
}

impl Default for SceneState {
    fn default() -> Self {
        SceneState { values: DEFAULTS }
    }
}

impl SceneState {
    /// A state from a caller's vector: every value must be finite; each is clamped to its range
    /// (a replay log or a model may round slightly outside it).
    pub fn from_slice(values: &[f32]) -> Result<Self> {
        if values.len() != N {
            return Err(Error::invalid("state", format!("expected {N} values, got {}", values.len())));
        }
        let mut out = [0.0; N];
        for (i, v) in values.iter().enumerate() {
            if !v.is_finite() {
                return Err(Error::invalid("state", format!("{} is not finite ({v})", NAMES[i])));
            }
            out[i] = v.clamp(0.0, MAXIMA[i]);
        }
        Ok(SceneState { values: out })
    }

    pub fn get(&self, i: usize) -> f32 {
        self.values[i]
    }

    fn lerp_to(&mut self, i: usize, to: f32, a: f32) {
        self.values[i] += (to - self.values[i]) * a;
    }

    /// Mixture weights of a group, normalised to sum to 1 (uniform when all are zero).
    pub fn mixture<const K: usize>(&self, group: [usize; K]) -> [f32; K] {
        let total: f32 = group.iter().map(|&i| self.values[i]).sum();
        let mut out = [1.0 / K as f32; K];
        if total > 1e-6 {
            for (o, &i) in out.iter_mut().zip(group.iter()) {
                *o = self.values[i] / total;
            }
        }
        out
    }

    pub fn scenes(&self) -> [f32; 6] {
        self.mixture(SCENES)
    }

    pub fn times(&self) -> [f32; 4] {
        self.mixture(TIMES)
    }
}

/// Blend a mixture group toward the words named in it: the strongest weight decides how far,
/// the relative weights decide the new mix, so "forest ocean" composes and "desert" replaces.
fn mix_group<const K: usize>(s: &mut SceneState, group: [usize; K], named: &[(usize, f32)]) {
    let hits: Vec<(usize, f32)> = named.iter().copied().filter(|(i, _)| group.contains(i)).collect();
    if hits.is_empty() {
        return;
    }
    let wmax = hits.iter().map(|h| h.1).fold(0.0, f32::max);
    let total: f32 = hits.iter().map(|h| h.1).sum();
    for &i in group.iter() {
        let share: f32 = hits.iter().filter(|h| h.0 == i).map(|h| h.1).sum::<f32>() / total;
        s.lerp_to(i, share, wmax);
    }
}

/// Move `target` by one intent's words. Words must already be validated.
fn steer(target: &mut SceneState, words: &[(&str, f32)]) {
    let s = target;
    let index = |w: &str| NAMES.iter().position(|n| *n == w);
    let named: Vec<(usize, f32)> = words.iter().filter_map(|(w, x)| index(w).map(|i| (i, *x))).collect();
    mix_group(s, SCENES, &named);
    mix_group(s, TIMES, &named);

    // Precipitation kinds replace each other across intents but compose within one.
    let precip: Vec<(usize, f32)> = named.iter().copied().filter(|(i, _)| PRECIPITATION.contains(i)).collect();
    if let Some(wmax) = precip.iter().map(|h| h.1).reduce(f32::max) {
        for i in PRECIPITATION {
            if !precip.iter().any(|h| h.0 == i) {
                s.values[i] *= 1.0 - wmax;
            }
        }
    }
    for &(word, w) in words {
        match word {
            "rain" => {
                s.lerp_to(p::RAIN, 1.0, w);
                s.values[p::CLOUDS] = s.values[p::CLOUDS].max(0.8 * w);
            }
            "snow" => {
                s.lerp_to(p::SNOW, 1.0, w);
                s.values[p::CLOUDS] = s.values[p::CLOUDS].max(0.6 * w);
            }
            "storm" => {
                s.lerp_to(p::STORM, 1.0, w);
                s.values[p::CLOUDS] = s.values[p::CLOUDS].max(0.95 * w);
                s.values[p::RAIN] = s.values[p::RAIN].max(0.8 * w);
                s.values[p::LIGHTNING] = s.values[p::LIGHTNING].max(0.7 * w);
                s.lerp_to(p::WIND, 0.9, w);
                s.lerp_to(p::CALM, 0.0, w);
            }
            "fog" => s.lerp_to(p::FOG, 1.0, w),
            "clear" => {
                for i in [p::RAIN, p::SNOW, p::STORM, p::FOG, p::LIGHTNING] {
                    s.lerp_to(i, 0.0, w);
                }
                s.lerp_to(p::CLOUDS, 0.04, w);
            }
            "fire" => s.lerp_to(p::FIRE, 1.0, w),
            "lightning" => {
                s.lerp_to(p::LIGHTNING, 1.0, w);
                s.values[p::CLOUDS] = s.values[p::CLOUDS].max(0.6 * w);
            }
            // Stars and aurora belong to a dark sky: they pull the time of day toward night.
            "aurora" | "stars" => {
                let i = if word == "aurora" { p::AURORA } else { p::STARS };
                s.lerp_to(i, 1.0, w);
                if !named.iter().any(|(j, _)| TIMES.contains(j)) {
                    mix_group(s, TIMES, &[(p::NIGHT, 0.7 * w)]);
                }
                s.lerp_to(p::CLOUDS, 0.1, 0.6 * w);
            }
            "faster" => {
                s.values[p::SPEED] = (s.values[p::SPEED] * (1.0 + 1.5 * w)).clamp(0.25, 4.0);
                s.lerp_to(p::WIND, 1.0, 0.5 * w);
                s.lerp_to(p::CALM, 0.0, w);
            }
            "slower" => {
                s.values[p::SPEED] /= 1.0 + w;
                s.lerp_to(p::WIND, 0.0, 0.5 * w);
            }
            "calm" => {
                s.lerp_to(p::SPEED, 0.4, w);
                s.lerp_to(p::WIND, 0.0, w);
                s.lerp_to(p::CALM, 1.0, w);
                // Calm is also a quieter sky.
                s.lerp_to(p::CLOUDS, 0.15, 0.6 * w);
                s.values[p::RAIN] *= 1.0 - 0.6 * w;
                s.values[p::STORM] *= 1.0 - 0.8 * w;
                s.values[p::LIGHTNING] *= 1.0 - 0.8 * w;
            }
            "freeze" => {
                s.values[p::SPEED] *= 1.0 - w;
                s.lerp_to(p::CALM, 1.0, w);
            }
            _ => {}
        }
    }
    let colours: Vec<([f32; 3], f32)> =
        words.iter().filter_map(|(word, w)| tint_colour(word).map(|c| (c, *w))).collect();
    if !colours.is_empty() {
        let total: f32 = colours.iter().map(|c| c.1).sum();
        let wmax = colours.iter().map(|c| c.1).fold(0.0, f32::max);
        for (k, i) in [p::TINT_R, p::TINT_G, p::TINT_B].into_iter().enumerate() {
            let mixed: f32 = colours.iter().map(|(c, w)| c[k] * w).sum::<f32>() / total;
            s.lerp_to(i, mixed, wmax);
        }
        s.lerp_to(p::TINT, 1.0, wmax);
    }
    for i in 0..N {
        s.values[i] = s.values[i].clamp(0.0, MAXIMA[i]);
    }
}

/// Check an intent's words: each must be in the vocabulary with a weight in (0, 1].
pub fn validate(words: &[(&str, f32)]) -> Result<()> {
    for (word, w) in words {
        if category(word).is_none() {
            return Err(Error::invalid("keywords", format!("unknown word {word:?}")));
        }
        if !w.is_finite() || *w <= 0.0 || *w > 1.0 {
            return Err(Error::invalid("weights", format!("weight of {word:?} must be in (0, 1], got {w}")));
        }
    }
    Ok(())
}

/// A session's scene: where the state is, where intents asked it to go, and world time.
///
/// Transitions ease exponentially with time constant `tau` seconds, but each intent first
/// jumps a fraction `jump` of the way at once so the very next frame already shows it.
#[derive(Clone, Debug)]
pub struct Scene {
    current: SceneState,
    target: SceneState,
    tau: f32,
    jump: f32,
    world_time: f64,
}

impl Scene {
    pub fn new(initial: SceneState, tau: f32, jump: f32) -> Result<Self> {
        if !(tau.is_finite() && tau > 0.0) {
            return Err(Error::invalid("tau", format!("must be a positive number of seconds, got {tau}")));
        }
        if !(jump.is_finite() && (0.0..=1.0).contains(&jump)) {
            return Err(Error::invalid("jump", format!("must be in [0, 1], got {jump}")));
        }
        Ok(Scene { current: initial, target: initial, tau, jump, world_time: 0.0 })
    }

    pub fn current(&self) -> &SceneState {
        &self.current
    }

    pub fn target(&self) -> &SceneState {
        &self.target
    }

    /// Seconds of world motion so far: wall time scaled by the speed the state had.
    pub fn world_time(&self) -> f64 {
        self.world_time
    }

    /// Apply one intent. Rejected intents leave the scene untouched.
    pub fn apply(&mut self, words: &[(&str, f32)]) -> Result<()> {
        validate(words)?;
        steer(&mut self.target, words);
        for i in 0..N {
            self.current.values[i] += (self.target.values[i] - self.current.values[i]) * self.jump;
        }
        Ok(())
    }

    /// Let `dt` seconds of wall time pass.
    pub fn advance(&mut self, dt: f32) -> Result<()> {
        if !(dt.is_finite() && dt >= 0.0) {
            return Err(Error::invalid("dt", format!("must be a non-negative number of seconds, got {dt}")));
        }
        let a = 1.0 - (-dt / self.tau).exp();
        // Speed eases too, so integrate with the mean of the old and new speed.
        let before = self.current.values[p::SPEED];
        for i in 0..N {
            self.current.values[i] += (self.target.values[i] - self.current.values[i]) * a;
        }
        self.world_time += f64::from(dt) * f64::from(0.5 * (before + self.current.values[p::SPEED]));
        Ok(())
    }

    /// Jump to the target at once (snapshots, previews).
    pub fn settle(&mut self) {
        self.current = self.target;
    }

    pub fn set_world_time(&mut self, t: f64) {
        self.world_time = t;
    }
}
