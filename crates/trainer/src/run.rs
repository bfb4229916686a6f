//! A training run: its directory, `config.json` before the first step, `stats.jsonl`, sample
//! grids, loss curves, atomic checkpoints (the last K kept), exact resume, Ctrl-C, and the
//! evaluation at the end.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::Device;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use osips_data::{Dataset, Loader, SamplerState};
use osips_models::{Preset, FORMAT_VERSION};
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::eval::{evaluate, EvalReport};
use crate::samples::SampleInputs;
use crate::trainer::{StepStats, Trainer};

/// `state.json` of a checkpoint: what the models crate needs (format version, preset,
/// step) and what the trainer needs to continue exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainState {
    pub format_version: u32,
    pub preset: Preset,
    pub step: u64,
    pub seed: u64,
    /// The data sampler's position: the next batch to train on.
    pub sampler: SamplerState,
    /// Training time spent so far, over all sessions.
    pub elapsed_seconds: f64,
}

/// A run directory `runs/<id>-<name>/`.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// Create the next numbered directory `<root>/<NNNNN>-<name>` and check that it can be
    /// written, before any training starts.
    pub fn create(root: &Path, name: &str) -> Result<RunDir> {
        std::fs::create_dir_all(root).map_err(|e| TrainError::io(root, e))?;
        let mut next = 0u32;
        let entries = std::fs::read_dir(root).map_err(|e| TrainError::io(root, e))?;
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            if let Some(id) = file_name
                .split('-')
                .next()
                .and_then(|s| s.parse::<u32>().ok())
            {
                next = next.max(id + 1);
            }
        }
        let path = root.join(format!("{next:05}-{name}"));
        std::fs::create_dir(&path).map_err(|e| TrainError::io(&path, e))?;
        let run = RunDir { path };
        run.check_writable()?;
        Ok(run)
    }

    /// An existing run directory (for `--resume`).
    pub fn open(path: &Path) -> Result<RunDir> {
        if !path.join("config.json").is_file() {
            return Err(TrainError::file(
                path,
                "not a run directory (no config.json)",
            ));
        }
        let run = RunDir {
            path: path.to_path_buf(),
        };
        run.check_writable()?;
        Ok(run)
    }

    fn check_writable(&self) -> Result<()> {
        let probe = self.path.join(".write-test");
        std::fs::write(&probe, b"ok")
            .and_then(|_| std::fs::remove_file(&probe))
            .map_err(|e| {
                TrainError::file(&self.path, format!("run directory is not writable: {e}"))
            })
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.path.join("checkpoints")
    }

    /// Complete checkpoints (`step-NNNNNNNN` directories with a `state.json`), oldest first.
    pub fn list_checkpoints(&self) -> Result<Vec<(u64, PathBuf)>> {
        list_checkpoints(&self.checkpoints())
    }
}

