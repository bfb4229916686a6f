//! The opened sources, the identity index and the bad-input report.

use image::RgbImage;

use crate::config::{DataConfig, SourceSpec};
use crate::imaging::center_crop_resize;
use crate::source::folder::FolderSource;
use crate::source::recordio::RecordIoSource;
use crate::source::tsv::TsvSource;
use crate::source::{BadInput, FaceSource, SourceReport};
use crate::synthetic::SyntheticSource;
use crate::DataError;

/// Which of a dataset's two sources an image belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// The labeled source.
    Labeled,
    /// The unlabeled source.
    Unlabeled,
}

/// Images grouped by class, without holding per-image data for uniform layouts.
#[derive(Debug)]
enum ClassIndex {
    /// Image `i` has class `i / per_identity` (synthetic faces).
    Uniform {
        per_identity: usize,
        n_classes: usize,
    },
    /// Explicit: `order[starts[c]..starts[c + 1]]` are the images of class `c`.
    Listed {
        order: Vec<u32>,
        starts: Vec<u32>,
        /// Source identity → dense class (`u32::MAX`: the identity has no image).
        class_of_identity: Vec<u32>,
        /// Dense class → source identity.
        identity_of_class: Vec<u32>,
    },
}

/// Number of images probed when a dataset is opened.
const PROBES: usize = 8;

/// The opened labeled source, an optional unlabeled source, the index of images per
/// identity (classes `0..n_identities()`, only identities with at least one image) and the
/// report of skipped inputs.
pub struct Dataset {
    labeled: Box<dyn FaceSource>,
    unlabeled: Option<Box<dyn FaceSource>>,
    classes: ClassIndex,
    report: SourceReport,
    image_size: u32,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("labeled", &self.labeled.describe())
            .field("unlabeled", &self.unlabeled.as_ref().map(|u| u.describe()))
            .field("n_identities", &self.n_identities())
            .field("n_bad", &self.report.n_bad())
            .finish()
    }
}

impl Dataset {
    /// Opens the sources of `cfg`, builds the identity index, and probes a few images:
    /// a source with nothing usable is an error here, before training starts.
    pub fn open(cfg: &DataConfig) -> Result<Dataset, DataError> {
        cfg.validate()?;
        let labeled: Box<dyn FaceSource> = match &cfg.source {
            SourceSpec::Synthetic { n_identities } => {
                Box::new(SyntheticSource::new(*n_identities, cfg.image_size)?)
            }
            SourceSpec::Folder { path } => Box::new(FolderSource::open_labeled(path)?),
            SourceSpec::Tsv { path } => Box::new(TsvSource::open(path)?),
            SourceSpec::RecordIo { path } => Box::new(RecordIoSource::open(path)?),
        };
        let unlabeled: Option<Box<dyn FaceSource>> = match &cfg.unlabeled {
            Some(path) => Some(Box::new(FolderSource::open_unlabeled(path)?)),
            None => None,
        };
        Dataset::from_sources(labeled, unlabeled, cfg.image_size)
    }

    /// Builds a dataset from already opened sources (any [`FaceSource`]).
    pub fn from_sources(
        labeled: Box<dyn FaceSource>,
        unlabeled: Option<Box<dyn FaceSource>>,
        image_size: u32,
    ) -> Result<Dataset, DataError> {
        let report = SourceReport::default();
        for bad in labeled.skipped_at_open() {
            report.push(bad.clone());
        }
        if let Some(u) = &unlabeled {
            for bad in u.skipped_at_open() {
                report.push(bad.clone());
            }
        }
        let nothing = |src: &dyn FaceSource, message: &str| DataError::NothingUsable {
            source_name: src.describe(),
            message: format!("{message}; {}", report.summary(5)),
        };
        if labeled.is_empty() {
            return Err(nothing(labeled.as_ref(), "no images found"));
        }
        let classes = build_index(labeled.as_ref())?;
        let n_classes = match &classes {
            ClassIndex::Uniform { n_classes, .. } => *n_classes,
            ClassIndex::Listed {
                identity_of_class, ..
            } => identity_of_class.len(),
        };
        if n_classes == 0 {
            return Err(nothing(labeled.as_ref(), "no image has an identity label"));
        }
        let n_unlabeled = unlabeled.as_ref().map_or(0, |u| u.len());
        if let Some(u) = &unlabeled {
            if u.is_empty() {
                return Err(nothing(u.as_ref(), "no images found"));
            }
        }
        if n_classes < 2 && n_unlabeled == 0 {
            return Err(nothing(
                labeled.as_ref(),
                "transformation pairs need images of at least 2 identities (or an unlabeled source)",
            ));
        }
        let dataset = Dataset {
            labeled,
            unlabeled,
            classes,
            report,
            image_size,
        };
        dataset.probe(Part::Labeled)?;
        if dataset.unlabeled.is_some() {
            dataset.probe(Part::Unlabeled)?;
        }
        Ok(dataset)
    }

