//! MS-Celeb-1M TSV files: one face per line, 7 tab-separated columns.
//!
//! Columns: Freebase MID, ImageSearchRank, ImageURL, PageURL, FaceID, FaceRectangle
//! (base64 of 4 little-endian `f32`: relative left, top, right, bottom), FaceData (base64
//! JPEG). The file is indexed once by byte offset (16 bytes per line) and streamed.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

use super::{read_exact_at, BadInput, FaceData, FaceSource};
use crate::DataError;

/// Base64 as found in the wild: standard alphabet, padding optional.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Number of columns of an MS-Celeb-1M TSV line.
pub const TSV_COLUMNS: usize = 7;

/// Longest line accepted (a face JPEG in base64 is usually 10–100 KB).
pub const TSV_MAX_LINE: usize = 64 << 20;

/// One parsed line of an MS-Celeb-1M TSV file.
#[derive(Clone, Debug, PartialEq)]
pub struct TsvRecord<'a> {
    /// Freebase MID of the person (the identity), e.g. `m.0107_f`.
    pub mid: &'a str,
    /// ImageSearchRank column, verbatim.
    pub image_search_rank: &'a str,
    /// ImageURL column, verbatim.
    pub image_url: &'a str,
    /// PageURL column, verbatim.
    pub page_url: &'a str,
    /// FaceID column, verbatim.
    pub face_id: &'a str,
    /// FaceRectangle: relative left, top, right, bottom.
    pub face_rectangle: [f32; 4],
    /// FaceData: the encoded (JPEG) face.
    pub face_data: Vec<u8>,
}

/// Parses one TSV line (without or with its trailing `\n` / `\r\n`).
/// `location` (`file:line`) names it in errors. Never panics, whatever the bytes.
pub fn parse_tsv_line<'a>(line: &'a [u8], location: &str) -> Result<TsvRecord<'a>, DataError> {
    let err = |message: String| DataError::Tsv {
        location: location.to_string(),
        message,
    };
    let mut line = line;
    while let [rest @ .., b'\n' | b'\r'] = line {
        line = rest;
    }
    let fields: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
    if fields.len() != TSV_COLUMNS {
        return Err(err(format!(
            "expected {TSV_COLUMNS} tab-separated columns, found {}",
            fields.len()
        )));
    }
    let text = |i: usize, name: &str| -> Result<&'a str, DataError> {
        // `fields` borrows `line`, which lives for 'a.
        std::str::from_utf8(fields[i]).map_err(|_| err(format!("{name} is not UTF-8")))
    };
    let mid = text(0, "MID")?;
    if mid.trim().is_empty() {
        return Err(err("empty MID".to_string()));
    }
    let rect_bytes = B64
        .decode(fields[5])
        .map_err(|e| err(format!("FaceRectangle is not base64: {e}")))?;
    if rect_bytes.len() != 16 {
        return Err(err(format!(
            "FaceRectangle decodes to {} bytes, expected 16 (4 × f32)",
            rect_bytes.len()
        )));
    }
    let mut face_rectangle = [0f32; 4];
    for (k, chunk) in rect_bytes.chunks_exact(4).enumerate() {
        face_rectangle[k] = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    let face_data = B64
        .decode(fields[6])
        .map_err(|e| err(format!("FaceData is not base64: {e}")))?;
    if face_data.is_empty() {
        return Err(err("FaceData is empty".to_string()));
    }
    Ok(TsvRecord {
        mid,
        image_search_rank: text(1, "ImageSearchRank")?,
        image_url: text(2, "ImageURL")?,
        page_url: text(3, "PageURL")?,
        face_id: text(4, "FaceID")?,
        face_rectangle,
        face_data,
    })
}

/// Formats one TSV line (with its `\n`) the way MS-Celeb-1M files are written.
pub fn format_tsv_line(
    mid: &str,
    image_search_rank: &str,
    image_url: &str,
    page_url: &str,
    face_id: &str,
    face_rectangle: [f32; 4],
    face_data: &[u8],
) -> String {
    let mut rect = Vec::with_capacity(16);
    for v in face_rectangle {
        rect.extend_from_slice(&v.to_le_bytes());
    }
    let std = base64::engine::general_purpose::STANDARD;
    format!(
        "{mid}\t{image_search_rank}\t{image_url}\t{page_url}\t{face_id}\t{}\t{}\n",
        std.encode(rect),
        std.encode(face_data)
    )
}

