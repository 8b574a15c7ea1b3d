//! The procedural world: a latent scene state steered by a keyword vocabulary, rendered into
//! RGB frames, and the spectral pulse by which sound moves the picture directly.
//!
//! Used by the world stage process (through the Python `procedural` backend) and by the
//! snapshot command. Everything here is deterministic: the same seed, state, world time and
//! pulse give the same bytes.

mod noise;
mod pulse;
mod render;
mod state;
#[cfg(test)]
mod tests;

pub use pulse::{spectral_pulse, Pulse, BANDS_HZ};
pub use render::Renderer;
pub use state::{category, p, validate, Category, Scene, SceneState, N as STATE_LEN, NAMES as STATE_NAMES, VOCABULARY};
