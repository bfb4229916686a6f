//! Pair sampling, batch assembly with rayon, and the prefetching [`Loader`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::DataConfig;
use crate::dataset::{Dataset, Part};
use crate::imaging::write_chw;
use crate::rng::Rng;
use crate::DataError;

/// A batch of square RGB images.
///
/// # Shapes
/// `data`: `n × 3 × size × size` (NCHW), `f32`, values in `[-1, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageBatch {
    /// The pixels, NCHW.
    pub data: Vec<f32>,
    /// Number of images.
    pub n: usize,
    /// Image side.
    pub size: usize,
}

impl ImageBatch {
    /// The CHW values of image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let per = 3 * self.size * self.size;
        self.data.get(i * per..(i + 1) * per).unwrap_or(&[])
    }

    /// The shape `[n, 3, size, size]`.
    pub fn shape(&self) -> [usize; 4] {
        [self.n, 3, self.size, self.size]
    }
}

/// Where one image of a batch came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaceRef {
    /// Labeled or unlabeled source.
    pub part: Part,
    /// Index in that source.
    pub index: usize,
    /// Class in `0..n_identities` for labeled images.
    pub label: Option<u32>,
    /// Mirrored left–right.
    pub flip: bool,
}

/// One process of an iteration: identity images `x_s` and attribute images `x_a`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessBatch {
    /// `x_s`: the identity images.
    pub source: ImageBatch,
    /// `x_a`: the attribute images.
    pub attribute: ImageBatch,
    /// Class of each `x_s` in `0..n_identities`, `None` for unlabeled images.
    pub source_labels: Vec<Option<u32>>,
    /// Whether `x_a` is the very same image (and flip) as `x_s`.
    pub same_image: Vec<bool>,
    /// Where each `x_s` came from.
    pub source_refs: Vec<FaceRef>,
    /// Where each `x_a` came from.
    pub attribute_refs: Vec<FaceRef>,
}

/// The data of one training iteration.
#[derive(Clone, Debug, PartialEq)]
pub struct PairBatch {
    /// The batch number `k` (a pure function of seed, `k` and the dataset).
    pub index: u64,
    /// Reconstruction process: `x_a` is `x_s`.
    pub reconstruction: ProcessBatch,
    /// Transformation process: `x_a` is another image, of a different identity.
    pub transformation: ProcessBatch,
}

/// The sampler's position: serialise it with a checkpoint and resume from it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SamplerState {
    /// The sampling seed.
    pub seed: u64,
    /// The batch the consumer receives next.
    pub next_batch: u64,
}

impl SamplerState {
    /// The state before the first batch.
    pub fn start(seed: u64) -> SamplerState {
        SamplerState {
            seed,
            next_batch: 0,
        }
    }
}

/// How many times an item is redrawn after bad inputs before giving up.
pub const MAX_ATTEMPTS: u64 = 64;

const ROLE_RECON_SOURCE: u64 = 1;
const ROLE_TRANS_SOURCE: u64 = 2;
const ROLE_TRANS_ATTRIBUTE: u64 = 3;

/// Probability that a draw comes from the unlabeled source: its share of all images,
/// capped at one half.
fn unlabeled_share(dataset: &Dataset) -> f32 {
    let u = dataset.part_len(Part::Unlabeled) as f64;
    let l = dataset.part_len(Part::Labeled) as f64;
    if u == 0.0 {
        0.0
    } else {
        (u / (u + l)).min(0.5) as f32
    }
}

/// The counters one draw of [`draw_face`] is keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrawKey {
    /// The sampling seed.
    pub seed: u64,
    /// The batch number.
    pub batch: u64,
    /// Which image of the iteration (reconstruction `x_s` = 1, transformation `x_s` = 2,
    /// transformation `x_a` = 3).
    pub role: u64,
    /// Position in the batch.
    pub slot: u64,
    /// Redraw number after bad inputs (0 first).
    pub attempt: u64,
}

/// Draws one face: identity-balanced for labeled images (a class uniformly, then one of
/// its images uniformly), uniform for unlabeled ones. `avoid`: the `x_s` whose identity
/// (labeled) or image (unlabeled) `x_a` must differ from. A pure function of its inputs.
pub fn draw_face(dataset: &Dataset, key: DrawKey, avoid: Option<&FaceRef>, flip: bool) -> FaceRef {
    let mut rng = Rng::new(&[key.seed, key.batch, key.role, key.slot, key.attempt]);
    let n_classes = dataset.n_identities() as u64;
    let n_unlabeled = dataset.part_len(Part::Unlabeled) as u64;
    let p_unl = unlabeled_share(dataset);
    let want_unlabeled = n_unlabeled > 0 && rng.chance(p_unl);
    // A labeled x_s of the only identity forces an unlabeled x_a.
    let forced_unlabeled = matches!(avoid, Some(r) if r.label.is_some()) && n_classes < 2;
    let flip = flip && rng.chance(0.5);
    if (want_unlabeled || forced_unlabeled) && n_unlabeled > 0 {
        let mut index = rng.below(n_unlabeled) as usize;
        if let Some(r) = avoid {
            if r.part == Part::Unlabeled && r.index == index {
                if n_unlabeled > 1 {
                    index = (index + 1) % n_unlabeled as usize;
                } else {
                    return draw_labeled(dataset, &mut rng, None, flip);
                }
            }
        }
        return FaceRef {
            part: Part::Unlabeled,
            index,
            label: None,
            flip,
        };
    }
    draw_labeled(dataset, &mut rng, avoid.and_then(|r| r.label), flip)
}

