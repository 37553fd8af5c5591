//! The guide's 3D-printer day, generated: 24 h of hotend, bed and air
//! temperatures at 1 s from 2016-01-01T00:00:00Z, normal noise around the
//! targets, with the guide's schedule of faults. The RNG is ChaCha8 seeded
//! from `seed`, so a seed always gives the same day.

use std::collections::HashMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use tickwatch_proto::agent;

/// 2016-01-01T00:00:00Z in nanoseconds.
pub const START_NS: i64 = 1_451_606_400 * 1_000_000_000;
/// Readings per day, as the guide writes them (one per second, plus two).
pub const READINGS: usize = 60 * 60 * 24 + 2;
/// The measurement name.
pub const MEASUREMENT: &str = "temperatures";
/// The three fields, in the guide's order.
pub const FIELDS: [&str; 3] = ["hotend", "bed", "air"];

/// (second it starts, sigma, offset from target) for one field.
type Schedule = &'static [(usize, f64, f64)];

const HOTEND: (f64, Schedule) = (220.0, &[(0, 0.5, 0.0), (3600, 3.0, -1.5), (3900, 0.5, 0.0)]);
const BED: (f64, Schedule) = (90.0, &[(0, 1.0, 0.0), (28800, 5.0, 2.0), (29700, 1.0, 0.0)]);
const AIR: (f64, Schedule) = (
    70.0,
    &[(0, 3.0, 0.0), (10800, 5.0, 0.0), (43200, 15.0, -5.0), (45000, 5.0, 0.0), (72000, 3.0, 0.0)],
);

/// An injected fault: field, first and last+1 second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fault {
    /// The field.
    pub field: &'static str,
    /// Start, seconds from the start of the day.
    pub start_s: i64,
    /// End (exclusive), seconds from the start of the day.
    pub end_s: i64,
}

/// The faults the guide injects (the air's milder 3 h–20 h spread change is
/// not listed: the guide does not count it as a fault).
pub const FAULTS: [Fault; 3] = [
    Fault { field: "hotend", start_s: 3600, end_s: 3900 },
    Fault { field: "bed", start_s: 28800, end_s: 29700 },
    Fault { field: "air", start_s: 43200, end_s: 45000 },
];

/// One second of the printer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Seconds from the start of the day.
    pub second: i64,
    /// Hot-end temperature, °C.
    pub hotend: f64,
    /// Bed temperature, °C.
    pub bed: f64,
    /// Ambient air temperature, °C.
    pub air: f64,
}

fn level(schedule: Schedule, i: usize) -> (f64, f64) {
    let mut cur = (0.0, 0.0);
    for &(start, sigma, offset) in schedule {
        if i >= start {
            cur = (sigma, offset);
        }
    }
    cur
}

fn sample(rng: &mut ChaCha8Rng, target: f64, (sigma, offset): (f64, f64)) -> f64 {
    match Normal::new(target + offset, sigma) {
        Ok(n) => n.sample(rng),
        Err(_) => target + offset,
    }
}

/// The printer day for `seed`.
pub fn printer_day(seed: u64) -> Vec<Reading> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..READINGS)
        .map(|i| Reading {
            second: i as i64,
            hotend: sample(&mut rng, HOTEND.0, level(HOTEND.1, i)),
            bed: sample(&mut rng, BED.0, level(BED.1, i)),
            air: sample(&mut rng, AIR.0, level(AIR.1, i)),
        })
        .collect()
}

impl Reading {
    /// As a Kapacitor point (`temperatures`, fields as doubles), with `tags`.
    pub fn to_point(&self, tags: &HashMap<String, String>) -> agent::Point {
        agent::Point {
            name: MEASUREMENT.into(),
            time: START_NS + self.second * 1_000_000_000,
            tags: tags.clone(),
            fields_double: HashMap::from([
                ("hotend".into(), self.hotend),
                ("bed".into(), self.bed),
                ("air".into(), self.air),
            ]),
            ..Default::default()
        }
    }

    /// One line of InfluxDB line protocol (`temperatures[,tags] hotend=…,bed=…,air=… <s>`),
    /// timestamp in seconds as the guide writes it. `int_fields` are written as
    /// integers (`220i`), rounded, as a printer reporting whole degrees would.
    pub fn line_protocol(&self, tags: &str, int_fields: &[&str]) -> String {
        let value = |name: &str, v: f64| {
            if int_fields.contains(&name) {
                format!("{name}={}i", v.round() as i64)
            } else {
                format!("{name}={v}")
            }
        };
        let sep = if tags.is_empty() { "" } else { "," };
        format!(
            "{MEASUREMENT}{sep}{tags} {},{},{} {}",
            value("hotend", self.hotend),
            value("bed", self.bed),
            value("air", self.air),
            START_NS / 1_000_000_000 + self.second
        )
    }

    /// The reading of `field`.
    pub fn get(&self, field: &str) -> Option<f64> {
        match field {
            "hotend" => Some(self.hotend),
            "bed" => Some(self.bed),
            "air" => Some(self.air),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_guide_schedule_and_is_reproducible() {
        let day = printer_day(7);
        assert_eq!(day.len(), READINGS);
        assert_eq!(day, printer_day(7));
        assert_ne!(day[..10], printer_day(8)[..10]);
        let mean = |f: &dyn Fn(&Reading) -> f64, a: usize, b: usize| {
            day[a..b].iter().map(f).sum::<f64>() / (b - a) as f64
        };
        assert!((mean(&|r| r.hotend, 0, 3600) - 220.0).abs() < 0.05);
        assert!((mean(&|r| r.hotend, 3600, 3900) - 218.5).abs() < 0.5);
        assert!((mean(&|r| r.bed, 28800, 29700) - 92.0).abs() < 0.5);
        assert!((mean(&|r| r.air, 43200, 45000) - 65.0).abs() < 1.0);
    }
}
