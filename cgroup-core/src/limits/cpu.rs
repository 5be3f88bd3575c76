//! cpu.max (`"$QUOTA $PERIOD"`, or a percentage of one CPU: `150%` = one and a half CPUs) and
//! cpu.weight (1..10000).

/// The kernel's default period, and the one percentages are expressed in.
const DEFAULT_PERIOD_US: u64 = 100_000;
/// Bounds the kernel enforces (kernel/sched/core.c: min_cfs_quota_period 1ms, max 1s; quota
/// at least 1ms).
const MIN_PERIOD_US: u64 = 1_000;
const MAX_PERIOD_US: u64 = 1_000_000;
const MIN_QUOTA_US: u64 = 1_000;

pub(super) fn parse_max(value: &str) -> Result<String, String> {
    let syntax = || {
        format!(
            "{value:?}: cpu.max takes \"N%\" (100% = one CPU), \"QUOTA PERIOD\" in microseconds, \"max\" or \"max PERIOD\""
        )
    };
    if let Some(percent) = value.strip_suffix('%') {
        let percent: u64 = percent.trim().parse().map_err(|_| syntax())?;
        if percent == 0 {
            return Err("must be at least 1%".to_string());
        }
        let quota = percent
            .checked_mul(DEFAULT_PERIOD_US / 100)
            .ok_or_else(|| format!("{value:?} is too large"))?;
        return Ok(format!("{quota} {DEFAULT_PERIOD_US}"));
    }
    let fields: Vec<&str> = value.split_whitespace().collect();
    let (quota, period) = match fields.as_slice() {
        [quota] => (*quota, DEFAULT_PERIOD_US),
        [quota, period] => (*quota, period.parse::<u64>().map_err(|_| syntax())?),
        _ => return Err(syntax()),
    };
    if !(MIN_PERIOD_US..=MAX_PERIOD_US).contains(&period) {
        return Err(format!(
            "period {period} must be between {MIN_PERIOD_US} and {MAX_PERIOD_US} microseconds"
        ));
    }
    if quota == "max" {
        return Ok(format!("max {period}"));
    }
    let quota: u64 = quota.parse().map_err(|_| syntax())?;
    if quota < MIN_QUOTA_US {
        return Err(format!(
            "quota {quota} must be at least {MIN_QUOTA_US} microseconds"
        ));
    }
    Ok(format!("{quota} {period}"))
}

pub(super) fn parse_weight(value: &str) -> Result<String, String> {
    weight(value).map(|w| w.to_string())
}

/// A cgroup weight (cpu.weight, io.weight): 1..=10000.
pub(super) fn weight(value: &str) -> Result<u32, String> {
    let w: u32 = value
        .parse()
        .map_err(|_| format!("{value:?}: expected a weight from 1 to 10000"))?;
    if !(1..=10_000).contains(&w) {
        return Err(format!("{w}: a weight must be from 1 to 10000"));
    }
    Ok(w)
}
