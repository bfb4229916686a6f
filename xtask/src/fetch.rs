//! `cargo xtask fetch-weights [--model vgg16]`: download pretrained weights from the
//! Hugging Face Hub into the standard cache, pinned and verified by `data/weights.toml`.
//!
//! The download goes through `hf-hub`'s sync API, but into a *staging* cache inside the
//! repository's cache directory (`<cache>/models--<owner>--<name>/.osips-incoming/`), not
//! the cache itself. `hf-hub` writes `blobs/<etag>.part` there, resumes it on a retry or on
//! the next run, and renames it when the body ends. Only then is the file checked — size,
//! safetensors header, tensor names and shapes, SHA-256 against the manifest and against
//! the Hub's own etag — and only a file that passes is moved into the cache with the same
//! layout `hf-hub` and `huggingface_hub` write (`blobs/<sha256>`,
//! `snapshots/<commit>/<file>` → `../../blobs/<sha256>`, `refs/<revision>`). So nothing
//! half-downloaded or unverified is ever where the trainer, `hf-hub`'s `get()` or Python
//! look. A file that fails is deleted; a cached copy is re-checked on every run.
//!
//! Environment: `HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub` (the
//! same rule as `trainer::hf_cache_dir`); `HF_ENDPOINT` (default `https://huggingface.co`);
//! `HF_TOKEN`, else the token file `huggingface-cli login` writes; `HF_HUB_OFFLINE=1`: no
//! network at all.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `data/weights.toml`, built in so the command works from any directory.
const BUILTIN_MANIFEST: &str = include_str!("../../data/weights.toml");

/// Retries of an interrupted body transfer (each resumes with a `Range` request).
const RETRIES: usize = 3;

/// Name of the staging cache inside a repository's cache directory.
const STAGING: &str = ".osips-incoming";

/// The largest safetensors header we read (the format's own limit).
const MAX_HEADER: u64 = 100_000_000;

const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

#[derive(clap::Args)]
pub struct Args {
    /// Which weights to fetch: a table of the manifest.
    #[arg(long, default_value = "vgg16")]
    pub model: String,
    /// A manifest to use instead of the built-in `data/weights.toml`.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Download again even if the cache holds a copy that passes the checks.
    #[arg(long)]
    pub force: bool,
}

/// One table of the manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    repo: String,
    revision: String,
    file: String,
    layout: Layout,
    size: Option<u64>,
    sha256: Option<String>,
}

/// Which tensors the file must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Layout {
    /// The 13 convolutions of VGG16 with timm's names and shapes (`osips_models::vgg`).
    Vgg16,
}

