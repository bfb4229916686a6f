//! `cargo xtask train | sweep | report`: build the trainer once in release, run training
//! runs one after the other (each with its own progress bar), and compare finished runs
//! in a markdown table and one PNG of their curves.
//!
//! A sweep file is TOML:
//!
//! ```toml
//! preset = "tiny"            # tiny | paper
//! name = "lambda"            # run names: lambda-0, lambda-1, …
//! steps = 300                # or minutes = 10
//! set = ["schedule.eval_identities=100"]     # overrides shared by every run
//!
//! [grid]                     # every combination of these values is one run
//! "loss.transform_lambda" = [0.01, 0.1, 1.0]
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::workspace_root;
use serde::Deserialize;
use trainer::plot::{draw_panels, read_stats, Line, Panel, PANELS};
use trainer::EvalReport;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresetName {
    /// 64×64, narrow trunks: CPU.
    Tiny,
    /// 128×128, VGG16 trunks: GPUs.
    Paper,
}

impl PresetName {
    fn flag(self) -> &'static str {
        match self {
            PresetName::Tiny => "tiny",
            PresetName::Paper => "paper",
        }
    }
}

/// What every run of a `train` or `sweep` shares.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Where run directories are created.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Cargo features for the trainer build (e.g. `cuda` once it exists).
    #[arg(long)]
    pub features: Option<String>,
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Named preset.
    #[arg(long, value_enum, default_value = "tiny")]
    pub preset: PresetName,
    /// Override a config key, e.g. --set loss.transform_lambda=0.01 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Repeat the run N times with seeds 0..N.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Iterations per run.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Minutes per run.
    #[arg(long)]
    pub minutes: Option<f64>,
    /// Run name (default: the preset's).
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args)]
pub struct SweepArgs {
    /// The sweep file (see `cargo xtask sweep --help` and xtask/src/runs.rs).
    pub file: PathBuf,
    /// Print the runs the file describes and exit.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Run directories to compare.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Where to write `report.md` and `report.png`.
    #[arg(long, default_value = "runs/report")]
    pub out: PathBuf,
}

/// One planned training run: the trainer's flags.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    name: String,
    args: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepFile {
    preset: PresetName,
    name: String,
    steps: Option<u64>,
    minutes: Option<f64>,
    #[serde(default)]
    set: Vec<String>,
    grid: BTreeMap<String, Vec<toml::Value>>,
}

fn schedule_args(steps: Option<u64>, minutes: Option<f64>) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(steps) = steps {
        args.extend(["--steps".to_string(), steps.to_string()]);
    }
    if let Some(minutes) = minutes {
        args.extend(["--minutes".to_string(), minutes.to_string()]);
    }
    args
}

fn train_plans(args: &TrainArgs) -> Vec<Plan> {
    let base = args
        .name
        .clone()
        .unwrap_or_else(|| args.preset.flag().into());
    (0..args.runs.max(1))
        .map(|k| {
            let name = if args.runs > 1 {
                format!("{base}-seed{k}")
            } else {
                base.clone()
            };
            let mut flags = vec![
                "--preset".to_string(),
                args.preset.flag().to_string(),
                "--name".to_string(),
                name.clone(),
            ];
            if args.runs > 1 {
                flags.extend(["--seed".to_string(), k.to_string()]);
            }
            flags.extend(schedule_args(args.steps, args.minutes));
            for o in &args.overrides {
                flags.extend(["--set".to_string(), o.clone()]);
            }
            Plan { name, args: flags }
        })
        .collect()
}

/// A TOML value as the JSON text `--set key=VALUE` parses back into the same value.
fn override_text(value: &toml::Value) -> Result<String> {
    let json = serde_json::to_value(value).context("a grid value cannot be written as JSON")?;
    Ok(json.to_string())
}

