//! `osips morph | frontalize | detect | eval | inspect checkpoint | data convert`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame, RgbImage};
use indicatif::{ProgressBar, ProgressStyle};
use osips_data::source::recordio::write_face_pack;
use osips_data::source::tsv::format_tsv_line;
use osips_data::{DataConfig, Dataset, FaceData, SourceSpec};
use osips_models::checkpoint::{NetworkKind, GENERATOR_EMA_FILE};

use crate::infer::{
    grid, image_paths, load_faces, load_model, resolve_checkpoint, to_images, write_atomic_with,
    write_png, CheckpointArg,
};

#[derive(clap::Args, Debug)]
pub struct MorphArgs {
    #[command(flatten)]
    pub checkpoint: CheckpointArg,
    /// Whose face: an image.
    pub identity: PathBuf,
    /// Attributes at the start: an image.
    pub from: PathBuf,
    /// Attributes at the end: an image.
    pub to: PathBuf,
    /// Images from start to end, both included.
    #[arg(long, default_value_t = 8)]
    pub steps: usize,
    /// The strip PNG to write; an animated GIF goes next to it (same name, `.gif`).
    #[arg(long, short = 'o', default_value = "morph.png")]
    pub output: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct FrontalizeArgs {
    #[command(flatten)]
    pub checkpoint: CheckpointArg,
    /// Faces to frontalize: an image or a folder of images.
    pub images: PathBuf,
    /// A frontal, neutral face whose pose, expression and light the outputs take.
    #[arg(long)]
    pub frontal: PathBuf,
    /// The PNG to write: inputs on the top row, frontalized faces below them.
    #[arg(long, short = 'o', default_value = "frontal.png")]
    pub output: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct DetectArgs {
    #[command(flatten)]
    pub checkpoint: CheckpointArg,
    /// Images to check: an image or a folder of images.
    pub images: PathBuf,
    /// A folder of real, unmodified faces to calibrate the threshold on.
    #[arg(long, required_unless_present = "threshold")]
    pub calibrate: Option<PathBuf>,
    /// The share of the calibration faces that must pass: the threshold is this quantile
    /// of their reconstruction distances.
    #[arg(long, default_value_t = 0.95)]
    pub quantile: f64,
    /// A fixed threshold instead of a calibration.
    #[arg(long, conflicts_with = "calibrate")]
    pub threshold: Option<f64>,
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub checkpoint: CheckpointArg,
    /// Unseen synthetic identities to evaluate on.
    #[arg(long, default_value_t = 200)]
    pub identities: usize,
    /// Also write the numbers as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// The source: folder:PATH, tsv:PATH, recordio:PATH (train.rec), synthetic:N.
    #[arg(value_name = "FROM")]
    pub from: String,
    /// The output: folder:DIR (root/<identity>/<n>.jpg), tsv:FILE (MS-Celeb-1M columns),
    /// recordio:DIR (insightface train.rec, train.idx, property).
    #[arg(value_name = "TO")]
    pub to: String,
}

/// `path` with its extension replaced by `.gif`.
fn gif_path(path: &Path) -> PathBuf {
    path.with_extension("gif")
}

fn write_gif(frames: &[RgbImage], path: &Path) -> Result<()> {
    write_atomic_with(path, |file| {
        let mut encoder = GifEncoder::new_with_speed(file, 10);
        encoder.set_repeat(Repeat::Infinite)?;
        // There and back again.
        let order = (0..frames.len()).chain((1..frames.len().saturating_sub(1)).rev());
        for i in order {
            let rgba = image::DynamicImage::ImageRgb8(frames[i].clone()).to_rgba8();
            encoder.encode_frame(Frame::from_parts(
                rgba,
                0,
                0,
                Delay::from_numer_denom_ms(120, 1),
            ))?;
        }
        Ok(())
    })
}

pub fn morph(args: &MorphArgs) -> Result<()> {
    if args.steps < 2 {
        bail!("--steps must be at least 2");
    }
    for path in [&args.identity, &args.from, &args.to] {
        if !path.is_file() {
            bail!("{}: no such image file", path.display());
        }
    }
    let model = load_model(&args.checkpoint)?;
    let s = model.image_size();
    let (faces, _) = load_faces(
        &[args.identity.clone(), args.from.clone(), args.to.clone()],
        s,
    )?;
    let one = |i: usize| faces.narrow(0, i, 1);
    let strip = to_images(&model.morph(&one(0)?, &one(1)?, &one(2)?, args.steps)?)?;
    let row: Vec<Option<&RgbImage>> = strip.iter().map(Some).collect();
    write_png(&grid(&[row], s as u32), &args.output)?;
    let gif = gif_path(&args.output);
    write_gif(&strip, &gif)?;
    println!(
        "wrote {} and {} ({} steps, checkpoint step {})",
        args.output.display(),
        gif.display(),
        args.steps,
        model.step()
    );
    Ok(())
}

pub fn frontalize(args: &FrontalizeArgs) -> Result<()> {
    let paths = image_paths(&args.images)?;
    if !args.frontal.is_file() {
        bail!("{}: no such image file", args.frontal.display());
    }
    let model = load_model(&args.checkpoint)?;
    let s = model.image_size();
    let (faces, shown) = load_faces(&paths, s)?;
    let (frontal, _) = load_faces(std::slice::from_ref(&args.frontal), s)?;
    let out = to_images(&model.frontalize(&faces, &frontal)?)?;
    let top: Vec<Option<&RgbImage>> = shown.iter().map(Some).collect();
    let bottom: Vec<Option<&RgbImage>> = out.iter().map(Some).collect();
    write_png(&grid(&[top, bottom], s as u32), &args.output)?;
    println!(
        "wrote {} ({} faces, checkpoint step {})",
        args.output.display(),
        paths.len(),
        model.step()
    );
    Ok(())
}

/// The `q`-quantile of `values` (nearest rank).
fn quantile(mut values: Vec<f64>, q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

pub fn detect(args: &DetectArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.quantile) || args.quantile == 0.0 {
        bail!("--quantile must be in (0, 1]");
    }
    let paths = image_paths(&args.images)?;
    let calibration = match &args.calibrate {
        Some(dir) => Some(image_paths(dir)?),
        None => None,
    };
    let model = load_model(&args.checkpoint)?;
    let s = model.image_size();
    let distances = |paths: &[PathBuf]| -> Result<Vec<f64>> {
        let (faces, _) = load_faces(paths, s)?;
        let d = model.reconstruction_distance(&faces)?.to_vec1::<f32>()?;
        Ok(d.into_iter().map(f64::from).collect())
    };
    let threshold = match (&calibration, args.threshold) {
        (_, Some(t)) => t,
        (Some(real), None) => {
            let t = quantile(distances(real)?, args.quantile);
            println!(
                "threshold {t:.4}: the {:.0} % quantile of the reconstruction distances of {} real faces",
                100.0 * args.quantile,
                real.len()
            );
            t
        }
        (None, None) => bail!("give --calibrate FOLDER or --threshold T"),
    };
    let mut flagged = 0;
    for (path, d) in paths.iter().zip(distances(&paths)?) {
        let verdict = if d > threshold {
            flagged += 1;
            "SUSPECT"
        } else {
            "ok"
        };
        println!("{verdict:8} {d:.4}  {}", path.display());
    }
    println!(
        "{flagged} of {} images above the threshold {threshold:.4}",
        paths.len()
    );
    Ok(())
}

pub fn eval(args: &EvalArgs) -> Result<()> {
    let model = load_model(&args.checkpoint)?;
    let report = trainer::eval::evaluate_networks(
        trainer::eval::EvalNets::of_synthesizer(&model),
        model.step(),
        args.identities,
        true,
    )?;
    println!("{report}");
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&report)?;
        write_atomic_with(path, |file| Ok(file.write_all(&json)?))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

pub fn inspect_checkpoint(path: &Path) -> Result<()> {
    let dir = resolve_checkpoint(path)?;
    let (config, meta) = osips_models::checkpoint::read_checkpoint_meta(&dir)
        .with_context(|| format!("cannot read the checkpoint {}", dir.display()))?;
    println!("checkpoint:     {}", dir.display());
    println!("format version: {}", meta.format_version);
    println!("preset:         {}", meta.preset);
    println!("step:           {}", meta.step);
    println!(
        "image size:     {0}×{0}; identity vector {1}, attribute vector {2}, {3} training identities",
        config.image_size, config.identity_dim, config.attribute_dim, config.n_identities
    );
    println!("parameters (trained by gradient; BatchNorm running statistics not counted):");
    let mut total = 0;
    let files: Vec<(String, String)> = NetworkKind::ALL
        .iter()
        .map(|k| (k.name().to_string(), k.file_name()))
        .chain(std::iter::once((
            "generator (EMA)".to_string(),
            GENERATOR_EMA_FILE.to_string(),
        )))
        .collect();
    for (name, file) in files {
        let tensors = osips_models::vars::load_tensors(&dir.join(&file))
            .with_context(|| format!("cannot read {}", dir.join(&file).display()))?;
        let count: usize = tensors
            .iter()
            .filter(|(n, _)| osips_models::vars::is_trainable(n))
            .map(|(_, t)| t.elem_count())
            .sum();
        if name != "generator (EMA)" {
            total += count;
        }
        println!("  {name:16} {count:>10}  ({} tensors)", tensors.len());
    }
    println!("  {:16} {total:>10}", "total");
    let config_text = std::fs::read_to_string(dir.join("config.json"))?;
    let config_json: serde_json::Value = serde_json::from_str(&config_text)?;
    println!(
        "config.json:\n{}",
        serde_json::to_string_pretty(&config_json)?
    );
    Ok(())
}

/// JPEG bytes of a face: the source's own encoding when it is a JPEG, else encoded here.
fn jpeg_bytes(face: FaceData, location: &str) -> Result<Vec<u8>> {
    match face {
        FaceData::Encoded(bytes) if bytes.starts_with(&[0xFF, 0xD8]) => Ok(bytes),
        other => {
            let img = other.into_image(location)?;
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95)
                .encode_image(&img)
                .with_context(|| format!("{location}: cannot encode as JPEG"))?;
            Ok(out)
        }
    }
}

/// A file or folder name for an identity: the source's own name where it is safe.
fn identity_label(dataset: &Dataset, class: u32) -> String {
    match dataset.class_name(class) {
        Some(name)
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                && !name.starts_with('.') =>
        {
            name
        }
        _ => format!("{class:07}"),
    }
}

pub fn convert(args: &ConvertArgs) -> Result<()> {
    let source = SourceSpec::parse(&args.from)?;
    let (kind, out) = args.to.split_once(':').with_context(|| {
        format!(
            "output `{}`: expected folder:DIR, tsv:FILE or recordio:DIR",
            args.to
        )
    })?;
    let out = PathBuf::from(out);
    if out.exists() {
        bail!(
            "{}: already exists (convert never overwrites)",
            out.display()
        );
    }
    let config = DataConfig::for_reading(source, None);
    let dataset = Dataset::open(&config)?;
    let labeled = dataset.labeled();
    let bar = ProgressBar::new(labeled.len() as u64);
    if let Ok(style) = ProgressStyle::with_template("converting [{wide_bar}] {pos}/{len} ETA {eta}")
    {
        bar.set_style(style);
    }
    // Build everything next to the output, then rename: nothing partial is left behind.
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = out
        .file_name()
        .with_context(|| format!("{}: not a file or folder name", out.display()))?;
    let tmp = parent.join(format!(".{}.converting", name.to_string_lossy()));
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut skipped = 0usize;
    let faces = (0..labeled.len()).filter_map(|i| {
        bar.inc(1);
        let location = labeled.location(i);
        // The dense class (identities with no usable image are not classes).
        let class = dataset.class_of(i)?;
        match labeled
            .read(i)
            .map_err(anyhow::Error::from)
            .and_then(|f| jpeg_bytes(f, &location))
        {
            Ok(bytes) => Some((i, class, bytes)),
            Err(err) => {
                bar.suspend(|| eprintln!("warning: skipped {location}: {err:#}"));
                skipped += 1;
                None
            }
        }
    });
    let result = (|| -> Result<usize> {
        let mut written = 0usize;
        match kind {
            "folder" => {
                for (i, class, bytes) in faces {
                    let dir = tmp.join(identity_label(&dataset, class));
                    std::fs::create_dir_all(&dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                    let file = dir.join(format!("{i:08}.jpg"));
                    std::fs::write(&file, bytes)
                        .with_context(|| format!("cannot write {}", file.display()))?;
                    written += 1;
                }
            }
            "tsv" => {
                let mut file = std::io::BufWriter::new(
                    std::fs::File::create(&tmp)
                        .with_context(|| format!("cannot write {}", out.display()))?,
                );
                for (i, class, bytes) in faces {
                    let mid = identity_label(&dataset, class);
                    let line = format_tsv_line(
                        &mid,
                        "0",
                        "",
                        "",
                        &format!("{i}"),
                        [0.0, 0.0, 1.0, 1.0],
                        &bytes,
                    );
                    file.write_all(line.as_bytes())
                        .with_context(|| format!("cannot write {}", out.display()))?;
                    written += 1;
                }
                file.flush()
                    .with_context(|| format!("cannot write {}", out.display()))?;
            }
            "recordio" => {
                // insightface packs hold each identity's images together, in class order.
                let mut all: Vec<(u32, Vec<u8>)> = faces.map(|(_, c, b)| (c, b)).collect();
                all.sort_by_key(|(c, _)| *c);
                written = all.len();
                let dims = all
                    .first()
                    .and_then(|(_, b)| image::load_from_memory(b).ok())
                    .map(|img| (img.width(), img.height()))
                    .unwrap_or((0, 0));
                write_face_pack(&tmp, all, dims)?;
            }
            other => bail!("unknown output kind `{other}`: use folder, tsv or recordio"),
        }
        Ok(written)
    })();
    bar.finish_and_clear();
    let written = match result {
        Ok(n) => n,
        Err(err) => {
            let _ = std::fs::remove_dir_all(&tmp);
            let _ = std::fs::remove_file(&tmp);
            return Err(err);
        }
    };
    if written == 0 {
        let _ = std::fs::remove_dir_all(&tmp);
        let _ = std::fs::remove_file(&tmp);
        bail!("{}: no labeled image could be read", args.from);
    }
    std::fs::rename(&tmp, &out).with_context(|| format!("cannot create {}", out.display()))?;
    println!(
        "wrote {} images of {} identities to {}{}",
        written,
        dataset.n_identities(),
        out.display(),
        if skipped > 0 {
            format!(" ({skipped} unreadable images skipped)")
        } else {
            String::new()
        }
    );
    Ok(())
}
