//! Loss curves from `stats.jsonl`, drawn to PNG with plotters.
//!
//! Text needs a TrueType font; plotters' `ab_glyph` backend has none built in, so the first
//! DejaVu Sans found in the usual system places is registered. Without one, the curves are
//! drawn without labels rather than not at all.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::error::{Result, TrainError};

const FONT_PATHS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/Library/Fonts/DejaVuSans.ttf",
];

fn font_available() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| {
        for path in FONT_PATHS {
            if let Ok(bytes) = std::fs::read(path) {
                // The registry keeps a 'static reference: the font is loaded once per process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// The panels drawn: (title, stat keys).
pub const PANELS: [(&str, &[&str]); 6] = [
    ("L_D", &["loss/recon/d", "loss/trans/d"]),
    ("L_I", &["loss/recon/i", "loss/trans/i"]),
    ("L_GR", &["loss/recon/gr", "loss/trans/gr"]),
    ("L_KL", &["loss/recon/kl", "loss/trans/kl"]),
    ("L_GD", &["loss/recon/gd", "loss/trans/gd"]),
    ("L_GC", &["loss/recon/gc", "loss/trans/gc"]),
];

/// Read every numeric series of a `stats.jsonl`: key → [(step, value)].
pub fn read_stats(path: &Path) -> Result<BTreeMap<String, Vec<(f64, f64)>>> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(line)
        else {
            continue;
        };
        let Some(step) = map.get("step").and_then(serde_json::Value::as_f64) else {
            continue;
        };
        for (key, value) in &map {
            if let Some(v) = value.as_f64() {
                series.entry(key.clone()).or_default().push((step, v));
            }
        }
    }
    Ok(series)
}

/// One line of a panel: a label and its (step, value) points.
#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// One chart of a figure: a title and its lines. A line of a single point is drawn as a
/// dot (e.g. an evaluation at the end of a run).
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub lines: Vec<Line>,
}

/// The colours of successive lines.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Draw the six loss panels (reconstruction and transformation process) of one run's
/// `stats.jsonl` into a PNG.
pub fn plot_stats(stats: &Path, out: &Path) -> Result<()> {
    let series = read_stats(stats)?;
    let panels: Vec<Panel> = PANELS
        .iter()
        .map(|(title, keys)| Panel {
            title: (*title).to_string(),
            lines: keys
                .iter()
                .zip(["reconstruction", "transformation"])
                .filter_map(|(key, label)| {
                    series.get(*key).map(|points| Line {
                        label: label.to_string(),
                        points: points.clone(),
                    })
                })
                .collect(),
        })
        .collect();
    draw_panels(&panels, 3, out)
}

/// Draw `panels` in a grid of `columns` columns into a PNG (400×350 pixels a panel).
pub fn draw_panels(panels: &[Panel], columns: usize, out: &Path) -> Result<()> {
    let with_text = font_available();
    let err = |e: &dyn std::fmt::Display| TrainError::file(out, e);
    let columns = columns.max(1);
    let rows = panels.len().div_ceil(columns).max(1);
    let (width, height) = (400 * columns as u32, 350 * rows as u32);
    // Drawn into memory, then written with the image crate's best PNG compression:
    // plotters' own encoder wrote a 6-panel figure in ~800 KB.
    let mut pixels = vec![0u8; 3 * width as usize * height as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let areas = root.split_evenly((rows, columns));
        for (area, panel) in areas.iter().zip(panels) {
            let finite = |l: &Line| -> Vec<(f64, f64)> {
                l.points
                    .iter()
                    .copied()
                    .filter(|(x, y)| x.is_finite() && y.is_finite())
                    .collect()
            };
            let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
            for &(x, y) in panel
                .lines
                .iter()
                .flat_map(finite)
                .collect::<Vec<_>>()
                .iter()
            {
                x0 = x0.min(x);
                x1 = x1.max(x);
                y0 = y0.min(y);
                y1 = y1.max(y);
            }
            if x0 > x1 {
                continue;
            }
            if x1 <= x0 {
                // A single step (e.g. one evaluation per run): centre it.
                x0 -= 1.0;
                x1 += 1.0;
            }
            if y1 <= y0 {
                y1 = y0 + 1.0;
            }
            let pad = 0.05 * (y1 - y0);
            let (y0, y1) = (y0 - pad, y1 + pad);
            let mut builder = ChartBuilder::on(area);
            builder.margin(8);
            if with_text {
                builder
                    .caption(&panel.title, ("sans-serif", 18))
                    .x_label_area_size(24)
                    .y_label_area_size(48);
            }
            let mut chart = builder
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| err(&e))?;
            if with_text {
                chart
                    .configure_mesh()
                    .x_desc("step")
                    // Steps are whole numbers; a few labels keep them from running together.
                    .x_labels(6)
                    .x_label_formatter(&|x| format!("{x:.0}"))
                    .draw()
                    .map_err(|e| err(&e))?;
            }
            for (i, line) in panel.lines.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                let points = finite(line);
                let drawn = if points.len() == 1 {
                    chart
                        .draw_series(points.iter().map(|&p| Circle::new(p, 5, color.filled())))
                        .map_err(|e| err(&e))?
                } else {
                    chart
                        .draw_series(LineSeries::new(points, color.stroke_width(2)))
                        .map_err(|e| err(&e))?
                };
                if with_text {
                    drawn
                        .label(line.label.clone())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
                }
            }
            if with_text && !panel.lines.is_empty() {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| err(&e))?;
            }
        }
        root.present().map_err(|e| err(&e))?;
    }
    write_png_best(&pixels, width, height, out)
}

/// An RGB buffer as a PNG with the best compression, through a temporary file.
fn write_png_best(pixels: &[u8], width: u32, height: u32, out: &Path) -> Result<()> {
    use image::ImageEncoder;
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut bytes,
        image::codecs::png::CompressionType::Best,
        image::codecs::png::FilterType::Adaptive,
    )
    .write_image(pixels, width, height, image::ExtendedColorType::Rgb8)
    .map_err(|e| TrainError::file(out, e))?;
    crate::run::write_atomic(out, &bytes)
}
