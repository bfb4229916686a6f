//! insightface / MXNet RecordIO packs: `train.rec` + `train.idx` (+ `property`).
//!
//! Framing (dmlc-core `recordio`): each frame is `u32 magic = 0xced7230a`, `u32 lrecord`
//! (continuation flag in bits 29–31: 0 whole, 1 start, 2 middle, 3 end; length in the low
//! 29 bits), the payload, zero padding to 4 bytes. A writer splits a record wherever the
//! magic appears at a 4-byte aligned position of its payload; the reader re-inserts it.
//!
//! Payload (MXNet `recordio.pack`): `IRHeader` packed as `IfQQ` (flag `u32`, label `f32`,
//! id `u64`, id2 `u64`, little-endian, 24 bytes); when `flag > 0`, `flag` more `f32`
//! labels follow (and `label` is 0); then the image bytes.
//!
//! insightface convention: record 0 has `flag > 0` and labels `[a, b]`; images are records
//! `1..a`, each with its class in `label` (or `labels[0]`); records `a..b` hold, per identity,
//! the `[start, end)` range of its image records. The `.idx` file has lines `key\toffset`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::{read_exact_at, BadInput, FaceData, FaceSource};
use crate::DataError;

/// The dmlc RecordIO frame magic.
pub const RECORDIO_MAGIC: u32 = 0xced7_230a;
/// Size of MXNet's packed `IRHeader`.
pub const IR_HEADER_SIZE: usize = 24;
/// Largest record length the framing can express (29 bits).
pub const MAX_FRAME_LEN: u32 = (1 << 29) - 1;
/// Largest assembled record accepted when reading.
pub const MAX_RECORD_LEN: usize = 256 << 20;

/// MXNet's image record header.
#[derive(Clone, Debug, PartialEq)]
pub struct IrHeader {
    /// Number of extra labels (0: the single label is `label`).
    pub flag: u32,
    /// The label when `flag == 0`.
    pub label: f32,
    /// Record id.
    pub id: u64,
    /// Second id (unused by insightface).
    pub id2: u64,
    /// The `flag` extra labels.
    pub labels: Vec<f32>,
}

impl IrHeader {
    /// The class label: `label`, or `labels[0]` when `flag > 0`.
    pub fn class_label(&self) -> f32 {
        if self.flag > 0 {
            self.labels.first().copied().unwrap_or(self.label)
        } else {
            self.label
        }
    }

    /// Packs this header followed by `image` (MXNet `recordio.pack`).
    pub fn pack(&self, image: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(IR_HEADER_SIZE + 4 * self.labels.len() + image.len());
        let flag = self.labels.len() as u32;
        out.extend_from_slice(&flag.to_le_bytes());
        let label = if flag > 0 { 0.0 } else { self.label };
        out.extend_from_slice(&label.to_le_bytes());
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.id2.to_le_bytes());
        for l in &self.labels {
            out.extend_from_slice(&l.to_le_bytes());
        }
        out.extend_from_slice(image);
        out
    }
}

/// Splits a record payload into its header and image bytes (MXNet `recordio.unpack`).
/// Never panics, whatever the bytes.
pub fn unpack_record(payload: &[u8]) -> Result<(IrHeader, &[u8]), String> {
    if payload.len() < IR_HEADER_SIZE {
        return Err(format!(
            "record of {} bytes is shorter than the 24-byte IRHeader",
            payload.len()
        ));
    }
    let u32_at =
        |o: usize| u32::from_le_bytes([payload[o], payload[o + 1], payload[o + 2], payload[o + 3]]);
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&payload[o..o + 8]);
        u64::from_le_bytes(b)
    };
    let flag = u32_at(0);
    let label = f32::from_bits(u32_at(4));
    let id = u64_at(8);
    let id2 = u64_at(16);
    let extra = (flag as usize).saturating_mul(4);
    let rest = &payload[IR_HEADER_SIZE..];
    if extra > rest.len() {
        return Err(format!(
            "IRHeader flag {flag} announces {flag} labels, more than the record holds"
        ));
    }
    let labels = rest[..extra]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((
        IrHeader {
            flag,
            label,
            id,
            id2,
            labels,
        },
        &rest[extra..],
    ))
}