    fn probe(&self, part: Part) -> Result<(), DataError> {
        let n = self.part_len(part);
        let k = n.min(PROBES);
        let mut errors = Vec::new();
        for j in 0..k {
            let i = j * n / k.max(1);
            match self.load(part, i, self.image_size.min(32)) {
                Ok(_) => return Ok(()),
                Err(e) => errors.push(e.to_string()),
            }
        }
        let src = self.source(part);
        Err(DataError::NothingUsable {
            source_name: src.map(|s| s.describe()).unwrap_or_default(),
            message: format!(
                "none of {k} probed images could be read: {}",
                errors.first().map(String::as_str).unwrap_or("no images")
            ),
        })
    }

    /// Number of identity classes with at least one image; labels are `0..n_identities()`.
    pub fn n_identities(&self) -> usize {
        match &self.classes {
            ClassIndex::Uniform { n_classes, .. } => *n_classes,
            ClassIndex::Listed {
                identity_of_class, ..
            } => identity_of_class.len(),
        }
    }

    /// Number of images (labeled and unlabeled).
    pub fn len(&self) -> usize {
        self.labeled.len() + self.unlabeled.as_ref().map_or(0, |u| u.len())
    }

    /// True when there is no image (never, for an opened dataset).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of images of one part.
    pub fn part_len(&self, part: Part) -> usize {
        self.source(part).map_or(0, |s| s.len())
    }

    /// The labeled source.
    pub fn labeled(&self) -> &dyn FaceSource {
        self.labeled.as_ref()
    }

    /// The unlabeled source, if any.
    pub fn unlabeled(&self) -> Option<&dyn FaceSource> {
        self.unlabeled.as_deref()
    }

    fn source(&self, part: Part) -> Option<&dyn FaceSource> {
        match part {
            Part::Labeled => Some(self.labeled.as_ref()),
            Part::Unlabeled => self.unlabeled.as_deref(),
        }
    }

    /// The counts and locations of skipped bad inputs (grows while loading).
    pub fn report(&self) -> &SourceReport {
        &self.report
    }

    /// The configured image side.
    pub fn image_size(&self) -> u32 {
        self.image_size
    }

    /// A one-line description of the sources.
    pub fn describe(&self) -> String {
        match &self.unlabeled {
            Some(u) => format!("{} + {}", self.labeled.describe(), u.describe()),
            None => self.labeled.describe(),
        }
    }

    /// Number of images of class `class`.
    pub fn class_len(&self, class: u32) -> usize {
        match &self.classes {
            ClassIndex::Uniform {
                per_identity,
                n_classes,
            } => {
                if (class as usize) < *n_classes {
                    *per_identity
                } else {
                    0
                }
            }
            ClassIndex::Listed { starts, .. } => {
                let c = class as usize;
                match (starts.get(c), starts.get(c + 1)) {
                    (Some(&a), Some(&b)) => (b - a) as usize,
                    _ => 0,
                }
            }
        }
    }

    /// The labeled-source index of the `k`-th image of class `class`.
    pub fn class_image(&self, class: u32, k: usize) -> Option<usize> {
        match &self.classes {
            ClassIndex::Uniform {
                per_identity,
                n_classes,
            } => ((class as usize) < *n_classes && k < *per_identity)
                .then(|| class as usize * per_identity + k),
            ClassIndex::Listed { order, starts, .. } => {
                let c = class as usize;
                let (a, b) = (*starts.get(c)? as usize, *starts.get(c + 1)? as usize);
                (k < b - a).then(|| order.get(a + k).map(|&i| i as usize))?
            }
        }
    }

