//! Stage: results. Text every printed section shares: the width a line
//! fits in, prose wrapped to it, and rows of aligned cells.

use std::fmt::Write as _;

/// Columns the prose fits in, and the default tables of `latency` and
/// `throughput` (`--wide` adds columns past it).
pub const WIDTH: usize = 80;

/// A line of prose, wrapped at word boundaries to [`WIDTH`] columns.
pub(super) fn prose(s: &mut String, text: &str) {
    s.push_str(&wrap(text, WIDTH, 0));
    s.push('\n');
}

/// `text` wrapped at word boundaries to `width` columns, the lines after
/// the first indented by `indent` spaces (at most half the width; no
/// trailing newline). Runs of spaces count as one; a word longer than a
/// line stands alone on its line.
pub fn wrap(text: &str, width: usize, indent: usize) -> String {
    let indent = indent.min(width / 2);
    let mut s = String::new();
    // Columns used on the line, and whether it holds a word yet.
    let (mut line, mut empty) = (0, true);
    for word in text.split_whitespace() {
        let w = word.chars().count();
        if !empty && line + 1 + w > width {
            s.push('\n');
            s.push_str(&" ".repeat(indent));
            (line, empty) = (indent, true);
        }
        if !empty {
            s.push(' ');
            line += 1;
        }
        s.push_str(word);
        (line, empty) = (line + w, false);
    }
    s
}

/// One row of cells, right-aligned in `widths` (the first left-aligned).
/// A table: the header and the rows, each column as wide as asked or as
/// its widest cell (a long name, `uds-stream@veth`, or a wide CI, pushes
/// its column out instead of the cells after it).
pub(super) fn table(s: &mut String, widths: &[usize], head: &[&str], rows: &[Vec<String>]) {
    let fitted: Vec<usize> = widths
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let cells = rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count());
            cells
                .chain([head.get(i).map_or(0, |h| h.chars().count())])
                .fold(w, usize::max)
        })
        .collect();
    row(
        s,
        &fitted,
        &head.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
    );
    for r in rows {
        row(s, &fitted, r);
    }
}

pub(super) fn row(s: &mut String, widths: &[usize], cells: &[String]) {
    for (i, (w, c)) in widths.iter().zip(cells).enumerate() {
        let _ = match i {
            0 => write!(s, "{c:<w$}"),
            _ => write!(s, " {c:>w$}"),
        };
    }
    s.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines end at a word before `width`, the later ones indented; the
    /// words are all there, in order.
    #[test]
    fn wrap_keeps_every_word_within_the_width() {
        let text =
            "warning: the median's 95% CI spans over 10% of it: shm-spin 64 (14%), pipe 64 (12%)";
        let w = wrap(text, 30, 2);
        for l in w.lines() {
            assert!(l.chars().count() <= 30, "{l:?}");
        }
        assert!(
            w.lines()
                .skip(1)
                .all(|l| l.starts_with("  ") && !l.starts_with("   ")),
            "{w}"
        );
        assert_eq!(
            w.split_whitespace().collect::<Vec<_>>(),
            text.split_whitespace().collect::<Vec<_>>()
        );
        assert_eq!(wrap("one", 80, 2), "one");
        assert_eq!(wrap("a b", 80, 2), "a b");
        assert_eq!(wrap("a  b ", 2, 1), "a\n b");
        assert_eq!(wrap("", 10, 2), "");
        assert_eq!(wrap("abcdefghij k", 4, 9), "abcdefghij\n  k");
    }

    /// A name or a CI wider than its column pushes the column out: every
    /// row's cells still end at the same place as the header's.
    #[test]
    fn a_cell_wider_than_its_column_moves_the_column_not_the_row() {
        let mut s = String::new();
        let rows = vec![
            vec!["tcp4".to_string(), "1.00–2.00".to_string(), "7".to_string()],
            vec![
                "uds-stream@veth".to_string(),
                "61456.38–159907.84".to_string(),
                "8".to_string(),
            ],
        ];
        table(&mut s, &[6, 9, 3], &["transport", "CI", "n"], &rows);
        let ends: Vec<usize> = s.lines().map(|l| l.chars().count()).collect();
        assert_eq!(ends.len(), 3);
        assert!(ends.iter().all(|&e| e == ends[0]), "{s}");
        for l in s.lines() {
            let cells: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(cells.len(), 3, "{l}");
        }
    }
}
