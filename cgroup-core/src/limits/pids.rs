//! pids.max: a whole number of tasks, or `max`.

pub(super) fn parse(value: &str) -> Result<String, String> {
    if value == "max" {
        return Ok("max".to_string());
    }
    let n: u64 = value
        .parse()
        .map_err(|_| format!("{value:?}: expected a whole number of tasks or \"max\""))?;
    if n == 0 {
        // 0 would make every fork of every login fail: the user could never get a shell.
        return Err("must be at least 1 (0 would refuse every process of the user)".to_string());
    }
    if n > i32::MAX as u64 {
        return Err(format!("{value:?} is too large (use \"max\" for no limit)"));
    }
    Ok(n.to_string())
}
