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
    group_by: Vec<String>,
    started: bool,
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
    /// No values yet, for `fields` grouped by `group_by`.
    pub fn new(fields: &[String], group_by: &[String]) -> Series {
        Series { fields: fields.to_vec(), group_by: group_by.to_vec(), ..Default::default() }
    }

    /// Adds a point's tracked values (points come in time order).
    pub fn add(&mut self, p: &agent::Point) {
        if !self.started {
            (self.started, self.start) = (true, p.time);
        }
        self.end = p.time;
        for f in &self.fields {
            if let Reading::Value(v) = values::read(p, f) {
                self.values
                    .entry((label(&p.tags, &self.group_by), f.clone()))
                    .or_default()
                    .push((p.time, v));
            }
        }
    }

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

/// Distinct colours per group: Tableau's "tab20" without its reds (kept
/// for nothing else, so no group reads as an alarm), dark shades first, so
/// twelve groups get twelve clearly different colours; beyond eighteen
/// they repeat.
fn color_of(i: usize) -> RGBColor {
    const PALETTE: [(u8, u8, u8); 18] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
        (174, 199, 232),
        (255, 187, 120),
        (152, 223, 138),
        (197, 176, 213),
        (196, 156, 148),
        (247, 182, 210),
        (199, 199, 199),
        (219, 219, 141),
        (158, 218, 229),
    ];
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

