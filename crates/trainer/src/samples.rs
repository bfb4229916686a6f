//! Sample grids written during training: fixed identity images as rows, fixed attribute
//! images as columns, plus one column of a random attribute vector z ~ N(0, I) (open-set
//! sampling); the same inputs every time, so grids of one run compare step by step.

use std::path::Path;

use candle_core::{Device, Tensor};
use image::RgbImage;
use osips_data::{chw_to_image, image_to_chw, Dataset, Part};

use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::trainer::Trainer;

/// Rows (identities) and columns (attributes) of a training sample grid.
pub const GRID_ROWS: usize = 5;
pub const GRID_COLS: usize = 5;

/// The fixed inputs of the sample grids.
pub struct SampleInputs {
    identity_images: Vec<RgbImage>,
    attribute_images: Vec<RgbImage>,
    identity_batch: Tensor,
    attribute_batch: Tensor,
    random_z: Tensor,
    size: usize,
}

impl SampleInputs {
    /// Pick the inputs: the first image of the first classes as identities, the second image
    /// of the next classes as attributes.
    pub fn new(dataset: &Dataset, config: &RunConfig, device: &Device) -> Result<Self> {
        let size = config.model.image_size;
        let n_classes = dataset.n_identities() as u32;
        let pick = |class: u32, k: usize| -> Result<RgbImage> {
            let class = class % n_classes.max(1);
            let k = k.min(dataset.class_len(class).saturating_sub(1));
            let index = dataset.class_image(class, k).ok_or_else(|| {
                TrainError::Config(format!("class {class} has no image for the sample grid"))
            })?;
            Ok(dataset.load(Part::Labeled, index, size as u32)?)
        };
        let identity_images = (0..GRID_ROWS as u32)
            .map(|c| pick(c, 0))
            .collect::<Result<Vec<_>>>()?;
        let attribute_images = (0..GRID_COLS as u32)
            .map(|c| pick(c + GRID_ROWS as u32, 1))
            .collect::<Result<Vec<_>>>()?;
        let to_batch = |images: &[RgbImage]| -> Result<Tensor> {
            let data: Vec<f32> = images.iter().flat_map(image_to_chw).collect();
            Ok(Tensor::from_vec(
                data,
                (images.len(), 3, size, size),
                device,
            )?)
        };
        let random_z = osips_models::seeded_normal(
            (GRID_ROWS, config.model.attribute_dim),
            config.seed ^ 0x5a3c_0001,
            device,
        )?;
        Ok(SampleInputs {
            identity_batch: to_batch(&identity_images)?,
            attribute_batch: to_batch(&attribute_images)?,
            identity_images,
            attribute_images,
            random_z,
            size,
        })
    }

    /// Synthesize the grid with the EMA generator (eval mode, z = μ) and write it as PNG.
    pub fn write_grid(&self, trainer: &Trainer, path: &Path) -> Result<()> {
        let nets = &trainer.nets;
        let identity = nets
            .identity
            .forward_t(&self.identity_batch, false)?
            .identity;
        let attribute = nets.attribute.forward_t(&self.attribute_batch, false)?.mean;
        let mut rows = Vec::with_capacity(GRID_ROWS + 1);
        let mut header = vec![None];
        header.extend(self.attribute_images.iter().cloned().map(Some));
        header.push(None);
        rows.push(header);
        for r in 0..GRID_ROWS {
            let id = identity.narrow(0, r, 1)?.repeat((GRID_COLS + 1, 1))?;
            let z = Tensor::cat(&[&attribute, &self.random_z.narrow(0, r, 1)?], 0)?;
            let fakes = trainer.ema.forward_t(&id, &z, false)?;
            let mut row = vec![Some(self.identity_images[r].clone())];
            for c in 0..=GRID_COLS {
                let chw: Vec<f32> = fakes.get(c)?.flatten_all()?.to_vec1()?;
                row.push(Some(chw_to_image(&chw, self.size as u32)));
            }
            rows.push(row);
        }
        let grid = compose_grid(&rows, self.size as u32, 2);
        save_png(&grid, path)
    }
}

/// Lay out images in a grid with `gap` pixels of white between them; `None` leaves a cell
/// white.
pub fn compose_grid(rows: &[Vec<Option<RgbImage>>], size: u32, gap: u32) -> RgbImage {
    let n_rows = rows.len() as u32;
    let n_cols = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let mut out = RgbImage::from_pixel(
        n_cols * (size + gap) + gap,
        n_rows * (size + gap) + gap,
        image::Rgb([255, 255, 255]),
    );
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            if let Some(img) = cell {
                let x = gap + c as u32 * (size + gap);
                let y = gap + r as u32 * (size + gap);
                image::imageops::overlay(&mut out, img, i64::from(x), i64::from(y));
            }
        }
    }
    out
}

/// Save a PNG atomically.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| TrainError::file(path, e))?;
    crate::run::write_atomic(path, &bytes)
}
