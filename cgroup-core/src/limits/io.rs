//! io.max (`"DEV rbps=N wbps=N riops=N wiops=N"`) and io.weight (`"N"`, `"default N"` or
//! `"DEV N"`). DEV is `MAJ:MIN` or a block device path (resolved with stat at config load).

use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;

use super::cpu::weight;
use super::size::parse_size;

const IO_MAX_KEYS: &[&str] = &["rbps", "wbps", "riops", "wiops"];

/// Resolves `8:0` or `/dev/sda` to `MAJ:MIN`.
fn device(dev: &str) -> Result<String, String> {
    if dev.starts_with('/') {
        let meta = std::fs::metadata(dev).map_err(|e| format!("device {dev}: {e}"))?;
        if !meta.file_type().is_block_device() {
            return Err(format!("{dev} is not a block device"));
        }
        let rdev = meta.rdev();
        return Ok(format!("{}:{}", libc::major(rdev), libc::minor(rdev)));
    }
    let valid = dev
        .split_once(':')
        .map(|(maj, min)| maj.parse::<u32>().is_ok() && min.parse::<u32>().is_ok())
        .unwrap_or(false);
    if valid {
        Ok(dev.to_string())
    } else {
        Err(format!(
            "{dev:?}: expected a device as MAJOR:MINOR (8:0) or a block device path (/dev/sda)"
        ))
    }
}

pub(super) fn parse_max_line(line: &str) -> Result<String, String> {
    let mut fields = line.split_whitespace();
    let dev = device(fields.next().ok_or("empty io.max entry")?)?;
    let mut out = dev;
    let mut count = 0;
    for field in fields {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("{field:?}: expected key=value"))?;
        if !IO_MAX_KEYS.contains(&key) {
            return Err(format!("{key:?}: io.max keys are rbps, wbps, riops, wiops"));
        }
        let value = if value == "max" {
            "max".to_string()
        } else if key.ends_with("bps") {
            parse_size(value)?.to_string()
        } else {
            value
                .parse::<u64>()
                .map_err(|_| format!("{key}={value}: expected a whole number or max"))?
                .to_string()
        };
        out.push_str(&format!(" {key}={value}"));
        count += 1;
    }
    if count == 0 {
        return Err(format!(
            "{line:?}: give at least one of rbps, wbps, riops, wiops"
        ));
    }
    Ok(out)
}

pub(super) fn parse_weight_line(line: &str) -> Result<String, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    match fields.as_slice() {
        [w] => Ok(format!("default {}", weight(w)?)),
        ["default", w] => Ok(format!("default {}", weight(w)?)),
        [dev, w] => Ok(format!("{} {}", device(dev)?, weight(w)?)),
        _ => Err(format!(
            "{line:?}: io.weight takes \"N\", \"default N\" or \"DEVICE N\""
        )),
    }
}
