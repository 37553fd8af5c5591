//! Temporary: writes the v1 fixtures with today's code.
use tickwatch_plugin_api::{Detector, Options, Value};
use tickwatch_ttest::TTest;

fn series(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed;
    let mut x = 0.0;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let u = (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            x = 0.9 * x + u;
            50.0 + x
        })
        .collect()
}

#[test]
fn make() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    for (name, rebaseline, size) in [("v1_rebaseline_off", 0, 120), ("v1_rebaseline_3", 3, 120)] {
        let mut d = TTest::new(&Options::new(vec![
            ("size".into(), Value::Int(size)),
            ("alpha".into(), Value::Double(0.001)),
            ("rebaseline".into(), Value::Int(rebaseline)),
        ]))
        .unwrap();
        let xs = series(42, 80);
        let mut out = String::new();
        let mut saved = 0;
        for end in 1..=xs.len() {
            let v = d.score(&xs[end.saturating_sub(6)..end]);
            if saved == 0 && end >= 40 && (rebaseline == 0 || d.baseline().streak() > 0) {
                saved = end;
                out.push_str(&format!("saved after window {end}, streak {}\n", d.baseline().streak()));
                std::fs::write(format!("{dir}/{name}.bin"), d.save()).unwrap();
            }
            if saved > 0 && end > saved {
                match v {
                    Some(v) => out.push_str(&format!(
                        "{} {} {}\n",
                        v.pvalue.to_bits(),
                        v.anomalous,
                        v.stats.iter().map(|(n, x)| format!("{n}={}", x.to_bits())).collect::<Vec<_>>().join(",")
                    )),
                    None => out.push_str("none\n"),
                }
            }
        }
        std::fs::write(format!("{dir}/{name}.verdicts"), out).unwrap();
    }
}