/// An MS-Celeb-1M TSV file, indexed by byte offset. Identities are the distinct MIDs,
/// numbered in sorted order.
#[derive(Debug)]
pub struct TsvSource {
    path: PathBuf,
    file: File,
    offsets: Vec<u64>,
    lengths: Vec<u32>,
    identities: Vec<u32>,
    mids: Vec<String>,
    skipped: Vec<BadInput>,
    description: String,
}

impl TsvSource {
    /// Scans `path` once, recording the offset, length and MID of every line. Lines with
    /// the wrong column count, an empty MID or longer than [`TSV_MAX_LINE`] are skipped
    /// and reported with their line number; the columns are decoded only on read.
    pub fn open(path: &Path) -> Result<TsvSource, DataError> {
        let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let tag = format!("tsv {}", path.display());
        let mut offsets = Vec::new();
        let mut lengths = Vec::new();
        let mut raw_ids: Vec<u32> = Vec::new();
        let mut mid_ids: HashMap<Vec<u8>, u32> = HashMap::new();
        let mut skipped = Vec::new();

        let mut buf = vec![0u8; 4 << 20];
        let mut pos: u64 = 0; // file offset of buf[0]
        let mut line_start: u64 = 0;
        let mut line_no: u64 = 1;
        let mut tabs = 0usize;
        let mut mid: Vec<u8> = Vec::new();
        let mut mid_done = false;
        let mut only_ws = true;
        let mut finish_line =
            |end: u64, tabs: usize, mid: &[u8], only_ws: bool, line_start: u64, line_no: u64| {
                let mut len = end - line_start;
                if only_ws {
                    return;
                }
                let mut mid = mid;
                if tabs == 0 {
                    // A one-column line: `mid` may hold a trailing '\r'.
                    while let [rest @ .., b'\r'] = mid {
                        mid = rest;
                    }
                }
                let location = format!("{}:{line_no}", path.display());
                let reason = if tabs + 1 != TSV_COLUMNS {
                    Some(format!(
                        "expected {TSV_COLUMNS} tab-separated columns, found {}",
                        tabs + 1
                    ))
                } else if mid.iter().all(|b| b.is_ascii_whitespace()) {
                    Some("empty MID".to_string())
                } else if len as usize > TSV_MAX_LINE {
                    Some(format!("line longer than {TSV_MAX_LINE} bytes"))
                } else {
                    None
                };
                if let Some(reason) = reason {
                    skipped.push(BadInput {
                        source: tag.clone(),
                        location,
                        reason: format!("{reason}: skipped"),
                    });
                    return;
                }
                len = len.min(u64::from(u32::MAX));
                let next = mid_ids.len() as u32;
                let id = *mid_ids.entry(mid.to_vec()).or_insert(next);
                offsets.push(line_start);
                lengths.push(len as u32);
                raw_ids.push(id);
            };
        loop {
            let n = file.read(&mut buf).map_err(|e| DataError::io(path, e))?;
            if n == 0 {
                break;
            }
            for (k, &b) in buf[..n].iter().enumerate() {
                match b {
                    b'\n' => {
                        let end = pos + k as u64;
                        finish_line(end, tabs, &mid, only_ws, line_start, line_no);
                        line_start = end + 1;
                        line_no += 1;
                        tabs = 0;
                        mid.clear();
                        mid_done = false;
                        only_ws = true;
                    }
                    b'\t' => {
                        tabs += 1;
                        mid_done = true;
                        only_ws = false;
                    }
                    _ => {
                        if !mid_done && mid.len() < 256 {
                            mid.push(b);
                        }
                        if only_ws && !b.is_ascii_whitespace() {
                            only_ws = false;
                        }
                    }
                }
            }
            pos += n as u64;
        }
        if pos > line_start {
            finish_line(pos, tabs, &mid, only_ws, line_start, line_no);
        }

        // Number identities in sorted MID order, independent of the line order.
        let mut by_name: Vec<(Vec<u8>, u32)> = mid_ids.into_iter().collect();
        by_name.sort();
        let mut remap = vec![0u32; by_name.len()];
        let mut mids = Vec::with_capacity(by_name.len());
        for (sorted, (name, first_seen)) in by_name.into_iter().enumerate() {
            remap[first_seen as usize] = sorted as u32;
            mids.push(String::from_utf8_lossy(&name).into_owned());
        }
        let identities: Vec<u32> = raw_ids.iter().map(|&r| remap[r as usize]).collect();
        let description = format!(
            "tsv {} ({} identities, {} faces)",
            path.display(),
            mids.len(),
            identities.len()
        );
        Ok(TsvSource {
            path: path.to_path_buf(),
            file,
            offsets,
            lengths,
            identities,
            mids,
            skipped,
            description,
        })
    }

