//! Aligned text tables, the default output of the commands that list things
//! (`weir stream list`, `weir ctl ...`): a header line, then one line per
//! row, columns padded to their widest cell.

use std::fmt::Write as _;

/// `rows[0]` is the header. Rows shorter than the header are padded.
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, width) in widths.iter().enumerate() {
            let cell = row.get(i).map_or("", String::as_str);
            if i + 1 == columns {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn columns_are_padded_to_the_widest_cell_and_lines_do_not_end_in_spaces() {
        let rows = vec![
            vec!["NAME".to_owned(), "STATE".to_owned(), "NOTE".to_owned()],
            vec!["message".to_owned(), "ok".to_owned(), String::new()],
            vec!["m".to_owned()],
        ];
        assert_eq!(table(&rows), "NAME     STATE  NOTE\nmessage  ok\nm\n");
    }
}