pub fn run(args: Args) -> Result<()> {
    let entry = load_entry(args.manifest.as_deref(), &args.model)?;
    let env = HubEnv::from_env()?;
    let repo = Repo::with_revision(entry.repo.clone(), RepoType::Model, entry.revision.clone());
    let repo_dir = env.cache.join(repo.folder_name());

    if !args.force {
        if let Some(path) = cached_pointer(&repo_dir, &entry) {
            match verify(&path, &entry, blob_etag(&path).as_deref()) {
                Ok(sha) => {
                    println!(
                        "{}/{} ({}) is in the cache and passes its checks (sha256 {sha}):\n  {}",
                        entry.repo,
                        entry.file,
                        entry.revision,
                        path.display()
                    );
                    print_trainer_hint(&env.cache, &entry, &path);
                    return Ok(());
                }
                Err(err) => {
                    eprintln!(
                        "the cached copy {} fails its checks ({err:#}); deleting it",
                        path.display()
                    );
                    remove_cached(&repo_dir, &path, &entry.revision)?;
                }
            }
        }
    }

    if env.offline {
        bail!("{}", offline_message(&env, &entry, &repo_dir));
    }

    let path = download(&env, &entry, &repo, &repo_dir)?;
    println!(
        "fetched {}/{} ({}) into the Hugging Face cache:\n  {}",
        entry.repo,
        entry.file,
        entry.revision,
        path.display()
    );
    print_trainer_hint(&env.cache, &entry, &path);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Manifest and environment

fn load_entry(manifest: Option<&Path>, model: &str) -> Result<Entry> {
    let (text, origin) = match manifest {
        Some(path) => (
            fs::read_to_string(path)
                .with_context(|| format!("cannot read the manifest {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (
            BUILTIN_MANIFEST.to_string(),
            "data/weights.toml".to_string(),
        ),
    };
    let mut entries: BTreeMap<String, Entry> =
        toml::from_str(&text).with_context(|| format!("invalid manifest {origin}"))?;
    let known = entries.keys().cloned().collect::<Vec<_>>().join(", ");
    let mut entry = entries
        .remove(model)
        .with_context(|| format!("{origin} has no model `{model}` (it has: {known})"))?;
    let bad = |what: &str| anyhow::anyhow!("{origin}, [{model}]: {what}");
    let repo_ok = entry.repo.split('/').count() == 2
        && entry.repo.split('/').all(|part| {
            !part.is_empty()
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        });
    if !repo_ok {
        return Err(bad(&format!("repo `{}` is not `owner/name`", entry.repo)));
    }
    if entry.revision.is_empty()
        || entry.revision.contains("..")
        || entry.revision.starts_with('/')
        || entry.revision.chars().any(char::is_whitespace)
    {
        return Err(bad(&format!(
            "revision `{}` is not a branch or commit",
            entry.revision
        )));
    }
    let file = Path::new(&entry.file);
    if entry.file.is_empty() || !file.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(bad(&format!(
            "file `{}` is not a relative path",
            entry.file
        )));
    }
    if let Some(sha) = &mut entry.sha256 {
        *sha = sha.to_ascii_lowercase();
        if !is_sha256(sha) {
            return Err(bad(&format!("sha256 `{sha}` is not 64 hex digits")));
        }
    }
    Ok(entry)
}

/// Where and how to reach the Hub, from the same variables as `huggingface_hub`.
struct HubEnv {
    cache: PathBuf,
    endpoint: String,
    offline: bool,
    token: Option<String>,
}

impl HubEnv {
    fn from_env() -> Result<Self> {
        // The trainer's rule (trainer::hf_cache_dir), which also honours HF_HUB_CACHE:
        // hf-hub 0.5's own `from_env` reads only HF_HOME.
        let cache = if let Some(dir) = std::env::var_os("HF_HUB_CACHE") {
            PathBuf::from(dir)
        } else if let Some(home) = std::env::var_os("HF_HOME") {
            PathBuf::from(home).join("hub")
        } else if let Some(home) = std::env::var_os("HOME") {
            PathBuf::from(home).join(".cache/huggingface/hub")
        } else {
            bail!("no Hugging Face cache directory: set HF_HOME (or HF_HUB_CACHE)")
        };
        let endpoint = match std::env::var("HF_ENDPOINT") {
            Ok(e) if !e.trim().is_empty() => e.trim().trim_end_matches('/').to_string(),
            _ => DEFAULT_ENDPOINT.to_string(),
        };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            bail!("HF_ENDPOINT `{endpoint}` is not an http:// or https:// URL");
        }
        let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        });
        let token = std::env::var("HF_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .or_else(|| Cache::new(cache.clone()).token());
        Ok(HubEnv {
            cache,
            endpoint,
            offline,
            token,
        })
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

// ---------------------------------------------------------------------------------------
// Download

fn download(env: &HubEnv, entry: &Entry, repo: &Repo, repo_dir: &Path) -> Result<PathBuf> {
    let staging = repo_dir.join(STAGING);
    let url = format!(
        "{}/{}/resolve/{}/{}",
        env.endpoint,
        repo.url(),
        repo.url_revision(),
        entry.file
    );
    let api = ApiBuilder::from_cache(Cache::new(staging.clone()))
        .with_endpoint(env.endpoint.clone())
        .with_token(env.token.clone())
        .with_retries(RETRIES)
        .with_user_agent("osips-xtask", env!("CARGO_PKG_VERSION"))
        .build()
        .context("cannot set up the Hub client")?;
    eprintln!("downloading {url}");
    let attempt = || {
        api.repo(repo.clone())
            .download_with_progress(&entry.file, ProgressBar::new(0))
    };
    let staged = match attempt() {
        // A `.part` longer than the file: start over once.
        Err(ApiError::InvalidResume) => {
            remove_dir_if_exists(&staging)?;
            attempt()
        }
        other => other,
    }
    .map_err(|err| explain_download_error(err, entry, &url, &staging))?;

    // What hf-hub wrote in the staging cache: refs/<revision> → commit, and the snapshot
    // entry, a symlink to blobs/<etag>.
    let staged_repo = staging.join(repo.folder_name());
    let commit = fs::read_to_string(staged_repo.join("refs").join(&entry.revision))
        .context("hf-hub left no ref for the download")?
        .trim()
        .to_string();
    let blob = fs::canonicalize(&staged)
        .with_context(|| format!("cannot resolve {}", staged.display()))?;
    let etag = blob_etag(&staged);

    let sha = match verify(&blob, entry, etag.as_deref()) {
        Ok(sha) => sha,
        Err(err) => {
            remove_dir_if_exists(&staging)?;
            remove_empty_dirs(repo_dir, repo_dir)?;
            return Err(err.context(format!(
                "rejected the download of {url}; nothing of it is kept in the cache"
            )));
        }
    };
    let pointer = install(repo_dir, entry, &blob, &sha, &commit)?;
    remove_dir_if_exists(&staging)?;
    Ok(pointer)
}

fn explain_download_error(
    err: ApiError,
    entry: &Entry,
    url: &str,
    staging: &Path,
) -> anyhow::Error {
    let kept = || {
        if has_partial(staging) {
            format!(
                " The partial download is kept in {} and the next run resumes it; it is never used as the weights.",
                staging.display()
            )
        } else {
            String::new()
        }
    };
    let offline_hint =
        "Without network, set HF_HUB_OFFLINE=1 and this command says where to put a copy by hand.";
    match err {
        ApiError::RequestError(e) => match *e {
            ureq::Error::StatusCode(404) => anyhow::anyhow!(
                "the Hub has no `{}` in `{}` at revision `{}` ({url} answered 404 Not Found)",
                entry.file,
                entry.repo,
                entry.revision
            ),
            ureq::Error::StatusCode(code @ (401 | 403)) => anyhow::anyhow!(
                "{url} answered {code}: the repository is gated or private; set HF_TOKEN to a token that may read it"
            ),
            ureq::Error::StatusCode(code) => {
                anyhow::anyhow!("{url} answered HTTP {code}.{} {offline_hint}", kept())
            }
            other => anyhow::anyhow!(
                "the download of {url} failed: {other}.{} {offline_hint}",
                kept()
            ),
        },
        ApiError::TooManyRetries(e) => anyhow::anyhow!(
            "the download of {url} was cut {} times in a row (last: {e}).{} {offline_hint}",
            RETRIES + 1,
            kept()
        ),
        ApiError::MissingHeader(h) | ApiError::InvalidHeader(h) => anyhow::anyhow!(
            "{url} did not answer like the Hugging Face Hub (header `{h}` missing or invalid); check HF_ENDPOINT"
        ),
        ApiError::LockAcquisition(path) => anyhow::anyhow!(
            "another process is downloading the same file (lock {}); wait for it and run again",
            path.display()
        ),
        other => anyhow::anyhow!("the download of {url} failed: {other}.{}", kept()),
    }
}

fn has_partial(staging: &Path) -> bool {
    fn walk(dir: &Path) -> bool {
        let Ok(entries) = fs::read_dir(dir) else {
            return false;
        };
        entries.flatten().any(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path)
            } else {
                path.extension().is_some_and(|x| x == "part")
            }
        })
    }
    walk(staging)
}

