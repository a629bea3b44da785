//! Readable tables for listing commands: columns padded to their widest
//! cell, a header row, nothing else.
//!
//! Cells hold what users and senders chose (descriptions, addresses,
//! names), so every cell is escaped here ([`crate::text::escape`]), where
//! the table is drawn: a new column is safe without its author thinking
//! of it, and a cell can never start a fake row or an escape sequence.

use std::fmt::Write as _;

use crate::text::escape;

/// Renders `rows` under `header`, every cell escaped for the terminal.
pub(crate) fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| escape(cell).into_owned()).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_string()).collect();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up() {
        let t = super::render(&["A", "LONG"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    LONG\nxyz  1\n");
    }

    #[test]
    fn a_cell_cannot_add_a_row_or_a_colour() {
        let t = super::render(&["A"], &[vec!["x\r\nfake\u{1b}[31m".into()]]);
        assert_eq!(t, "A\nx\\r\\nfake\\e[31m\n");
    }
}
