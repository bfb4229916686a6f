//! Every fuzz target over its seeds (`fuzz/seeds/<target>/`) and over every input that
//! crashed it once (`fuzz/regressions/<target>/`), on the stable toolchain: a fixed crash
//! stays fixed.

use std::path::PathBuf;

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn every_target_runs_over_its_seeds_and_past_crashes() {
    for (target, body) in osips_fuzz::TARGETS {
        let seeds = inputs("seeds", target);
        assert!(!seeds.is_empty(), "fuzz/seeds/{target} is empty");
        for path in seeds.iter().chain(&inputs("regressions", target)) {
            let data = std::fs::read(path).expect("read input");
            eprintln!("{target}: {}", path.display());
            body(&data);
        }
    }
}

/// The seeds are valid inputs, so that fuzzing starts from the success paths.
#[test]
fn seeds_are_valid_inputs() {
    let read = |target: &str, name: &str| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/seeds")
            .join(target)
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let line = read("tsv_line", "line.tsv");
    let record = osips_data::source::tsv::parse_tsv_line(&line, "seed").expect("TSV seed");
    osips_data::decode_image(&record.face_data, "seed").expect("its face decodes");
    for name in ["face.jpg", "tiny.png", "tiny.gif"] {
        osips_data::decode_image(&read("image_decode", name), name).expect("image seed");
    }
    for name in ["tiny.toml", "paper.toml"] {
        let text = String::from_utf8(read("config", name)).expect("UTF-8");
        let config: trainer::RunConfig = toml::from_str(&text).expect("config seed");
        config.validate().expect("valid");
    }
    let pack = read("recordio", "pack.bin");
    let n = usize::from(u16::from_le_bytes([pack[0], pack[1]]));
    let records =
        osips_data::source::recordio::read_all_records(&pack[2 + n..]).expect("RecordIO seed");
    assert_eq!(records.len(), 2);
    for r in &records {
        let (_, image) = osips_data::source::recordio::unpack_record(r).expect("record");
        osips_data::decode_image(image, "seed").expect("its image decodes");
    }
}

/// The out-of-memory inputs found so far are images whose headers claim gigabytes: each
/// must now be refused by the size check, before the decoder allocates.
#[test]
fn images_that_claimed_gigabytes_are_refused_before_decoding() {
    let claims_too_much = |bytes: &[u8], what: &str| {
        let t0 = std::time::Instant::now();
        let err = osips_data::decode_image(bytes, what).expect_err(what);
        assert!(err.to_string().contains("the limit is"), "{what}: {err}");
        assert!(
            t0.elapsed().as_secs_f64() < 1.0,
            "{what}: {:?}",
            t0.elapsed()
        );
    };
    for path in inputs("regressions", "image_decode") {
        claims_too_much(
            &std::fs::read(&path).expect("read"),
            &path.display().to_string(),
        );
    }
    for path in inputs("regressions", "tsv_line") {
        let line = std::fs::read(&path).expect("read");
        let record = osips_data::source::tsv::parse_tsv_line(&line, "regression").expect("TSV");
        // A PNG: under `cfg(fuzzing)` the png crate skips CRC checks, so on stable its
        // (mutated) IHDR fails the CRC first. Either way it must be refused at once.
        let t0 = std::time::Instant::now();
        assert!(osips_data::decode_image(&record.face_data, "regression").is_err());
        assert!(t0.elapsed().as_secs_f64() < 1.0, "{}", path.display());
    }
    let packs = inputs("regressions", "recordio");
    assert!(!packs.is_empty());
    for path in packs {
        let t0 = std::time::Instant::now();
        osips_fuzz::recordio(&std::fs::read(&path).expect("read"));
        assert!(t0.elapsed().as_secs_f64() < 1.0, "{}", path.display());
    }
}
