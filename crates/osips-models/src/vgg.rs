//! Import of ImageNet VGG16 weights (timm's `vgg16.tv_in1k`, the same `features.N.*` names
//! and shapes as torchvision) onto the VGG trunks of the `paper` preset.
//!
//! This is the one place where upstream names meet ours. The file keeps timm's names; the
//! table below maps each `features.N.{weight,bias}` to
//! `trunk.stages.{s}.convs.{j}.conv.{weight,bias}`; anything missing, mis-shaped or
//! unmapped is an error before any variable is modified.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Tensor;

use crate::config::TrunkConfig;
use crate::error::{ModelError, Result};
use crate::vars::{load_tensors, ParamSet};

/// The Hub repository and file the weights come from (`cargo xtask fetch-weights`).
pub const VGG16_REPO: &str = "timm/vgg16.tv_in1k";
/// The file in [`VGG16_REPO`].
pub const VGG16_FILE: &str = "model.safetensors";

/// Indices of VGG16's 13 convolutions in `features` (the others are ReLU and max-pool).
pub const VGG16_CONV_INDICES: [usize; 13] = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];

/// `(timm name, our name within a trunk-owning network, shape)` for every imported tensor.
pub fn vgg16_mapping() -> Vec<(String, String, Vec<usize>)> {
    let trunk = TrunkConfig::vgg16();
    let mut table = Vec::with_capacity(26);
    let mut conv = 0;
    let mut in_channels = 3;
    for (s, stage) in trunk.stages.iter().enumerate() {
        for j in 0..stage.convs {
            let index = VGG16_CONV_INDICES[conv];
            let ours = format!("trunk.stages.{s}.convs.{j}.conv");
            table.push((
                format!("features.{index}.weight"),
                format!("{ours}.weight"),
                vec![stage.channels, in_channels, 3, 3],
            ));
            table.push((
                format!("features.{index}.bias"),
                format!("{ours}.bias"),
                vec![stage.channels],
            ));
            in_channels = stage.channels;
            conv += 1;
        }
    }
    table
}

/// Check that a weight file holds every VGG16 convolution with timm's names and shapes and
/// no `features.*` tensor we would not know where to put. Returns the tensors by our names.
pub fn read_vgg16(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let file = load_tensors(path)?;
    let mapping = vgg16_mapping();
    let mut problems = Vec::new();
    let mut out = BTreeMap::new();
    for (timm, ours, shape) in &mapping {
        match file.get(timm) {
            None => problems.push(format!("missing `{timm}` {shape:?}")),
            Some(t) if t.dims() != shape.as_slice() => problems.push(format!(
                "`{timm}` has shape {:?}, expected {shape:?}",
                t.dims()
            )),
            Some(t) => {
                out.insert(ours.clone(), t.to_dtype(candle_core::DType::F32)?);
            }
        }
    }
    for name in file.keys() {
        if name.starts_with("features.") && !mapping.iter().any(|(timm, _, _)| timm == name) {
            problems.push(format!("unmapped tensor `{name}`"));
        }
    }
    if !problems.is_empty() {
        return Err(ModelError::checkpoint(
            path,
            format!("not timm's vgg16.tv_in1k weights: {}", problems.join("; ")),
        ));
    }
    Ok(out)
}

/// Copy VGG16's convolutions into a network's trunk (the identity network or the attribute
/// encoder of the `paper` preset). Fails, modifying nothing, if the network's trunk is not
/// VGG16-shaped. Returns the number of tensors set (26).
pub fn import_vgg16(path: &Path, params: &ParamSet) -> Result<usize> {
    let weights = read_vgg16(path)?;
    let ours = params.shapes();
    for (name, tensor) in &weights {
        match ours.get(name) {
            Some(shape) if shape.as_slice() == tensor.dims() => {}
            Some(shape) => {
                return Err(ModelError::checkpoint(
                    path,
                    format!(
                        "`{name}` is {shape:?} in the network but {:?} in VGG16: the trunk is not VGG16 (use the paper preset)",
                        tensor.dims()
                    ),
                ))
            }
            None => {
                return Err(ModelError::checkpoint(
                    path,
                    format!("the network has no `{name}`: the trunk is not VGG16 (use the paper preset)"),
                ))
            }
        }
    }
    let vars: BTreeMap<String, candle_core::Var> = params.named_vars().into_iter().collect();
    for (name, tensor) in &weights {
        if let Some(var) = vars.get(name) {
            var.set(&tensor.to_device(var.device())?)?;
        }
    }
    Ok(weights.len())
}