/// Move a verified blob into the cache, then its snapshot entry, then the ref: at every
/// moment the ref points to a snapshot whose file is complete.
fn install(
    repo_dir: &Path,
    entry: &Entry,
    blob: &Path,
    sha: &str,
    commit: &str,
) -> Result<PathBuf> {
    let blobs = repo_dir.join("blobs");
    fs::create_dir_all(&blobs).with_context(|| format!("cannot create {}", blobs.display()))?;
    let blob_dst = blobs.join(sha);
    fs::rename(blob, &blob_dst)
        .with_context(|| format!("cannot move {} to {}", blob.display(), blob_dst.display()))?;

    let pointer = repo_dir.join("snapshots").join(commit).join(&entry.file);
    if let Some(parent) = pointer.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    if pointer.symlink_metadata().is_ok() {
        fs::remove_file(&pointer)
            .with_context(|| format!("cannot replace {}", pointer.display()))?;
    }
    link_blob(&blob_dst, &pointer, entry)?;

    let ref_path = repo_dir.join("refs").join(&entry.revision);
    if let Some(parent) = ref_path.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let tmp = ref_path.with_extension("osips-tmp");
    fs::write(&tmp, commit).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, &ref_path).with_context(|| format!("cannot write {}", ref_path.display()))?;
    Ok(pointer)
}

