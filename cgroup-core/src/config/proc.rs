//! `[proc]`: process hiding. Customers of a shared host must not see each other's processes
//! (command lines carry passwords, paths and customer names), so /proc is remounted with
//! `hidepid=` and an administrators' group that still sees everything (`gid=`).
//!
//! ```toml
//! [proc]
//! hidepid = "invisible"   # "invisible" | "ptraceable" | "off" (default)
//! group = "adm"           # or gid = 4: members see every process
//! ```
//!
//! Only the syntax is checked here: a group name is resolved through NSS when the setting is
//! applied (`cgroupctl proc-apply`), because a login must never wait on LDAP for a setting it
//! does not use.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Source};

/// The `hidepid=` mount option of procfs (kernel >= 5.8 spells the values as words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HidePid {
    /// /proc is left as it is mounted; nothing is remounted.
    #[default]
    Off,
    /// Other users' /proc/PID directories do not exist for a user (`hidepid=invisible`).
    Invisible,
    /// Other users' processes are visible only where ptrace would be allowed
    /// (`hidepid=ptraceable`).
    Ptraceable,
}

impl HidePid {
    /// The value of the `hidepid=` mount option.
    pub fn mount_value(self) -> &'static str {
        match self {
            HidePid::Off => "off",
            HidePid::Invisible => "invisible",
            HidePid::Ptraceable => "ptraceable",
        }
    }
}

impl FromStr for HidePid {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(HidePid::Off),
            "invisible" => Ok(HidePid::Invisible),
            "ptraceable" => Ok(HidePid::Ptraceable),
            other => Err(format!(
                "{other:?}: expected \"invisible\", \"ptraceable\" or \"off\""
            )),
        }
    }
}

impl fmt::Display for HidePid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mount_value())
    }
}

/// The group exempt from hiding (procfs `gid=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminGroup {
    Gid(u32),
    /// Resolved through NSS when applied.
    Name(String),
}

/// `[proc]`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcConfig {
    pub hidepid: HidePid,
    /// `None`: only root sees every process.
    pub admin_group: Option<AdminGroup>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProc {
    hidepid: Option<Spanned<String>>,
    gid: Option<Spanned<i64>>,
    group: Option<Spanned<String>>,
}

impl RawProc {
    pub(super) fn validate(&self, src: &Source<'_>) -> Result<ProcConfig, ConfigError> {
        let hidepid = match &self.hidepid {
            None => HidePid::Off,
            Some(v) => match v.get_ref().parse() {
                Ok(h) => h,
                Err(reason) => return src.error(v.span(), "proc.hidepid", reason),
            },
        };
        let admin_group = match (&self.gid, &self.group) {
            (Some(_), Some(name)) => {
                // Two answers to one question: refuse rather than guess which one wins.
                return src.error(
                    name.span(),
                    "proc.group",
                    "set either proc.gid or proc.group, not both",
                );
            }
            (Some(gid), None) => match u32::try_from(*gid.get_ref()) {
                // (gid_t)-1 means "no group" to the kernel, never a real group.
                Ok(g) if g != u32::MAX => Some(AdminGroup::Gid(g)),
                _ => return src.error(gid.span(), "proc.gid", "must be from 0 to 4294967294"),
            },
            (None, Some(name)) => {
                let n = name.get_ref();
                if let Err(reason) = check_group_name(n) {
                    return src.error(name.span(), "proc.group", reason);
                }
                Some(AdminGroup::Name(n.clone()))
            }
            (None, None) => None,
        };
        Ok(ProcConfig {
            hidepid,
            admin_group,
        })
    }
}

/// A group name goes into a mount option string (`gid=` after resolution) and into NSS: refuse
/// what no sane group is called, and anything that could smuggle another option (`,`).
fn check_group_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.len() > 256 {
        return Err("is longer than 256 bytes");
    }
    if name.starts_with('-') {
        return Err("must not start with '-'");
    }
    if name
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || matches!(c, ',' | ':' | '/' | '='))
    {
        return Err("must not contain whitespace, control characters, ',', ':', '/' or '='");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/pam_cgroup/config.toml"), text)
    }

    #[test]
    fn missing_section_is_off() {
        let c = parse("").unwrap();
        assert_eq!(c.proc, ProcConfig::default());
        assert_eq!(c.proc.hidepid, HidePid::Off);
    }

    #[test]
    fn invisible_with_gid() {
        let c = parse("[proc]\nhidepid = \"invisible\"\ngid = 4\n").unwrap();
        assert_eq!(c.proc.hidepid, HidePid::Invisible);
        assert_eq!(c.proc.admin_group, Some(AdminGroup::Gid(4)));
    }

    #[test]
    fn ptraceable_with_group_name() {
        let c = parse("[proc]\nhidepid = \"ptraceable\"\ngroup = \"adm\"\n").unwrap();
        assert_eq!(c.proc.hidepid, HidePid::Ptraceable);
        assert_eq!(
            c.proc.admin_group,
            Some(AdminGroup::Name("adm".to_string()))
        );
    }

    #[test]
    fn off_is_accepted() {
        let c = parse("[proc]\nhidepid = \"off\"\n").unwrap();
        assert_eq!(c.proc.hidepid, HidePid::Off);
        assert_eq!(c.proc.admin_group, None);
    }

    #[test]
    fn numeric_hidepid_names_the_key() {
        // The old numeric spelling (hidepid=2) is a type error: the words say what they do.
        let e = parse("[proc]\nhidepid = 2\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert_eq!(e.key.as_deref(), Some("proc.hidepid"));
    }

    #[test]
    fn unknown_value_names_file_line_key() {
        let e = parse("[proc]\nhidepid = \"hidden\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/pam_cgroup/config.toml:2:11: proc.hidepid: \"hidden\": expected \
             \"invisible\", \"ptraceable\" or \"off\""
        );
    }

    #[test]
    fn unknown_key_is_refused() {
        let e = parse("[proc]\nhidepid = \"invisible\"\nadmin = \"adm\"\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.reason.contains("unknown field"), "{e}");
    }

    #[test]
    fn gid_and_group_together_are_refused() {
        let e = parse("[proc]\ngid = 4\ngroup = \"adm\"\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert_eq!(e.key.as_deref(), Some("proc.group"));
    }

    #[test]
    fn negative_and_huge_gids_are_refused() {
        for text in ["[proc]\ngid = -1\n", "[proc]\ngid = 4294967295\n"] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.key.as_deref(), Some("proc.gid"), "{text}");
            assert_eq!(e.line, Some(2));
        }
    }

    #[test]
    fn group_names_that_could_inject_mount_options_are_refused() {
        for name in ["adm,hidepid=off", "", "a b", "-x", "a:b", "a/b"] {
            let text = format!("[proc]\ngroup = {name:?}\n");
            let e = parse(&text).unwrap_err();
            assert_eq!(e.key.as_deref(), Some("proc.group"), "{name:?}");
        }
    }

    #[test]
    fn mount_values() {
        assert_eq!(HidePid::Invisible.mount_value(), "invisible");
        assert_eq!(HidePid::Ptraceable.to_string(), "ptraceable");
        assert_eq!("off".parse::<HidePid>(), Ok(HidePid::Off));
    }
}
