//! The ring files older versions kept fault events in (`[events] history_dir`: two files,
//! `events.0` and `events.1`, in a root-only directory). Events now live in the history
//! database (`crate::history::events`); this reader is kept only so the daemon can import an
//! existing ring once, on upgrade, and then remove it.
//!
//! - A record is one line: `LEN CRC JSON` (LEN: the JSON's bytes, CRC: its CRC-32, both 8 hex
//!   digits). A record cut short by a crash, or damaged, fails its length or checksum and is
//!   skipped (the reader goes on at the next newline); a line of spaces is a record `remove`
//!   erased.
//! - Every record carries a sequence number: readers order by it.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::StateError;
use crate::state_dir::StateDir;

use super::Event;

const FILES: [&str; 2] = ["events.0", "events.1"];
/// The flock file of the old writer.
const LOCK: &str = "lock";
/// Readers never read more than this of a file, whatever is there.
const MAX_READ: u64 = crate::config::EventsConfig::MAX_HISTORY_SIZE_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{path}: {op}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: does not exist (no ring left to import)")]
    Missing { path: PathBuf },
}

/// An event as stored, with its sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub seq: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// `LEN CRC JSON\n` (tests build a legacy ring with it).
pub fn encode(stored: &Stored) -> Vec<u8> {
    let json = serde_json::to_vec(stored).unwrap_or_default();
    let mut line = format!("{:08x} {:08x} ", json.len(), crc32fast::hash(&json)).into_bytes();
    line.extend_from_slice(&json);
    line.push(b'\n');
    line
}

fn decode(line: &[u8]) -> Option<Stored> {
    let head = line.get(..18)?;
    if head[8] != b' ' || head[17] != b' ' {
        return None;
    }
    let hex = |b: &[u8]| u32::from_str_radix(std::str::from_utf8(b).ok()?, 16).ok();
    let len = hex(&head[..8])? as usize;
    let crc = hex(&head[9..17])?;
    let json = line.get(18..)?;
    if json.len() != len || crc32fast::hash(json) != crc {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// The valid records of a file's bytes, how many damaged records were skipped, and where the
/// last valid record ends (where a writer may append).
fn parse(bytes: &[u8]) -> (Vec<Stored>, usize, usize) {
    let mut out = Vec::new();
    let mut skipped = 0;
    let mut good_end = 0;
    let mut pos = 0;
    while pos < bytes.len() {
        let (line, next) = match bytes[pos..].iter().position(|b| *b == b'\n') {
            Some(n) => (&bytes[pos..pos + n], pos + n + 1),
            // No newline: a record torn by a crash (or being written right now).
            None => (&bytes[pos..], bytes.len()),
        };
        let complete = next <= bytes.len() && bytes.get(next - 1) == Some(&b'\n');
        if complete && !line.is_empty() && line.iter().all(|b| *b == ERASED) {
            // An erased record (`erase_user`): not damage, nothing to report.
            good_end = next;
            pos = next;
            continue;
        }
        match decode(line).filter(|_| complete) {
            Some(s) => {
                out.push(s);
                good_end = next;
            }
            None => skipped += 1,
        }
        pos = next;
    }
    (out, skipped, good_end)
}

fn read_file(dir: &StateDir, name: &str) -> Result<Vec<u8>, HistoryError> {
    let Some(file) = dir.open_file(name, false)? else {
        return Ok(Vec::new());
    };
    let mut bytes = Vec::new();
    file.take(MAX_READ)
        .read_to_end(&mut bytes)
        .map_err(|source| HistoryError::Io {
            op: "read",
            path: dir.path().join(name),
            source,
        })?;
    Ok(bytes)
}

/// What a reader found: the events in order, and how many damaged records it skipped.
#[derive(Debug, Default)]
pub struct Contents {
    pub events: Vec<Stored>,
    pub skipped: usize,
}

/// Reads the whole history (root: the directory is root-only).
pub fn read(dir_path: &Path) -> Result<Contents, HistoryError> {
    let dir = StateDir::open(dir_path, false)?.ok_or_else(|| HistoryError::Missing {
        path: dir_path.to_path_buf(),
    })?;
    let mut contents = Contents::default();
    for name in FILES {
        let (events, skipped, _) = parse(&read_file(&dir, name)?);
        contents.events.extend(events);
        contents.skipped += skipped;
    }
    contents.events.sort_by_key(|s| s.seq);
    Ok(contents)
}

/// What an erased record's line is filled with (its newline kept).
const ERASED: u8 = b' ';

/// Removes the ring (its two files, the old writer's lock file, then the directory if
/// nothing else is in it): called once its events are in the database, so a second start
/// finds nothing to import. Returns whether the directory itself went.
pub fn remove(dir_path: &Path) -> Result<bool, HistoryError> {
    let Some(dir) = StateDir::open(dir_path, false)? else {
        return Ok(true);
    };
    for name in FILES.iter().chain([&LOCK]) {
        dir.remove(name)?;
    }
    drop(dir);
    match std::fs::remove_dir(dir_path) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Ok(false),
        Err(source) => Err(HistoryError::Io {
            op: "remove",
            path: dir_path.to_path_buf(),
            source,
        }),
    }
}

/// The paths of the ring files (tests write a legacy ring into them).
pub fn file_paths(dir: &Path) -> [PathBuf; 2] {
    FILES.map(|n| dir.join(n))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::events::FaultKind;

    fn stored(seq: u64) -> Stored {
        Stored {
            seq,
            event: Event {
                time_ms: 1_000 + seq,
                user: "alice".into(),
                kind: FaultKind::OomKill,
                delta: seq,
                limit: Some("1073741824".into()),
                usage: Some(1.0),
                processes: Vec::new(),
                killed: Vec::new(),
                from: None,
            },
        }
    }

    #[test]
    fn records_round_trip_and_damage_is_skipped() {
        let s = stored(7);
        let line = encode(&s);
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        assert_eq!(parse(&line).0, vec![s.clone()]);
        let mut bad = line.clone();
        bad[30] ^= 1;
        assert_eq!(parse(&bad).1, 1);
        let torn = &line[..line.len() - 5];
        let mut two = line.clone();
        two.extend_from_slice(torn);
        let (ok, skipped, end) = parse(&two);
        assert_eq!((ok.len(), skipped, end), (1, 1, line.len()));
        let erased = vec![ERASED; 40]
            .into_iter()
            .chain([b'\n'])
            .collect::<Vec<u8>>();
        assert_eq!(parse(&erased).1, 0, "an erased record is not damage");
    }

    /// A ring file as the old writer made it (root-only).
    pub(crate) fn write600(path: &Path, bytes: Vec<u8>) {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .unwrap();
        std::io::Write::write_all(&mut f, &bytes).unwrap();
    }

    #[test]
    fn read_orders_by_sequence_and_remove_leaves_nothing() {
        use std::os::unix::fs::DirBuilderExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("events");
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        let [f0, f1] = file_paths(&dir);
        write600(&f0, [encode(&stored(3)), encode(&stored(4))].concat());
        write600(&f1, [encode(&stored(1)), b"garbage\n".to_vec()].concat());
        write600(&dir.join(LOCK), Vec::new());
        let c = read(&dir).unwrap();
        let seqs: Vec<u64> = c.events.iter().map(|s| s.seq).collect();
        assert_eq!((seqs, c.skipped), (vec![1, 3, 4], 1));
        assert!(remove(&dir).unwrap());
        assert!(!dir.exists());
        assert!(remove(&dir).unwrap(), "gone already is fine");
    }
}
