//! Bad input is counted, reported with its location, and skipped; a source with nothing
//! usable is a clear error when the dataset is opened.

use std::sync::Arc;

use osips_data::{
    DataError, Dataset, FaceSource, Loader, RecordIoSource, SamplerState, SourceSpec, TsvSource,
};

use crate::testutil::{self, photos};

fn locations(ds: &Dataset) -> String {
    ds.report()
        .entries()
        .iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn folder_bad_files_are_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photos();
    let names = testutil::write_casia_tree(dir.path(), &photos);
    let id0 = dir.path().join(&names[0]);
    std::fs::write(id0.join("900.jpg"), b"this is not a jpeg").unwrap();
    let half = &photos[0].jpeg[..photos[0].jpeg.len() / 3];
    std::fs::write(id0.join("901.jpg"), half).unwrap();
    std::fs::write(id0.join("notes.txt"), b"hello").unwrap();
    std::fs::create_dir(dir.path().join("0009999")).unwrap();
    std::fs::write(dir.path().join("train.lst"), b"x").unwrap();

    let cfg = testutil::config(
        SourceSpec::Folder {
            path: dir.path().into(),
        },
        32,
        8,
    );
    let ds = Arc::new(Dataset::open(&cfg).unwrap());
    assert_eq!(ds.n_identities(), 3, "the empty folder is not an identity");
    let at_open = ds.report().n_bad();
    assert_eq!(at_open, 3, "{}", locations(&ds));
    let text = locations(&ds);
    assert!(
        text.contains("notes.txt") && text.contains("0009999") && text.contains("train.lst"),
        "{text}"
    );

    let mut loader = Loader::with_threads(ds.clone(), &cfg, SamplerState::start(1), 2).unwrap();
    for _ in 0..12 {
        let (b, _) = loader.next_batch().unwrap();
        assert!(b
            .transformation
            .source
            .data
            .iter()
            .all(|v| v.is_finite() && v.abs() <= 1.0));
    }
    let text = locations(&ds);
    assert!(
        text.contains("900.jpg"),
        "corrupt JPEG not reported:\n{text}"
    );
    assert!(ds.report().n_bad() >= 4);
    // Each bad file is counted once however often it is drawn.
    assert!(ds.report().n_bad() <= 5, "{text}");
    assert!(ds.report().summary(2).contains("more"));
}

#[test]
fn tsv_bad_lines_are_reported_with_line_or_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.tsv");
    let photos = photos();
    let mut text = String::new();
    text.push_str(&testutil::tsv_line("m.01", 0, [0.0; 4], &photos[0].jpeg));
    text.push_str("m.01\tonly\tthree columns\n");
    text.push_str(&testutil::tsv_line("m.02", 1, [0.0; 4], &photos[3].jpeg));
    text.push_str("m.02\t2\tu\tp\tf\tAAAAAAAAAAAAAAAAAAAAAA==\t!!!not base64!!!\n");
    text.push_str(&testutil::tsv_line(
        "m.01",
        3,
        [0.0; 4],
        b"\xff\xd8\xff garbage jpeg",
    ));
    text.push_str(&testutil::tsv_line("m.03", 4, [0.0; 4], &photos[6].jpeg));
    std::fs::write(&path, text).unwrap();
    let src = TsvSource::open(&path).unwrap();
    assert_eq!(src.len(), 5);
    let skipped = &src.skipped_at_open();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].location.ends_with("bad.tsv:2"), "{:?}", skipped);
    let e = src.read(2).unwrap_err();
    assert!(matches!(e, DataError::Tsv { .. }), "{e}");
    // The garbage JPEG is read fine; it fails to decode later.
    assert!(src.read(3).unwrap().into_image("x").is_err());
    assert!(e.to_string().contains("bad.tsv@"), "{e}");

    let cfg = testutil::config(SourceSpec::Tsv { path: path.clone() }, 32, 8);
    let ds = Arc::new(Dataset::open(&cfg).unwrap());
    let mut loader = Loader::with_threads(ds.clone(), &cfg, SamplerState::start(3), 1).unwrap();
    for _ in 0..10 {
        loader.next_batch().unwrap();
    }
    let text = locations(&ds);
    assert!(text.contains("not base64"), "{text}");
    assert!(text.contains("cannot decode"), "{text}");
}

