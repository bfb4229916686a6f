//! Parameter sets: one [`VarMap`] per network, built through a strict backend, and
//! saved/loaded with exact name and shape checks.
//!
//! candle's own `VarBuilder::from_varmap` has two sharp edges for training code:
//! `VarMap::get` silently returns the existing variable when two layers request the same
//! name (accidental weight sharing), and `VarMap::load` ignores names that are in the file
//! but not in the map. [`ParamSet`] closes both: a second request for a name is an error,
//! and [`ParamSet::load`] requires the file to hold exactly the network's tensors.
//!
//! Initial values are a pure function of `(seed, name)` (a counter-based generator, not
//! the thread RNG), so a network built twice from the same seed is bit-identical whatever
//! the order its layers are constructed in.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};

use crate::error::{ModelError, Result};

/// The trainable (and running-statistics) variables of one network.
#[derive(Clone)]
pub struct ParamSet {
    varmap: VarMap,
    seed: u64,
    requested: Arc<Mutex<HashSet<String>>>,
    budget: Option<Arc<Mutex<Budget>>>,
}

/// How many more scalars a set built to be loaded from a file may allocate.
#[derive(Debug)]
struct Budget {
    left: usize,
    limit: usize,
    file: PathBuf,
}

impl std::fmt::Debug for ParamSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamSet")
            .field("seed", &self.seed)
            .field("n_vars", &self.len())
            .finish()
    }
}

impl ParamSet {
    /// An empty parameter set whose initial values derive from `seed`.
    pub fn new(seed: u64) -> Self {
        ParamSet {
            varmap: VarMap::new(),
            seed,
            requested: Arc::new(Mutex::new(HashSet::new())),
            budget: None,
        }
    }

    /// A set that will be overwritten from the safetensors file `path`: building a network
    /// in it may allocate no more f32 scalars than the file could hold (its size / 4).
    /// A config from an untrusted checkpoint that asks for absurd widths is then an error
    /// naming the file, before the allocation, not an out-of-memory abort. Its variables
    /// start at zero rather than random: they are about to be overwritten.
    pub fn for_file(seed: u64, path: &Path) -> Result<Self> {
        let len = std::fs::metadata(path)
            .map_err(|e| ModelError::io(path, e))?
            .len();
        let limit = usize::try_from(len / 4).unwrap_or(usize::MAX);
        let mut set = ParamSet::new(seed);
        set.budget = Some(Arc::new(Mutex::new(Budget {
            left: limit,
            limit,
            file: path.to_path_buf(),
        })));
        Ok(set)
    }

    /// A `VarBuilder` that creates variables in this set (f32, CPU unless `device` says otherwise).
    pub fn var_builder(&self, device: &Device) -> VarBuilder<'static> {
        let backend: Box<dyn SimpleBackend> = Box::new(StrictBackend { set: self.clone() });
        VarBuilder::from_backend(backend, DType::F32, device.clone())
    }

    /// The underlying map (name → variable).
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// Number of variables (tensors), running statistics included.
    pub fn len(&self) -> usize {
        self.lock_data().len()
    }

    /// True when no variable has been created yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All variables sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let data = self.lock_data();
        let mut vars: Vec<(String, Var)> =
            data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }

    /// Sorted `name → shape`, the checkpoint contract frozen by snapshot tests.
    pub fn shapes(&self) -> BTreeMap<String, Vec<usize>> {
        self.named_vars()
            .into_iter()
            .map(|(name, var)| (name, var.dims().to_vec()))
            .collect()
    }

    /// Number of scalar parameters that are trained by gradient (running statistics excluded).
    pub fn n_trainable(&self) -> usize {
        self.named_vars()
            .iter()
            .filter(|(name, _)| is_trainable(name))
            .map(|(_, var)| var.elem_count())
            .sum()
    }

    /// The variables the optimiser updates, sorted by name (running statistics excluded).
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        self.named_vars()
            .into_iter()
            .filter(|(name, _)| is_trainable(name))
            .collect()
    }

    /// Write every variable to a safetensors file, atomically (temp file + rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors: Vec<(String, Tensor)> = self
            .named_vars()
            .into_iter()
            .map(|(name, var)| (name, var.as_tensor().clone()))
            .collect();
        save_tensors(&tensors, path)
    }

    /// Load values from a safetensors file. The file must hold exactly this set's names with
    /// exactly its shapes and dtype f32; anything else is an error and nothing is modified.
    pub fn load(&self, path: &Path) -> Result<()> {
        let file = load_tensors(path)?;
        let expected = self.shapes();
        let mut problems = Vec::new();
        for (name, shape) in &expected {
            match file.get(name) {
                None => problems.push(format!("missing tensor `{name}` {shape:?}")),
                Some(t) if t.dims() != shape.as_slice() => problems.push(format!(
                    "tensor `{name}` has shape {:?}, expected {shape:?}",
                    t.dims()
                )),
                Some(t) if t.dtype() != DType::F32 => problems.push(format!(
                    "tensor `{name}` has dtype {:?}, expected f32",
                    t.dtype()
                )),
                Some(_) => {}
            }
        }
        for name in file.keys() {
            if !expected.contains_key(name) {
                problems.push(format!("unexpected tensor `{name}`"));
            }
        }
        if !problems.is_empty() {
            problems.sort();
            let shown: Vec<&str> = problems.iter().take(8).map(String::as_str).collect();
            let more = problems.len().saturating_sub(shown.len());
            let tail = if more > 0 {
                format!(" (and {more} more)")
            } else {
                String::new()
            };
            return Err(ModelError::checkpoint(
                path,
                format!("does not match the network: {}{tail}", shown.join("; ")),
            ));
        }
        for (name, var) in self.named_vars() {
            if let Some(value) = file.get(&name) {
                var.set(&value.to_device(var.device())?)?;
            }
        }
        Ok(())
    }

    /// Copy every value of `other` into this set (same names and shapes required).
    pub fn copy_from(&self, other: &ParamSet) -> Result<()> {
        let theirs: BTreeMap<String, Var> = other.named_vars().into_iter().collect();
        for (name, var) in self.named_vars() {
            let src = theirs.get(&name).ok_or_else(|| {
                ModelError::Config(format!("copy_from: `{name}` missing in the source set"))
            })?;
            var.set(&src.as_tensor().copy()?)?;
        }
        Ok(())
    }

    fn lock_data(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Var>> {
        // A poisoned lock only means another thread panicked while holding it; the map
        // itself is still consistent (insertions are single operations).
        match self.varmap.data().lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Running statistics of BatchNorm are variables of the set (they are saved with it) but
/// are never trained by gradient.
pub fn is_trainable(name: &str) -> bool {
    !(name.ends_with("running_mean") || name.ends_with("running_var"))
}

/// Write named tensors to a safetensors file through a temporary file and a rename, so that
/// a crash never leaves a half-written file under the final name.
pub fn save_tensors(tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    let tmp = path.with_extension("safetensors.tmp");
    let data: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    safetensors::tensor::serialize_to_file(data, None, &tmp)
        .map_err(|e| ModelError::checkpoint(&tmp, e.to_string()))?;
    // On disk before the rename, so that after a power cut the final name never points at
    // a file whose data was still in the page cache.
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| ModelError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e))?;
    Ok(())
}

