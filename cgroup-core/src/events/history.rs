//! The durable, size-bounded event history: a ring of two files in a root-only directory
//! (`[events] history_dir`, 0700; files 0600).
//!
//! - Each file holds at most half the configured size. When the current one has no room for
//!   the next record, the other is emptied and becomes current: the oldest half goes first,
//!   and the two together never exceed the bound.
//! - A record is one line: `LEN CRC JSON` (LEN: the JSON's bytes, CRC: its CRC-32, both 8 hex
//!   digits). A record cut short by a crash, or damaged, fails its length or checksum and is
//!   skipped (the reader goes on at the next newline); the writer cuts a torn tail off the
//!   current file when it opens it, so new records never follow garbage.
//! - Every record carries a sequence number: the newest file is the one with the highest, and
//!   readers order by it.
//! - One writer (the daemon) at a time: it holds a flock on `lock` in the directory.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::StateError;
use crate::state_dir::StateDir;

use super::Event;

const FILES: [&str; 2] = ["events.0", "events.1"];
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
    #[error("{path}: does not exist (no event recorded yet, or the daemon keeps its history elsewhere: [events] history_dir)")]
    Missing { path: PathBuf },
    #[error("an event of {bytes} bytes does not fit in half the history ({half} bytes)")]
    TooLarge { bytes: usize, half: u64 },
}

/// An event as stored, with its sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub seq: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// `LEN CRC JSON\n`
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

/// The daemon's end: appends events, keeps the bound.
pub struct Writer {
    dir: StateDir,
    _lock: nix::fcntl::Flock<File>,
    half: u64,
    current: usize,
    file: File,
    len: u64,
    next_seq: u64,
}

fn io_err(dir: &StateDir, name: &str, op: &'static str, source: std::io::Error) -> HistoryError {
    HistoryError::Io {
        op,
        path: dir.path().join(name),
        source,
    }
}

impl Writer {
    /// Opens (creating it 0700) the history at `dir_path` with a total bound of `size` bytes.
    pub fn open(dir_path: &Path, size: u64) -> Result<Writer, HistoryError> {
        if let Some(parent) = dir_path.parent() {
            use std::os::unix::fs::DirBuilderExt;
            if !parent.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .map_err(|source| HistoryError::Io {
                        op: "create",
                        path: parent.to_path_buf(),
                        source,
                    })?;
            }
        }
        let dir = StateDir::open(dir_path, true)?.ok_or_else(|| HistoryError::Missing {
            path: dir_path.to_path_buf(),
        })?;
        let lock = dir.lock(LOCK, std::time::Duration::ZERO)?;
        let mut newest: Option<(u64, usize, usize)> = None; // (seq, file, good_end)
        let mut max_seq = 0;
        for (i, name) in FILES.iter().enumerate() {
            let (events, _, good_end) = parse(&read_file(&dir, name)?);
            if let Some(last) = events.iter().map(|s| s.seq).max() {
                max_seq = max_seq.max(last);
                if newest.is_none_or(|(seq, _, _)| last > seq) {
                    newest = Some((last, i, good_end));
                }
            }
        }
        let (current, good_end) = newest.map(|(_, i, end)| (i, end)).unwrap_or((0, 0));
        let name = FILES[current];
        let file = dir
            .open_file(name, true)?
            .ok_or_else(|| HistoryError::Missing {
                path: dir.path().join(name),
            })?;
        // A torn tail (a crash mid-write) is cut off: the next record starts on a clean line.
        file.set_len(good_end as u64)
            .map_err(|e| io_err(&dir, name, "truncate", e))?;
        Ok(Writer {
            dir,
            _lock: lock,
            half: size / 2,
            current,
            file,
            len: good_end as u64,
            next_seq: max_seq + 1,
        })
    }

    /// Appends one event (synced to disk) and returns its sequence number. A snapshot too large
    /// for the bound loses its last processes until it fits.
    pub fn append(&mut self, event: &Event) -> Result<u64, HistoryError> {
        let mut stored = Stored {
            seq: self.next_seq,
            event: event.clone(),
        };
        let mut line = encode(&stored);
        while line.len() as u64 > self.half && stored.event.processes.pop().is_some() {
            line = encode(&stored);
        }
        if line.len() as u64 > self.half {
            return Err(HistoryError::TooLarge {
                bytes: line.len(),
                half: self.half,
            });
        }
        if self.len + line.len() as u64 > self.half {
            self.rotate()?;
        }
        let name = FILES[self.current];
        self.file
            .seek(SeekFrom::Start(self.len))
            .and_then(|_| self.file.write_all(&line))
            .and_then(|()| self.file.sync_data())
            .map_err(|e| io_err(&self.dir, name, "write", e))?;
        self.len += line.len() as u64;
        self.next_seq += 1;
        Ok(stored.seq)
    }

    /// The other file, emptied, becomes current: the oldest half of the history goes.
    fn rotate(&mut self) -> Result<(), HistoryError> {
        let next = 1 - self.current;
        let name = FILES[next];
        let file = self
            .dir
            .open_file(name, true)?
            .ok_or_else(|| HistoryError::Missing {
                path: self.dir.path().join(name),
            })?;
        file.set_len(0)
            .map_err(|e| io_err(&self.dir, name, "truncate", e))?;
        self.file = file;
        self.current = next;
        self.len = 0;
        Ok(())
    }

    /// Bytes in each ring file (for tests and `doctor`).
    pub fn file_sizes(&self) -> [u64; 2] {
        FILES.map(|name| {
            std::fs::metadata(self.dir.path().join(name))
                .map(|m| m.len())
                .unwrap_or(0)
        })
    }
}