/// Reads one (possibly multi-frame) record at `offset` of `file` (`file_len` bytes long),
/// returning the assembled payload and the offset just past it.
pub fn read_record_at(file: &File, file_len: u64, offset: u64) -> Result<(Vec<u8>, u64), String> {
    let mut out = Vec::new();
    let mut pos = offset;
    let mut first = true;
    loop {
        if pos.checked_add(8).is_none_or(|end| end > file_len) {
            return Err(format!(
                "frame header at {pos} is past the end of the file ({file_len} bytes)"
            ));
        }
        let mut head = [0u8; 8];
        read_exact_at(file, &mut head, pos).map_err(|e| e.to_string())?;
        let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        if magic != RECORDIO_MAGIC {
            return Err(format!(
                "bad magic {magic:#010x} at {pos} (expected {RECORDIO_MAGIC:#010x})"
            ));
        }
        let lrec = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let cflag = lrec >> 29;
        let len = (lrec & MAX_FRAME_LEN) as u64;
        match (first, cflag) {
            (true, 0 | 1) | (false, 2 | 3) => {}
            _ => return Err(format!("unexpected continuation flag {cflag} at {pos}")),
        }
        let data_start = pos + 8;
        if data_start + len > file_len {
            return Err(format!(
                "record length {len} at {pos} runs past the end of the file ({file_len} bytes)"
            ));
        }
        if out.len() + len as usize > MAX_RECORD_LEN {
            return Err(format!(
                "record at {offset} is longer than {MAX_RECORD_LEN} bytes"
            ));
        }
        let old = out.len();
        out.resize(old + len as usize, 0);
        read_exact_at(file, &mut out[old..], data_start).map_err(|e| e.to_string())?;
        pos = data_start + len.div_ceil(4) * 4;
        if cflag == 0 || cflag == 3 {
            return Ok((out, pos));
        }
        out.extend_from_slice(&RECORDIO_MAGIC.to_le_bytes());
        first = false;
    }
}

/// Writes a RecordIO pack like MXNet's `MXIndexedRecordIO` (and so `im2rec`): frames with
/// dmlc splitting and padding, and an `.idx` line `key\toffset` per record.
pub struct RecordIoWriter {
    rec: BufWriter<File>,
    idx: BufWriter<File>,
    pos: u64,
    rec_path: PathBuf,
}

impl RecordIoWriter {
    /// Creates (truncates) `rec_path` and `idx_path`.
    pub fn create(rec_path: &Path, idx_path: &Path) -> Result<RecordIoWriter, DataError> {
        let rec = File::create(rec_path).map_err(|e| DataError::io(rec_path, e))?;
        let idx = File::create(idx_path).map_err(|e| DataError::io(idx_path, e))?;
        Ok(RecordIoWriter {
            rec: BufWriter::with_capacity(1 << 20, rec),
            idx: BufWriter::with_capacity(1 << 16, idx),
            pos: 0,
            rec_path: rec_path.to_path_buf(),
        })
    }

    /// Appends record `key` with `payload` (already packed with [`IrHeader::pack`]).
    pub fn write(&mut self, key: u64, payload: &[u8]) -> Result<(), DataError> {
        let io = |e| DataError::io(&self.rec_path, e);
        writeln!(self.idx, "{key}\t{}", self.pos).map_err(io)?;
        let magic = RECORDIO_MAGIC.to_le_bytes();
        let aligned = payload.len() / 4 * 4;
        let mut start = 0usize;
        let mut i = 0usize;
        while i < aligned {
            if payload[i..i + 4] == magic {
                let cflag = if start == 0 { 1 } else { 2 };
                self.frame(cflag, &payload[start..i])?;
                start = i + 4;
            }
            i += 4;
        }
        let cflag = if start == 0 { 0 } else { 3 };
        self.frame(cflag, &payload[start..])
    }

    fn frame(&mut self, cflag: u32, data: &[u8]) -> Result<(), DataError> {
        let len = u32::try_from(data.len())
            .ok()
            .filter(|&l| l <= MAX_FRAME_LEN)
            .ok_or_else(|| DataError::RecordIo {
                location: self.rec_path.display().to_string(),
                message: format!("record of {} bytes is too long for RecordIO", data.len()),
            })?;
        let pad = (4 - data.len() % 4) % 4;
        let io = |e| DataError::io(&self.rec_path, e);
        self.rec
            .write_all(&RECORDIO_MAGIC.to_le_bytes())
            .map_err(io)?;
        self.rec
            .write_all(&((cflag << 29) | len).to_le_bytes())
            .map_err(io)?;
        self.rec.write_all(data).map_err(io)?;
        self.rec.write_all(&[0u8; 3][..pad]).map_err(io)?;
        self.pos += 8 + data.len() as u64 + pad as u64;
        Ok(())
    }

