//! The PAM line's arguments: any words. Never a panic; the config path stays absolute.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let words: Vec<&str> = text.split(['\0', ' ']).collect();
    let args = pam_cgroup::args::parse(words.iter().copied());
    assert!(args.config.is_absolute());
    assert!(args.unknown.len() <= words.len());
});