/// What an erased record's line is filled with (its newline kept).
const ERASED: u8 = b' ';

/// Erases every record of `user` from the history (`cgroupctl remove`): each of its lines is
/// overwritten in place with spaces, same length, newline kept. In place, because the daemon
/// (the one writer, holding the lock for its whole life) appends at an offset it keeps: a
/// rewritten, shorter file would put its next record after a hole. A line is overwritten only
/// if it still holds that record when it is written (the writer may have rotated meanwhile).
/// Returns how many records were erased; a missing history has none.
pub fn erase_user(dir_path: &Path, user: &str) -> Result<usize, HistoryError> {
    use std::os::unix::fs::FileExt;
    let Some(dir) = StateDir::open(dir_path, false)? else {
        return Ok(0);
    };
    let mut erased = 0;
    for name in FILES {
        let bytes = read_file(&dir, name)?;
        let Some(file) = dir.open_file(name, false)? else {
            continue;
        };
        let mut pos = 0;
        while let Some(n) = bytes[pos..].iter().position(|b| *b == b'\n') {
            let line = &bytes[pos..pos + n];
            let next = pos + n + 1;
            if decode(line).is_some_and(|s| s.event.user == user) {
                let mut now = vec![0u8; line.len()];
                let same = file
                    .read_exact_at(&mut now, pos as u64)
                    .is_ok_and(|()| now == line);
                if same {
                    file.write_all_at(&vec![ERASED; line.len()], pos as u64)
                        .map_err(|e| io_err(&dir, name, "erase", e))?;
                    erased += 1;
                }
            }
            pos = next;
        }
        file.sync_data()
            .map_err(|e| io_err(&dir, name, "sync", e))?;
    }
    Ok(erased)
}

/// The paths of the ring files (tests inject torn records into them).
pub fn file_paths(dir: &Path) -> [PathBuf; 2] {
    FILES.map(|n| dir.join(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{FaultKind, ProcessInfo};

    fn event(n: u64) -> Event {
        Event {
            time_ms: 1_000 + n,
            user: "alice".into(),
            kind: FaultKind::OomKill,
            delta: n,
            limit: Some("1073741824".into()),
            usage: Some(1.0),
            processes: vec![ProcessInfo {
                pid: 1,
                comm: "php\n\x1b]0;x\x07".into(),
                cmdline: "x".repeat(200),
                uid: Some(1000),
                rss_bytes: 1,
                cpu_usec: 2,
                cpu_percent: None,
                cgroup: "session-1".into(),
            }],
            killed: Vec::new(),
            from: None,
        }
    }

    #[test]
    fn records_round_trip_and_damage_is_detected() {
        let s = Stored {
            seq: 7,
            event: event(1),
        };
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
    }

    /// `erase_user` under a live writer: the user's records go without a trace of damage,
    /// the others stay in order, and the writer's next record lands on a clean line.
    #[test]
    fn erasing_a_user_keeps_the_others_and_the_writer_appending() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("events");
        let mut w = Writer::open(&dir, 64 * 1024).unwrap();
        for n in 0..6 {
            let mut e = event(n);
            if n % 2 == 1 {
                e.user = "bob".into();
            }
            w.append(&e).unwrap();
        }
        assert_eq!(erase_user(&dir, "bob").unwrap(), 3);
        assert_eq!(erase_user(&dir, "bob").unwrap(), 0, "nothing left to erase");
        w.append(&event(6)).unwrap();
        let c = read(&dir).unwrap();
        assert_eq!(c.skipped, 0, "an erased record is not damage");
        let kept: Vec<(String, u64)> = c
            .events
            .iter()
            .map(|s| (s.event.user.clone(), s.event.delta))
            .collect();
        let alice = |n| ("alice".to_string(), n);
        assert_eq!(kept, vec![alice(0), alice(2), alice(4), alice(6)]);
        drop(w);
        // A writer opened again finds its place after the erased lines too.
        let mut w = Writer::open(&dir, 64 * 1024).unwrap();
        w.append(&event(7)).unwrap();
        let c = read(&dir).unwrap();
        assert_eq!((c.events.len(), c.skipped), (5, 0));
        assert_eq!(erase_user(&tmp.path().join("none"), "bob").unwrap(), 0);
    }

    #[test]
    fn survives_reopen_and_keeps_the_bound() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("events");
        let size = 64 * 1024;
        let mut w = Writer::open(&dir, size).unwrap();
        for n in 0..50 {
            w.append(&event(n)).unwrap();
        }
        drop(w);
        let mut w = Writer::open(&dir, size).unwrap();
        for n in 50..1000 {
            assert_eq!(w.append(&event(n)).unwrap(), n + 1);
            assert!(w.file_sizes().iter().all(|s| *s <= size / 2));
        }
        let c = read(&dir).unwrap();
        assert_eq!(c.skipped, 0);
        let seqs: Vec<u64> = c.events.iter().map(|s| s.seq).collect();
        assert_eq!(*seqs.last().unwrap(), 1000);
        assert!(seqs[0] > 1, "the oldest went");
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "no gap: {seqs:?}"
        );
    }
}
