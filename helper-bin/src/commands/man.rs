//! `cgroupctl man --out-dir DIR` (hidden): writes the manual pages cgroupctl(8) and
//! cgroupctl-VERB(8) from the clap definition, so the pages can never disagree with `--help`.
//! The Debian build runs it; it is not an administrator's verb, hence hidden.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use clap_mangen::Man;

/// Administrators' commands live in section 8.
const SECTION: &str = "8";
const MANUAL: &str = "System Administration";

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory the pages are written to (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
}

/// Writes the pages of the whole command line `cmd`.
pub fn run(args: &ManArgs, cmd: clap::Command) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("mkdir {}", args.out_dir.display()))?;
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let source = format!("pam-cgroup {}", env!("CARGO_PKG_VERSION"));
    let mut written = Vec::new();
    write_pages(&cmd, &args.out_dir, &source, true, &mut written)?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// One page per visible command, depth first; clap_mangen already names the children as
/// `cgroupctl-VERB(8)` in the parent's COMMANDS section.
fn write_pages(
    cmd: &clap::Command,
    dir: &Path,
    source: &str,
    top: bool,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, source, false, written)?;
    }
    let man = Man::new(cmd.clone())
        .section(SECTION)
        .manual(MANUAL)
        .source(source);
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page)
        .with_context(|| format!("render {}", path.display()))?;
    if cmd.get_name() == "stats" {
        page.extend_from_slice(crate::stats_manual::man_sections().as_bytes());
    }
    page.extend_from_slice(see_also(top).as_bytes());
    let mut file = File::create(&path).with_context(|| format!("create {}", path.display()))?;
    file.write_all(&page)
        .with_context(|| format!("write {}", path.display()))?;
    written.push(path);
    Ok(())
}

fn see_also(top: bool) -> String {
    let mut refs = vec![
        "\\fBpam_cgroup\\fR(8)",
        "\\fBpam_cgroup.conf\\fR(5)",
        "\\fBsystemd.resource\\-control\\fR(5)",
    ];
    if !top {
        refs.insert(0, "\\fBcgroupctl\\fR(8)");
    }
    format!(".SH \"SEE ALSO\"\n{}\n", refs.join(", "))
}
