//! Random bytes never make the TSV or RecordIO readers panic.

use std::io::Write;

use osips_data::source::recordio::{read_all_records, read_record_at, unpack_record};
use osips_data::source::tsv::parse_tsv_line;
use osips_data::{decode_image, FaceSource, RecordIoSource, TsvSource};
use proptest::prelude::*;

fn tsv_like() -> impl Strategy<Value = Vec<u8>> {
    // Random bytes, and random lines built from plausible pieces.
    let piece = prop_oneof![
        Just(b"\t".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"AAAAAAAAAAAAAAAAAAAAAA==".to_vec()),
        Just(b"/9j/4AAQSkZJRg==".to_vec()),
        Just(b"m.0abc".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..12),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::collection::vec(piece, 0..30).prop_map(|v| v.concat()),
    ]
}

fn recordio_like() -> impl Strategy<Value = Vec<u8>> {
    let magic = 0xced7_230au32.to_le_bytes().to_vec();
    let piece = prop_oneof![
        Just(magic),
        any::<u32>().prop_map(|v| v.to_le_bytes().to_vec()),
        (0u32..8, 0u32..64).prop_map(|(f, l)| ((f << 29) | l).to_le_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..400),
        proptest::collection::vec(piece, 0..30).prop_map(|v| v.concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn tsv_line_parser_never_panics(bytes in tsv_like()) {
        let _ = parse_tsv_line(&bytes, "fuzz");
    }

    #[test]
    fn tsv_source_never_panics(bytes in tsv_like()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.tsv");
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(src) = TsvSource::open(&path) {
            for i in 0..src.len() + 1 {
                let _ = src.read(i);
                let _ = src.identity(i);
            }
        }
    }

    #[test]
    fn recordio_readers_never_panic(bytes in recordio_like(), idx in proptest::collection::vec((0u64..6, 0u64..500), 0..6)) {
        let _ = unpack_record(&bytes);
        let _ = read_all_records(&bytes[..]);
        let dir = tempfile::tempdir().unwrap();
        let rec = dir.path().join("train.rec");
        std::fs::write(&rec, &bytes).unwrap();
        let f = std::fs::File::open(&rec).unwrap();
        for off in [0u64, 4, 8, bytes.len() as u64, u64::MAX - 3] {
            let _ = read_record_at(&f, bytes.len() as u64, off);
        }
        // Without an index (scanned) and with a random one.
        let check = |src: RecordIoSource| {
            for i in 0..src.len() + 1 {
                let _ = src.read(i);
            }
        };
        if let Ok(src) = RecordIoSource::open(dir.path()) { check(src) }
        let mut f = std::fs::File::create(dir.path().join("train.idx")).unwrap();
        for (k, o) in &idx {
            writeln!(f, "{k}\t{o}").unwrap();
        }
        drop(f);
        if let Ok(src) = RecordIoSource::open(dir.path()) { check(src) }
    }

    #[test]
    fn image_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut jpeg = vec![0xff, 0xd8, 0xff];
        jpeg.extend_from_slice(&bytes);
        let _ = decode_image(&jpeg, "fuzz");
        let _ = decode_image(&bytes, "fuzz");
    }
}
