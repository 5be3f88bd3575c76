//! Resource limits: keys are cgroup v2 file names, values are the kernel's own syntax or a
//! friendly form. Each controller has a small unit that turns a value into the exact text the
//! kernel file takes (youki's habit), so validation happens once, at config load, and a write
//! never carries a value the kernel would reject for a reason we could have told first.

mod cpu;
pub mod human;
mod io;
mod memory;
mod pids;
pub mod sessions;
mod size;

use std::fmt;

pub use sessions::{SessionsMax, SESSIONS_MAX_KEY};
pub use size::parse_size;

/// The caps root writes on each leaf it makes (`cgroup.max.descendants`, `cgroup.max.depth`):
/// what a customer may build inside one session or service leaf (`[tree]` of the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafCaps {
    pub max_descendants: u32,
    pub max_depth: u32,
}

/// A cgroup v2 controller we can enable and limit with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Controller {
    Cpu,
    Io,
    Memory,
    Pids,
}

impl Controller {
    pub const ALL: [Controller; 4] = [
        Controller::Cpu,
        Controller::Io,
        Controller::Memory,
        Controller::Pids,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Io => "io",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The limit files we write, named exactly as the kernel names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LimitKey {
    MemoryMax,
    MemoryHigh,
    MemoryLow,
    MemorySwapMax,
    CpuMax,
    CpuWeight,
    PidsMax,
    IoMax,
    IoWeight,
}

impl LimitKey {
    pub const ALL: [LimitKey; 9] = [
        LimitKey::MemoryMax,
        LimitKey::MemoryHigh,
        LimitKey::MemoryLow,
        LimitKey::MemorySwapMax,
        LimitKey::CpuMax,
        LimitKey::CpuWeight,
        LimitKey::PidsMax,
        LimitKey::IoMax,
        LimitKey::IoWeight,
    ];

    pub fn file_name(self) -> &'static str {
        match self {
            LimitKey::MemoryMax => "memory.max",
            LimitKey::MemoryHigh => "memory.high",
            LimitKey::MemoryLow => "memory.low",
            LimitKey::MemorySwapMax => "memory.swap.max",
            LimitKey::CpuMax => "cpu.max",
            LimitKey::CpuWeight => "cpu.weight",
            LimitKey::PidsMax => "pids.max",
            LimitKey::IoMax => "io.max",
            LimitKey::IoWeight => "io.weight",
        }
    }

    pub fn controller(self) -> Controller {
        match self {
            LimitKey::MemoryMax
            | LimitKey::MemoryHigh
            | LimitKey::MemoryLow
            | LimitKey::MemorySwapMax => Controller::Memory,
            LimitKey::CpuMax | LimitKey::CpuWeight => Controller::Cpu,
            LimitKey::PidsMax => Controller::Pids,
            LimitKey::IoMax | LimitKey::IoWeight => Controller::Io,
        }
    }

    pub fn from_file_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.file_name() == name)
    }

    /// The list of accepted keys, for error messages.
    pub fn known_names() -> String {
        Self::ALL
            .iter()
            .map(|k| k.file_name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file_name())
    }
}

/// A value as written in a config file: TOML integers, strings, and (for io.max / io.weight,
/// which take one line per device) arrays of strings.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    Integer(i64),
    Text(String),
    List(Vec<String>),
}

