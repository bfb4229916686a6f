//! `osips swap` and `osips sample`: a checkpoint and ordinary image files in, a PNG out.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use image::RgbImage;
use osips_data::{chw_to_image, image_to_chw, load_face};
use osips_models::Synthesizer;

/// Which checkpoint to use.
#[derive(clap::Args, Debug)]
pub struct CheckpointArg {
    /// A checkpoint directory (`…/checkpoints/step-NNNNNNNN`), or a run directory (its
    /// newest checkpoint is used).
    #[arg(long, short = 'c', value_name = "DIR")]
    pub checkpoint: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct SwapArgs {
    #[command(flatten)]
    pub checkpoint: CheckpointArg,
    /// Whose face: an image, or a folder of images.
    pub identity: PathBuf,
    /// Pose, expression, light, background: an image, or a folder of images.
    pub attribute: PathBuf,
    /// The PNG to write.
    #[arg(long, short = 'o', default_value = "swap.png")]
    pub output: PathBuf,
    /// Instead of one grid, write one PNG per pair into this folder (created if needed),
    /// named `<identity>__<attribute>.png` after the input files.
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    pub each: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct SampleArgs {
    #[command(flatten)]
    pub checkpoint: CheckpointArg,
    /// Whose face: an image.
    pub identity: PathBuf,
    /// How many faces.
    #[arg(long, short = 'n', default_value_t = 8)]
    pub count: usize,
    /// Seed of the random attribute vectors.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The PNG to write (a strip: the input, then the samples).
    #[arg(long, short = 'o', default_value = "samples.png")]
    pub output: PathBuf,
}

/// The checkpoint directory `path` names: itself, or a run directory's newest checkpoint.
pub(crate) fn resolve_checkpoint(path: &Path) -> Result<PathBuf> {
    if path.join("state.json").is_file() {
        return Ok(path.to_path_buf());
    }
    if path.join("checkpoints").is_dir() {
        let newest = trainer::run::list_checkpoints(&path.join("checkpoints"))?
            .pop()
            .with_context(|| format!("{}: the run has no complete checkpoint", path.display()))?;
        return Ok(newest.1);
    }
    if !path.exists() {
        bail!("{}: no such checkpoint or run directory", path.display());
    }
    bail!(
        "{}: neither a checkpoint (no state.json) nor a run directory (no checkpoints/)",
        path.display()
    )
}

pub(crate) fn load_model(arg: &CheckpointArg) -> Result<Synthesizer> {
    let dir = resolve_checkpoint(&arg.checkpoint)?;
    Synthesizer::load(&dir).with_context(|| format!("cannot load the checkpoint {}", dir.display()))
}

/// Image files of a folder (sorted), or the one file.
pub(crate) fn image_paths(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        bail!("{}: no such file or folder", path.display());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("cannot read the folder {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && image::ImageFormat::from_path(p).is_ok())
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: the folder holds no image files", path.display());
    }
    Ok(files)
}

/// Faces as a `[N, 3, S, S]` tensor in [-1, 1]: EXIF orientation applied, non-square
/// photos centre-cropped (with a warning), resized to the model's size.
pub(crate) fn load_faces(paths: &[PathBuf], size: usize) -> Result<(Tensor, Vec<RgbImage>)> {
    let mut data = Vec::with_capacity(paths.len() * 3 * size * size);
    let mut shown = Vec::with_capacity(paths.len());
    for path in paths {
        let face = load_face(path, size as u32)
            .with_context(|| format!("cannot use {}", path.display()))?;
        if face.was_cropped() {
            let (w, h) = face.original_size;
            eprintln!(
                "warning: {} is {w}×{h}, not square: centre-cropped to {s}×{s} and resized to {size}×{size}; align faces first for good results",
                path.display(),
                s = w.min(h)
            );
        }
        data.extend(image_to_chw(&face.image));
        shown.push(face.image);
    }
    let tensor = Tensor::from_vec(data, (paths.len(), 3, size, size), &Device::Cpu)?;
    Ok((tensor, shown))
}

/// The images of an `[N, 3, S, S]` tensor.
pub(crate) fn to_images(batch: &Tensor) -> Result<Vec<RgbImage>> {
    let (n, _, s, _) = batch.dims4()?;
    let values = batch.flatten_all()?.to_vec1::<f32>()?;
    let per = 3 * s * s;
    Ok((0..n)
        .map(|i| chw_to_image(&values[i * per..(i + 1) * per], s as u32))
        .collect())
}

/// A grid of equally sized tiles, row by row; `None` is a blank tile.
pub(crate) fn grid(tiles: &[Vec<Option<&RgbImage>>], size: u32) -> RgbImage {
    let rows = tiles.len() as u32;
    let cols = tiles.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let mut out = RgbImage::from_pixel(cols * size, rows * size, image::Rgb([255, 255, 255]));
    for (r, row) in tiles.iter().enumerate() {
        for (c, tile) in row.iter().enumerate() {
            if let Some(tile) = tile {
                image::imageops::replace(
                    &mut out,
                    *tile,
                    i64::from(c as u32 * size),
                    i64::from(r as u32 * size),
                );
            }
        }
    }
    out
}

/// Write a file through a temporary file in the same folder and a rename, so that a
/// failure never leaves a partial output behind.
pub(crate) fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<()>,
) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    let result = (|| -> Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut writer = std::io::BufWriter::new(file);
        write(&mut writer)?;
        std::io::Write::flush(&mut writer)?;
        drop(writer);
        std::fs::rename(&tmp, path)?;
        Ok(())
    })()
    .with_context(|| format!("cannot write {}", path.display()));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub(crate) fn write_png(image: &RgbImage, path: &Path) -> Result<()> {
    write_atomic_with(path, |file| {
        image.write_to(file, image::ImageFormat::Png)?;
        Ok(())
    })
}