fn draw_labeled(dataset: &Dataset, rng: &mut Rng, avoid_class: Option<u32>, flip: bool) -> FaceRef {
    let n_classes = dataset.n_identities() as u64;
    let class = match avoid_class {
        Some(c) if n_classes > 1 => {
            let k = rng.below(n_classes - 1) as u32;
            if k >= c {
                k + 1
            } else {
                k
            }
        }
        _ => rng.below(n_classes) as u32,
    };
    let k = rng.below(dataset.class_len(class) as u64) as usize;
    let index = dataset.class_image(class, k).unwrap_or(0);
    FaceRef {
        part: Part::Labeled,
        index,
        label: Some(class),
        flip,
    }
}

/// Draws and loads one item into `out`, redrawing (next attempt counter) after bad inputs.
#[allow(clippy::too_many_arguments)]
fn load_item(
    dataset: &Dataset,
    cfg: &DataConfig,
    seed: u64,
    batch: u64,
    role: u64,
    slot: u64,
    avoid: Option<&FaceRef>,
    out: &mut [f32],
) -> Result<FaceRef, DataError> {
    let mut last = String::new();
    for attempt in 0..MAX_ATTEMPTS {
        let key = DrawKey {
            seed,
            batch,
            role,
            slot,
            attempt,
        };
        let face = draw_face(dataset, key, avoid, cfg.flip);
        match dataset.load(face.part, face.index, cfg.image_size) {
            Ok(img) => {
                write_chw(&img, face.flip, out)?;
                return Ok(face);
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(DataError::NothingUsable {
        source_name: dataset.describe(),
        message: format!(
            "{MAX_ATTEMPTS} draws in a row were bad inputs (last: {last}); {}",
            dataset.report().summary(5)
        ),
    })
}

/// Builds batch `index`: a pure function of `(seed, index, dataset, cfg)`. Images are
/// loaded in parallel on the current rayon pool.
pub fn make_pair_batch(
    dataset: &Dataset,
    cfg: &DataConfig,
    seed: u64,
    index: u64,
) -> Result<PairBatch, DataError> {
    let b = cfg.batch_size;
    let size = cfg.image_size as usize;
    let per = 3 * size * size;

    // Reconstruction: x_a = x_s.
    let mut rec_source = vec![0f32; b * per];
    let rec_refs: Vec<FaceRef> = rec_source
        .par_chunks_mut(per)
        .enumerate()
        .map(|(slot, out)| {
            load_item(
                dataset,
                cfg,
                seed,
                index,
                ROLE_RECON_SOURCE,
                slot as u64,
                None,
                out,
            )
        })
        .collect::<Result<_, _>>()?;
    let reconstruction = ProcessBatch {
        attribute: ImageBatch {
            data: rec_source.clone(),
            n: b,
            size,
        },
        source: ImageBatch {
            data: rec_source,
            n: b,
            size,
        },
        source_labels: rec_refs.iter().map(|r| r.label).collect(),
        same_image: vec![true; b],
        attribute_refs: rec_refs.clone(),
        source_refs: rec_refs,
    };

    // Transformation: x_a of a different identity.
    let mut tr_source = vec![0f32; b * per];
    let mut tr_attribute = vec![0f32; b * per];
    let pairs: Vec<(FaceRef, FaceRef)> = tr_source
        .par_chunks_mut(per)
        .zip(tr_attribute.par_chunks_mut(per))
        .enumerate()
        .map(|(slot, (src_out, attr_out))| {
            let s = load_item(
                dataset,
                cfg,
                seed,
                index,
                ROLE_TRANS_SOURCE,
                slot as u64,
                None,
                src_out,
            )?;
            let a = load_item(
                dataset,
                cfg,
                seed,
                index,
                ROLE_TRANS_ATTRIBUTE,
                slot as u64,
                Some(&s),
                attr_out,
            )?;
            Ok((s, a))
        })
        .collect::<Result<_, DataError>>()?;
    let transformation = ProcessBatch {
        source: ImageBatch {
            data: tr_source,
            n: b,
            size,
        },
        attribute: ImageBatch {
            data: tr_attribute,
            n: b,
            size,
        },
        source_labels: pairs.iter().map(|p| p.0.label).collect(),
        same_image: vec![false; b],
        source_refs: pairs.iter().map(|p| p.0).collect(),
        attribute_refs: pairs.iter().map(|p| p.1).collect(),
    };
    Ok(PairBatch {
        index,
        reconstruction,
        transformation,
    })
}

type BatchResult = Result<PairBatch, DataError>;

/// Produces [`PairBatch`]es: decode/crop/resize/flip/normalise with rayon on its own
/// thread pool, prefetched `cfg.prefetch` deep on a background thread through a bounded
/// channel. Batch `k` depends only on `(seed, k, dataset)`, so resuming from
/// [`Loader::state`] gives exactly the batches that would have followed.
pub struct Loader {
    dataset: Arc<Dataset>,
    cfg: DataConfig,
    state: SamplerState,
    pool: Arc<rayon::ThreadPool>,
    rx: Option<Receiver<BatchResult>>,
    worker: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    total_wait: Duration,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("state", &self.state)
            .field("prefetch", &self.cfg.prefetch)
            .field("threads", &self.pool.current_num_threads())
            .finish()
    }
}

impl Loader {
    /// A loader starting at `state` (its seed is the sampling seed; `cfg.seed` is only the
    /// default for a fresh [`SamplerState::start`]). Uses as many rayon threads as CPUs.
    pub fn new(
        dataset: Arc<Dataset>,
        cfg: &DataConfig,
        state: SamplerState,
    ) -> Result<Loader, DataError> {
        Loader::with_threads(dataset, cfg, state, 0)
    }

    /// Like [`Loader::new`] with `threads` rayon worker threads (0: one per CPU).
    pub fn with_threads(
        dataset: Arc<Dataset>,
        cfg: &DataConfig,
        state: SamplerState,
        threads: usize,
    ) -> Result<Loader, DataError> {
        cfg.validate()?;
        if cfg.image_size != dataset.image_size() {
            // Sources other than synthetic resize anyway; synthetic renders at the
            // dataset's size, so a mismatch would mean a resize of every image.
            return Err(DataError::Config(format!(
                "loader image_size {} differs from the dataset's {}",
                cfg.image_size,
                dataset.image_size()
            )));
        }
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("osips-data-{i}"))
                .build()
                .map_err(|e| DataError::LoaderStopped(format!("cannot start thread pool: {e}")))?,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let (rx, worker) = if cfg.prefetch > 0 {
            let (tx, rx) = sync_channel::<BatchResult>(cfg.prefetch);
            let (dataset, cfg2, pool2, stop2) =
                (dataset.clone(), cfg.clone(), pool.clone(), stop.clone());
            let handle = std::thread::Builder::new()
                .name("osips-data-prefetch".to_string())
                .spawn(move || {
                    let mut k = state.next_batch;
                    while !stop2.load(Ordering::Relaxed) {
                        let batch =
                            pool2.install(|| make_pair_batch(&dataset, &cfg2, state.seed, k));
                        let failed = batch.is_err();
                        if tx.send(batch).is_err() || failed {
                            break;
                        }
                        k += 1;
                    }
                })
                .map_err(|e| {
                    DataError::LoaderStopped(format!("cannot start prefetch thread: {e}"))
                })?;
            (Some(rx), Some(handle))
        } else {
            (None, None)
        };
        Ok(Loader {
            dataset,
            cfg: cfg.clone(),
            state,
            pool,
            rx,
            worker,
            stop,
            total_wait: Duration::ZERO,
        })
    }

    /// The next batch, and how long the caller waited for it.
    pub fn next_batch(&mut self) -> Result<(PairBatch, Duration), DataError> {
        let start = Instant::now();
        let batch = match &self.rx {
            Some(rx) => rx.recv().map_err(|_| {
                DataError::LoaderStopped("the prefetch thread ended unexpectedly".to_string())
            })??,
            None => self.pool.install(|| {
                make_pair_batch(
                    &self.dataset,
                    &self.cfg,
                    self.state.seed,
                    self.state.next_batch,
                )
            })?,
        };
        if batch.index != self.state.next_batch {
            return Err(DataError::LoaderStopped(format!(
                "batch {} arrived where {} was expected",
                batch.index, self.state.next_batch
            )));
        }
        let waited = start.elapsed();
        self.total_wait += waited;
        self.state.next_batch += 1;
        Ok((batch, waited))
    }

    /// The position of the next batch the caller will receive.
    pub fn state(&self) -> SamplerState {
        self.state
    }

    /// Total time the caller has waited in [`Loader::next_batch`].
    pub fn total_wait(&self) -> Duration {
        self.total_wait
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.dataset
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver unblocks a producer waiting to send.
        drop(self.rx.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