/// Wall-clock text (UTC) for an x position `hours` after `start`: the time
/// of day, with the date when the span covers more than a day.
fn clock(start: i64, hours: f64, with_date: bool) -> String {
    let ns = start.saturating_add((hours * 3.6e12) as i64);
    let text = crate::inspect::rfc3339(ns);
    // 2016-01-01T01:05:00.000000000Z
    match (text.get(0..10), text.get(11..16)) {
        (Some(d), Some(t)) if with_date => format!("{d} {t}"),
        (_, Some(t)) => t.to_string(),
        _ => text,
    }
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

/// Mean per bucket, in time order.
fn means(points: &[(i64, f64)], start: i64, end: i64, buckets: usize) -> Vec<(f64, f64)> {
    let span = (end - start).max(1) as f64;
    let mut b: Vec<(f64, f64, u32)> = vec![(0.0, 0.0, 0); buckets];
    for &(t, v) in points {
        let i = ((((t - start) as f64 / span) * (buckets - 1) as f64) as usize).min(buckets - 1);
        if b[i].2 == 0 {
            b[i].0 = (t - start) as f64 / 3.6e12;
        }
        b[i].1 += v;
        b[i].2 += 1;
    }
    b.into_iter().filter(|e| e.2 > 0).map(|(x, sum, n)| (x, sum / f64::from(n))).collect()
}

/// Width of the legend column right of the charts.
const LEGEND_W: u32 = 230;

/// Writes the SVG: per tracked field, its values (one line per group, each
/// anomalous window shaded in its group's colour) above its p-values (log
/// scale, a dashed line at alpha, anomalous verdicts as dots in their
/// group's colour). The x axis is wall-clock time (UTC). The legend sits in
/// its own column right of the charts, never over the data.
pub fn write(path: &Path, series: &Series, out: &Outcome, period: i64) -> anyhow::Result<()> {
    let rows = series.fields.len().max(1);
    let (w, h) = (1400u32, 460 * rows as u32);
    let root = SVGBackend::new(path, (w, h)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (charts, legend) = root.split_horizontally(w - LEGEND_W);
    let hours = (series.end - series.start).max(1) as f64 / 3.6e12;
    // A day's data is a day and a few seconds: dates from 25 hours on.
    let with_date = hours > 25.0;
    let start = series.start;
    let x = |t: i64| (t - series.start) as f64 / 3.6e12;
    let x_fmt = move |h: &f64| clock(start, *h, with_date);
    let panels = charts.split_evenly((rows * 2, 1));
    let groups: Vec<String> = {
        let mut g: Vec<String> = series.values.keys().map(|(g, _)| g.clone()).collect();
        g.sort();
        g.dedup();
        g
    };
    let color = |group: &str| color_of(groups.iter().position(|g| g == group).unwrap_or(0));
    let anomalous = |p: &&&agent::Point| p.fields_bool.get("anomalous") == Some(&true);
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
        // One group: its min/max envelope (spikes stay visible). Several:
        // each group's mean per bucket, so twelve lines stay twelve lines
        // instead of one band of overlapping envelopes.
        let lines: Vec<(&String, Vec<(f64, f64)>)> = data
            .iter()
            .map(|(group, values)| {
                let line = if groups.len() > 1 {
                    means(values, series.start, series.end, 360)
                } else {
                    envelope(values, series.start, series.end, 1500)
                };
                (*group, line)
            })
            .collect();
        let (lo, hi) = lines
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
            .x_label_area_size(28)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..hours, lo..hi)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("time (UTC)")
            .x_label_formatter(&x_fmt)
            .y_desc(field.as_str())
            .draw()
            .map_err(|e| err(&e))?;
        for (group, line) in lines {
            let c = color(group);
            chart.draw_series(LineSeries::new(line, c.stroke_width(1))).map_err(|e| err(&e))?;
        }
        // Each group's anomalous windows, shaded in its colour over the
        // lines, at least 1/250 of the axis wide so a 5-minute window in a
        // day's plot is still seen.
        let min_w = hours / 250.0;
        chart
            .draw_series(verdicts.iter().filter(anomalous).map(|p| {
                // One group: red, which its own line is not.
                let c = if groups.len() > 1 {
                    color(&super::group_of(p, &out.field_tag))
                } else {
                    RGBColor(230, 60, 60)
                };
                let (a, b) = (x(p.time - period), x(p.time));
                let pad = ((min_w - (b - a)) / 2.0).max(0.0);
                Rectangle::new([(a - pad, lo), (b + pad, hi)], c.mix(0.35).filled())
            }))
            .map_err(|e| err(&e))?;
        // p-value panel, log scale.
        let floor = verdicts
            .iter()
            .filter_map(|p| p.fields_double.get("pvalue").copied())
            .chain(out.alpha)
            .filter(|p| *p > 0.0)
            .fold(1e-3f64, f64::min)
            // Below 1e-16 a p-value says nothing more (f64 resolution near
            // 1): smaller ones are drawn at the bottom, so the scale stays
            // readable.
            .max(1e-16)
            / 10.0;
        let mut pchart = ChartBuilder::on(&panels[fi * 2 + 1])
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..hours, (floor..1.0f64).log_scale())
            .map_err(|e| err(&e))?;
        pchart
            .configure_mesh()
            .x_desc("time (UTC)")
            .x_label_formatter(&x_fmt)
            .y_desc("p-value")
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()
            .map_err(|e| err(&e))?;
        for group in &groups {
            let pts: Vec<(f64, f64)> = verdicts
                .iter()
                .filter(|p| super::group_of(p, &out.field_tag) == *group || groups.len() == 1)
                .filter_map(|p| p.fields_double.get("pvalue").map(|v| (x(p.time), v.max(floor))))
                .collect();
            pchart
                .draw_series(LineSeries::new(pts, color(group).stroke_width(1)))
                .map_err(|e| err(&e))?;
        }
        if let Some(alpha) = out.alpha.filter(|a| *a > floor && *a < 1.0) {
            pchart
                .draw_series(DashedLineSeries::new(
                    [(0.0, alpha), (hours, alpha)],
                    6,
                    4,
                    RED.stroke_width(1),
                ))
                .map_err(|e| err(&e))?;
            pchart
                .draw_series(std::iter::once(Text::new(
                    format!("alpha {alpha}"),
                    (0.0, alpha),
                    ("sans-serif", 12).into_font().color(&RED),
                )))
                .map_err(|e| err(&e))?;
        }
        pchart
            .draw_series(verdicts.iter().filter(anomalous).filter_map(|p| {
                let c = color(&super::group_of(p, &out.field_tag));
                p.fields_double.get("pvalue").map(|v| {
                    EmptyElement::at((x(p.time), v.max(floor)))
                        + Circle::new((0, 0), 4, c.filled())
                        + Circle::new((0, 0), 4, BLACK.stroke_width(1))
                })
            }))
            .map_err(|e| err(&e))?;
    }
    // The legend, in its own column: each group's colour, then how
    // anomalies and alpha are drawn.
    let font = ("sans-serif", 14).into_font();
    let small = ("sans-serif", 12).into_font();
    let mut y = 40;
    legend.draw(&Text::new("groups", (10, 16), font.clone())).map_err(|e| err(&e))?;
    for group in &groups {
        let c = color(group);
        legend
            .draw(&PathElement::new(vec![(10, y), (34, y)], c.stroke_width(3)))
            .map_err(|e| err(&e))?;
        legend.draw(&Text::new(group.clone(), (40, y - 7), font.clone())).map_err(|e| err(&e))?;
        y += 20;
    }
    y += 16;
    let key = [
        "lines: each group's mean over",
        "  1/360 of the span (one group:",
        "  its min/max envelope)",
        "shaded: an anomalous window,",
        "  in its group's colour (red",
        "  when there is one group)",
        "dot: an anomalous verdict,",
        "  in its group's colour",
        "dashed red: alpha",
    ];
    for line in key {
        legend.draw(&Text::new(line, (10, y), small.clone())).map_err(|e| err(&e))?;
        y += 16;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