#[cfg(unix)]
fn link_blob(blob: &Path, pointer: &Path, entry: &Entry) -> Result<()> {
    // snapshots/<commit>/<file> → ../../blobs/<sha>, one more `..` per directory in `file`.
    let depth = Path::new(&entry.file).components().count() + 1;
    let mut target = PathBuf::new();
    for _ in 0..depth {
        target.push("..");
    }
    target.push("blobs");
    target.push(blob.file_name().context("blob without a name")?);
    std::os::unix::fs::symlink(&target, pointer)
        .with_context(|| format!("cannot link {} to {}", pointer.display(), target.display()))
}

#[cfg(not(unix))]
fn link_blob(blob: &Path, pointer: &Path, _entry: &Entry) -> Result<()> {
    // As hf-hub does where symlinks are not available: the snapshot holds the file itself.
    fs::rename(blob, pointer)
        .with_context(|| format!("cannot move {} to {}", blob.display(), pointer.display()))
}

// ---------------------------------------------------------------------------------------
// The cache

/// The snapshot entry `refs/<revision>` points to, if it exists.
fn cached_pointer(repo_dir: &Path, entry: &Entry) -> Option<PathBuf> {
    let commit = fs::read_to_string(repo_dir.join("refs").join(&entry.revision)).ok()?;
    let pointer = repo_dir
        .join("snapshots")
        .join(commit.trim())
        .join(&entry.file);
    pointer.is_file().then_some(pointer)
}