/// Complete checkpoints in a `checkpoints/` folder, oldest first. Temporary directories of
/// an interrupted write never count.
pub fn list_checkpoints(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(TrainError::io(dir, e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(step) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        if entry.path().join("state.json").is_file() {
            found.push((step, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Write `text` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| TrainError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}

/// Write a checkpoint of `trainer` into the run, atomically: everything goes into a
/// temporary directory, `state.json` last, which is then renamed to `step-NNNNNNNN`. Older
/// checkpoints beyond the last `keep` are removed afterwards. A failure leaves the previous
/// checkpoints as they were.
pub fn write_checkpoint(
    run: &RunDir,
    trainer: &Trainer,
    sampler: SamplerState,
    elapsed: f64,
) -> Result<PathBuf> {
    let root = run.checkpoints();
    std::fs::create_dir_all(&root).map_err(|e| TrainError::io(&root, e))?;
    let final_dir = root.join(format!("step-{:08}", trainer.step));
    let tmp_dir = root.join(format!(".step-{:08}.tmp", trainer.step));
    if tmp_dir.exists() {
        std::fs::remove_dir_all(&tmp_dir).map_err(|e| TrainError::io(&tmp_dir, e))?;
    }
    std::fs::create_dir(&tmp_dir).map_err(|e| TrainError::io(&tmp_dir, e))?;
    let result = (|| -> Result<()> {
        let config = serde_json::to_vec_pretty(&trainer.config)
            .map_err(|e| TrainError::Config(e.to_string()))?;
        write_atomic(&tmp_dir.join("config.json"), &config)?;
        trainer.save_weights(&tmp_dir)?;
        let state = TrainState {
            format_version: FORMAT_VERSION,
            preset: trainer.config.model.preset,
            step: trainer.step,
            seed: trainer.config.seed,
            sampler,
            elapsed_seconds: elapsed,
        };
        let state =
            serde_json::to_vec_pretty(&state).map_err(|e| TrainError::Config(e.to_string()))?;
        write_atomic(&tmp_dir.join("state.json"), &state)?;
        if final_dir.exists() {
            std::fs::remove_dir_all(&final_dir).map_err(|e| TrainError::io(&final_dir, e))?;
        }
        // The files were synced when written; sync the folder's entries too, so that the
        // directory itself is on disk before it is renamed into view.
        sync_dir(&tmp_dir)?;
        std::fs::rename(&tmp_dir, &final_dir).map_err(|e| TrainError::io(&final_dir, e))?;
        sync_dir(&root)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp_dir);
        return Err(TrainError::file(
            &final_dir,
            format!("checkpoint not written, the previous ones are kept: {e}"),
        ));
    }
    let all = run.list_checkpoints()?;
    let keep = trainer.config.schedule.keep_checkpoints;
    if all.len() > keep {
        for (step, old) in &all[..all.len() - keep] {
            // Out of view first, in one rename: a kill in the middle of the removal leaves
            // a hidden folder, never a `step-*` one with files missing.
            let doomed = root.join(format!(".step-{step:08}.old"));
            std::fs::rename(old, &doomed).map_err(|e| TrainError::io(old, e))?;
            std::fs::remove_dir_all(&doomed).map_err(|e| TrainError::io(&doomed, e))?;
        }
    }
    Ok(final_dir)
}

/// Make `stats.jsonl` end at `step` before a resumed run appends to it: lines of later
/// steps (trained after the checkpoint by the process that stopped, and trained again now)
/// and a last line cut short by a kill are dropped, through a temporary file and a rename.
/// Returns how many lines were dropped.
pub fn truncate_stats(path: &Path, step: u64) -> Result<usize> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(TrainError::io(path, e)),
    };
    let mut kept = Vec::with_capacity(bytes.len());
    let mut dropped = 0;
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            dropped += 1; // no newline: cut short mid-write
            break;
        };
        let line = &rest[..=end];
        rest = &rest[end + 1..];
        let line_step = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("step").and_then(serde_json::Value::as_u64));
        match line_step {
            Some(s) if s <= step => kept.extend_from_slice(line),
            _ => dropped += 1,
        }
    }
    if dropped > 0 {
        write_atomic(path, &kept)?;
    }
    Ok(dropped)
}

/// Remove what an interrupted checkpoint write or removal left behind (hidden
/// `.step-*` folders). They are never taken for checkpoints; this only frees the space.
pub fn remove_checkpoint_leftovers(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(TrainError::io(dir, e)),
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".step-") {
            let path = entry.path();
            std::fs::remove_dir_all(&path).map_err(|e| TrainError::io(&path, e))?;
        }
    }
    Ok(())
}

/// `fsync` a directory (its entries), where the platform allows opening one.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| TrainError::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Read a checkpoint's `state.json`.
pub fn read_state(dir: &Path) -> Result<TrainState> {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::file(&path, e))
}

/// How a run is started.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where new run directories go (`runs/`).
    pub runs_root: PathBuf,
    /// Continue this run directory from its newest checkpoint.
    pub resume: Option<PathBuf>,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Set to true (e.g. by Ctrl-C) to stop after the current step with a checkpoint.
    pub stop: Arc<AtomicBool>,
    /// Run the evaluation at the end.
    pub evaluate: bool,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_dir: PathBuf,
    pub steps: u64,
    pub checkpoint: PathBuf,
    pub mean_step_ms: f64,
    pub data_wait_share: f64,
    pub eval: Option<EvalReport>,
    pub interrupted: bool,
}

impl RunSummary {
    /// What the commands print at the end of a run: the evaluation, the speed, and where
    /// everything went.
    pub fn report(&self) -> String {
        let mut out = String::new();
        if let Some(eval) = &self.eval {
            out.push_str(&format!("{eval}\n"));
        }
        out.push_str(&format!(
            "{} steps, {:.0} ms per step, data wait {:.1} % of the time{}\n",
            self.steps,
            self.mean_step_ms,
            100.0 * self.data_wait_share,
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        ));
        out.push_str(&format!("run directory: {}\n", self.run_dir.display()));
        out.push_str(&format!("checkpoint:    {}\n", self.checkpoint.display()));
        out
    }
}

