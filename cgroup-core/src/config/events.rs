//! `[events]`: when the daemon records a fault event, and the bound of the events kept (in
//! the history database, `[history] database`).
//!
//! ```toml
//! [events]
//! history_dir = "/var/lib/pam_cgroup/events"  # only where older versions kept a ring of
//!                                 # events: imported into the database once, then removed
//! history_size = "16M"            # the events in the database together never exceed this;
//!                                 # over it, the user holding the most loses its oldest first
//! cpu_throttled_percent = 50      # a cpu_throttled event when more than this share of the
//!                                 # cpu.max periods of one sample were throttled
//! memory_pressure_percent = 20    # PSI memory "some" avg10 above this: memory_pressure
//! io_pressure_percent = 30        # PSI io "some" avg10 above this: io_pressure
//! cpu_pressure_percent = 0        # 0: no cpu_pressure events
//! top_processes = 10              # processes in each event's snapshot
//! repeat_after = 60               # seconds: one kind of event of one user at most this often;
//!                                 # what happens in between is added to the next event
//! ```

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Source};
use crate::paths::DEFAULT_HISTORY_DIR;

/// Smallest bound: a few full events.
pub const MIN_HISTORY_SIZE: u64 = 64 * 1024;
pub const MAX_HISTORY_SIZE: u64 = 1 << 30;

#[derive(Debug, Clone, PartialEq)]
pub struct EventsConfig {
    pub history_dir: PathBuf,
    pub history_size: u64,
    pub cpu_throttled_percent: u32,
    pub memory_pressure_percent: u32,
    pub io_pressure_percent: u32,
    pub cpu_pressure_percent: u32,
    pub top_processes: u32,
    pub repeat_after_secs: u32,
}

impl EventsConfig {
    pub const MAX_HISTORY_SIZE_BYTES: u64 = MAX_HISTORY_SIZE;
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            history_dir: PathBuf::from(DEFAULT_HISTORY_DIR),
            history_size: 16 << 20,
            cpu_throttled_percent: 50,
            memory_pressure_percent: 20,
            io_pressure_percent: 30,
            cpu_pressure_percent: 0,
            top_processes: 10,
            repeat_after_secs: 60,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvents {
    history_dir: Option<Spanned<String>>,
    history_size: Option<Spanned<toml::Value>>,
    cpu_throttled_percent: Option<Spanned<i64>>,
    memory_pressure_percent: Option<Spanned<i64>>,
    io_pressure_percent: Option<Spanned<i64>>,
    cpu_pressure_percent: Option<Spanned<i64>>,
    top_processes: Option<Spanned<i64>>,
    repeat_after: Option<Spanned<i64>>,
}

/// A path of root's state (a directory or a file): absolute, without `.` or `..`, not `/`.
pub(super) fn state_path(
    src: &Source<'_>,
    p: &Spanned<String>,
    key: &str,
) -> Result<PathBuf, ConfigError> {
    let path = PathBuf::from(p.get_ref());
    let normal = path.is_absolute()
        && path.components().all(|c| {
            matches!(
                c,
                std::path::Component::RootDir | std::path::Component::Normal(_)
            )
        })
        && path.parent().is_some();
    if !normal {
        return src.error(
            p.span(),
            key,
            "must be an absolute path without . or .. and not /",
        );
    }
    Ok(path)
}

/// A size (`"16M"` or a number of bytes) within `range` (`range_text` says it in words).
pub(super) fn size_in(
    src: &Source<'_>,
    v: &Spanned<toml::Value>,
    key: &str,
    range: std::ops::RangeInclusive<u64>,
    range_text: &str,
) -> Result<u64, ConfigError> {
    let parsed = match v.get_ref() {
        toml::Value::Integer(i) => u64::try_from(*i).map_err(|_| "negative".into()),
        toml::Value::String(s) => crate::limits::parse_size(s),
        _ => Err("expected a size such as \"16M\" or a number of bytes".into()),
    };
    match parsed {
        Ok(n) if range.contains(&n) => Ok(n),
        Ok(_) => src.error(v.span(), key, format!("must be from {range_text}")),
        Err(reason) => src.error(v.span(), key, reason),
    }
}

pub(super) fn in_range(
    src: &Source<'_>,
    value: &Option<Spanned<i64>>,
    key: &str,
    range: std::ops::RangeInclusive<i64>,
    default: u32,
) -> Result<u32, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => super::bounded_u32(src, v, key, range),
    }
}

impl RawEvents {
    pub(super) fn validate(&self, src: &Source<'_>) -> Result<EventsConfig, ConfigError> {
        let d = EventsConfig::default();
        let history_dir = match &self.history_dir {
            None => d.history_dir,
            Some(p) => state_path(src, p, "events.history_dir")?,
        };
        let history_size = match &self.history_size {
            None => d.history_size,
            Some(v) => size_in(
                src,
                v,
                "events.history_size",
                MIN_HISTORY_SIZE..=MAX_HISTORY_SIZE,
                "64K to 1G",
            )?,
        };
        Ok(EventsConfig {
            history_dir,
            history_size,
            cpu_throttled_percent: in_range(
                src,
                &self.cpu_throttled_percent,
                "events.cpu_throttled_percent",
                0..=100,
                d.cpu_throttled_percent,
            )?,
            memory_pressure_percent: in_range(
                src,
                &self.memory_pressure_percent,
                "events.memory_pressure_percent",
                0..=100,
                d.memory_pressure_percent,
            )?,
            io_pressure_percent: in_range(
                src,
                &self.io_pressure_percent,
                "events.io_pressure_percent",
                0..=100,
                d.io_pressure_percent,
            )?,
            cpu_pressure_percent: in_range(
                src,
                &self.cpu_pressure_percent,
                "events.cpu_pressure_percent",
                0..=100,
                d.cpu_pressure_percent,
            )?,
            top_processes: in_range(
                src,
                &self.top_processes,
                "events.top_processes",
                1..=50,
                d.top_processes,
            )?,
            repeat_after_secs: in_range(
                src,
                &self.repeat_after,
                "events.repeat_after",
                1..=86_400,
                d.repeat_after_secs,
            )?,
        })
    }
}
