//! Times for people: local time (the host's zone, as `date` prints it) by default, UTC on
//! request. JSON always carries RFC 3339 UTC (`cgroup_core::time::utc_text`).

/// `2026-12-06 14:05 CET` in the host's zone, or `2026-12-06 13:05 UTC` when `utc`.
pub fn human(secs: i64, utc: bool) -> String {
    let t: libc::time_t = secs;
    // SAFETY: tm is plain data that localtime_r/gmtime_r fill; both are thread-safe and
    // return NULL (checked) for a time they cannot represent.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let filled = unsafe {
        if utc {
            libc::gmtime_r(&t, &mut tm)
        } else {
            libc::localtime_r(&t, &mut tm)
        }
    };
    if filled.is_null() {
        return cgroup_core::time::utc_text((secs.max(0) as u64).saturating_mul(1000));
    }
    let zone = if utc || tm.tm_zone.is_null() {
        "UTC".to_string()
    } else {
        // SAFETY: tm_zone points at a NUL-terminated name the C library keeps alive.
        unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} {zone}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min
    )
}

/// RFC 3339 UTC of seconds since the epoch.
pub fn rfc3339(secs: i64) -> String {
    cgroup_core::time::utc_text((secs.max(0) as u64).saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_and_rfc3339() {
        assert_eq!(human(1_764_601_445, true), "2025-12-01 15:04 UTC");
        assert_eq!(rfc3339(1_764_601_445), "2025-12-01T15:04:05Z");
    }
}
