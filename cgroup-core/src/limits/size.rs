//! Byte sizes: `4096`, `512K`, `512M`, `2G`, `1T`, `1.5G`, `64MiB` (binary units, as the
//! kernel and systemd's MemoryMax= use them).

const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("B", 1),
    ("K", 1 << 10),
    ("KB", 1 << 10),
    ("KIB", 1 << 10),
    ("M", 1 << 20),
    ("MB", 1 << 20),
    ("MIB", 1 << 20),
    ("G", 1 << 30),
    ("GB", 1 << 30),
    ("GIB", 1 << 30),
    ("T", 1 << 40),
    ("TB", 1 << 40),
    ("TIB", 1 << 40),
];

/// Parses a size to bytes. Fractions are allowed with a unit (`1.5G`) and rounded down to a
/// whole byte.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty value".to_string());
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(format!("{text:?} does not start with a number"));
    }
    let unit_upper = unit.trim().to_ascii_uppercase();
    let multiplier = UNITS
        .iter()
        .find(|(name, _)| *name == unit_upper)
        .map(|(_, m)| *m)
        .ok_or_else(|| format!("unknown unit {unit:?} in {text:?} (use K, M, G or T)"))?;
    let too_large = || format!("{text:?} is too large");
    if let Some((whole, frac)) = number.split_once('.') {
        if frac.contains('.') || (whole.is_empty() && frac.is_empty()) {
            return Err(format!("{text:?} is not a number"));
        }
        // Exact decimal arithmetic on integers: whole * m + frac * m / 10^len(frac).
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| too_large())?
        };
        let frac_digits = frac.len().min(9);
        let frac_value: u64 = if frac_digits == 0 {
            0
        } else {
            frac[..frac_digits]
                .parse()
                .map_err(|_| format!("{text:?} is not a number"))?
        };
        let scale = 10u64.pow(u32::try_from(frac_digits).map_err(|_| too_large())?);
        let whole_bytes = whole.checked_mul(multiplier).ok_or_else(too_large)?;
        let frac_bytes = u128::from(frac_value) * u128::from(multiplier) / u128::from(scale);
        let frac_bytes = u64::try_from(frac_bytes).map_err(|_| too_large())?;
        whole_bytes.checked_add(frac_bytes).ok_or_else(too_large)
    } else {
        let value: u64 = number.parse().map_err(|_| too_large())?;
        value.checked_mul(multiplier).ok_or_else(too_large)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("1K"), Ok(1024));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("0.5M"), Ok(512 << 10));
        assert_eq!(parse_size("1 G"), Ok(1 << 30));
    }

    #[test]
    fn refusals() {
        assert!(parse_size("").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("1.2.3G").is_err());
        assert!(parse_size("1Q").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("20000000T").is_err());
        assert!(parse_size(".").is_err());
    }
}
