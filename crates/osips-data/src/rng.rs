//! A small counter-based random number generator.
//!
//! Every random draw in this crate is a pure function of a key (seed and counters), so
//! that batch `k` is the same whatever the thread count, prefetch depth or resume point.
//! The mixer is SplitMix64's finaliser; a stream is SplitMix64 started at a hashed key.

/// SplitMix64's finaliser: a good 64-bit bijective mixer.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hashes a list of words into one key (order-sensitive).
#[inline]
pub fn hash_words(words: &[u64]) -> u64 {
    let mut h = 0x6a09_e667_f3bc_c909_u64;
    for &w in words {
        h = mix64(h ^ mix64(w.wrapping_add(0x9e37_79b9_7f4a_7c15)));
    }
    h
}

/// A SplitMix64 stream keyed by a list of words: `Rng::new(&[seed, batch, item])`.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A stream determined entirely by `key`.
    pub fn new(key: &[u64]) -> Rng {
        Rng {
            state: hash_words(key),
        }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.state)
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in `[lo, hi)`.
    #[inline]
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in `0..n` (`n > 0`; returns 0 for `n == 0`).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-shift; the bias is below 2^-32 for the sizes used here.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`.
    #[inline]
    pub fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }

    /// A standard normal sample (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.unit().max(1e-7);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }

    /// One of `items`, uniformly (`items` must be non-empty; returns the first otherwise).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        let i = self.below(items.len() as u64) as usize;
        items[i.min(items.len().saturating_sub(1))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_pure_functions_of_the_key() {
        let a: Vec<u64> = (0..4).map(|_| 0).collect();
        let mut r1 = Rng::new(&[1, 2, 3]);
        let mut r2 = Rng::new(&[1, 2, 3]);
        let mut r3 = Rng::new(&[1, 2, 4]);
        let s1: Vec<u64> = (0..4).map(|_| r1.next_u64()).collect();
        let s2: Vec<u64> = (0..4).map(|_| r2.next_u64()).collect();
        let s3: Vec<u64> = (0..4).map(|_| r3.next_u64()).collect();
        assert_eq!(s1, s2);
        assert_ne!(s1, s3);
        assert_ne!(s1, a);
    }

    #[test]
    fn unit_and_below_are_in_range_and_roughly_uniform() {
        let mut r = Rng::new(&[7]);
        let mut counts = [0usize; 10];
        for _ in 0..100_000 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
            counts[r.below(10) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut r = Rng::new(&[9]);
        let n = 50_000;
        let xs: Vec<f32> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f32>() / n as f32;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n as f32;
        assert!(mean.abs() < 0.02, "{mean}");
        assert!((var - 1.0).abs() < 0.03, "{var}");
    }
}
