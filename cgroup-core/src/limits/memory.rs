//! memory.max, memory.high, memory.low, memory.swap.max: a byte count or `max`.

use super::size::parse_size;

/// Sizes above this are certainly typos (the kernel's own ceiling is PAGE_COUNTER_MAX pages).
const MAX_BYTES: u64 = 1 << 60;

pub(super) fn parse(value: &str) -> Result<String, String> {
    if value == "max" {
        return Ok("max".to_string());
    }
    if value.starts_with('-') {
        return Err(format!(
            "{value:?}: expected a non-negative number of bytes or \"max\""
        ));
    }
    let bytes = parse_size(value)?;
    if bytes > MAX_BYTES {
        return Err(format!("{value:?} is too large (use \"max\" for no limit)"));
    }
    Ok(bytes.to_string())
}
