//! Aligned text tables and human units for the verbs' text output (JSON has raw numbers).

use cgroup_core::stats::MaxValue;

/// Prints rows under headers, columns padded to their widest cell; numeric-looking columns
/// are right-aligned so magnitudes line up.
pub fn print(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", render(headers, rows));
}

/// `print` for cells the caller escaped already (escape::term, escape::term_bytes): for a
/// cell made from bytes that are not text, which `term` alone cannot show.
pub fn print_escaped(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", render_escaped(headers, rows));
}

/// The table as text. Every cell is escaped for the terminal (escape::term): cells carry
/// names and command lines customers chose.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| super::escape::term(c)).collect())
        .collect();
    render_escaped(headers, &rows)
}

/// `render` of cells escaped already.
fn render_escaped(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    // A column is numeric when every cell is a number, "max" or "-" and at least one is a
    // number (a column of "-" only, like an unset profile, stays left-aligned).
    let is_number = |c: &str| c.starts_with(|ch: char| ch.is_ascii_digit());
    let numeric: Vec<bool> = (0..headers.len())
        .map(|i| {
            let cells: Vec<&str> = rows
                .iter()
                .filter_map(|r| r.get(i).map(String::as_str))
                .collect();
            cells.iter().any(|c| is_number(c))
                && cells
                    .iter()
                    .all(|c| *c == "-" || *c == "max" || is_number(c))
        })
        .collect();
    let line = |cells: Vec<&str>| -> String {
        let mut out = Vec::new();
        for (i, cell) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            let pad = w.saturating_sub(cell.chars().count());
            let last = i + 1 == cells.len();
            if numeric.get(i).copied().unwrap_or(false) {
                out.push(format!("{}{cell}", " ".repeat(pad)));
            } else if last {
                out.push(cell.to_string());
            } else {
                out.push(format!("{cell}{}", " ".repeat(pad)));
            }
        }
        format!("{}\n", out.join("  ").trim_end())
    };
    let mut text = line(headers.to_vec());
    for row in rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}

/// 1536 -> "1.5K", binary units like the limits' syntax.
pub fn bytes(v: u64) -> String {
    const UNITS: [&str; 6] = ["", "K", "M", "G", "T", "P"];
    let mut value = v as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v}")
    } else if value < 10.0 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
    }
}

/// Microseconds of CPU time as seconds with one decimal, or h/m for long ones.
pub fn usec(v: u64) -> String {
    let secs = v as f64 / 1e6;
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        format!("{}m{:02}s", (secs / 60.0) as u64, (secs % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (secs / 3600.0) as u64,
            ((secs % 3600.0) / 60.0) as u64
        )
    }
}

/// An optional cell: "-" when absent (never "0").
pub fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".to_string())
}

/// A limit cell: "max" for unlimited, else the number through `f`.
pub fn max_cell(v: Option<MaxValue>, f: fn(u64) -> String) -> String {
    opt(v, |m| match m {
        MaxValue::Max => "max".to_string(),
        MaxValue::Value(n) => f(n),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned() {
        let t = render(
            &["USER", "MEM"],
            &[
                vec!["al".into(), "5".into()],
                vec!["bobby".into(), "1.5K".into()],
            ],
        );
        assert_eq!(t, "USER    MEM\nal        5\nbobby  1.5K\n");
    }

    #[test]
    fn cells_are_escaped() {
        let t = render(&["LEAF"], &[vec!["x\x1b[2J\x1b]0;owned\x07".into()]]);
        assert_eq!(t, "LEAF\nx\\e[2J\\e]0;owned\\a\n");
    }

    #[test]
    fn units() {
        assert_eq!(bytes(512), "512");
        assert_eq!(bytes(1536), "1.5K");
        assert_eq!(bytes(1 << 30), "1.0G");
        assert_eq!(usec(1_500_000), "1.5s");
        assert_eq!(usec(125_000_000), "2m05s");
    }
}