    /// Flushes both files.
    pub fn finish(mut self) -> Result<(), DataError> {
        self.rec
            .flush()
            .map_err(|e| DataError::io(&self.rec_path, e))?;
        self.idx
            .flush()
            .map_err(|e| DataError::io(&self.rec_path, e))
    }
}

/// Writes a whole insightface face pack into `dir` (`train.rec`, `train.idx`, `property`):
/// `faces` as `(class, encoded image)` in class order, then the identity ranges and header
/// record 0, as insightface's packing scripts do.
pub fn write_face_pack(
    dir: &Path,
    faces: impl IntoIterator<Item = (u32, Vec<u8>)>,
    image_size: (u32, u32),
) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let mut w = RecordIoWriter::create(&dir.join("train.rec"), &dir.join("train.idx"))?;
    // Record 0 is written first in the file but its labels are known only at the end:
    // reserve it with the same length (two f32 labels) and rewrite it afterwards.
    let placeholder = IrHeader {
        flag: 2,
        label: 0.0,
        id: 0,
        id2: 0,
        labels: vec![0.0, 0.0],
    };
    w.write(0, &placeholder.pack(&[]))?;
    let mut key = 1u64;
    let mut ranges: Vec<(u32, u64, u64)> = Vec::new();
    for (class, bytes) in faces {
        let header = IrHeader {
            flag: 0,
            label: class as f32,
            id: key,
            id2: 0,
            labels: vec![],
        };
        w.write(key, &header.pack(&bytes))?;
        match ranges.last_mut() {
            Some((c, _, end)) if *c == class => *end = key + 1,
            _ => ranges.push((class, key, key + 1)),
        }
        key += 1;
    }
    let image_end = key;
    for &(_, start, end) in &ranges {
        let header = IrHeader {
            flag: 2,
            label: 0.0,
            id: key,
            id2: 0,
            labels: vec![start as f32, end as f32],
        };
        w.write(key, &header.pack(&[]))?;
        key += 1;
    }
    w.finish()?;
    let rec_path = dir.join("train.rec");
    let header0 = IrHeader {
        flag: 2,
        label: 0.0,
        id: 0,
        id2: 0,
        labels: vec![image_end as f32, key as f32],
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&rec_path)
        .map_err(|e| DataError::io(&rec_path, e))?;
    // Frame header (8 bytes) then the payload, same length as the placeholder.
    let payload = header0.pack(&[]);
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(8))
        .map_err(|e| DataError::io(&rec_path, e))?;
    f.write_all(&payload)
        .map_err(|e| DataError::io(&rec_path, e))?;
    let n_classes = ranges.iter().map(|r| r.0 + 1).max().unwrap_or(0);
    std::fs::write(
        dir.join("property"),
        format!("{n_classes},{},{}\n", image_size.0, image_size.1),
    )
    .map_err(|e| DataError::io(dir.join("property"), e))
}

/// An insightface RecordIO pack, read by offset. About 12 bytes of index per image.
#[derive(Debug)]
pub struct RecordIoSource {
    rec_path: PathBuf,
    file: File,
    file_len: u64,
    offsets: Vec<u64>,
    /// Class per image (`u32::MAX`: none).
    classes: Vec<u32>,
    keys_start: u64,
    n_identities: usize,
    property: Option<(usize, u32, u32)>,
    skipped: Vec<BadInput>,
    description: String,
}

