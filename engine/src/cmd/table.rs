//! Human-readable tables for the commands' text output, through
//! `comfy-table` (the one module that names it): columns sized by display
//! width (so non-ASCII group names and tag values line up), no borders, a
//! header row, two spaces between columns, and no trailing spaces, so the
//! output stays easy to read and to cut with `awk`. JSON output never goes
//! through here.

use comfy_table::{CellAlignment, ColumnConstraint, Table, presets};

/// How a column's cells are aligned.
// Only replay (left out of a build without the `tools` feature) aligns
// columns so far.
#[cfg_attr(not(feature = "tools"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// Renders `rows` under `head` (every row as long as `head`), each line
/// ending in a newline; `align` gives one alignment per column (missing
/// ones are left-aligned).
pub fn render(head: &[&str], rows: &[Vec<String>], align: &[Align]) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(head.iter().copied());
    for r in rows {
        t.add_row(r.iter().map(String::as_str));
    }
    for (i, col) in t.column_iter_mut().enumerate() {
        // One space of padding on each side makes two between columns;
        // none before the first and after the last is added below.
        col.set_padding((0, 2));
        col.set_constraint(ColumnConstraint::ContentWidth);
        if align.get(i) == Some(&Align::Right) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = String::new();
    for line in t.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_by_display_width_without_trailing_spaces() {
        let rows = vec![
            vec!["printer=ä".to_string(), "7".to_string(), "x".to_string()],
            vec!["p".to_string(), "1234".to_string(), String::new()],
        ];
        let text = render(&["GROUP", "N", "NOTE"], &rows, &[Align::Left, Align::Right]);
        assert_eq!(text, "GROUP         N  NOTE\nprinter=ä     7  x\np          1234\n");
    }
}
