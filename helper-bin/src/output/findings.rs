//! Doctor's findings as text (`doctor` and `check`).

use cgroup_core::doctor::Finding;

use super::escape::term;

/// Findings as text, one line each with why and fix below. Escaped for the terminal: a
/// finding may quote what a customer named (a stray's cgroup path, a file's contents).
pub fn print_findings(findings: &[Finding]) {
    let width = findings.iter().map(|f| f.check.len()).max().unwrap_or(0);
    for f in findings {
        println!(
            "{:<4} {:width$}  {}",
            f.status.label(),
            f.check,
            term(&f.summary)
        );
        if let Some(why) = &f.why {
            println!("     {:width$}  why: {}", "", term(why));
        }
        if let Some(fix) = &f.fix {
            println!("     {:width$}  fix: {}", "", term(fix));
        }
    }
}
