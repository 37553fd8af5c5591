//! `--plot FILE.svg`: per tracked field, its values over time (one line per
//! group, anomalous windows shaded) above its p-values on a log scale.
//! Long series are reduced to a min/max envelope per pixel column, so the
//! SVG stays small and spikes stay visible.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;
use tickwatch_proto::agent;

use super::Outcome;
use crate::kapacitor::{group_id, group_label};
use crate::node::values::{self, Reading};

/// Values per (group label, field): (time ns, value).
#[derive(Debug, Default)]
pub struct Series {
    values: BTreeMap<(String, String), Vec<(i64, f64)>>,
    fields: Vec<String>,
    start: i64,
    end: i64,
}

/// `k=v,…` over the sorted group-by tags (as Kapacitor's group ids, and as
/// the report names groups).
fn label(tags: &std::collections::HashMap<String, String>, group_by: &[String]) -> String {
    // The windower keeps only the group-by tags a point has, so the
    // emitted points' groups (`super::group_of`) name only those too.
    let mut dims: Vec<String> =
        group_by.iter().filter(|k| tags.contains_key(*k)).cloned().collect();
    dims.sort();
    dims.dedup();
    group_label(&group_id("", false, &dims, tags))
}

impl Series {
    /// Collects the tracked fields' numeric values from the input.
    pub fn from_points(points: &[agent::Point], fields: &[String], group_by: &[String]) -> Series {
        let mut s = Series { fields: fields.to_vec(), ..Default::default() };
        s.start = points.first().map_or(0, |p| p.time);
        s.end = points.last().map_or(0, |p| p.time);
        for p in points {
            for f in fields {
                if let Reading::Value(v) = values::read(p, f) {
                    s.values
                        .entry((label(&p.tags, group_by), f.clone()))
                        .or_default()
                        .push((p.time, v));
                }
            }
        }
        s
    }
}

/// Distinct line colors per group (the "tab10" palette), never the red
/// used for anomalies.
fn color_of(i: usize) -> RGBAColor {
    const TAB10: [(u8, u8, u8); 8] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (23, 190, 207),
    ];
    let (r, g, b) = TAB10[i % TAB10.len()];
    RGBColor(r, g, b).to_rgba()
}

/// Min and max per bucket, in time order.
fn envelope(points: &[(i64, f64)], start: i64, end: i64, buckets: usize) -> Vec<(f64, f64)> {
    let span = (end - start).max(1) as f64;
    let mut b: Vec<Option<(f64, f64, f64)>> = vec![None; buckets];
    for &(t, v) in points {
        let i = (((t - start) as f64 / span) * (buckets - 1) as f64) as usize;
        let i = i.min(buckets - 1);
        let x = (t - start) as f64 / 3.6e12;
        b[i] = Some(match b[i] {
            None => (x, v, v),
            Some((x0, lo, hi)) => (x0, lo.min(v), hi.max(v)),
        });
    }
    b.into_iter().flatten().flat_map(|(x, lo, hi)| [(x, lo), (x, hi)]).collect()
}

/// Writes the SVG.
pub fn write(path: &Path, series: &Series, out: &Outcome, period: i64) -> anyhow::Result<()> {
    let rows = series.fields.len().max(1);
    let (w, h) = (1200u32, 420 * rows as u32);
    let root = SVGBackend::new(path, (w, h)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let hours = (series.end - series.start).max(1) as f64 / 3.6e12;
    let x = |t: i64| (t - series.start) as f64 / 3.6e12;
    let panels = root.split_evenly((rows * 2, 1));
    let groups: Vec<String> = {
        let mut g: Vec<String> = series.values.keys().map(|(g, _)| g.clone()).collect();
        g.dedup();
        g
    };
    for (fi, field) in series.fields.iter().enumerate() {
        let verdicts: Vec<&agent::Point> =
            out.emitted.iter().filter(|p| p.tags.get(&out.field_tag) == Some(field)).collect();
        // Values panel.
        let data: Vec<(&String, &Vec<(i64, f64)>)> = series
            .values
            .iter()
            .filter(|((_, f), _)| f == field)
            .map(|((g, _), v)| (g, v))
            .collect();
        let (lo, hi) = data
            .iter()
            .flat_map(|(_, v)| v.iter().map(|p| p.1))
            .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let (lo, hi) = if lo <= hi {
            (lo - 0.05 * (hi - lo + 1.0), hi + 0.05 * (hi - lo + 1.0))
        } else {
            (0.0, 1.0)
        };
        let mut chart = ChartBuilder::on(&panels[fi * 2])
            .caption(field.as_str(), ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..hours, lo..hi)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("hours")
            .y_desc(field.as_str())
            .draw()
            .map_err(|e| err(&e))?;
        let shade = RGBColor(230, 60, 60).mix(0.25).filled();
        chart
            .draw_series(
                verdicts
                    .iter()
                    .filter(|p| p.fields_bool.get("anomalous") == Some(&true))
                    .map(|p| Rectangle::new([(x(p.time - period), lo), (x(p.time), hi)], shade)),
            )
            .map_err(|e| err(&e))?;
        for (gi, (group, values)) in data.iter().enumerate() {
            let color = color_of(gi);
            chart
                .draw_series(LineSeries::new(
                    envelope(values, series.start, series.end, 1500),
                    color,
                ))
                .map_err(|e| err(&e))?
                .label(group.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        if groups.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(&e))?;
        }
        // p-value panel, log scale.
        let floor = verdicts
            .iter()
            .filter_map(|p| p.fields_double.get("pvalue").copied())
            .filter(|p| *p > 0.0)
            .fold(1e-3f64, f64::min)
            .max(1e-300)
            / 10.0;
        let mut pchart = ChartBuilder::on(&panels[fi * 2 + 1])
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..hours, (floor..1.0f64).log_scale())
            .map_err(|e| err(&e))?;
        pchart
            .configure_mesh()
            .x_desc("hours")
            .y_desc("p-value")
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()
            .map_err(|e| err(&e))?;
        for (gi, group) in groups.iter().enumerate() {
            let color = color_of(gi);
            let pts: Vec<(f64, f64)> = verdicts
                .iter()
                .filter(|p| super::group_of(p, &out.field_tag) == *group || groups.len() == 1)
                .filter_map(|p| p.fields_double.get("pvalue").map(|v| (x(p.time), v.max(floor))))
                .collect();
            pchart.draw_series(LineSeries::new(pts, color)).map_err(|e| err(&e))?;
        }
        pchart
            .draw_series(
                verdicts
                    .iter()
                    .filter(|p| p.fields_bool.get("anomalous") == Some(&true))
                    .filter_map(|p| {
                        p.fields_double
                            .get("pvalue")
                            .map(|v| Circle::new((x(p.time), v.max(floor)), 3, RED.filled()))
                    }),
            )
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
