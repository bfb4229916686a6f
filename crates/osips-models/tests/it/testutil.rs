//! Shared helpers.

use candle_core::{Device, Tensor};
use osips_models::{ModelConfig, Networks, Preset};

pub fn tiny() -> ModelConfig {
    ModelConfig::tiny(10)
}

pub fn networks(preset: Preset, seed: u64) -> Networks {
    Networks::new(&ModelConfig::preset(preset, 10), seed, &Device::Cpu).expect("networks")
}

/// Deterministic images in [-1, 1].
pub fn images(n: usize, size: usize, seed: u64) -> Tensor {
    osips_models::seeded_normal((n, 3, size, size), seed, &Device::Cpu)
        .expect("noise")
        .tanh()
        .expect("tanh")
}

pub fn render_shapes(shapes: &std::collections::BTreeMap<String, Vec<usize>>) -> String {
    let mut out = String::new();
    for (name, shape) in shapes {
        out.push_str(&format!("{name} {shape:?}\n"));
    }
    out
}
