//! Data configuration: which source, the image size, batching, augmentation and seed.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::DataError;

/// Where the labeled training faces come from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum SourceSpec {
    /// Procedurally rendered faces of `n_identities` training identities
    /// ([`crate::synthetic`]); unlimited images per identity.
    Synthetic {
        /// Number of identities (classes), at least 2.
        n_identities: u32,
    },
    /// `path/<identity>/<image>` (CASIA-WebFace, any ImageFolder tree).
    Folder {
        /// The root folder.
        path: PathBuf,
    },
    /// An MS-Celeb-1M TSV file.
    Tsv {
        /// The `.tsv` file.
        path: PathBuf,
    },
    /// An insightface RecordIO pack (`"kind": "recordio"`).
    #[serde(rename = "recordio")]
    RecordIo {
        /// A directory with `train.rec` and `train.idx`, or the `.rec` file.
        path: PathBuf,
    },
}

impl SourceSpec {
    /// Parses the CLI syntax: `synthetic:1000`, `folder:PATH`, `tsv:PATH`, `recordio:PATH`.
    pub fn parse(s: &str) -> Result<SourceSpec, DataError> {
        let (kind, rest) = s.split_once(':').ok_or_else(|| {
            DataError::Config(format!(
                "source {s:?}: expected KIND:ARG with KIND one of synthetic, folder, tsv, recordio \
                 (e.g. synthetic:1000, folder:/data/CASIA-WebFace)"
            ))
        })?;
        if rest.is_empty() {
            return Err(DataError::Config(format!(
                "source {s:?}: missing the part after ':'"
            )));
        }
        match kind {
            "synthetic" => {
                let n: u32 = rest.trim().parse().map_err(|_| {
                    DataError::Config(format!(
                        "source {s:?}: synthetic takes a number of identities, e.g. synthetic:1000"
                    ))
                })?;
                Ok(SourceSpec::Synthetic { n_identities: n })
            }
            "folder" => Ok(SourceSpec::Folder { path: rest.into() }),
            "tsv" => Ok(SourceSpec::Tsv { path: rest.into() }),
            "recordio" => Ok(SourceSpec::RecordIo { path: rest.into() }),
            other => Err(DataError::Config(format!(
                "source {s:?}: unknown kind {other:?}; expected synthetic, folder, tsv or recordio"
            ))),
        }
    }
}

impl std::fmt::Display for SourceSpec {
    /// The CLI syntax accepted by [`SourceSpec::parse`].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceSpec::Synthetic { n_identities } => write!(f, "synthetic:{n_identities}"),
            SourceSpec::Folder { path } => write!(f, "folder:{}", path.display()),
            SourceSpec::Tsv { path } => write!(f, "tsv:{}", path.display()),
            SourceSpec::RecordIo { path } => write!(f, "recordio:{}", path.display()),
        }
    }
}

/// Everything the data pipeline needs; saved with the run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// The labeled source.
    pub source: SourceSpec,
    /// An optional folder of unlabeled face images (searched recursively).
    pub unlabeled: Option<PathBuf>,
    /// Side of the square images handed to the trainer (64 for `tiny`, 128 for `paper`).
    pub image_size: u32,
    /// Pairs per batch (each process of a [`crate::PairBatch`] holds this many).
    pub batch_size: usize,
    /// Random horizontal flips.
    pub flip: bool,
    /// Batches prepared ahead on the background thread (0: prepare on demand).
    pub prefetch: usize,
    /// The sampling seed.
    pub seed: u64,
}

impl DataConfig {
    /// A config for reading `source` once, in order, as tools do (inspection, format
    /// conversion): no flips, no prefetch, 64-pixel images, batch 1.
    pub fn for_reading(source: SourceSpec, unlabeled: Option<PathBuf>) -> DataConfig {
        DataConfig {
            source,
            unlabeled,
            image_size: 64,
            batch_size: 1,
            flip: false,
            prefetch: 0,
            seed: 0,
        }
    }

    /// Checks the numeric fields; called by [`crate::Dataset::open`] and [`crate::Loader::new`].
    pub fn validate(&self) -> Result<(), DataError> {
        if !(8..=1024).contains(&self.image_size) {
            return Err(DataError::Config(format!(
                "image_size {} out of range 8..=1024",
                self.image_size
            )));
        }
        if self.batch_size == 0 || self.batch_size > 65_536 {
            return Err(DataError::Config(format!(
                "batch_size {} out of range 1..=65536",
                self.batch_size
            )));
        }
        if self.prefetch > 1024 {
            return Err(DataError::Config(format!(
                "prefetch {} is above 1024",
                self.prefetch
            )));
        }
        if let SourceSpec::Synthetic { n_identities } = self.source {
            if n_identities < 2 {
                return Err(DataError::Config(format!(
                    "synthetic source needs at least 2 identities, got {n_identities}"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_the_cli_syntax_and_round_trips() {
        for s in [
            "synthetic:1000",
            "folder:/a/b",
            "tsv:x.tsv",
            "recordio:/d/train.rec",
            "folder:C:/x",
        ] {
            let spec = SourceSpec::parse(s).unwrap();
            assert_eq!(spec.to_string(), s);
        }
        assert_eq!(
            SourceSpec::parse("synthetic:7").unwrap(),
            SourceSpec::Synthetic { n_identities: 7 }
        );
        for bad in ["synthetic", "synthetic:x", "bogus:1", "folder:", ""] {
            assert!(SourceSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_serde_is_tagged_and_strict() {
        let cfg = DataConfig {
            source: SourceSpec::RecordIo { path: "/p".into() },
            unlabeled: None,
            image_size: 64,
            batch_size: 8,
            flip: true,
            prefetch: 2,
            seed: 1,
        };
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(json.contains(r#""kind":"recordio""#), "{json}");
        let back: DataConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg);
        let extra = json.replace("\"seed\":1", "\"seed\":1,\"bogus\":2");
        assert!(serde_json::from_str::<DataConfig>(&extra).is_err());
        assert!(cfg.validate().is_ok());
    }
}
