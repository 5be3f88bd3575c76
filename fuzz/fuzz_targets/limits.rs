//! Limit values: any key and value text. Accepted values never carry a newline or an empty
//! line into a cgroup file.
#![no_main]

use cgroup_core::limits::{parse_limit, RawValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (key, value) = text.split_once('=').unwrap_or(("memory.max", text));
    let mut values = vec![RawValue::Text(value.to_string())];
    if let Ok(i) = value.trim().parse::<i64>() {
        values.push(RawValue::Integer(i));
    }
    values.push(RawValue::List(
        value.split(';').map(str::to_string).collect(),
    ));
    for v in values {
        match parse_limit(key, &v) {
            Ok(limit) => {
                assert_eq!(limit.key.file_name(), key);
                assert!(!limit.lines.is_empty());
                for line in &limit.lines {
                    assert!(!line.is_empty());
                    assert!(!line.contains('\n') && !line.contains('\0'), "{line:?}");
                }
            }
            Err(e) => assert_eq!(e.key, key),
        }
    }
});