fn sweep_plans(sweep: &SweepFile) -> Result<Vec<Plan>> {
    if sweep.grid.is_empty() || sweep.grid.values().any(Vec::is_empty) {
        bail!("the sweep's [grid] needs at least one key with at least one value");
    }
    // Every combination, the last key varying fastest.
    let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (key, values) in &sweep.grid {
        let mut next = Vec::new();
        for combo in &combos {
            for value in values {
                let mut c = combo.clone();
                c.push((key.clone(), override_text(value)?));
                next.push(c);
            }
        }
        combos = next;
    }
    Ok(combos
        .into_iter()
        .enumerate()
        .map(|(k, combo)| {
            let name = format!("{}-{k}", sweep.name);
            let mut flags = vec![
                "--preset".to_string(),
                sweep.preset.flag().to_string(),
                "--name".to_string(),
                name.clone(),
            ];
            flags.extend(schedule_args(sweep.steps, sweep.minutes));
            for o in &sweep.set {
                flags.extend(["--set".to_string(), o.clone()]);
            }
            for (key, value) in combo {
                flags.extend(["--set".to_string(), format!("{key}={value}")]);
            }
            Plan { name, args: flags }
        })
        .collect())
}

/// `cargo build --release -p trainer`, returning the binary's path.
fn build_trainer(common: &Common) -> Result<PathBuf> {
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--release", "-p", "trainer", "--bin", "trainer"]);
    if let Some(features) = &common.features {
        cmd.args(["--features", features]);
    }
    let status = cmd.status().context("cannot run cargo build")?;
    if !status.success() {
        bail!("building the trainer failed ({status})");
    }
    let exe = root
        .join("target/release/trainer")
        .with_extension(std::env::consts::EXE_EXTENSION);
    if !exe.is_file() {
        bail!("the build left no trainer at {}", exe.display());
    }
    Ok(exe)
}

/// Run the plans in turn; the trainer's progress bar and messages pass through. Returns
/// the run directories.
fn execute(plans: &[Plan], common: &Common) -> Result<Vec<PathBuf>> {
    let exe = build_trainer(common)?;
    let mut dirs = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        eprintln!("\n=== run {}/{}: {} ===", i + 1, plans.len(), plan.name);
        let mut child = Command::new(&exe)
            .args(&plan.args)
            .arg("--runs-dir")
            .arg(&common.runs_dir)
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let mut run_dir = None;
        if let Some(stdout) = child.stdout.take() {
            for line in BufReader::new(stdout).lines() {
                let line = line.context("reading the trainer's output")?;
                println!("{line}");
                if let Some(dir) = line.strip_prefix("run directory:") {
                    run_dir = Some(PathBuf::from(dir.trim()));
                }
            }
        }
        let status = child.wait().context("waiting for the trainer")?;
        if !status.success() {
            bail!(
                "run {} failed ({status}); the runs before it are in {:?}",
                plan.name,
                dirs
            );
        }
        dirs.push(
            run_dir
                .with_context(|| format!("run {} did not print its run directory", plan.name))?,
        );
    }
    Ok(dirs)
}

pub fn train(args: TrainArgs) -> Result<()> {
    let dirs = execute(&train_plans(&args), &args.common)?;
    if dirs.len() > 1 {
        let out = args.common.runs_dir.join("report");
        write_report(&dirs, &out)?;
    }
    Ok(())
}

pub fn sweep(args: SweepArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let sweep: SweepFile = toml::from_str(&text)
        .with_context(|| format!("{} is not a sweep file", args.file.display()))?;
    let plans = sweep_plans(&sweep)?;
    if args.dry_run {
        for plan in &plans {
            println!("{}: trainer {}", plan.name, plan.args.join(" "));
        }
        return Ok(());
    }
    let dirs = execute(&plans, &args.common)?;
    let out = args.common.runs_dir.join(format!("report-{}", sweep.name));
    write_report(&dirs, &out)
}

pub fn report(args: ReportArgs) -> Result<()> {
    write_report(&args.runs, &args.out)
}