/// Train: a new run from `config`, or `options.resume` (whose own config is used, with the
/// schedule of `config`).
pub fn run(config: RunConfig, options: &RunOptions) -> Result<RunSummary> {
    let device = Device::Cpu;
    let (run, mut config, resume_from) = match &options.resume {
        Some(dir) => {
            let run = RunDir::open(dir)?;
            remove_checkpoint_leftovers(&run.checkpoints())?;
            let saved = RunConfig::from_file(&run.path.join("config.json"))?;
            let latest = run.list_checkpoints()?.pop().ok_or_else(|| {
                TrainError::file(&run.path, "no complete checkpoint to resume from")
            })?;
            let mut resumed = saved;
            resumed.schedule = config.schedule.clone();
            (run, resumed, Some(latest.1))
        }
        None => {
            config.validate()?;
            (
                RunDir::create(&options.runs_root, &config.name)?,
                config,
                None,
            )
        }
    };

    let dataset = Arc::new(Dataset::open(&config.data)?);
    if dataset.report().n_bad() > 0 {
        eprintln!("warning: {}", dataset.report().summary(10));
    }
    if config.model.n_identities != dataset.n_identities() {
        config.model.n_identities = dataset.n_identities();
    }
    config.validate()?;
    let mut trainer = match &resume_from {
        Some(dir) => Trainer::for_checkpoint(config.clone(), &device, dir)?,
        None => Trainer::new(config.clone(), &device)?,
    };
    let mut sampler = SamplerState::start(config.data.seed);
    let mut elapsed_before = 0.0;
    if let Some(dir) = &resume_from {
        let state = read_state(dir)?;
        trainer.load_weights(dir)?;
        trainer.step = state.step;
        sampler = state.sampler;
        elapsed_before = state.elapsed_seconds;
        let dropped = truncate_stats(&run.path.join("stats.jsonl"), state.step)?;
        eprintln!(
            "resuming {} at step {}{}",
            run.path.display(),
            state.step,
            if dropped > 0 {
                format!(" ({dropped} stats lines past it dropped: they are trained again)")
            } else {
                String::new()
            }
        );
    } else {
        let json =
            serde_json::to_vec_pretty(&config).map_err(|e| TrainError::Config(e.to_string()))?;
        write_atomic(&run.path.join("config.json"), &json)?;
    }

    let samples = SampleInputs::new(&dataset, &config, &device)?;
    let mut loader = Loader::new(dataset.clone(), &config.data, sampler)?;
    let stats_path = run.path.join("stats.jsonl");
    let mut stats_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&stats_path)
        .map_err(|e| TrainError::io(&stats_path, e))?;

    let schedule = config.schedule.clone();
    let deadline = schedule
        .minutes
        .map(|m| Instant::now() + Duration::from_secs_f64(m * 60.0));
    let bar = progress_bar(options.progress, &schedule, trainer.step);
    let started = Instant::now();
    let mut total_step = Duration::ZERO;
    let mut total_wait = Duration::ZERO;
    let mut steps_here = 0u64;
    let mut last_checkpoint = None;
    let mut interrupted = false;

    loop {
        if schedule.steps.is_some_and(|s| trainer.step >= s)
            || deadline.is_some_and(|d| Instant::now() >= d)
        {
            break;
        }
        if options.stop.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        let (batch, wait) = loader.next_batch()?;
        let t0 = Instant::now();
        let stats = match trainer.train_step(&batch) {
            Ok(stats) => stats,
            Err(e) => {
                bar.abandon();
                return Err(e);
            }
        };
        let step_time = t0.elapsed();
        total_step += step_time;
        total_wait += wait;
        steps_here += 1;
        let elapsed = elapsed_before + started.elapsed().as_secs_f64();
        match schedule.steps {
            Some(_) => bar.set_position(trainer.step),
            None => bar.set_position(started.elapsed().as_secs()),
        }
        bar.set_message(format!(
            "step {} | {:.0} ms/step, data wait {:.0} ms | D {:.3} GR {:.1} KL {:.2} I {:.3}",
            trainer.step,
            step_time.as_secs_f64() * 1e3,
            wait.as_secs_f64() * 1e3,
            stats.get("loss/recon/d").copied().unwrap_or(f64::NAN),
            stats.get("loss/recon/gr").copied().unwrap_or(f64::NAN),
            stats.get("loss/recon/kl").copied().unwrap_or(f64::NAN),
            stats.get("loss/recon/i").copied().unwrap_or(f64::NAN),
        ));
        if trainer.step % schedule.log_every == 0 || trainer.step == 1 {
            write_stats(
                &mut stats_file,
                &stats_path,
                trainer.step,
                elapsed,
                step_time,
                wait,
                &stats,
            )?;
        }
        if trainer.step % schedule.sample_every == 0 {
            samples.write_grid(
                &trainer,
                &run.path.join(format!("samples-{:08}.png", trainer.step)),
            )?;
        }
        if trainer.step % schedule.checkpoint_every == 0 {
            last_checkpoint = Some(write_checkpoint(&run, &trainer, loader.state(), elapsed)?);
        }
        if let Some(every) = schedule.eval_every {
            if trainer.step % every == 0 && schedule.eval_identities > 0 {
                let report = evaluate(&trainer, schedule.eval_identities, false)?;
                write_eval_stats(&mut stats_file, &stats_path, &report)?;
            }
        }
    }
    let elapsed = elapsed_before + started.elapsed().as_secs_f64();
    let checkpoint = match last_checkpoint {
        Some(path) if read_state(&path).map(|s| s.step).ok() == Some(trainer.step) => path,
        _ => write_checkpoint(&run, &trainer, loader.state(), elapsed)?,
    };
    samples.write_grid(&trainer, &run.path.join("samples-final.png"))?;
    bar.finish_and_clear();
    if let Err(e) = crate::plot::plot_stats(&stats_path, &run.path.join("losses.png")) {
        eprintln!("warning: could not draw the loss curves: {e}");
    }
    let eval = if options.evaluate && !interrupted && schedule.eval_identities > 0 {
        let report = evaluate(&trainer, schedule.eval_identities, options.progress)?;
        let json =
            serde_json::to_vec_pretty(&report).map_err(|e| TrainError::Config(e.to_string()))?;
        write_atomic(&run.path.join("eval.json"), &json)?;
        Some(report)
    } else {
        None
    };
    let mean_step_ms = if steps_here > 0 {
        total_step.as_secs_f64() * 1e3 / steps_here as f64
    } else {
        0.0
    };
    let busy = (total_step + total_wait).as_secs_f64();
    Ok(RunSummary {
        run_dir: run.path.clone(),
        steps: trainer.step,
        checkpoint,
        mean_step_ms,
        data_wait_share: if busy > 0.0 {
            total_wait.as_secs_f64() / busy
        } else {
            0.0
        },
        eval,
        interrupted,
    })
}

