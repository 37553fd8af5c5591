//! Writes the guide's 24 h printer day as InfluxDB line protocol (timestamps
//! in seconds), for `kapacitor record`/`replay` or `tickwatch replay`:
//!
//! ```text
//! cargo run --example printer_data -- [--seed N] [--printer NAME] [--int-fields hotend,…] > day.lp
//! tickwatch replay day.lp --precision s --detector ttest \
//!     --udf ".field('hotend','bed','air').size(3600).alpha(0.001)"
//! ```
//!
//! With `--printer NAME` each line carries the tag `printer=NAME` (group by
//! it with `--group-by printer`). `--int-fields` writes those fields as
//! integers (`220i`), as a printer reporting whole degrees would.

use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut seed = 1u64;
    let mut printer = String::new();
    let mut int_fields = String::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--seed" => seed = value()?.parse()?,
            "--printer" => printer = value()?,
            "--int-fields" => int_fields = value()?,
            "-h" | "--help" => {
                println!("usage: printer_data [--seed N] [--printer NAME] [--int-fields a,b]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let tags = if printer.is_empty() { String::new() } else { format!("printer={printer}") };
    let ints: Vec<&str> = int_fields.split(',').filter(|s| !s.is_empty()).collect();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for r in tickwatch_engine::scenario::printer_day(seed) {
        writeln!(out, "{}", r.line_protocol(&tags, &ints))?;
    }
    out.flush()?;
    Ok(())
}