impl RecordIoSource {
    /// Opens a pack: `path` is a directory holding `train.rec` and `train.idx`, or the
    /// `.rec` file itself (its `.idx` next to it). Without an `.idx` the `.rec` is scanned.
    /// Index entries past the end of the file are skipped and reported.
    pub fn open(path: &Path) -> Result<RecordIoSource, DataError> {
        let (rec_path, idx_path, prop_path) = if path.is_dir() {
            (
                path.join("train.rec"),
                path.join("train.idx"),
                path.join("property"),
            )
        } else {
            let dir = path.parent().unwrap_or_else(|| Path::new("."));
            (
                path.to_path_buf(),
                path.with_extension("idx"),
                dir.join("property"),
            )
        };
        let file = File::open(&rec_path).map_err(|e| DataError::io(&rec_path, e))?;
        let file_len = file
            .metadata()
            .map_err(|e| DataError::io(&rec_path, e))?
            .len();
        let tag = format!("recordio {}", rec_path.display());
        let mut skipped = Vec::new();
        let bad = |location: String, message: String| DataError::RecordIo { location, message };

        // key -> offset, from the .idx or by scanning.
        let mut keys: BTreeMap<u64, u64> = BTreeMap::new();
        if idx_path.exists() {
            let f = File::open(&idx_path).map_err(|e| DataError::io(&idx_path, e))?;
            let mut reader = BufReader::with_capacity(1 << 20, f);
            let mut line = String::new();
            let mut line_no = 0u64;
            loop {
                line.clear();
                let n = reader
                    .read_line(&mut line)
                    .map_err(|e| DataError::io(&idx_path, e))?;
                if n == 0 {
                    break;
                }
                line_no += 1;
                let text = line.trim();
                if text.is_empty() {
                    continue;
                }
                let location = format!("{}:{line_no}", idx_path.display());
                let mut parts = text.split_whitespace();
                let parsed = match (parts.next(), parts.next(), parts.next()) {
                    (Some(k), Some(o), None) => k.parse::<u64>().ok().zip(o.parse::<u64>().ok()),
                    _ => None,
                };
                match parsed {
                    Some((key, offset)) if offset.saturating_add(8) <= file_len => {
                        keys.insert(key, offset);
                    }
                    Some((_, offset)) => skipped.push(BadInput {
                        source: tag.clone(),
                        location,
                        reason: format!(
                            "index entry offset {offset} is past the end of the .rec ({file_len} bytes): skipped"
                        ),
                    }),
                    None => skipped.push(BadInput {
                        source: tag.clone(),
                        location,
                        reason: format!("malformed index line {text:?} (expected `key<TAB>offset`): skipped"),
                    }),
                }
            }
        } else {
            let mut pos = 0u64;
            let mut key = 0u64;
            while pos < file_len {
                match read_record_at(&file, file_len, pos) {
                    Ok((_, next)) => {
                        keys.insert(key, pos);
                        key += 1;
                        pos = next;
                    }
                    Err(message) => {
                        skipped.push(BadInput {
                            source: tag.clone(),
                            location: format!("{}@{pos}", rec_path.display()),
                            reason: format!(
                                "{message}: rest of the file skipped (no .idx to resync)"
                            ),
                        });
                        break;
                    }
                }
            }
        }

        let read_header = |offset: u64| -> Result<IrHeader, String> {
            let (payload, _) = read_record_at(&file, file_len, offset)?;
            unpack_record(&payload).map(|(h, _)| h)
        };

        // Record 0: the insightface header with the image-key range.
        let mut image_keys: Option<(u64, u64)> = None;
        let mut id_keys: Option<(u64, u64)> = None;
        if let Some(&off0) = keys.get(&0) {
            match read_header(off0) {
                Ok(h) if h.flag > 0 && h.labels.len() >= 2 => {
                    let a = h.labels[0];
                    let b = h.labels[1];
                    if a.is_finite() && b.is_finite() && a >= 1.0 && b >= a {
                        image_keys = Some((1, a as u64));
                        id_keys = Some((a as u64, b as u64));
                    }
                }
                Ok(_) => {}
                Err(message) => {
                    return Err(bad(
                        format!("{}@{off0}", rec_path.display()),
                        format!("header record 0: {message}"),
                    ));
                }
            }
        }

        let mut offsets = Vec::new();
        let mut classes = Vec::new();
        let keys_start;
        let mut n_identities = 0usize;
        let mut via_ranges = false;
        if let (Some((k0, k1)), Some((i0, i1))) = (image_keys, id_keys) {
            keys_start = k0;
            for (&k, &off) in keys.range(k0..k1) {
                offsets.push(off);
                classes.push(u32::MAX);
                let _ = k;
            }
            // Identity ranges: class c = key - i0 covers image keys [start, end).
            if i1 > i0 {
                let key_list: Vec<u64> = keys.range(k0..k1).map(|(&k, _)| k).collect();
                let mut ok = true;
                for (c, (&key, &off)) in keys.range(i0..i1).enumerate() {
                    let _ = key;
                    match read_header(off) {
                        Ok(h)
                            if h.labels.len() >= 2
                                && h.labels[0] >= 0.0
                                && h.labels[1] >= h.labels[0] =>
                        {
                            let (s, e) = (h.labels[0] as u64, h.labels[1] as u64);
                            let lo = key_list.partition_point(|&k| k < s);
                            let hi = key_list.partition_point(|&k| k < e);
                            for cl in &mut classes[lo..hi] {
                                *cl = c as u32;
                            }
                            n_identities = c + 1;
                        }
                        _ => {
                            ok = false;
                            break;
                        }
                    }
                }
                via_ranges = ok && n_identities > 0;
            }
            if !via_ranges {
                classes.iter_mut().for_each(|c| *c = u32::MAX);
            }
        } else {
            keys_start = keys.keys().next().copied().unwrap_or(0);
            for &off in keys.values() {
                offsets.push(off);
                classes.push(u32::MAX);
            }
        }
        if !via_ranges {
            // Read every image's header for its label.
            n_identities = 0;
            for (i, &off) in offsets.iter().enumerate() {
                match read_header(off) {
                    Ok(h) => {
                        let l = h.class_label();
                        if l.is_finite() && l >= 0.0 && l < u32::MAX as f32 {
                            classes[i] = l as u32;
                            n_identities = n_identities.max(l as usize + 1);
                        }
                    }
                    Err(message) => skipped.push(BadInput {
                        source: tag.clone(),
                        location: format!("{}@{off}", rec_path.display()),
                        reason: format!("{message}: skipped"),
                    }),
                }
            }
        }

        let property = std::fs::read_to_string(&prop_path).ok().and_then(|s| {
            let v: Vec<&str> = s.trim().split(',').map(str::trim).collect();
            match v.as_slice() {
                [n, h, w] => Some((n.parse().ok()?, h.parse().ok()?, w.parse().ok()?)),
                _ => None,
            }
        });
        if let Some((n, _, _)) = property {
            n_identities = n_identities.max(n);
        }
        let description = format!(
            "recordio {} ({} identities, {} images)",
            rec_path.display(),
            n_identities,
            offsets.len()
        );
        Ok(RecordIoSource {
            rec_path,
            file,
            file_len,
            offsets,
            classes,
            keys_start,
            n_identities,
            property,
            skipped,
            description,
        })
    }

