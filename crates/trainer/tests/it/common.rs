use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use osips_data::SourceSpec;
use osips_models::{DiscriminatorConfig, GeneratorConfig, Preset, StageConfig, TrunkConfig};
use trainer::{RunConfig, RunOptions};

/// The tiny preset shrunk to 16×16 faces and narrow layers: the same code paths, in
/// milliseconds per step.
pub fn micro_config() -> RunConfig {
    let mut config = RunConfig::preset(Preset::Tiny);
    let trunk = TrunkConfig {
        stages: vec![
            StageConfig {
                channels: 8,
                convs: 1,
            },
            StageConfig {
                channels: 16,
                convs: 1,
            },
        ],
    };
    config.name = "micro".into();
    config.model.image_size = 16;
    config.model.n_identities = 12;
    config.model.identity_trunk = trunk.clone();
    config.model.attribute_trunk = trunk;
    config.model.identity_dim = 16;
    config.model.feature_dim = 32;
    config.model.attribute_dim = 8;
    config.model.generator = GeneratorConfig {
        base_channels: 16,
        stages: vec![16, 8],
    };
    config.model.discriminator = DiscriminatorConfig {
        channels: vec![8, 16],
    };
    config.data.source = SourceSpec::Synthetic { n_identities: 12 };
    config.data.image_size = 16;
    config.data.batch_size = 4;
    config.data.prefetch = 2;
    config.schedule.steps = Some(4);
    config.schedule.minutes = None;
    config.schedule.log_every = 1;
    config.schedule.sample_every = 2;
    config.schedule.checkpoint_every = 2;
    config.schedule.keep_checkpoints = 2;
    config.schedule.eval_identities = 12;
    config.validate().expect("the micro config is valid");
    config
}

pub fn options(runs_root: &Path) -> RunOptions {
    RunOptions {
        runs_root: runs_root.to_path_buf(),
        resume: None,
        progress: false,
        stop: Arc::new(AtomicBool::new(false)),
        evaluate: false,
    }
}

/// All the `.safetensors` files of a checkpoint, by file name.
pub fn checkpoint_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("checkpoint dir")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().to_string(),
                std::fs::read(e.path()).expect("read checkpoint file"),
            )
        })
        .collect();
    files.sort();
    files
}

/// Whether the slow tests (soak, the long kill run) were asked for: `OSIPS_SLOW_TESTS=1`.
pub fn slow_tests() -> bool {
    std::env::var("OSIPS_SLOW_TESTS").is_ok_and(|v| v == "1")
}
