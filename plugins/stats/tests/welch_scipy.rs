//! Welch's test agrees with scipy's `ttest_ind_from_stats(equal_var=False)`
//! on recorded cases (fixtures/welch_scipy.csv, made by gen_welch_scipy.py).

use tickwatch_stats::welch_from_stats;

fn close(got: f64, want: f64, rel: f64) -> bool {
    if want == 0.0 {
        return got.abs() < 1e-300;
    }
    ((got - want) / want).abs() <= rel
}

#[test]
fn p_values_match_scipy_to_1e9_relative() {
    let csv = include_str!("fixtures/welch_scipy.csv");
    let mut checked = 0;
    for line in csv.lines().filter(|l| !l.starts_with('#') && !l.starts_with("mean1")) {
        let f: Vec<f64> = line.split(',').map(|x| x.parse().expect("fixture number")).collect();
        let (m1, s1, n1, m2, s2, n2, t, p) = (f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]);
        let r = welch_from_stats(m1, s1 * s1, n1, m2, s2 * s2, n2);
        assert!(close(r.t, t, 1e-9), "t for {line}: got {}", r.t);
        assert!(close(r.pvalue, p, 1e-9), "p for {line}: got {}", r.pvalue);
        checked += 1;
    }
    assert!(checked >= 50, "only {checked} fixture rows");
}
