//! `cargo bench -p osips-data`: data pipeline throughput and index costs, printed as a
//! markdown table. Set `OSIPS_BENCH_QUICK=1` for a fast smoke run (fewer iterations,
//! 100,000-record indexes).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use osips_data::source::recordio::{IrHeader, RecordIoWriter};
use osips_data::source::tsv::format_tsv_line;
use osips_data::synthetic::{render, train_identity_seed, Attributes, Identity};
use osips_data::{
    center_crop_resize, decode_image, write_chw, DataConfig, Dataset, FaceSource, Loader,
    RecordIoSource, SamplerState, SourceSpec, TsvSource,
};
use rayon::prelude::*;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn fixture_jpegs() -> BenchResult<Vec<Vec<u8>>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faces");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(root)? {
        for f in std::fs::read_dir(dir?.path())? {
            out.push(std::fs::read(f?.path())?);
        }
    }
    Ok(out)
}

fn pool(threads: usize) -> BenchResult<rayon::ThreadPool> {
    Ok(rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?)
}

/// Images per second for decode + centre-crop/resize + flip + normalise.
fn decode_rate(jpegs: &[Vec<u8>], size: u32, threads: usize, n: usize) -> BenchResult<f64> {
    let pool = pool(threads)?;
    let per = 3 * size as usize * size as usize;
    let start = Instant::now();
    let ok = pool.install(|| {
        (0..n)
            .into_par_iter()
            .map(|i| -> bool {
                let mut out = vec![0f32; per];
                decode_image(&jpegs[i % jpegs.len()], "bench")
                    .map(|img| center_crop_resize(&img, size))
                    .and_then(|img| write_chw(&img, i % 2 == 0, &mut out))
                    .is_ok()
            })
            .filter(|&ok| ok)
            .count()
    });
    if ok != n {
        return Err("a fixture failed to decode".into());
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn render_rate(size: u32, threads: usize, n: usize) -> BenchResult<f64> {
    let pool = pool(threads)?;
    let start = Instant::now();
    pool.install(|| {
        (0..n).into_par_iter().for_each(|k| {
            let id = Identity::from_seed(train_identity_seed(k as u32 % 97));
            std::hint::black_box(render(&id, &Attributes::from_seed(k as u64), size));
        })
    });
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Pairs per second through the whole [`Loader`] (sampling, reads, decode, batching).
fn loader_rate(cfg: &DataConfig, threads: usize, batches: usize) -> BenchResult<(f64, f64)> {
    let ds = Arc::new(Dataset::open(cfg)?);
    let mut loader = Loader::with_threads(ds, cfg, SamplerState::start(1), threads)?;
    loader.next_batch()?;
    let start = Instant::now();
    for _ in 0..batches {
        loader.next_batch()?;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(((batches * cfg.batch_size) as f64 / secs, secs))
}

fn write_recordio(dir: &Path, n: usize, per_identity: usize) -> BenchResult<()> {
    let mut w = RecordIoWriter::create(&dir.join("train.rec"), &dir.join("train.idx"))?;
    let n_ids = n.div_ceil(per_identity);
    let image_end = n as u64 + 1;
    let header0 = IrHeader {
        flag: 2,
        label: 0.0,
        id: 0,
        id2: 0,
        labels: vec![image_end as f32, (image_end + n_ids as u64) as f32],
    };
    w.write(0, &header0.pack(&[]))?;
    let fake_jpeg = [
        0xffu8, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0xff, 0xd9,
    ];
    for k in 0..n {
        let h = IrHeader {
            flag: 0,
            label: (k / per_identity) as f32,
            id: k as u64 + 1,
            id2: 0,
            labels: vec![],
        };
        w.write(k as u64 + 1, &h.pack(&fake_jpeg))?;
    }
    for c in 0..n_ids {
        let s = (c * per_identity) as f32 + 1.0;
        let e = ((c + 1) * per_identity).min(n) as f32 + 1.0;
        let h = IrHeader {
            flag: 2,
            label: 0.0,
            id: 0,
            id2: 0,
            labels: vec![s, e],
        };
        w.write(image_end + c as u64, &h.pack(&[]))?;
    }
    w.finish()?;
    std::fs::write(dir.join("property"), format!("{n_ids},112,112\n"))?;
    Ok(())
}

fn write_tsv(path: &Path, n: usize, per_identity: usize) -> BenchResult<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let fake_jpeg = [
        0xffu8, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0xff, 0xd9,
    ];
    for k in 0..n {
        let mid = format!("m.0{:06x}", k / per_identity);
        let line = format_tsv_line(
            &mid,
            &(k % per_identity).to_string(),
            "http://i.example/x.jpg",
            "http://p.example/",
            &k.to_string(),
            [0.1, 0.1, 0.9, 0.9],
            &fake_jpeg,
        );
        f.write_all(line.as_bytes())?;
    }
    f.flush()?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> BenchResult<()> {
    // `cargo bench` passes `--bench`; ignore arguments.
    let quick = std::env::var("OSIPS_BENCH_QUICK").is_ok_and(|v| v == "1");
    let n_decode = if quick { 300 } else { 3000 };
    let n_render = if quick { 100 } else { 1000 };
    let n_index = if quick { 100_000 } else { 1_000_000 };
    let jpegs = fixture_jpegs()?;
    let mut rows: Vec<(String, String)> = Vec::new();
    for size in [64u32, 128] {
        for threads in [1usize, 2] {
            let r = decode_rate(&jpegs, size, threads, n_decode)?;
            rows.push((
                format!("decode+resize+flip+normalise 150² JPEG → {size} px, {threads} thread(s)"),
                format!("{r:.0} images/s"),
            ));
        }
    }
    for size in [64u32, 128] {
        for threads in [1usize, 2] {
            let r = render_rate(size, threads, n_render / if size == 128 { 2 } else { 1 })?;
            rows.push((
                format!("synthetic render {size} px, {threads} thread(s)"),
                format!(
                    "{r:.0} renders/s ({:.2} ms each per thread)",
                    1e3 * threads as f64 / r
                ),
            ));
        }
    }

    let tmp = tempfile::tempdir()?;
    // Whole loader on a folder of the real photos and on synthetic faces.
    let casia = tmp.path().join("casia");
    for (k, j) in jpegs.iter().enumerate() {
        let d = casia.join(format!("{:07}", k % 3));
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join(format!("{k:03}.jpg")), j)?;
    }
    for (spec, size) in [
        (format!("folder:{}", casia.display()), 64u32),
        ("synthetic:1000".to_string(), 64),
    ] {
        let cfg = DataConfig {
            source: SourceSpec::parse(&spec)?,
            unlabeled: None,
            image_size: size,
            batch_size: 32,
            flip: true,
            prefetch: 2,
            seed: 1,
        };
        let (r, _) = loader_rate(&cfg, 2, if quick { 3 } else { 20 })?;
        let kind = spec.split(':').next().unwrap_or("?");
        rows.push((
            format!("Loader, {kind} {size} px, batch 32, 2 threads (3 images per pair)"),
            format!("{r:.0} pairs/s"),
        ));
    }

    // Index costs.
    let rec_dir = tmp.path().join("pack");
    std::fs::create_dir_all(&rec_dir)?;
    write_recordio(&rec_dir, n_index, 60)?;
    let start = Instant::now();
    let src = RecordIoSource::open(&rec_dir)?;
    let open_s = start.elapsed().as_secs_f64();
    if src.len() != n_index {
        return Err(format!(
            "recordio index has {} images, expected {n_index}",
            src.len()
        )
        .into());
    }
    let src_bytes = src.index_bytes() as f64 / n_index as f64;
    let start = Instant::now();
    let ds = Dataset::from_sources(Box::new(src), None, 64).map(|_| ());
    let ds_s = start.elapsed().as_secs_f64();
    // The fake JPEGs fail the open-time probe on purpose; only the index build is timed.
    let _ = ds;
    rows.push((
        format!(
            "RecordIO index, {n_index} records ({} identities)",
            n_index.div_ceil(60)
        ),
        format!(
            "open {:.2} s; {src_bytes:.1} B/image (+4 B/image identity index, built in {:.2} s)",
            open_s, ds_s
        ),
    ));

    let tsv = tmp.path().join("big.tsv");
    write_tsv(&tsv, n_index, 60)?;
    let size_mb = std::fs::metadata(&tsv)?.len() as f64 / 1e6;
    let start = Instant::now();
    let src = TsvSource::open(&tsv)?;
    let open_s = start.elapsed().as_secs_f64();
    if src.len() != n_index {
        return Err(format!("tsv index has {} lines, expected {n_index}", src.len()).into());
    }
    let bytes = src.index_bytes() as f64 / n_index as f64;
    rows.push((
        format!("MS-Celeb TSV index, {n_index} lines ({size_mb:.0} MB file)"),
        format!(
            "open {open_s:.2} s; {bytes:.1} B/face (incl. MID names; +4 B/face identity index)"
        ),
    ));

    println!("| measurement | result |\n|---|---|");
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
    println!(
        "\n(machine: {} logical CPUs; release build)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    Ok(())
}
