//! Integer hashing and value noise for the procedural world: cheap, seedable and identical on
//! every machine (no platform RNG, no transcendental functions in the lattice).

#[inline]
pub fn hash(mut x: u32) -> u32 {
    // A well-mixed 32-bit finaliser: neighbouring inputs give unrelated outputs.
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

#[inline]
pub fn hash2(seed: u32, a: u32, b: u32) -> u32 {
    hash(a ^ hash(b.wrapping_add(0x9e37_79b9) ^ hash(seed)))
}

/// A uniform number in [0, 1) from a hash.
#[inline]
pub fn unit(h: u32) -> f32 {
    (h >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// floor() without the libm call the baseline x86-64 target makes for `f32::floor`
/// (inputs stay far inside i32 range here).
#[inline]
pub fn floor_i(x: f32) -> i32 {
    let i = x as i32;
    if (i as f32) > x {
        i - 1
    } else {
        i
    }
}

#[inline]
fn smooth(f: f32) -> f32 {
    f * f * (3.0 - 2.0 * f)
}

/// 1-D value noise in [0, 1).
#[inline]
pub fn noise1(seed: u32, x: f32) -> f32 {
    let i = floor_i(x);
    let f = x - i as f32;
    let i = i as u32;
    let a = unit(hash(i ^ seed));
    let b = unit(hash(i.wrapping_add(1) ^ seed));
    a + (b - a) * smooth(f)
}

/// Fractal sum of `octaves` octaves of 1-D noise, normalised to [0, 1).
pub fn fbm1(seed: u32, x: f32, octaves: u32) -> f32 {
    let (mut sum, mut amp, mut norm, mut f) = (0.0, 1.0, 0.0, 1.0);
    for o in 0..octaves {
        sum += amp * noise1(seed.wrapping_add(o * 101), x * f);
        norm += amp;
        amp *= 0.5;
        f *= 2.03;
    }
    sum / norm
}

/// Ridged 1-D noise: sharp crests, like eroded mountain ridges.
pub fn ridged1(seed: u32, x: f32, octaves: u32) -> f32 {
    let (mut sum, mut amp, mut norm, mut f) = (0.0, 1.0, 0.0, 1.0);
    for o in 0..octaves {
        let n = 1.0 - (2.0 * noise1(seed.wrapping_add(o * 131), x * f) - 1.0).abs();
        sum += amp * n * n;
        norm += amp;
        amp *= 0.48;
        f *= 2.1;
    }
    sum / norm
}

/// A seeded 256x256 lattice of random values: 2-D value noise by table lookup instead of
/// hashing, several times cheaper in the per-pixel sky loops. Repeats every 256 units, far
/// beyond what any frame samples.
pub struct Lattice {
    v: Vec<f32>,
}

impl Lattice {
    pub fn new(seed: u32) -> Lattice {
        Lattice { v: (0..65536u32).map(|i| unit(hash(i ^ hash(seed ^ 0x1a77)))).collect() }
    }

    #[inline]
    pub fn noise2(&self, x: f32, y: f32) -> f32 {
        let (xf, yf) = (floor_i(x), floor_i(y));
        let (fx, fy) = (smooth(x - xf as f32), smooth(y - yf as f32));
        let (xi, yi) = ((xf & 255) as usize, (yf & 255) as usize);
        let (x1, y1) = ((xi + 1) & 255, ((yi + 1) & 255) << 8);
        let y0 = yi << 8;
        let (a, b, c, d) = (self.v[y0 + xi], self.v[y0 + x1], self.v[y1 + xi], self.v[y1 + x1]);
        let r0 = a + (b - a) * fx;
        let r1 = c + (d - c) * fx;
        r0 + (r1 - r0) * fy
    }

    pub fn fbm2(&self, x: f32, y: f32, octaves: u32) -> f32 {
        let (mut sum, mut amp, mut norm, mut f) = (0.0, 1.0, 0.0, 1.0);
        for o in 0..octaves {
            // Offset each octave so their lattice points do not line up.
            sum += amp * self.noise2(x * f + o as f32 * 17.3, y * f + o as f32 * 31.7);
            norm += amp;
            amp *= 0.5;
            f *= 2.02;
        }
        sum / norm
    }
}
