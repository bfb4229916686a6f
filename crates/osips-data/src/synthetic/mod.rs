//! Synthetic faces: a deterministic procedural renderer with known identity and
//! attribute parameters — the embedded default training data and the ground truth of the
//! open-set evaluation (the expected swap of `x_s` and `x_a` is
//! `render(identity of x_s, attributes of x_a)`).

mod math;
mod params;
mod render;

pub use params::{
    Attributes, Background, BackgroundPattern, Glasses, GlassesShape, HairStyle, Identity,
};
pub use render::render;

use crate::rng::hash_words;
use crate::source::{FaceData, FaceSource};
use crate::DataError;

/// Identity seeds used for training identities: class `c` is `Identity::from_seed(c)`.
pub const TRAIN_IDENTITY_SEEDS: std::ops::Range<u64> = 0..(1 << 40);
/// Identity seeds reserved for evaluation (open set): never used by a training source.
pub const EVAL_IDENTITY_SEEDS: std::ops::Range<u64> = (1 << 40)..(1 << 41);

// The open set: evaluation identities never overlap training ones.
const _: () = assert!(TRAIN_IDENTITY_SEEDS.end <= EVAL_IDENTITY_SEEDS.start);

/// Images per identity in a [`SyntheticSource`] (image `i` is photo `i % K` of class `i / K`).
pub const IMAGES_PER_IDENTITY: usize = 1 << 20;

/// The identity seed of training class `class`.
pub fn train_identity_seed(class: u32) -> u64 {
    TRAIN_IDENTITY_SEEDS.start + u64::from(class)
}

/// The identity seed of the `k`-th evaluation identity.
pub fn eval_identity_seed(k: u32) -> u64 {
    EVAL_IDENTITY_SEEDS.start + u64::from(k)
}

/// The attribute seed of photo `k` of the identity with seed `identity_seed`.
pub fn attribute_seed(identity_seed: u64, k: u64) -> u64 {
    hash_words(&[0x5eed_a77b, identity_seed, k])
}

/// Training faces rendered on demand: `n_identities` classes, [`IMAGES_PER_IDENTITY`]
/// photos each; image `i` is `render(Identity::from_seed(train_identity_seed(i / K)),
/// Attributes::from_seed(attribute_seed(.., i % K)), size)`, a pure function of `i`.
#[derive(Clone, Debug)]
pub struct SyntheticSource {
    n_identities: u32,
    size: u32,
    len: usize,
}

impl SyntheticSource {
    /// A source of `n_identities` training identities rendered at `size × size`.
    pub fn new(n_identities: u32, size: u32) -> Result<SyntheticSource, DataError> {
        let len = (n_identities as usize)
            .checked_mul(IMAGES_PER_IDENTITY)
            .ok_or_else(|| {
                DataError::Config(format!("{n_identities} synthetic identities is too many"))
            })?;
        Ok(SyntheticSource {
            n_identities,
            size,
            len,
        })
    }

    /// The identity and attributes of image `i`.
    pub fn parameters(&self, i: usize) -> Option<(Identity, Attributes)> {
        if i >= self.len {
            return None;
        }
        let class = (i / IMAGES_PER_IDENTITY) as u32;
        let id_seed = train_identity_seed(class);
        let k = (i % IMAGES_PER_IDENTITY) as u64;
        Some((
            Identity::from_seed(id_seed),
            Attributes::from_seed(attribute_seed(id_seed, k)),
        ))
    }
}

impl FaceSource for SyntheticSource {
    fn len(&self) -> usize {
        self.len
    }

    fn identity(&self, i: usize) -> Option<u32> {
        (i < self.len).then_some((i / IMAGES_PER_IDENTITY) as u32)
    }

    fn read(&self, i: usize) -> Result<FaceData, DataError> {
        let (identity, attributes) = self.parameters(i).ok_or_else(|| DataError::OutOfRange {
            source_name: self.describe(),
            index: i,
            len: self.len,
        })?;
        Ok(FaceData::Image(render(&identity, &attributes, self.size)))
    }

    fn n_identities(&self) -> usize {
        self.n_identities as usize
    }

    fn describe(&self) -> String {
        format!(
            "synthetic ({} identities, {}px)",
            self.n_identities, self.size
        )
    }

    fn location(&self, i: usize) -> String {
        format!(
            "synthetic identity {} photo {}",
            i / IMAGES_PER_IDENTITY,
            i % IMAGES_PER_IDENTITY
        )
    }

    fn identity_name(&self, id: u32) -> Option<String> {
        Some(format!("synthetic-{id}"))
    }

    fn images_per_identity(&self) -> Option<usize> {
        Some(IMAGES_PER_IDENTITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges_are_disjoint() {
        assert!(TRAIN_IDENTITY_SEEDS.contains(&train_identity_seed(u32::MAX)));
        assert!(EVAL_IDENTITY_SEEDS.contains(&eval_identity_seed(u32::MAX)));
    }

    #[test]
    fn render_is_deterministic_and_sized() {
        let id = Identity::from_seed(3);
        let at = Attributes::from_seed(4);
        let a = render(&id, &at, 32);
        let b = render(&id, &at, 32);
        assert_eq!(a, b);
        assert_eq!(a.dimensions(), (32, 32));
        assert_eq!(render(&id, &at, 9).dimensions(), (9, 9));
    }

    #[test]
    fn parameters_differ_between_seeds() {
        assert_ne!(Identity::from_seed(1), Identity::from_seed(2));
        assert_ne!(Attributes::from_seed(1), Attributes::from_seed(2));
        assert_eq!(Identity::from_seed(5), Identity::from_seed(5));
    }

    #[test]
    fn source_layout_is_uniform() {
        let s = SyntheticSource::new(3, 16).unwrap();
        assert_eq!(s.len(), 3 * IMAGES_PER_IDENTITY);
        assert_eq!(s.identity(IMAGES_PER_IDENTITY + 5), Some(1));
        assert_eq!(s.identity(s.len()), None);
        assert!(s.read(s.len()).is_err());
        assert!(matches!(s.read(0), Ok(FaceData::Image(img)) if img.width() == 16));
    }
}
