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
const PANELS: [(&str, &[&str]); 6] = [
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

/// Draw the six loss panels (reconstruction and transformation process) into a PNG.
pub fn plot_stats(stats: &Path, out: &Path) -> Result<()> {
    let series = read_stats(stats)?;
    let with_text = font_available();
    let err = |e: &dyn std::fmt::Display| TrainError::file(out, e);
    let root = BitMapBackend::new(out, (1200, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let panels = root.split_evenly((2, 3));
    for (area, (title, keys)) in panels.iter().zip(PANELS) {
        let points: Vec<&Vec<(f64, f64)>> = keys.iter().filter_map(|k| series.get(*k)).collect();
        let all = points.iter().flat_map(|p| p.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in all.filter(|(_, y)| y.is_finite()) {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if x0 > x1 {
            continue;
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        if y1 <= y0 {
            y1 = y0 + 1.0;
        }
        let mut builder = ChartBuilder::on(area);
        builder.margin(8);
        if with_text {
            builder
                .caption(title, ("sans-serif", 18))
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
                .draw()
                .map_err(|e| err(&e))?;
        }
        for (i, key) in keys.iter().enumerate() {
            if let Some(points) = series.get(*key) {
                let color = if i == 0 { BLUE } else { RED };
                let drawn = chart
                    .draw_series(LineSeries::new(
                        points.iter().copied().filter(|(_, y)| y.is_finite()),
                        color.stroke_width(2),
                    ))
                    .map_err(|e| err(&e))?;
                if with_text {
                    let label = if i == 0 {
                        "reconstruction"
                    } else {
                        "transformation"
                    };
                    drawn
                        .label(label)
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
                }
            }
        }
        if with_text {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(&e))?;
        }
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
