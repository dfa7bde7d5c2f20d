//! Stage: results. Text every printed section shares: the width a line
//! fits in, prose wrapped to it, and rows of aligned cells.

use std::fmt::Write as _;

/// Columns the prose fits in, and the default tables of `latency` and
/// `throughput` (`--wide` adds columns past it).
pub const WIDTH: usize = 80;

/// A line of prose, wrapped at word boundaries to [`WIDTH`] columns.
pub(super) fn prose(s: &mut String, text: &str) {
    let mut line = 0;
    for word in text.split(' ') {
        let w = word.chars().count();
        if line > 0 && line + 1 + w > WIDTH {
            s.push('\n');
            line = 0;
        }
        if line > 0 {
            s.push(' ');
            line += 1;
        }
        s.push_str(word);
        line += w;
    }
    s.push('\n');
}

/// One row of cells, right-aligned in `widths` (the first left-aligned).
pub(super) fn row(s: &mut String, widths: &[usize], cells: &[String]) {
    for (i, (w, c)) in widths.iter().zip(cells).enumerate() {
        let _ = match i {
            0 => write!(s, "{c:<w$}"),
            _ => write!(s, " {c:>w$}"),
        };
    }
    s.push('\n');
}
