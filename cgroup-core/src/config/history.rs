//! `[history]`: the daemon's usage history (per-user samples, hourly and daily rollups) in
//! one SQLite file, read by `cgroupctl report` and by each customer's `cgroupctl me
//! --history`.
//!
//! ```toml
//! [history]
//! enabled = true                 # the daemon samples every user cgroup
//! database = "/var/lib/pam_cgroup/history.db"   # root-only, written by the daemon alone
//! interval = 60                  # seconds between samples (1..=3600)
//! minutes_kept_days = 2          # per-sample rows kept this many days
//! hours_kept_days = 30           # hourly rollups kept this many days
//! days_kept_days = 365           # daily rollups kept this many days
//! max_size = "256M"              # the database never grows past this (oldest rows go first)
//! ```

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::events::{in_range, size_in, state_path};
use super::{ConfigError, Source};
use crate::paths::DEFAULT_HISTORY_DATABASE;

/// The smallest bound: a few hours of a small host's samples.
pub const MIN_HISTORY_DB_SIZE: u64 = 1 << 20;
pub const MAX_HISTORY_DB_SIZE: u64 = 64 << 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryConfig {
    pub enabled: bool,
    pub database: PathBuf,
    /// Seconds between two samples of every user cgroup.
    pub interval_secs: u32,
    pub minutes_kept_days: u32,
    pub hours_kept_days: u32,
    pub days_kept_days: u32,
    /// Bytes the database file may use.
    pub max_size: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            enabled: true,
            database: PathBuf::from(DEFAULT_HISTORY_DATABASE),
            interval_secs: 60,
            minutes_kept_days: 2,
            hours_kept_days: 30,
            days_kept_days: 365,
            max_size: 256 << 20,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHistory {
    enabled: Option<bool>,
    database: Option<Spanned<String>>,
    interval: Option<Spanned<i64>>,
    minutes_kept_days: Option<Spanned<i64>>,
    hours_kept_days: Option<Spanned<i64>>,
    days_kept_days: Option<Spanned<i64>>,
    max_size: Option<Spanned<toml::Value>>,
}

impl RawHistory {
    pub(super) fn validate(&self, src: &Source<'_>) -> Result<HistoryConfig, ConfigError> {
        let d = HistoryConfig::default();
        let database = match &self.database {
            None => d.database,
            Some(p) => state_path(src, p, "history.database")?,
        };
        let max_size = match &self.max_size {
            None => d.max_size,
            Some(v) => size_in(
                src,
                v,
                "history.max_size",
                MIN_HISTORY_DB_SIZE..=MAX_HISTORY_DB_SIZE,
                "1M to 64G",
            )?,
        };
        Ok(HistoryConfig {
            enabled: self.enabled.unwrap_or(d.enabled),
            database,
            interval_secs: in_range(
                src,
                &self.interval,
                "history.interval",
                1..=3600,
                d.interval_secs,
            )?,
            minutes_kept_days: in_range(
                src,
                &self.minutes_kept_days,
                "history.minutes_kept_days",
                1..=31,
                d.minutes_kept_days,
            )?,
            hours_kept_days: in_range(
                src,
                &self.hours_kept_days,
                "history.hours_kept_days",
                1..=400,
                d.hours_kept_days,
            )?,
            days_kept_days: in_range(
                src,
                &self.days_kept_days,
                "history.days_kept_days",
                1..=3660,
                d.days_kept_days,
            )?,
            max_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    #[test]
    fn defaults_and_values() {
        let c = Config::parse(Path::new("/x.toml"), "").unwrap();
        assert!(c.history.enabled);
        assert_eq!(c.history.interval_secs, 60);
        let c = Config::parse(
            Path::new("/x.toml"),
            "[history]\nenabled = false\ninterval = 10\nmax_size = \"2M\"\ndatabase = \"/var/tmp/h.db\"\n",
        )
        .unwrap();
        assert!(!c.history.enabled);
        assert_eq!(c.history.interval_secs, 10);
        assert_eq!(c.history.max_size, 2 << 20);
        assert_eq!(c.history.database, Path::new("/var/tmp/h.db"));
    }

    #[test]
    fn errors_name_the_line_and_key() {
        for (text, key, line) in [
            ("[history]\ninterval = 0\n", "history.interval", 2),
            ("[history]\n\ninterval = 3601\n", "history.interval", 3),
            ("[history]\nmax_size = \"1K\"\n", "history.max_size", 2),
            ("[history]\ndatabase = \"rel.db\"\n", "history.database", 2),
            (
                "[history]\nhours_kept_days = 0\n",
                "history.hours_kept_days",
                2,
            ),
            ("[history]\nintervall = 5\n", "intervall", 2),
        ] {
            let e = Config::parse(Path::new("/x.toml"), text)
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{text:?}: {e}");
            assert!(e.contains(&format!("/x.toml:{line}")), "{text:?}: {e}");
        }
    }
}