    /// Bytes of index held per face (offset, length, identity).
    pub fn index_bytes(&self) -> usize {
        self.offsets.capacity() * 8
            + self.lengths.capacity() * 4
            + self.identities.capacity() * 4
            + self.mids.iter().map(|m| m.capacity() + 24).sum::<usize>()
    }

    /// Reads and parses line `i`.
    pub fn record_line(&self, i: usize) -> Result<Vec<u8>, DataError> {
        let (offset, len) = match (self.offsets.get(i), self.lengths.get(i)) {
            (Some(&o), Some(&l)) => (o, l as usize),
            _ => {
                return Err(DataError::OutOfRange {
                    source_name: self.description.clone(),
                    index: i,
                    len: self.len(),
                })
            }
        };
        let mut line = vec![0u8; len];
        read_exact_at(&self.file, &mut line, offset).map_err(|e| DataError::io(&self.path, e))?;
        Ok(line)
    }
}

impl FaceSource for TsvSource {
    fn len(&self) -> usize {
        self.offsets.len()
    }

    fn identity(&self, i: usize) -> Option<u32> {
        self.identities.get(i).copied()
    }

    fn read(&self, i: usize) -> Result<FaceData, DataError> {
        let line = self.record_line(i)?;
        let record = parse_tsv_line(&line, &self.location(i))?;
        Ok(FaceData::Encoded(record.face_data))
    }

    fn n_identities(&self) -> usize {
        self.mids.len()
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn location(&self, i: usize) -> String {
        match self.offsets.get(i) {
            Some(o) => format!("{}@{o}", self.path.display()),
            None => format!("{}[{i}]", self.path.display()),
        }
    }

    fn identity_name(&self, id: u32) -> Option<String> {
        self.mids.get(id as usize).cloned()
    }

    fn skipped_at_open(&self) -> &[BadInput] {
        &self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_then_parse_round_trips() {
        let line = format_tsv_line(
            "m.01",
            "3",
            "http://a",
            "http://b",
            "7",
            [0.1, 0.2, 0.9, 0.8],
            b"JPEGDATA",
        );
        let rec = parse_tsv_line(line.as_bytes(), "t:1").unwrap();
        assert_eq!(rec.mid, "m.01");
        assert_eq!(rec.face_id, "7");
        assert_eq!(rec.face_rectangle, [0.1, 0.2, 0.9, 0.8]);
        assert_eq!(rec.face_data, b"JPEGDATA");
    }

    #[test]
    fn malformed_lines_are_errors_with_location() {
        for bad in [
            &b"a\tb\tc"[..],
            b"m\t1\tu\tp\tf\t!!!\tAAAA",
            b"m\t1\tu\tp\tf\tAAAA\tAAAA",
            b"\t1\tu\tp\tf\tAAAAAAAAAAAAAAAAAAAAAA==\tAAAA",
            b"",
        ] {
            match parse_tsv_line(bad, "f.tsv:9") {
                Err(DataError::Tsv { location, .. }) => assert_eq!(location, "f.tsv:9"),
                other => panic!("{other:?}"),
            }
        }
    }
}
