//! The bodies of the fuzz targets in `fuzz/` (cargo-fuzz, nightly), kept here so that a
//! stable test (`tests/replay.rs`) runs the very same code over the seeds and over every
//! input that ever crashed a target (`fuzz/regressions/<target>/`).
//!
//! Each function takes any bytes and must return: a panic, an abort or an allocation
//! beyond libFuzzer's `-rss_limit_mb` is a finding.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use osips_data::source::recordio::{read_all_records, unpack_record};
use osips_data::{FaceSource, RecordIoSource};
use osips_models::checkpoint::GENERATOR_EMA_FILE;
use osips_models::{
    DiscriminatorConfig, GeneratorConfig, ModelConfig, Networks, StageConfig, Synthesizer,
    TrunkConfig, FORMAT_VERSION,
};
use trainer::RunConfig;

/// A fuzz target's body: any bytes in, a return (never a panic or an abort).
pub type Body = fn(&[u8]);

/// The targets, by the names `fuzz/` and its folders use.
pub const TARGETS: [(&str, Body); 5] = [
    ("tsv_line", tsv_line),
    ("recordio", recordio),
    ("config", config),
    ("checkpoint", checkpoint),
    ("image_decode", image_decode),
];

/// A scratch folder per process for targets that go through files (in memory where
/// `/dev/shm` exists).
fn scratch(name: &str) -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("osips-fuzz-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// An MS-Celeb-1M TSV line, then the decode of its face.
pub fn tsv_line(data: &[u8]) {
    if let Ok(record) = osips_data::source::tsv::parse_tsv_line(data, "fuzz:1") {
        assert!(!record.mid.trim().is_empty());
        let _ = osips_data::load_face_bytes(&record.face_data, 32, "fuzz:1");
    }
}

/// The image decode path every source goes through, then the crop-and-resize.
pub fn image_decode(data: &[u8]) {
    if let Ok(img) = osips_data::decode_image(data, "fuzz") {
        assert!(img.width() > 0 && img.height() > 0);
    }
    let _ = osips_data::load_face_bytes(data, 16, "fuzz");
}

/// RecordIO: the record parsers on the bytes, then a whole pack read through
/// `RecordIoSource`. Layout: `[u16 LE length of the .idx text][.idx text][.rec bytes]`.
pub fn recordio(data: &[u8]) {
    let _ = unpack_record(data);
    if let Ok(records) = read_all_records(data) {
        for r in &records {
            let _ = unpack_record(r);
        }
    }
    if data.len() < 2 {
        return;
    }
    let n = usize::from(u16::from_le_bytes([data[0], data[1]])).min(data.len() - 2);
    let (idx, rec) = data[2..].split_at(n);
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| scratch("recordio"));
    std::fs::write(dir.join("train.idx"), idx).expect("write idx");
    std::fs::write(dir.join("train.rec"), rec).expect("write rec");
    if let Ok(source) = RecordIoSource::open(dir) {
        for i in 0..source.len().min(32) {
            let _ = source.identity(i);
            let _ = source.location(i);
            if let Ok(face) = source.read(i) {
                let _ = face.into_image("fuzz");
            }
        }
        let _ = source.read(source.len());
    }
}

/// Run configs from TOML and JSON, `validate`, and a `--set` override (the first line,
/// when it holds a `=`); a valid config must round-trip through TOML.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((first, _)) = text.split_once('\n') {
        if first.contains('=') {
            let mut config = RunConfig::preset(osips_models::Preset::Tiny);
            if config.apply_overrides(&[first.to_string()]).is_ok() {
                let _ = config.validate();
            }
        }
    }
    let parsed = [
        toml::from_str::<RunConfig>(text).ok(),
        serde_json::from_str::<RunConfig>(text).ok(),
    ];
    for parsed in parsed.into_iter().flatten() {
        if parsed.validate().is_ok() {
            let again: RunConfig = toml::from_str(&parsed.to_toml().expect("to TOML"))
                .expect("a written config parses");
            assert_eq!(again, parsed);
        }
    }
}

const CHECKPOINT_FILES: [&str; 5] = [
    "config.json",
    "state.json",
    "identity.safetensors",
    "attribute.safetensors",
    GENERATOR_EMA_FILE,
];

/// A 16×16 model of a few thousand parameters, so that one load takes microseconds.
fn micro_model() -> ModelConfig {
    let mut config = ModelConfig::tiny(4);
    let trunk = TrunkConfig {
        stages: vec![
            StageConfig {
                channels: 4,
                convs: 1,
            },
            StageConfig {
                channels: 8,
                convs: 1,
            },
        ],
    };
    config.image_size = 16;
    config.identity_trunk = trunk.clone();
    config.attribute_trunk = trunk;
    config.identity_dim = 8;
    config.feature_dim = 8;
    config.attribute_dim = 4;
    config.generator = GeneratorConfig {
        base_channels: 8,
        stages: vec![8, 4],
    };
    config.discriminator = DiscriminatorConfig {
        channels: vec![4, 8],
    };
    config
}

/// The valid micro checkpoint's folder and its files' bytes, written once per process.
fn valid_checkpoint() -> &'static (PathBuf, Vec<Vec<u8>>) {
    static ORIGINALS: OnceLock<(PathBuf, Vec<Vec<u8>>)> = OnceLock::new();
    ORIGINALS.get_or_init(|| {
        let dir = scratch("checkpoint");
        let config = micro_model();
        let nets = Networks::new(&config, 1, &candle_core::Device::Cpu).expect("networks");
        nets.save(&dir).expect("save");
        nets.generator_params
            .save(&dir.join(GENERATOR_EMA_FILE))
            .expect("save ema");
        let model = serde_json::json!({ "model": config }).to_string();
        std::fs::write(dir.join("config.json"), model).expect("config");
        let state =
            format!(r#"{{"format_version": {FORMAT_VERSION}, "preset": "tiny", "step": 1}}"#);
        std::fs::write(dir.join("state.json"), state).expect("state");
        Synthesizer::load(&dir).expect("the valid checkpoint loads");
        let files = CHECKPOINT_FILES
            .iter()
            .map(|f| std::fs::read(dir.join(f)).expect("read back"))
            .collect();
        (dir, files)
    })
}

/// A checkpoint directory from somewhere else: the valid micro checkpoint with one of its
/// five files (chosen by the first byte) replaced by the input, or, for odd multiples of
/// five, the input spliced into the original at a position the second byte chooses.
pub fn checkpoint(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let (dir, files) = valid_checkpoint();
    for (name, bytes) in CHECKPOINT_FILES.iter().zip(files) {
        std::fs::write(dir.join(name), bytes).expect("restore");
    }
    let k = usize::from(which) % CHECKPOINT_FILES.len();
    let bytes = if (which / 5) % 2 == 1 {
        let mut spliced = files[k].clone();
        let at = rest
            .first()
            .map_or(0, |&b| usize::from(b) * spliced.len() / 256);
        let tail = rest.get(1..).unwrap_or_default();
        let end = (at + tail.len()).min(spliced.len());
        spliced[at..end].copy_from_slice(&tail[..end - at]);
        spliced
    } else {
        rest.to_vec()
    };
    std::fs::write(dir.join(CHECKPOINT_FILES[k]), &bytes).expect("write input");
    let _ = Synthesizer::load(dir);
}
