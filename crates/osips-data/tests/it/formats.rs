//! Each dataset format, written from real photos as the real tools do, reads back the
//! same pixels and identities.

use osips_data::source::recordio::{unpack_record, write_face_pack};
use osips_data::source::tsv::parse_tsv_line;
use osips_data::{
    decode_image, Dataset, FaceSource, FolderSource, RecordIoSource, SourceSpec, TsvSource,
};

use crate::testutil::{self, photos};

fn assert_same_pixels(src: &dyn FaceSource, i: usize, jpeg: &[u8]) {
    let got = src.read(i).unwrap().into_image("test").unwrap();
    let want = decode_image(jpeg, "fixture").unwrap();
    assert_eq!(got, want, "image {i} of {}", src.describe());
}

#[test]
fn casia_folder_tree_reads_back_pixels_and_identities() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photos();
    let names = testutil::write_casia_tree(dir.path(), &photos);
    let src = FolderSource::open_labeled(dir.path()).unwrap();
    assert_eq!(src.len(), photos.len());
    assert_eq!(src.n_identities(), names.len());
    assert!(src.skipped_at_open().is_empty());
    let ids = testutil::identities(&photos);
    for (i, p) in photos.iter().enumerate() {
        let class = src.identity(i).unwrap();
        assert_eq!(ids[class as usize], p.identity);
        assert_eq!(src.identity_name(class).unwrap(), names[class as usize]);
        assert_same_pixels(&src, i, &p.jpeg);
    }
    assert!(
        src.location(0).ends_with("0000045/001.jpg"),
        "{}",
        src.location(0)
    );
}

#[test]
fn ms_celeb_tsv_reads_back_pixels_identities_and_rectangles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("MsCelebV1-Faces-Aligned.tsv");
    let photos = photos();
    let mids = testutil::write_tsv(&path, &photos);
    let src = TsvSource::open(&path).unwrap();
    assert_eq!(src.len(), photos.len());
    assert_eq!(src.n_identities(), mids.len());
    for (i, p) in photos.iter().enumerate() {
        let class = src.identity(i).unwrap();
        let k = testutil::identities(&photos)
            .iter()
            .position(|x| x == &p.identity)
            .unwrap();
        assert_eq!(src.identity_name(class).unwrap(), mids[k]);
        assert_same_pixels(&src, i, &p.jpeg);
        let line = src.record_line(i).unwrap();
        let rec = parse_tsv_line(&line, "x").unwrap();
        assert_eq!(rec.face_rectangle, [0.1, 0.15, 0.9, 0.85]);
        assert_eq!(rec.image_search_rank, i.to_string());
    }
    // About 16 bytes of index per face.
    assert!(src.index_bytes() < photos.len() * 16 + mids.len() * 64 + 256);
}

#[test]
fn tsv_with_crlf_and_shuffled_identities_numbers_mids_in_sorted_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.tsv");
    let photos = photos();
    let mut text = String::new();
    text.push_str(&testutil::tsv_line("m.0zz", 1, [0.0; 4], &photos[0].jpeg).replace('\n', "\r\n"));
    text.push_str(&testutil::tsv_line("m.0aa", 2, [0.0; 4], &photos[1].jpeg).replace('\n', "\r\n"));
    text.push('\n'); // a blank line is not an error
    std::fs::write(&path, text).unwrap();
    let src = TsvSource::open(&path).unwrap();
    assert_eq!(src.len(), 2);
    assert!(src.skipped_at_open().is_empty());
    assert_eq!(src.identity(0), Some(1));
    assert_eq!(src.identity(1), Some(0));
    assert_same_pixels(&src, 0, &photos[0].jpeg);
}

#[test]
fn insightface_recordio_pack_reads_back_pixels_and_identities() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photos();
    let classes = testutil::write_recordio_pack(dir.path(), &photos);
    for path in [dir.path().to_path_buf(), dir.path().join("train.rec")] {
        let src = RecordIoSource::open(&path).unwrap();
        assert_eq!(src.len(), photos.len(), "{}", src.describe());
        assert_eq!(src.n_identities(), 3);
        assert_eq!(src.property(), Some((3, 112, 112)));
        assert!(
            src.skipped_at_open().is_empty(),
            "{:?}",
            src.skipped_at_open()
        );
        for (i, p) in photos.iter().enumerate() {
            assert_eq!(src.identity(i), Some(classes[i]));
            assert_same_pixels(&src, i, &p.jpeg);
            let (header, _) = src.read_record(i).unwrap();
            assert_eq!(header.class_label(), classes[i] as f32);
        }
    }
}