    /// The class (in `0..n_identities()`) of labeled image `i`.
    pub fn class_of(&self, i: usize) -> Option<u32> {
        match &self.classes {
            ClassIndex::Uniform {
                per_identity,
                n_classes,
            } => {
                let c = i / per_identity;
                (c < *n_classes).then_some(c as u32)
            }
            ClassIndex::Listed {
                class_of_identity, ..
            } => {
                let id = self.labeled.identity(i)?;
                class_of_identity
                    .get(id as usize)
                    .copied()
                    .filter(|&c| c != u32::MAX)
            }
        }
    }

    /// The source's name of class `class` (folder name, MID, ...).
    pub fn class_name(&self, class: u32) -> Option<String> {
        let id = match &self.classes {
            ClassIndex::Uniform { .. } => class,
            ClassIndex::Listed {
                identity_of_class, ..
            } => *identity_of_class.get(class as usize)?,
        };
        self.labeled
            .identity_name(id)
            .or_else(|| Some(format!("identity {id}")))
    }

    /// Where image `i` of `part` lives.
    pub fn location(&self, part: Part, i: usize) -> String {
        self.source(part).map(|s| s.location(i)).unwrap_or_default()
    }

    /// Reads, decodes and centre-crops/resizes image `i` of `part` to `size × size`.
    /// Failures are recorded in the report (once per image) and returned.
    pub fn load(&self, part: Part, i: usize, size: u32) -> Result<RgbImage, DataError> {
        let Some(src) = self.source(part) else {
            return Err(DataError::Config(
                "dataset has no unlabeled source".to_string(),
            ));
        };
        let result = src
            .read(i)
            .and_then(|data| data.into_image(&src.location(i)))
            .map(|img| center_crop_resize(&img, size));
        if let Err(e) = &result {
            let which = match part {
                Part::Labeled => 0,
                Part::Unlabeled => 1,
            };
            self.report.push_once(
                which,
                i,
                BadInput {
                    source: src.describe(),
                    location: src.location(i),
                    reason: format!("{e}: skipped"),
                },
            );
        }
        result
    }
}

fn build_index(src: &dyn FaceSource) -> Result<ClassIndex, DataError> {
    if let Some(per_identity) = src.images_per_identity() {
        if per_identity > 0 {
            return Ok(ClassIndex::Uniform {
                per_identity,
                n_classes: src.len() / per_identity,
            });
        }
    }
    let n = src.len();
    if n > u32::MAX as usize {
        return Err(DataError::Config(format!(
            "{}: {n} images is more than this index supports (2^32)",
            src.describe()
        )));
    }
    // Counting sort by source identity.
    let mut n_ids = src.n_identities();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = src.identity(i);
        if let Some(id) = id {
            n_ids = n_ids.max(id as usize + 1);
        }
        ids.push(id.unwrap_or(u32::MAX));
    }
    let mut counts = vec![0u32; n_ids];
    for &id in &ids {
        if id != u32::MAX {
            counts[id as usize] += 1;
        }
    }
    let mut class_of_identity = vec![u32::MAX; n_ids];
    let mut identity_of_class = Vec::new();
    let mut starts = vec![0u32];
    for (id, &c) in counts.iter().enumerate() {
        if c > 0 {
            class_of_identity[id] = identity_of_class.len() as u32;
            identity_of_class.push(id as u32);
            let last = starts.last().copied().unwrap_or(0);
            starts.push(last + c);
        }
    }
    let mut fill: Vec<u32> = starts[..starts.len() - 1].to_vec();
    let mut order = vec![0u32; starts.last().copied().unwrap_or(0) as usize];
    for (i, &id) in ids.iter().enumerate() {
        if id != u32::MAX {
            let c = class_of_identity[id as usize] as usize;
            order[fill[c] as usize] = i as u32;
            fill[c] += 1;
        }
    }
    Ok(ClassIndex::Listed {
        order,
        starts,
        class_of_identity,
        identity_of_class,
    })
}
