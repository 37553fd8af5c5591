use tickwatch_plugin_api::{Detector, Options, Value};
use tickwatch_ttest::TTest;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let xs: Vec<f64> = text.lines().skip(1).filter_map(|l| l.split(',').nth(1)?.parse().ok()).collect();
    let mut d = TTest::new(&Options::new(vec![("size".into(), Value::Int(3600)), ("alpha".into(), Value::Double(0.001)), ("rebaseline".into(), Value::Int(0))])).unwrap();
    let (mut n, mut ser, mut anom, mut anom_ser) = (0, 0, 0, 0);
    let every = std::env::args().nth(2).map(|s| s.parse::<usize>().unwrap()).unwrap_or(0);
    for end in 1..=xs.len() {
        let sc = d.serial();
        let k = d.record().map_or(0, |r| r.windows());
        let w = &xs[end.saturating_sub(6)..end];
        if let Some(v) = d.score(w) {
            n += 1; ser += sc.is_some() as usize; anom += v.anomalous as usize; anom_ser += (v.anomalous && sc.is_some()) as usize;
            if (every > 0 && end % every == 0) || (every == 0 && v.pvalue < 1e-20) { println!("{end} K={k} serial={} p={:.2e} w={:?}", sc.is_some(), v.pvalue, w); }
        }
    }
    println!("{}: verdicts {n}, serial {ser}, anomalous {anom} (in serial {anom_ser})", path.rsplit('/').next().unwrap());
}