/// The etag a cached file was stored under: the name of the blob its snapshot entry links
/// to (for a Git-LFS file on the Hub, its SHA-256).
fn blob_etag(pointer: &Path) -> Option<String> {
    if !is_symlink(pointer) {
        return None;
    }
    let blob = fs::canonicalize(pointer).ok()?;
    let name = blob.file_name()?.to_str()?.to_string();
    (blob.parent()?.file_name()? == "blobs").then_some(name)
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Delete a cached file that failed its checks: the snapshot entry, the blob it links to,
/// and whatever directories and ref that leaves pointing at nothing.
fn remove_cached(repo_dir: &Path, pointer: &Path, revision: &str) -> Result<()> {
    let canonical_repo = fs::canonicalize(repo_dir).unwrap_or_else(|_| repo_dir.to_path_buf());
    if let (true, Ok(blob)) = (is_symlink(pointer), fs::canonicalize(pointer)) {
        if blob.starts_with(&canonical_repo) {
            fs::remove_file(&blob).with_context(|| format!("cannot delete {}", blob.display()))?;
        }
    }
    fs::remove_file(pointer).with_context(|| format!("cannot delete {}", pointer.display()))?;
    let snapshots = repo_dir.join("snapshots");
    if let Some(parent) = pointer.parent() {
        remove_empty_dirs(parent, &snapshots)?;
    }
    let ref_path = repo_dir.join("refs").join(revision);
    if let Ok(commit) = fs::read_to_string(&ref_path) {
        if !snapshots.join(commit.trim()).exists() {
            fs::remove_file(&ref_path)
                .with_context(|| format!("cannot delete {}", ref_path.display()))?;
            if let Some(parent) = ref_path.parent() {
                remove_empty_dirs(parent, repo_dir)?;
            }
        }
    }
    remove_empty_dirs(&repo_dir.join("blobs"), repo_dir)?;
    remove_empty_dirs(&snapshots, repo_dir)?;
    remove_empty_dirs(repo_dir, repo_dir)
}

/// Remove `dir` and its parents while they are empty, up to and including `stop`.
fn remove_empty_dirs(dir: &Path, stop: &Path) -> Result<()> {
    let mut dir = dir.to_path_buf();
    loop {
        let empty = fs::read_dir(&dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            return Ok(());
        }
        fs::remove_dir(&dir).with_context(|| format!("cannot delete {}", dir.display()))?;
        if dir == stop || !dir.starts_with(stop) {
            return Ok(());
        }
        match dir.parent() {
            Some(parent) => dir = parent.to_path_buf(),
            None => return Ok(()),
        }
    }
}

fn remove_dir_if_exists(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot delete {}", dir.display()))
        }
        _ => Ok(()),
    }
}

fn offline_message(env: &HubEnv, entry: &Entry, repo_dir: &Path) -> String {
    let url = format!(
        "{DEFAULT_ENDPOINT}/{}/resolve/{}/{}",
        entry.repo, entry.revision, entry.file
    );
    let by_hand = repo_dir.join("snapshots/manual").join(&entry.file);
    let env_var = if entry.layout == Layout::Vgg16 {
        format!(
            " either set OSIPS_VGG16_WEIGHTS=/path/to/{} (the trainer reads that file directly), or",
            entry.file
        )
    } else {
        String::new()
    };
    format!(
        "HF_HUB_OFFLINE is set and {}/{} is not in the Hugging Face cache ({}), so nothing was downloaded. \
         Get the file on a machine with network ({url}, or run `cargo xtask fetch-weights` there and copy its cache directory {} here); then{env_var} \
         put it at {} and write `manual` into {}, and run this command again to check it.",
        entry.repo,
        entry.file,
        env.cache.display(),
        repo_dir.display(),
        by_hand.display(),
        repo_dir.join("refs").join(&entry.revision).display(),
    )
}