#[test]
fn recordio_without_idx_is_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photos();
    let classes = testutil::write_recordio_pack(dir.path(), &photos);
    std::fs::remove_file(dir.path().join("train.idx")).unwrap();
    let src = RecordIoSource::open(dir.path()).unwrap();
    assert_eq!(src.len(), photos.len());
    for (i, &class) in classes.iter().enumerate() {
        assert_eq!(src.identity(i), Some(class));
    }
    assert_same_pixels(&src, 2, &photos[2].jpeg);
}

#[test]
fn plain_im2rec_pack_without_header_record_uses_per_image_labels() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photos();
    let mut rec = Vec::new();
    let mut idx = String::new();
    for (k, p) in photos.iter().enumerate() {
        idx.push_str(&format!("{k}\t{}\n", rec.len()));
        // Labels as a vector (flag 2) as im2rec --pack-label writes them.
        let class = (k % 2) as f32;
        rec.extend_from_slice(&testutil::frames(&testutil::pack(
            &[class, 0.5],
            k as u64,
            &p.jpeg,
        )));
    }
    std::fs::write(dir.path().join("train.rec"), rec).unwrap();
    std::fs::write(dir.path().join("train.idx"), idx).unwrap();
    let src = RecordIoSource::open(dir.path()).unwrap();
    assert_eq!(src.len(), photos.len());
    assert_eq!(src.n_identities(), 2);
    assert_eq!(src.identity(3), Some(1));
    assert_same_pixels(&src, 3, &photos[3].jpeg);
}

#[test]
fn records_containing_the_magic_are_split_and_reassembled() {
    let dir = tempfile::tempdir().unwrap();
    let magic = 0xced7_230au32.to_le_bytes();
    // Image bytes with the magic at aligned payload offsets 24+4 and 24+12 and unaligned.
    let mut image = vec![1u8, 2, 3, 4];
    image.extend_from_slice(&magic);
    image.extend_from_slice(&[5, 6, 7, 8]);
    image.extend_from_slice(&magic);
    image.extend_from_slice(&[9, 0xce]);
    image.extend_from_slice(&magic);
    let payload = testutil::pack(&[0.0], 1, &image);
    let framed = testutil::frames(&payload);
    assert_eq!(
        u32::from_le_bytes(framed[4..8].try_into().unwrap()) >> 29,
        1,
        "first frame starts a split"
    );
    let header0 = testutil::pack(&[2.0, 3.0], 0, &[]);
    let range = testutil::pack(&[1.0, 2.0], 0, &[]);
    let mut rec = testutil::frames(&header0);
    let off1 = rec.len();
    rec.extend_from_slice(&framed);
    let off2 = rec.len();
    rec.extend_from_slice(&testutil::frames(&range));
    std::fs::write(dir.path().join("train.rec"), &rec).unwrap();
    std::fs::write(
        dir.path().join("train.idx"),
        format!("0\t0\n1\t{off1}\n2\t{off2}\n"),
    )
    .unwrap();
    let src = RecordIoSource::open(dir.path()).unwrap();
    assert_eq!(src.len(), 1);
    let (_, got) = src.read_record(0).unwrap();
    assert_eq!(got, image);
    let (h, rest) = unpack_record(&payload).unwrap();
    assert_eq!((h.flag, rest), (0, &image[..]));
}

#[test]
fn library_pack_writer_matches_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photos();
    let ids = testutil::identities(&photos);
    let faces = photos.iter().map(|p| {
        let c = ids.iter().position(|x| x == &p.identity).unwrap() as u32;
        (c, p.jpeg.clone())
    });
    write_face_pack(dir.path(), faces, (150, 150)).unwrap();
    let src = RecordIoSource::open(dir.path()).unwrap();
    assert_eq!(src.len(), photos.len());
    assert_eq!(src.n_identities(), ids.len());
    assert_eq!(src.property(), Some((3, 150, 150)));
    assert_same_pixels(&src, 4, &photos[4].jpeg);
}

#[test]
fn every_source_opens_as_a_dataset_with_the_same_identities() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photos();
    testutil::write_casia_tree(&dir.path().join("casia"), &photos);
    testutil::write_tsv(&dir.path().join("a.tsv"), &photos);
    testutil::write_recordio_pack(&dir.path().join("pack"), &photos);
    let specs = [
        format!("folder:{}", dir.path().join("casia").display()),
        format!("tsv:{}", dir.path().join("a.tsv").display()),
        format!("recordio:{}", dir.path().join("pack").display()),
    ];
    for spec in specs {
        let cfg = testutil::config(SourceSpec::parse(&spec).unwrap(), 32, 4);
        let ds = Dataset::open(&cfg).unwrap();
        assert_eq!(ds.n_identities(), 3, "{spec}");
        assert_eq!(ds.len(), photos.len());
        assert_eq!(ds.report().n_bad(), 0);
        for c in 0..3 {
            assert_eq!(ds.class_len(c), 3);
        }
    }
}