/// A finished run as the report reads it.
struct RunRecord {
    label: String,
    config: serde_json::Value,
    eval: Option<EvalReport>,
    series: BTreeMap<String, Vec<(f64, f64)>>,
}

fn read_run(dir: &Path) -> Result<RunRecord> {
    let config_path = dir.join("config.json");
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&config_path)
            .with_context(|| format!("{} is not a run directory", dir.display()))?,
    )
    .with_context(|| format!("{} is not valid JSON", config_path.display()))?;
    let eval_path = dir.join("eval.json");
    let eval = match std::fs::read_to_string(&eval_path) {
        Ok(text) => Some(
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not an evaluation", eval_path.display()))?,
        ),
        Err(_) => None,
    };
    let stats = dir.join("stats.jsonl");
    let series = if stats.is_file() {
        read_stats(&stats)?
    } else {
        BTreeMap::new()
    };
    let label = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    Ok(RunRecord {
        label,
        config,
        eval,
        series,
    })
}

/// Flatten a JSON object into `a.b.c → value text`.
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The eval numbers the table and the figure show: (column, value).
fn eval_columns(eval: &EvalReport) -> [(&'static str, f64); 6] {
    [
        ("swap PSNR", eval.swap_psnr),
        ("swap SSIM", eval.swap_ssim),
        ("identity top-1", eval.identity_top1),
        ("attribute top-1", eval.attribute_top1),
        ("identity cosine", eval.identity_cosine),
        ("recon PSNR", eval.reconstruction_psnr),
    ]
}

fn report_markdown(runs: &[RunRecord]) -> String {
    let flat: Vec<BTreeMap<String, String>> = runs
        .iter()
        .map(|r| {
            let mut m = BTreeMap::new();
            flatten("", &r.config, &mut m);
            m
        })
        .collect();
    // The keys whose values differ between the runs (all keys would drown the table).
    let mut keys: Vec<String> = flat
        .iter()
        .flat_map(|m| m.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| {
            let first = flat[0].get(k);
            flat.iter().any(|m| m.get(k) != first)
        })
        .filter(|k| k != "name")
        .collect();
    keys.sort();
    let mut md = String::new();
    md.push_str("| run | steps |");
    for k in &keys {
        md.push_str(&format!(" `{k}` |"));
    }
    let eval_names = [
        "swap PSNR",
        "swap SSIM",
        "identity top-1",
        "attribute top-1",
        "identity cosine",
        "recon PSNR",
    ];
    for name in eval_names {
        md.push_str(&format!(" {name} |"));
    }
    md.push('\n');
    md.push_str("|---|---:|");
    for _ in &keys {
        md.push_str("---|");
    }
    for _ in eval_names {
        md.push_str("---:|");
    }
    md.push('\n');
    for (run, config) in runs.iter().zip(&flat) {
        let steps = run
            .eval
            .as_ref()
            .map(|e| e.step.to_string())
            .or_else(|| {
                run.series
                    .get("time/step_ms")
                    .and_then(|s| s.last())
                    .map(|(step, _)| format!("{step}"))
            })
            .unwrap_or_else(|| "—".into());
        md.push_str(&format!("| {} | {steps} |", run.label));
        for k in &keys {
            md.push_str(&format!(
                " {} |",
                config.get(k).map(String::as_str).unwrap_or("—")
            ));
        }
        match &run.eval {
            Some(eval) => {
                for (_, v) in eval_columns(eval) {
                    md.push_str(&format!(" {v:.3} |"));
                }
            }
            None => {
                for _ in eval_names {
                    md.push_str(" — |");
                }
            }
        }
        md.push('\n');
    }
    if let Some(eval) = runs.iter().find_map(|r| r.eval.as_ref()) {
        md.push_str(&format!(
            "\nBaselines (the same for every run): x_a {:.2} dB / SSIM {:.3}, x_s {:.2} dB / SSIM {:.3}; retrieval chance {:.2}. Evaluated on {} unseen synthetic identities.\n",
            eval.baseline_attribute_psnr,
            eval.baseline_attribute_ssim,
            eval.baseline_source_psnr,
            eval.baseline_source_ssim,
            eval.chance_top1,
            eval.n_identities
        ));
    }
    md
}

/// Loss panels (transformation process, one line per run) and eval panels: a curve where
/// a run evaluated along the way (`schedule.eval_every`), else one dot at its final step.
fn report_panels(runs: &[RunRecord]) -> Vec<Panel> {
    let mut panels: Vec<Panel> = PANELS
        .iter()
        .map(|(title, keys)| Panel {
            title: format!("{title} (transformation)"),
            lines: runs
                .iter()
                .filter_map(|r| {
                    r.series.get(keys[1]).map(|points| Line {
                        label: r.label.clone(),
                        points: points.clone(),
                    })
                })
                .collect(),
        })
        .collect();
    let evals = [
        ("swap PSNR", "eval/swap_psnr"),
        ("identity top-1", "eval/identity_top1"),
        ("attribute top-1", "eval/attribute_top1"),
    ];
    for (i, (title, key)) in evals.iter().enumerate() {
        let lines = runs
            .iter()
            .filter_map(|r| {
                // The periodic evaluations (`schedule.eval_every`), then the final one.
                let mut points = r.series.get(*key).cloned().unwrap_or_default();
                if let Some(eval) = &r.eval {
                    let value = [eval.swap_psnr, eval.identity_top1, eval.attribute_top1][i];
                    let step = eval.step as f64;
                    if points.last().is_none_or(|(s, _)| *s < step) {
                        points.push((step, value));
                    }
                }
                (!points.is_empty()).then(|| Line {
                    label: r.label.clone(),
                    points,
                })
            })
            .collect();
        panels.push(Panel {
            title: format!("eval: {title}"),
            lines,
        });
    }
    panels
}

fn write_report(dirs: &[PathBuf], out: &Path) -> Result<()> {
    let runs = dirs
        .iter()
        .map(|d| read_run(d))
        .collect::<Result<Vec<_>>>()?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let md = report_markdown(&runs);
    let md_path = out.join("report.md");
    let png_path = out.join("report.png");
    let mut file = std::fs::File::create(&md_path)
        .with_context(|| format!("cannot write {}", md_path.display()))?;
    file.write_all(md.as_bytes())
        .and_then(|_| writeln!(file, "\n![curves](report.png)"))
        .with_context(|| format!("cannot write {}", md_path.display()))?;
    draw_panels(&report_panels(&runs), 3, &png_path)?;
    print!("{md}");
    println!("\nwrote {} and {}", md_path.display(), png_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_is_every_combination_of_its_grid() -> Result<()> {
        let sweep: SweepFile = toml::from_str(
            r#"
            preset = "tiny"
            name = "lam"
            steps = 10
            set = ["schedule.eval_identities=20"]
            [grid]
            "loss.transform_lambda" = [0.01, 0.1]
            "loss.kl" = [1.0, 0.5]
            "#,
        )?;
        let plans = sweep_plans(&sweep)?;
        assert_eq!(plans.len(), 4);
        assert_eq!(plans[0].name, "lam-0");
        let sets: Vec<Vec<&str>> = plans
            .iter()
            .map(|p| {
                p.args
                    .windows(2)
                    .filter(|w| w[0] == "--set")
                    .map(|w| w[1].as_str())
                    .collect()
            })
            .collect();
        assert_eq!(
            sets[1],
            vec![
                "schedule.eval_identities=20",
                "loss.kl=1.0",
                "loss.transform_lambda=0.1"
            ]
        );
        assert_eq!(
            sets[2],
            vec![
                "schedule.eval_identities=20",
                "loss.kl=0.5",
                "loss.transform_lambda=0.01"
            ]
        );
        assert!(plans[0].args.windows(2).any(|w| w == ["--steps", "10"]));
        Ok(())
    }

    #[test]
    fn bad_sweep_files_are_errors() {
        let empty: SweepFile =
            toml::from_str("preset = \"tiny\"\nname = \"x\"\n[grid]\n").expect("parses");
        assert!(sweep_plans(&empty).is_err());
        assert!(toml::from_str::<SweepFile>("preset = \"huge\"\nname = \"x\"\n[grid]\n").is_err());
        assert!(
            toml::from_str::<SweepFile>("preset = \"tiny\"\nname = \"x\"\nstep = 3\n[grid]\n")
                .is_err()
        );
    }

    #[test]
    fn repeated_runs_get_their_own_seeds_and_names() {
        let args = TrainArgs {
            preset: PresetName::Tiny,
            overrides: vec!["loss.kl=0.5".into()],
            runs: 2,
            steps: Some(5),
            minutes: None,
            name: None,
            common: Common {
                runs_dir: "runs".into(),
                features: None,
            },
        };
        let plans = train_plans(&args);
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[1].name, "tiny-seed1");
        assert!(plans[1].args.windows(2).any(|w| w == ["--seed", "1"]));
        assert!(plans[1]
            .args
            .windows(2)
            .any(|w| w == ["--set", "loss.kl=0.5"]));
    }

    #[test]
    fn a_report_tables_the_differing_keys_and_draws_the_curves() -> Result<()> {
        let root = tempfile::tempdir()?;
        let mut dirs = Vec::new();
        for (k, lambda) in [0.01, 1.0].into_iter().enumerate() {
            let dir = root.path().join(format!("0000{k}-lam-{k}"));
            std::fs::create_dir_all(&dir)?;
            let mut config = trainer::RunConfig::preset(osips_models::Preset::Tiny);
            config.loss.transform_lambda = lambda;
            std::fs::write(dir.join("config.json"), serde_json::to_vec(&config)?)?;
            let mut stats = String::new();
            for step in 1..=5u64 {
                let line = serde_json::json!({
                    "step": step,
                    "time/step_ms": 100.0,
                    "loss/trans/gr": 10.0 / step as f64 + lambda,
                    "loss/trans/d": 1.0,
                });
                stats.push_str(&format!("{line}\n"));
            }
            std::fs::write(dir.join("stats.jsonl"), stats)?;
            let eval = EvalReport {
                n_identities: 20,
                step: 5,
                swap_psnr: 15.0 + k as f64,
                swap_ssim: 0.5,
                baseline_attribute_psnr: 14.0,
                baseline_attribute_ssim: 0.4,
                baseline_source_psnr: 12.0,
                baseline_source_ssim: 0.3,
                identity_top1: 0.2,
                attribute_top1: 0.3,
                chance_top1: 0.1,
                identity_cosine: 0.9,
                identity_cosine_baseline: 0.8,
                reconstruction_psnr: 18.0,
                identity_top1_baseline_source: 0.15,
                attribute_top1_baseline_attribute: 0.6,
                encoder_identity_top1: 0.4,
                identity_effect: 0.5,
                attribute_effect: 0.9,
            };
            std::fs::write(dir.join("eval.json"), serde_json::to_vec(&eval)?)?;
            dirs.push(dir);
        }
        let out = root.path().join("report");
        write_report(&dirs, &out)?;
        let md = std::fs::read_to_string(out.join("report.md"))?;
        assert!(md.contains("`loss.transform_lambda`"), "{md}");
        assert!(!md.contains("`loss.kl`"), "equal keys stay out: {md}");
        assert!(md.contains("| 00001-lam-1 | 5 | 1.0 | 16.000 |"), "{md}");
        let png = image::open(out.join("report.png"))?;
        assert_eq!((png.width(), png.height()), (1200, 1050));
        Ok(())
    }
}