/// Say whether the trainer's lookup (`trainer::vgg_weights_path`: `refs/main` of the VGG16
/// repository) finds this file.
fn print_trainer_hint(cache: &Path, entry: &Entry, path: &Path) {
    if entry.layout != Layout::Vgg16 {
        return;
    }
    let repo = Repo::new(osips_models::vgg::VGG16_REPO.to_string(), RepoType::Model);
    let repo_dir = cache.join(repo.folder_name());
    let found = fs::read_to_string(repo_dir.join("refs/main"))
        .ok()
        .map(|commit| {
            repo_dir
                .join("snapshots")
                .join(commit.trim())
                .join(osips_models::vgg::VGG16_FILE)
        });
    if found.as_deref() == Some(path) {
        println!("`--init vgg16` (the paper preset) loads it from there.");
    } else {
        println!(
            "the trainer looks for {}/{} at refs/main, which is not this file: run it with OSIPS_VGG16_WEIGHTS={}",
            osips_models::vgg::VGG16_REPO,
            osips_models::vgg::VGG16_FILE,
            path.display()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Verification

/// Check a file against its manifest entry: size, safetensors header (which must account
/// for every byte), tensor layout, then SHA-256 against the manifest and against the etag
/// the Hub stored it under. Returns the SHA-256.
fn verify(path: &Path, entry: &Entry, etag: Option<&str>) -> Result<String> {
    let size = fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if let Some(expected) = entry.size {
        if size != expected {
            bail!(
                "{} is {size} bytes, the manifest expects {expected}",
                path.display()
            );
        }
    }
    check_layout(path, size, entry.layout)?;

    let sha = sha256_of(path, size)?;
    let etag_sha = etag.filter(|e| is_sha256(e));
    if let Some(expected) = &entry.sha256 {
        if &sha != expected {
            bail!(
                "checksum mismatch: {} has sha256 {sha}, the manifest pins {expected}",
                path.display()
            );
        }
    }
    if let Some(expected) = etag_sha {
        if sha != expected {
            bail!(
                "checksum mismatch: {} has sha256 {sha}, the Hub announced {expected}",
                path.display()
            );
        }
    }
    if entry.sha256.is_none() && etag_sha.is_none() {
        eprintln!(
            "warning: no SHA-256 to compare {} with (none in the manifest, and the Hub gave none); only its size and tensors were checked",
            path.display()
        );
    }
    Ok(sha)
}

fn sha256_of(path: &Path, size: u64) -> Result<String> {
    let mut file =
        fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let bar = ProgressBar::new(size);
    if let Ok(style) =
        ProgressStyle::with_template("checking sha256 [{wide_bar}] {bytes}/{total_bytes}")
    {
        bar.set_style(style);
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Read the safetensors header only (the VGG16 file is 553 MB, of which 470 MB is the
/// classifier we do not use) and check it against what the import expects.
fn check_layout(path: &Path, size: u64, layout: Layout) -> Result<()> {
    let mut file =
        fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let not_safetensors =
        |why: String| anyhow::anyhow!("{} is not a safetensors file: {why}", path.display());
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| not_safetensors(format!("only {size} bytes")))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER || n.saturating_add(8) > size {
        return Err(not_safetensors(format!(
            "header length {n} does not fit in {size} bytes"
        )));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header)
        .map_err(|e| not_safetensors(format!("cannot read the header: {e}")))?;
    let metadata: safetensors::tensor::Metadata =
        serde_json::from_slice(&header).map_err(|e| not_safetensors(format!("bad header: {e}")))?;
    let expected_size = 8 + n + metadata.data_len() as u64;
    if expected_size != size {
        bail!(
            "{} is {size} bytes but its header describes {expected_size}: truncated or corrupt",
            path.display()
        );
    }
    match layout {
        Layout::Vgg16 => check_vgg16(path, &metadata),
    }
}

/// The rules of `osips_models::vgg::read_vgg16`, on the header: every mapped tensor with
/// its shape and a float dtype, and no `features.*` tensor the import would not place.
fn check_vgg16(path: &Path, metadata: &safetensors::tensor::Metadata) -> Result<()> {
    use safetensors::Dtype;
    let mapping = osips_models::vgg::vgg16_mapping();
    let tensors = metadata.tensors();
    let mut problems = Vec::new();
    for (timm, _, shape) in &mapping {
        match tensors.get(timm) {
            None => problems.push(format!("missing `{timm}` {shape:?}")),
            Some(info) if info.shape != *shape => problems.push(format!(
                "`{timm}` has shape {:?}, expected {shape:?}",
                info.shape
            )),
            Some(info)
                if !matches!(
                    info.dtype,
                    Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64
                ) =>
            {
                problems.push(format!("`{timm}` is {:?}, not a float type", info.dtype))
            }
            Some(_) => {}
        }
    }
    let mut unmapped: Vec<&String> = tensors
        .keys()
        .filter(|name| name.starts_with("features.") && !mapping.iter().any(|(t, _, _)| t == *name))
        .collect();
    unmapped.sort();
    problems.extend(
        unmapped
            .into_iter()
            .map(|name| format!("unmapped tensor `{name}`")),
    );
    if problems.is_empty() {
        Ok(())
    } else {
        bail!(
            "{} is not timm's vgg16.tv_in1k weights: {}",
            path.display(),
            problems.join("; ")
        )
    }
}