impl RawValue {
    /// Converts a TOML value, refusing types no limit takes.
    pub fn from_toml(value: &toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::Integer(i) => Ok(RawValue::Integer(*i)),
            toml::Value::String(s) => Ok(RawValue::Text(s.clone())),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(s) => Ok(s.clone()),
                    other => Err(format!(
                        "list items must be strings, found {}",
                        other.type_str()
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(RawValue::List),
            other => Err(format!(
                "expected a string or an integer, found {}",
                other.type_str()
            )),
        }
    }

    fn single(&self) -> Result<String, String> {
        match self {
            RawValue::Integer(i) => Ok(i.to_string()),
            RawValue::Text(s) => Ok(s.trim().to_string()),
            RawValue::List(_) => Err("takes a single value, not a list".to_string()),
        }
    }

    fn lines(&self) -> Vec<String> {
        match self {
            RawValue::Integer(i) => vec![i.to_string()],
            RawValue::Text(s) => vec![s.trim().to_string()],
            RawValue::List(items) => items.iter().map(|s| s.trim().to_string()).collect(),
        }
    }
}

impl fmt::Display for RawValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawValue::Integer(i) => write!(f, "{i}"),
            RawValue::Text(s) => write!(f, "{s:?}"),
            RawValue::List(items) => write!(f, "{items:?}"),
        }
    }
}

/// A validated limit: the file and the lines to write to it, one write per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub key: LimitKey,
    pub lines: Vec<String>,
}

/// Validates `value` for `key` and returns the kernel text. The error names the key and why.
pub fn parse_limit(key: &str, value: &RawValue) -> Result<Limit, LimitError> {
    let limit_key = LimitKey::from_file_name(key).ok_or_else(|| LimitError {
        key: key.to_string(),
        reason: format!(
            "unknown limit key (known: {}, {SESSIONS_MAX_KEY})",
            LimitKey::known_names()
        ),
    })?;
    let err = |reason: String| LimitError {
        key: key.to_string(),
        reason,
    };
    let lines = match limit_key {
        LimitKey::MemoryMax | LimitKey::MemoryHigh => {
            let bytes = memory::parse(&value.single().map_err(err)?).map_err(err)?;
            if bytes == "0" {
                // As pids.max = 0: no process of the user could run (memory.max OOM-kills
                // each at once, memory.high throttles each to a standstill). Never a plan.
                return Err(err(
                    "must be above 0 (0 would stop every process of the user; to stop a customer, use `cgroupctl suspend`)"
                        .to_string(),
                ));
            }
            vec![bytes]
        }
        LimitKey::MemoryLow | LimitKey::MemorySwapMax => {
            vec![memory::parse(&value.single().map_err(err)?).map_err(err)?]
        }
        LimitKey::CpuMax => vec![cpu::parse_max(&value.single().map_err(err)?).map_err(err)?],
        LimitKey::CpuWeight => vec![cpu::parse_weight(&value.single().map_err(err)?).map_err(err)?],
        LimitKey::PidsMax => vec![pids::parse(&value.single().map_err(err)?).map_err(err)?],
        LimitKey::IoMax => value
            .lines()
            .iter()
            .map(|l| io::parse_max_line(l))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?,
        LimitKey::IoWeight => value
            .lines()
            .iter()
            .map(|l| io::parse_weight_line(l))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?,
    };
    if lines.is_empty() {
        return Err(err("no value given".to_string()));
    }
    Ok(Limit {
        key: limit_key,
        lines,
    })
}

