//! Customer-chosen text in an event (a command line, a cgroup path, a process name) cut to a
//! size measured as the event is stored: JSON, where a control byte takes six bytes
//! (`\u0001`). Cut on its raw bytes alone, 512 control bytes of argv were 3 KB of JSON and
//! every level of sub-cgroup names of 255 control bytes 1.5 KB more: ten such processes made
//! an event of about 90 KB, and one customer's faults could fill the history in minutes.
//!
//! With these caps an event's size is bounded by design: `top_processes` processes of at most
//! `MAX_COMM_JSON + MAX_COMMAND_JSON + MAX_PATH_JSON` bytes of text each, and the history
//! still cuts an event to half its bound (`history::events`).

use super::{Event, ProcessInfo};

/// What ends a cut text, so a reader knows there was more.
pub const CUT_MARK: char = '…';

/// A command line, in bytes of JSON (the 512 bytes read from /proc when none is escaped).
pub const MAX_COMMAND_JSON: usize = 512;

/// A cgroup path (a process's, relative to users/<user>; a fenced process's former one; an
/// OOM victim's), in bytes of JSON: a few ordinary levels, not four names of 255 bytes.
pub const MAX_PATH_JSON: usize = 256;

/// A process name, in bytes of JSON: the kernel's comm is at most 15 bytes, 90 escaped, so a
/// real one is never cut.
pub const MAX_COMM_JSON: usize = 96;

/// The bytes `c` takes inside a JSON string as serde_json writes it: `"`, `\` and the five
/// short escapes two, any other control character six, everything else its UTF-8 bytes.
fn json_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
        c if u32::from(c) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// The bytes `text` takes as a JSON string, without its quotes.
pub fn json_size(text: &str) -> usize {
    text.chars().map(json_len).sum()
}

/// `text` as it is when its JSON takes at most `max` bytes; else its longest start (whole
/// characters) that fits with `CUT_MARK` after it.
pub fn cut_to_json(mut text: String, max: usize) -> String {
    if json_size(&text) <= max {
        return text;
    }
    let room = max.saturating_sub(json_len(CUT_MARK));
    let mut used = 0;
    let mut end = 0;
    for (at, c) in text.char_indices() {
        used += json_len(c);
        if used > room {
            break;
        }
        end = at + c.len_utf8();
    }
    text.truncate(end);
    if max >= json_len(CUT_MARK) {
        text.push(CUT_MARK);
    }
    text
}

/// A snapshot's process with its customer-chosen text within the caps.
pub fn cap_process(p: &mut ProcessInfo) {
    p.comm = cut_to_json(std::mem::take(&mut p.comm), MAX_COMM_JSON);
    p.cmdline = cut_to_json(std::mem::take(&mut p.cmdline), MAX_COMMAND_JSON);
    p.cgroup = cut_to_json(std::mem::take(&mut p.cgroup), MAX_PATH_JSON);
}

/// Every customer-chosen text of `event` within the caps: its processes', its OOM victims'
/// (names and cgroups, whole until the event is stored: a victim is matched to its user by
/// the full path) and a fenced process's former cgroup. What the history stores.
pub fn cap_event(event: &mut Event) {
    event.processes.iter_mut().for_each(cap_process);
    for victim in &mut event.killed {
        victim.comm = cut_to_json(std::mem::take(&mut victim.comm), MAX_COMM_JSON);
        victim.task_memcg = cut_to_json(std::mem::take(&mut victim.task_memcg), MAX_PATH_JSON);
    }
    event.from = event.from.take().map(|f| cut_to_json(f, MAX_PATH_JSON));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored_size(text: &str) -> usize {
        serde_json::to_string(text).unwrap().len() - 2
    }

    #[test]
    fn the_size_is_the_one_serde_json_writes() {
        let every_ascii: String = (0u8..0x80).map(char::from).collect();
        for text in [every_ascii.as_str(), "é€😀\u{7f}\u{2028}", "\u{fffd}x\"\\"] {
            assert_eq!(json_size(text), stored_size(text), "{text:?}");
        }
    }

    #[test]
    fn a_cut_fits_on_a_char_boundary_and_says_so() {
        let short = "php-fpm: pool www".to_string();
        assert_eq!(cut_to_json(short.clone(), 64), short);
        for text in ["\u{1}".repeat(300), "é".repeat(300), "a\u{1}é😀".repeat(80)] {
            for max in [0, 1, 2, 3, 4, 7, 63, 64, 256] {
                let cut = cut_to_json(text.clone(), max);
                assert!(stored_size(&cut) <= max, "{max}: {cut:?}");
                assert!(text.starts_with(cut.trim_end_matches(CUT_MARK)));
                if max >= 3 {
                    assert!(cut.ends_with(CUT_MARK), "{max}: {cut:?}");
                    // The longest start that fits: one more character would not.
                    let kept = cut.trim_end_matches(CUT_MARK);
                    if let Some(next) = text[kept.len()..].chars().next() {
                        assert!(json_size(kept) + json_len(next) + 3 > max);
                    }
                }
            }
        }
    }
}