/// Read every tensor of a safetensors file (CPU), with a clear error for an unreadable,
/// truncated or malformed file.
pub fn load_tensors(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    let map = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| ModelError::checkpoint(path, format!("not a valid safetensors file: {e}")))?;
    Ok(map.into_iter().collect())
}

struct StrictBackend {
    set: ParamSet,
}

impl SimpleBackend for StrictBackend {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        {
            let mut requested = match self.set.requested.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if !requested.insert(name.to_string()) {
                return Err(candle_core::Error::wrap(ModelError::DuplicateName(
                    name.to_string(),
                )));
            }
        }
        let n = shape
            .dims()
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                candle_core::Error::wrap(ModelError::Config(format!(
                    "tensor `{name}` {:?} has more elements than memory can address",
                    shape.dims()
                )))
            })?;
        if let Some(budget) = &self.set.budget {
            let mut budget = match budget.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if n > budget.left {
                return Err(candle_core::Error::wrap(ModelError::checkpoint(
                    &budget.file,
                    format!(
                        "the file holds at most {} f32 values, fewer than the network of \
                         config.json needs (tensor `{name}` {:?} does not fit): a truncated \
                         file, or a config from another model",
                        budget.limit,
                        shape.dims()
                    ),
                )));
            }
            budget.left -= n;
        }
        // A set about to be loaded skips the random initialisation (its values are
        // overwritten); the paper preset's tens of millions of normals cost seconds.
        let value = if self.set.budget.is_some() {
            Tensor::zeros(shape, DType::F32, dev)?
        } else {
            init_tensor(&shape, init, hash_name(self.set.seed, name), dev)?
        };
        let var = Var::from_tensor(&value.to_dtype(dtype)?)?;
        let mut data = self.set.lock_data();
        data.insert(name.to_string(), var.clone());
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("tensor `{name}` must be created with a shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.set.lock_data().contains_key(name)
    }
}

fn hash_name(seed: u64, name: &str) -> u64 {
    // FNV-1a over the name, mixed with the seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// SplitMix64: a tiny, well-mixed counter-based generator (enough for initialisation).
pub(crate) struct SplitMix64(pub u64);

impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box–Muller).
    pub(crate) fn next_normal(&mut self) -> f64 {
        let u1 = self.next_f64().max(f64::MIN_POSITIVE);
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Standard-normal noise as a tensor, a pure function of `seed` (for reparameterisation
/// noise in tests and for seeded sampling in inference).
pub fn seeded_normal(shape: impl Into<Shape>, seed: u64, device: &Device) -> Result<Tensor> {
    let shape = shape.into();
    let mut rng = SplitMix64(seed);
    let values: Vec<f32> = (0..shape.elem_count())
        .map(|_| rng.next_normal() as f32)
        .collect();
    Ok(Tensor::from_vec(values, shape, device)?)
}

fn init_tensor(shape: &Shape, init: Init, seed: u64, dev: &Device) -> candle_core::Result<Tensor> {
    let n = shape.elem_count();
    let mut rng = SplitMix64(seed);
    let values: Vec<f32> = match init {
        Init::Const(v) => vec![v as f32; n],
        Init::Randn { mean, stdev } => (0..n)
            .map(|_| (mean + stdev * rng.next_normal()) as f32)
            .collect(),
        Init::Uniform { lo, up } => (0..n)
            .map(|_| (lo + (up - lo) * rng.next_f64()) as f32)
            .collect(),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let fan = fan.for_shape(shape).max(1) as f64;
            let std = non_linearity.gain() / fan.sqrt();
            match dist {
                NormalOrUniform::Normal => {
                    (0..n).map(|_| (std * rng.next_normal()) as f32).collect()
                }
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    (0..n)
                        .map(|_| (bound * (2.0 * rng.next_f64() - 1.0)) as f32)
                        .collect()
                }
            }
        }
    };
    Tensor::from_vec(values, shape.clone(), dev)
}
