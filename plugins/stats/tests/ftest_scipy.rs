//! The F-test agrees with scipy's `stats.f` on recorded cases
//! (fixtures/ftest_scipy.csv, made by gen_ftest_scipy.py).

use tickwatch_stats::f_test;

fn close(got: f64, want: f64, rel: f64) -> bool {
    if want == 0.0 {
        return got.abs() < 1e-300;
    }
    ((got - want) / want).abs() <= rel
}

#[test]
fn p_values_match_scipy_to_1e8_relative() {
    let csv = include_str!("fixtures/ftest_scipy.csv");
    let mut checked = 0;
    for line in csv.lines().filter(|l| !l.starts_with('#') && !l.starts_with("var_hist")) {
        let v: Vec<f64> = line.split(',').map(|x| x.parse().expect("fixture number")).collect();
        let (var_hist, n_hist, var_win, n_win, f, p) = (v[0], v[1], v[2], v[3], v[4], v[5]);
        let r = f_test(var_hist, n_hist, var_win, n_win);
        assert!(close(r.f, f, 1e-15), "f for {line}: got {}", r.f);
        assert!(close(r.pvalue, p, 1e-8), "p for {line}: got {}", r.pvalue);
        checked += 1;
    }
    assert!(checked >= 50, "only {checked} fixture rows");
}