/// Pairs per forward pass: bounded memory for folders of any size.
const CHUNK: usize = 64;

/// Run `f` over `0..n` in chunks of [`CHUNK`] with a progress bar when there is more
/// than one, and collect the images.
fn in_chunks(
    n: usize,
    what: &str,
    f: impl Fn(usize, usize) -> Result<Tensor>,
) -> Result<Vec<RgbImage>> {
    let bar = if n > CHUNK {
        let bar = indicatif::ProgressBar::new(n as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
            "{what} [{{wide_bar}}] {{pos}}/{{len}} ETA {{eta}}"
        )) {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(CHUNK) {
        let len = CHUNK.min(n - start);
        out.extend(to_images(&f(start, len)?)?);
        bar.inc(len as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// `encode` over the rows of `images` in chunks of [`CHUNK`], concatenated.
fn encode_in_chunks(
    images: &Tensor,
    encode: impl Fn(&Tensor) -> osips_models::Result<Tensor>,
) -> Result<Tensor> {
    let n = images.dim(0)?;
    let parts = (0..n)
        .step_by(CHUNK)
        .map(|start| Ok(encode(&images.narrow(0, start, CHUNK.min(n - start))?)?))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&parts, 0)?)
}

pub fn swap(args: &SwapArgs) -> Result<()> {
    let identities = image_paths(&args.identity)?;
    let attributes = image_paths(&args.attribute)?;
    let model = load_model(&args.checkpoint)?;
    let s = model.image_size();
    let (who, who_shown) = load_faces(&identities, s)?;
    let (how, how_shown) = load_faces(&attributes, s)?;
    let (n_id, n_attr) = (identities.len(), attributes.len());
    // Each face goes through its encoder once; the pairs (identity-major) only index the
    // vectors, so memory grows with n_id + n_attr, not their product.
    let identity = encode_in_chunks(&who, |x| model.identity_vector(x))?;
    let attribute = encode_in_chunks(&how, |x| model.attribute_vector(x))?;
    let swapped = in_chunks(n_id * n_attr, "swapping", |start, len| {
        let rows = |f: fn(usize, usize) -> usize| -> Result<Tensor> {
            let idx: Vec<u32> = (start..start + len).map(|k| f(k, n_attr) as u32).collect();
            Ok(Tensor::new(idx.as_slice(), &Device::Cpu)?)
        };
        let who_rows = identity.index_select(&rows(|k, m| k / m)?, 0)?;
        let how_rows = attribute.index_select(&rows(|k, m| k % m)?, 0)?;
        Ok(model.generate(&who_rows, &how_rows)?)
    })?;
    if let Some(dir) = &args.each {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let stem = |p: &Path| {
            p.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "image".into())
        };
        for (i, who) in identities.iter().enumerate() {
            for (j, how) in attributes.iter().enumerate() {
                let path = dir.join(format!("{}__{}.png", stem(who), stem(how)));
                write_png(&swapped[i * n_attr + j], &path)?;
            }
        }
        println!(
            "wrote {} images into {} (checkpoint step {})",
            n_id * n_attr,
            dir.display(),
            model.step()
        );
        return Ok(());
    }
    let image = if n_id == 1 && n_attr == 1 {
        swapped[0].clone()
    } else {
        let mut rows = vec![std::iter::once(None)
            .chain(how_shown.iter().map(Some))
            .collect::<Vec<_>>()];
        for (i, face) in who_shown.iter().enumerate() {
            let mut row = vec![Some(face)];
            row.extend(swapped[i * n_attr..(i + 1) * n_attr].iter().map(Some));
            rows.push(row);
        }
        grid(&rows, s as u32)
    };
    write_png(&image, &args.output)?;
    println!(
        "wrote {} ({n_id} identit{} × {n_attr} attribute image{}, checkpoint step {})",
        args.output.display(),
        if n_id == 1 { "y" } else { "ies" },
        if n_attr == 1 { "" } else { "s" },
        model.step()
    );
    Ok(())
}

pub fn sample(args: &SampleArgs) -> Result<()> {
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    if !args.identity.is_file() {
        bail!("{}: no such image file", args.identity.display());
    }
    let model = load_model(&args.checkpoint)?;
    let s = model.image_size();
    let (who, shown) = load_faces(std::slice::from_ref(&args.identity), s)?;
    let samples = to_images(&model.sample(&who, args.count, args.seed)?)?;
    let row: Vec<Option<&RgbImage>> = std::iter::once(Some(&shown[0]))
        .chain(samples.iter().map(Some))
        .collect();
    write_png(&grid(&[row], s as u32), &args.output)?;
    println!(
        "wrote {} (the input, then {} samples with seed {}; checkpoint step {})",
        args.output.display(),
        args.count,
        args.seed,
        model.step()
    );
    Ok(())
}
