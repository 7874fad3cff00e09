//! Column-aligned tables as kubectl prints them: upper-case headers, columns separated by
//! three spaces, `-` for an empty cell. Status cells may be colored (on a terminal only).

/// A status word in color: good (green), bad (red), or in between (yellow).
fn paint(cell: &str) -> String {
    let code = match cell {
        "HEALTHY" | "ACTIVE" | "OK" | "true" | "SYNCED" => "32",
        "UNHEALTHY" | "FAILED" | "false" | "EXPIRED" | "ERROR" => "31;1",
        "-" => return cell.to_string(),
        _ => "33",
    };
    format!("\x1b[{code}m{cell}\x1b[0m")
}

pub struct Table {
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
    /// The column whose cells are statuses to color, if any.
    pub status_column: Option<usize>,
}

impl Table {
    pub fn new(headers: Vec<&'static str>) -> Table {
        Table {
            headers,
            rows: Vec::new(),
            status_column: None,
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(
            cells
                .into_iter()
                .map(|c| if c.is_empty() { "-".into() } else { c })
                .collect(),
        );
    }

    /// The table as text; `color` paints the status column (widths count the plain text).
    pub fn render(&self, color: bool) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: Vec<(String, usize)>| {
            let last = cells.len().saturating_sub(1);
            let mut text = String::new();
            for (i, (cell, plain)) in cells.into_iter().enumerate() {
                text.push_str(&cell);
                if i < last {
                    text.push_str(&" ".repeat(widths[i] - plain + 3));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(
            self.headers
                .iter()
                .map(|h| (h.to_string(), h.len()))
                .collect(),
        );
        for r in &self.rows {
            line(
                r.iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let plain = c.chars().count();
                        if color && self.status_column == Some(i) {
                            (paint(c), plain)
                        } else {
                            (c.clone(), plain)
                        }
                    })
                    .collect(),
            );
        }
        out
    }

    /// The first column alone, each value once, one per line (`-o short`).
    pub fn short(&self) -> String {
        let mut out = String::new();
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.rows {
            if seen.insert(&r[0]) {
                out.push_str(&r[0]);
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_empty_cells_are_dashes() {
        let mut t = Table::new(vec!["NAME", "PORT"]);
        t.row(vec!["a-long-name".into(), "80".into()]);
        t.row(vec!["b".into(), String::new()]);
        t.row(vec!["b".into(), "81".into()]);
        assert_eq!(
            t.render(false),
            "NAME          PORT\na-long-name   80\nb             -\nb             81\n"
        );
        assert_eq!(t.short(), "a-long-name\nb\n");
    }
}