/// Why a limit value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct LimitError {
    pub key: String,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> RawValue {
        RawValue::Text(s.to_string())
    }

    #[test]
    fn unknown_key_lists_known_ones() {
        let e = parse_limit("memory.maxx", &text("1G")).unwrap_err();
        assert_eq!(e.key, "memory.maxx");
        assert!(e.reason.contains("memory.max"), "{}", e.reason);
    }

    #[test]
    fn every_key_round_trips_through_file_name() {
        for k in LimitKey::ALL {
            assert_eq!(LimitKey::from_file_name(k.file_name()), Some(k));
        }
    }

    #[test]
    fn friendly_and_kernel_forms() {
        let cases: &[(&str, RawValue, &[&str])] = &[
            ("memory.max", text("1G"), &["1073741824"]),
            ("memory.max", text("512M"), &["536870912"]),
            ("memory.max", text("max"), &["max"]),
            ("memory.high", RawValue::Integer(4096), &["4096"]),
            ("memory.low", text("64K"), &["65536"]),
            ("memory.swap.max", text("0"), &["0"]),
            ("pids.max", RawValue::Integer(512), &["512"]),
            ("pids.max", text("max"), &["max"]),
            ("cpu.max", text("100%"), &["100000 100000"]),
            ("cpu.max", text("150%"), &["150000 100000"]),
            ("cpu.max", text("50000 100000"), &["50000 100000"]),
            ("cpu.max", text("max"), &["max 100000"]),
            ("cpu.max", text("max 50000"), &["max 50000"]),
            ("cpu.weight", RawValue::Integer(100), &["100"]),
            ("io.weight", RawValue::Integer(200), &["default 200"]),
            ("io.weight", text("8:0 300"), &["8:0 300"]),
            (
                "io.max",
                text("8:0 rbps=10M wiops=100"),
                &["8:0 rbps=10485760 wiops=100"],
            ),
            (
                "io.max",
                RawValue::List(vec!["8:0 rbps=1M".into(), "8:16 wbps=max".into()]),
                &["8:0 rbps=1048576", "8:16 wbps=max"],
            ),
        ];
        for (key, value, want) in cases {
            let got = parse_limit(key, value).unwrap_or_else(|e| panic!("{key} {value}: {e}"));
            assert_eq!(got.lines, *want, "{key} = {value}");
        }
    }

    #[test]
    fn bad_values_name_key_and_reason() {
        let cases: &[(&str, RawValue, &str)] = &[
            ("memory.max", text("1X"), "unit"),
            ("memory.max", text(""), "empty"),
            ("memory.max", text("-1G"), "number"),
            ("memory.max", RawValue::Integer(-5), "number"),
            ("memory.max", text("99999999999T"), "too large"),
            (
                "memory.max",
                RawValue::List(vec!["1G".into()]),
                "single value",
            ),
            ("pids.max", RawValue::Integer(0), "at least 1"),
            ("memory.max", RawValue::Integer(0), "above 0"),
            ("memory.max", text("0G"), "above 0"),
            ("memory.high", text("0"), "above 0"),
            ("pids.max", text("many"), "whole number"),
            ("cpu.max", text("0%"), "at least"),
            ("cpu.max", text("abc"), "cpu.max"),
            ("cpu.max", text("500 100000"), "at least 1000"),
            ("cpu.max", text("50000 100"), "period"),
            ("cpu.max", text("50000 100000 7"), "cpu.max"),
            ("cpu.weight", RawValue::Integer(0), "1 to 10000"),
            ("cpu.weight", RawValue::Integer(10001), "1 to 10000"),
            ("io.weight", text("8:0 0"), "1 to 10000"),
            ("io.max", text("8:0"), "at least one"),
            ("io.max", text("8:0 rbps"), "key=value"),
            ("io.max", text("8:0 foo=1"), "rbps"),
            ("io.max", text("sda rbps=1"), "device"),
            (
                "io.max",
                text("/nonexistent/dev rbps=1"),
                "/nonexistent/dev",
            ),
        ];
        for (key, value, needle) in cases {
            let e = parse_limit(key, value)
                .err()
                .unwrap_or_else(|| panic!("{key} = {value} accepted"));
            assert_eq!(e.key, *key);
            assert!(
                e.reason.contains(needle),
                "{key} = {value}: reason {:?} lacks {needle:?}",
                e.reason
            );
        }
    }

    #[test]
    fn io_max_by_device_path() {
        // /dev/null is a character device: refused with a reason, never written.
        let e = parse_limit("io.max", &text("/dev/null rbps=1M")).unwrap_err();
        assert!(e.reason.contains("block device"), "{}", e.reason);
    }

    #[test]
    fn raw_value_from_toml_types() {
        assert!(RawValue::from_toml(&toml::Value::Boolean(true)).is_err());
        assert!(RawValue::from_toml(&toml::Value::Float(1.5)).is_err());
        assert_eq!(
            RawValue::from_toml(&toml::Value::Integer(3)),
            Ok(RawValue::Integer(3))
        );
    }
}
