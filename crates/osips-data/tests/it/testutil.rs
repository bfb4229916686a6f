//! Fixture writers: real face photos (copied into `tests/fixtures/faces`) written into
//! each dataset format the way the real tools write them.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use osips_data::{DataConfig, SourceSpec};

/// One real photo: identity folder name and JPEG bytes.
#[derive(Clone, Debug)]
pub struct Photo {
    pub identity: String,
    pub jpeg: Vec<u8>,
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faces")
}

/// The fixture photos, sorted by identity then file name.
pub fn photos() -> Vec<Photo> {
    let mut out = Vec::new();
    let mut ids: Vec<_> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    ids.sort();
    for dir in ids {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            out.push(Photo {
                identity: dir.file_name().unwrap().to_string_lossy().into_owned(),
                jpeg: std::fs::read(&f).unwrap(),
            });
        }
    }
    assert!(out.len() >= 6, "fixtures missing");
    out
}

/// Distinct identities of `photos`, in order.
pub fn identities(photos: &[Photo]) -> Vec<String> {
    let mut ids: Vec<String> = photos.iter().map(|p| p.identity.clone()).collect();
    ids.dedup();
    ids
}

/// A CASIA-WebFace tree: `root/<7-digit id>/<3-digit>.jpg`. Returns the id folder names.
pub fn write_casia_tree(root: &Path, photos: &[Photo]) -> Vec<String> {
    let ids = identities(photos);
    let mut names = Vec::new();
    for (k, id) in ids.iter().enumerate() {
        let name = format!("{:07}", 45 + k);
        let dir = root.join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        for (j, p) in photos.iter().filter(|p| &p.identity == id).enumerate() {
            std::fs::write(dir.join(format!("{:03}.jpg", j + 1)), &p.jpeg).unwrap();
        }
        names.push(name);
    }
    names
}

/// One MS-Celeb-1M TSV line per face: MID, rank, URLs, FaceID, base64 rectangle (4 LE
/// f32), base64 JPEG. MIDs are `m.0<identity index>`.
pub fn tsv_line(mid: &str, rank: usize, rect: [f32; 4], jpeg: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut r = Vec::new();
    for v in rect {
        r.extend_from_slice(&v.to_le_bytes());
    }
    format!(
        "{mid}\t{rank}\thttp://img.example/{mid}/{rank}.jpg\thttp://page.example/{mid}\t{mid}-{rank}\t{}\t{}\n",
        b64.encode(&r),
        b64.encode(jpeg)
    )
}

pub fn write_tsv(path: &Path, photos: &[Photo]) -> Vec<String> {
    let ids = identities(photos);
    let mut f = std::fs::File::create(path).unwrap();
    for (rank, p) in photos.iter().enumerate() {
        let k = ids.iter().position(|i| i == &p.identity).unwrap();
        let mid = format!("m.0{k}");
        f.write_all(tsv_line(&mid, rank, [0.1, 0.15, 0.9, 0.85], &p.jpeg).as_bytes())
            .unwrap();
    }
    ids.iter()
        .enumerate()
        .map(|(k, _)| format!("m.0{k}"))
        .collect()
}

const MAGIC: u32 = 0xced7_230a;

/// dmlc frames of one record, split at 4-byte aligned magic occurrences (independent of
/// the library's writer).
pub fn frames(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pieces: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 4 <= payload.len() {
        if u32::from_le_bytes(payload[i..i + 4].try_into().unwrap()) == MAGIC {
            pieces.push(&payload[start..i]);
            start = i + 4;
        }
        i += 4;
    }
    pieces.push(&payload[start..]);
    let n = pieces.len();
    for (k, piece) in pieces.iter().enumerate() {
        let cflag: u32 = match (n, k) {
            (1, _) => 0,
            (_, 0) => 1,
            (_, k) if k == n - 1 => 3,
            _ => 2,
        };
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&((cflag << 29) | piece.len() as u32).to_le_bytes());
        out.extend_from_slice(piece);
        out.resize(out.len().div_ceil(4) * 4, 0);
    }
    out
}

/// MXNet `recordio.pack`: `IfQQ` header, extra labels when flag > 0, then the image.
pub fn pack(labels: &[f32], id: u64, image: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if labels.len() == 1 {
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&labels[0].to_le_bytes());
    } else {
        out.extend_from_slice(&(labels.len() as u32).to_le_bytes());
        out.extend_from_slice(&0f32.to_le_bytes());
    }
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    if labels.len() != 1 {
        for l in labels {
            out.extend_from_slice(&l.to_le_bytes());
        }
    }
    out.extend_from_slice(image);
    out
}

/// An insightface pack as its packing scripts write it: record 0 = header with labels
/// `[first id record, end]`, images `1..=n` with their class, then one record per
/// identity with its `[start, end)` image range; `train.idx` lines `key\toffset`;
/// `property` = `classes,112,112`. Returns the class of each photo.
pub fn write_recordio_pack(dir: &Path, photos: &[Photo]) -> Vec<u32> {
    std::fs::create_dir_all(dir).unwrap();
    let ids = identities(photos);
    let classes: Vec<u32> = photos
        .iter()
        .map(|p| ids.iter().position(|i| i == &p.identity).unwrap() as u32)
        .collect();
    let n = photos.len() as u64;
    let image_end = n + 1;
    let id_end = image_end + ids.len() as u64;
    let mut records: Vec<(u64, Vec<u8>)> =
        vec![(0, pack(&[image_end as f32, id_end as f32], 0, &[]))];
    for (k, p) in photos.iter().enumerate() {
        records.push((
            k as u64 + 1,
            pack(&[classes[k] as f32], k as u64 + 1, &p.jpeg),
        ));
    }
    for c in 0..ids.len() as u32 {
        let start = classes.iter().position(|&x| x == c).unwrap() as u64 + 1;
        let end = classes.iter().rposition(|&x| x == c).unwrap() as u64 + 2;
        records.push((
            image_end + c as u64,
            pack(&[start as f32, end as f32], 0, &[]),
        ));
    }
    let mut rec = Vec::new();
    let mut idx = String::new();
    for (key, payload) in &records {
        idx.push_str(&format!("{key}\t{}\n", rec.len()));
        rec.extend_from_slice(&frames(payload));
    }
    std::fs::write(dir.join("train.rec"), rec).unwrap();
    std::fs::write(dir.join("train.idx"), idx).unwrap();
    std::fs::write(dir.join("property"), format!("{},112,112\n", ids.len())).unwrap();
    classes
}

pub fn config(source: SourceSpec, image_size: u32, batch_size: usize) -> DataConfig {
    DataConfig {
        source,
        unlabeled: None,
        image_size,
        batch_size,
        flip: true,
        prefetch: 2,
        seed: 7,
    }
}

/// Mean absolute difference of two equally sized RGB images, in 8-bit levels.
pub fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let s: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (x as i64 - y as i64).unsigned_abs())
        .sum();
    s as f64 / a.as_raw().len() as f64
}

pub fn slow_tests() -> bool {
    std::env::var("OSIPS_SLOW_TESTS").is_ok_and(|v| v == "1")
}