/// An evaluation as a `stats.jsonl` line of `eval/*` keys.
fn write_eval_stats(file: &mut std::fs::File, path: &Path, report: &EvalReport) -> Result<()> {
    let value = serde_json::to_value(report).map_err(|e| TrainError::Config(e.to_string()))?;
    let mut line = serde_json::Map::new();
    line.insert("step".into(), report.step.into());
    if let serde_json::Value::Object(fields) = value {
        for (key, v) in fields {
            if key != "step" {
                line.insert(format!("eval/{key}"), v);
            }
        }
    }
    let mut text = serde_json::Value::Object(line).to_string();
    text.push('\n');
    file.write_all(text.as_bytes())
        .and_then(|_| file.flush())
        .map_err(|e| TrainError::io(path, e))
}

fn write_stats(
    file: &mut std::fs::File,
    path: &Path,
    step: u64,
    elapsed: f64,
    step_time: Duration,
    wait: Duration,
    stats: &StepStats,
) -> Result<()> {
    let mut line = serde_json::Map::new();
    line.insert("step".into(), step.into());
    line.insert("time/elapsed_s".into(), elapsed.into());
    line.insert(
        "time/step_ms".into(),
        (step_time.as_secs_f64() * 1e3).into(),
    );
    line.insert(
        "time/data_wait_ms".into(),
        (wait.as_secs_f64() * 1e3).into(),
    );
    for (key, value) in stats {
        line.insert(key.clone(), (*value).into());
    }
    let mut text = serde_json::Value::Object(line).to_string();
    text.push('\n');
    file.write_all(text.as_bytes())
        .and_then(|_| file.flush())
        .map_err(|e| TrainError::io(path, e))
}

/// A bar over steps when the schedule has a step count, else over the time budget (so the
/// default 20-minute job still shows an ETA).
fn progress_bar(enabled: bool, schedule: &crate::config::ScheduleConfig, step: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    }
    let (bar, template) = match (schedule.steps, schedule.minutes) {
        (Some(n), _) => (
            ProgressBar::new(n),
            "{elapsed_precise} [{wide_bar}] {pos}/{len} ETA {eta} | {msg}",
        ),
        (None, Some(minutes)) => (
            ProgressBar::new((minutes * 60.0).ceil() as u64),
            "{elapsed_precise} [{wide_bar}] ETA {eta} | {msg}",
        ),
        (None, None) => (ProgressBar::no_length(), "{elapsed_precise} | {msg}"),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    if schedule.steps.is_some() {
        bar.set_position(step);
    }
    bar.enable_steady_tick(Duration::from_millis(500));
    bar
}