#[test]
fn recordio_bad_magic_and_idx_past_end_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photos();
    testutil::write_recordio_pack(dir.path(), &photos);
    let rec_path = dir.path().join("train.rec");
    let idx_path = dir.path().join("train.idx");
    let idx = std::fs::read_to_string(&idx_path).unwrap();
    let offsets: Vec<u64> = idx
        .lines()
        .map(|l| l.split('\t').nth(1).unwrap().parse().unwrap())
        .collect();
    let mut rec = std::fs::read(&rec_path).unwrap();
    // Corrupt the magic of image record 2 and the length of image record 3.
    rec[offsets[2] as usize] ^= 0xff;
    let l = offsets[3] as usize + 4;
    rec[l..l + 4].copy_from_slice(&((1u32 << 29) - 1).to_le_bytes());
    std::fs::write(&rec_path, &rec).unwrap();
    // An idx entry past the end and a malformed one.
    let idx = format!("{idx}99\t{}\nnot an index line\n", rec.len() + 100);
    std::fs::write(&idx_path, idx).unwrap();

    let src = RecordIoSource::open(dir.path()).unwrap();
    let open_report: Vec<String> = src
        .skipped_at_open()
        .iter()
        .map(|b| b.to_string())
        .collect();
    assert_eq!(open_report.len(), 2, "{open_report:?}");
    assert!(
        open_report[0].contains("train.idx:") && open_report[0].contains("past the end"),
        "{open_report:?}"
    );
    let e = src.read(1).unwrap_err();
    assert!(e.to_string().contains("bad magic"), "{e}");
    assert!(e.to_string().contains(&format!("@{}", offsets[2])), "{e}");
    let e = src.read(2).unwrap_err();
    assert!(e.to_string().contains("past the end"), "{e}");

    let cfg = testutil::config(
        SourceSpec::RecordIo {
            path: dir.path().into(),
        },
        32,
        6,
    );
    let ds = Arc::new(Dataset::open(&cfg).unwrap());
    let mut loader = Loader::with_threads(ds.clone(), &cfg, SamplerState::start(5), 2).unwrap();
    for _ in 0..10 {
        loader.next_batch().unwrap();
    }
    assert_eq!(ds.report().n_bad(), 4, "{}", locations(&ds));
}

#[test]
fn sources_with_nothing_usable_fail_at_open() {
    let dir = tempfile::tempdir().unwrap();
    // Only corrupt images.
    let root = dir.path().join("corrupt");
    for id in ["a", "b"] {
        std::fs::create_dir_all(root.join(id)).unwrap();
        std::fs::write(root.join(id).join("1.jpg"), b"garbage").unwrap();
    }
    let cfg = testutil::config(SourceSpec::Folder { path: root }, 32, 2);
    let e = Dataset::open(&cfg).unwrap_err();
    assert!(matches!(e, DataError::NothingUsable { .. }), "{e}");
    assert!(e.to_string().contains("1.jpg"), "{e}");

    // Empty folder.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(empty.join("id_without_images")).unwrap();
    let e =
        Dataset::open(&testutil::config(SourceSpec::Folder { path: empty }, 32, 2)).unwrap_err();
    assert!(e.to_string().contains("no images"), "{e}");
    assert!(e.to_string().contains("empty identity folder"), "{e}");

    // One identity and no unlabeled images: no transformation pairs possible.
    let one = dir.path().join("one");
    std::fs::create_dir_all(one.join("x")).unwrap();
    std::fs::write(one.join("x").join("1.jpg"), &photos()[0].jpeg).unwrap();
    let e = Dataset::open(&testutil::config(SourceSpec::Folder { path: one }, 32, 2)).unwrap_err();
    assert!(e.to_string().contains("at least 2 identities"), "{e}");

    // A TSV whose every line is malformed.
    let tsv = dir.path().join("bad.tsv");
    std::fs::write(&tsv, "a\tb\nc\n").unwrap();
    let e = Dataset::open(&testutil::config(SourceSpec::Tsv { path: tsv }, 32, 2)).unwrap_err();
    assert!(e.to_string().contains("bad.tsv:1"), "{e}");

    // Missing paths are I/O errors naming the path.
    let e = Dataset::open(&testutil::config(
        SourceSpec::RecordIo {
            path: dir.path().join("nope"),
        },
        32,
        2,
    ))
    .unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
}