    /// The `property` file's `(classes, height, width)`, if present and well-formed.
    pub fn property(&self) -> Option<(usize, u32, u32)> {
        self.property
    }

    /// Bytes of index held per image (offset and class).
    pub fn index_bytes(&self) -> usize {
        self.offsets.capacity() * 8 + self.classes.capacity() * 4
    }

    /// Reads and unpacks image record `i`.
    pub fn read_record(&self, i: usize) -> Result<(IrHeader, Vec<u8>), DataError> {
        let offset = *self.offsets.get(i).ok_or_else(|| DataError::OutOfRange {
            source_name: self.description.clone(),
            index: i,
            len: self.offsets.len(),
        })?;
        let location = format!("{}@{offset}", self.rec_path.display());
        let (payload, _) =
            read_record_at(&self.file, self.file_len, offset).map_err(|message| {
                DataError::RecordIo {
                    location: location.clone(),
                    message,
                }
            })?;
        let (header, image) =
            unpack_record(&payload).map_err(|message| DataError::RecordIo { location, message })?;
        let image = image.to_vec();
        Ok((header, image))
    }
}

impl FaceSource for RecordIoSource {
    fn len(&self) -> usize {
        self.offsets.len()
    }

    fn identity(&self, i: usize) -> Option<u32> {
        self.classes.get(i).copied().filter(|&c| c != u32::MAX)
    }

    fn read(&self, i: usize) -> Result<FaceData, DataError> {
        let (_, image) = self.read_record(i)?;
        if image.is_empty() {
            return Err(DataError::RecordIo {
                location: self.location(i),
                message: "record holds no image bytes".to_string(),
            });
        }
        Ok(FaceData::Encoded(image))
    }

