//! The demo chart: throughput over time, and the delivered share of each
//! principal on the flooded route, as one SVG (no fonts needed: the SVG
//! backend writes text elements for the viewer to render).

use std::path::Path;

use anyhow::Context as _;
use plotters::prelude::*;

use crate::demo::Outcome;

/// Fails early (before the demo runs) if `path` cannot be written.
pub(crate) fn check_writable(path: &Path) -> anyhow::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
        .with_context(|| format!("cannot write plot {}", path.display()))
}

/// Writes the chart of `outcome` to `path`.
pub(crate) fn write_svg(path: &Path, outcome: &Outcome) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1000, 760)).into_drawing_area();
    root.fill(&WHITE)?;
    let (upper, lower) = root.split_vertically(380);

    let max_t = outcome
        .throughput
        .iter()
        .map(|p| p.0)
        .fold(outcome.publish_seconds, f64::max)
        .max(0.1);
    let max_rate = outcome.throughput.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&upper)
        .caption("Publish throughput", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..max_t, 0f64..max_rate)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("events/s")
        .draw()?;
    chart.draw_series(LineSeries::new(
        outcome.throughput.iter().copied(),
        BLUE.stroke_width(2),
    ))?;

    let mut chart = ChartBuilder::on(&lower)
        .caption(
            "Flooded route: share of deliveries per principal (cumulative)",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..max_t, 0f64..1f64)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("share")
        .draw()?;
    let flood = &outcome.flood;
    for (i, name) in flood.principals.iter().enumerate() {
        let points: Vec<(f64, f64)> = flood
            .samples
            .iter()
            .filter_map(|(t, delivered)| {
                let total: u64 = delivered.iter().sum();
                (total > 0).then(|| (*t, delivered[i] as f64 / total as f64))
            })
            .collect();
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