    fn n_identities(&self) -> usize {
        self.n_identities
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn location(&self, i: usize) -> String {
        match self.offsets.get(i) {
            Some(o) => format!(
                "{}@{o} (key {})",
                self.rec_path.display(),
                self.keys_start + i as u64
            ),
            None => format!("{}[{i}]", self.rec_path.display()),
        }
    }

    fn skipped_at_open(&self) -> &[BadInput] {
        &self.skipped
    }
}

/// Reads a whole stream of frames (for tools and tests): every record payload in order.
pub fn read_all_records(mut reader: impl Read) -> Result<Vec<Vec<u8>>, String> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut cur: Option<Vec<u8>> = None;
    while pos < bytes.len() {
        let head = bytes
            .get(pos..pos + 8)
            .ok_or_else(|| format!("truncated frame header at {pos}"))?;
        let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        if magic != RECORDIO_MAGIC {
            return Err(format!("bad magic at {pos}"));
        }
        let lrec = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let (cflag, len) = (lrec >> 29, (lrec & MAX_FRAME_LEN) as usize);
        let data = bytes
            .get(pos + 8..pos + 8 + len)
            .ok_or_else(|| format!("record length {len} at {pos} runs past the end"))?;
        match (cflag, cur.as_mut()) {
            (0, None) => out.push(data.to_vec()),
            (1, None) => cur = Some(data.to_vec()),
            (2, Some(c)) => {
                c.extend_from_slice(&RECORDIO_MAGIC.to_le_bytes());
                c.extend_from_slice(data);
            }
            (3, Some(c)) => {
                c.extend_from_slice(&RECORDIO_MAGIC.to_le_bytes());
                c.extend_from_slice(data);
                out.extend(cur.take());
            }
            _ => return Err(format!("unexpected continuation flag {cflag} at {pos}")),
        }
        pos += 8 + len.div_ceil(4) * 4;
    }
    if cur.is_some() {
        return Err("stream ends inside a split record".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_pack_unpack_round_trips() {
        let h = IrHeader {
            flag: 0,
            label: 7.0,
            id: 3,
            id2: 0,
            labels: vec![],
        };
        let p = h.pack(b"img");
        assert_eq!(p.len(), 27);
        let (h2, img) = unpack_record(&p).unwrap();
        assert_eq!(h2, h);
        assert_eq!(img, b"img");
        let h = IrHeader {
            flag: 2,
            label: 0.0,
            id: 0,
            id2: 0,
            labels: vec![5.0, 9.0],
        };
        let packed = h.pack(&[]);
        let (h2, img) = unpack_record(&packed).unwrap();
        assert_eq!(h2.labels, vec![5.0, 9.0]);
        assert_eq!(h2.class_label(), 5.0);
        assert!(img.is_empty());
        assert!(unpack_record(&[1, 2, 3]).is_err());
        let mut lying = h.pack(&[]);
        lying[0] = 200;
        assert!(unpack_record(&lying).is_err());
    }

    #[test]
    fn writer_splits_at_aligned_magic_and_reader_reassembles() {
        let dir = tempfile::tempdir().unwrap();
        let rec = dir.path().join("a.rec");
        let idx = dir.path().join("a.idx");
        let magic = RECORDIO_MAGIC.to_le_bytes();
        let mut payload = vec![1u8, 2, 3, 4];
        payload.extend_from_slice(&magic);
        payload.extend_from_slice(&[9, 9]);
        payload.extend_from_slice(&magic); // at offset 10: not aligned, not split
        payload.extend_from_slice(&[0, 0]);
        payload.extend_from_slice(&magic); // at 16: aligned, split
        let mut w = RecordIoWriter::create(&rec, &idx).unwrap();
        w.write(0, &payload).unwrap();
        w.write(1, b"xyz").unwrap();
        w.finish().unwrap();
        let bytes = std::fs::read(&rec).unwrap();
        // First frame has cflag 1.
        assert_eq!(
            u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) >> 29,
            1
        );
        let all = read_all_records(&bytes[..]).unwrap();
        assert_eq!(all, vec![payload.clone(), b"xyz".to_vec()]);
        let f = File::open(&rec).unwrap();
        let (p, next) = read_record_at(&f, bytes.len() as u64, 0).unwrap();
        assert_eq!(p, payload);
        let (p, end) = read_record_at(&f, bytes.len() as u64, next).unwrap();
        assert_eq!(p, b"xyz");
        assert_eq!(end, bytes.len() as u64);
        let idx_text = std::fs::read_to_string(&idx).unwrap();
        assert_eq!(idx_text, format!("0\t0\n1\t{next}\n"));
    }
}
