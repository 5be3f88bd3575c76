//! The packed form of one user's rows over one bucket (two hours of samples, two days of
//! hourly rows): one blob instead of one SQLite row per interval.
//!
//! A SQLite row costs about 58 bytes for 16 small integers (a record header byte per column,
//! the key, the cell); most of it is overhead, and each value is stored in a whole number of
//! bytes. The blob stores each column of the bucket's rows together (the time, as the seconds
//! since the previous row's or the bucket's start, then the 16 values of
//! `row::VALUE_COLUMNS`), each value in the bits it needs:
//!
//! - per column: 2 bits of presence (no value / every row has one / a bit per row says);
//! - the present values as offsets from the column's smallest (frame of reference), in a
//!   narrow width, with a 1-bit flag sending the few large ones to the column's full width
//!   when that is shorter in total (a host's idle users and its busy ones in the same column);
//! - a constant column (`samples`, `secs`, the interval between samples) costs no bit per row.
//!
//! Exact: every value (up to `u64::MAX`) and every `None` comes back as it was. A blob that
//! does not decode is an error, never a panic and never a wrong row.

use super::row::Row;

/// The first byte of every blob: the layout below (a later layout gets another number).
const FORMAT: u8 = 1;
/// Columns: the time (seconds since the previous row), then the row's 16 values.
const COLUMNS: usize = 17;

/// Why a blob did not decode.
pub type DecodeError = &'static str;

struct BitWriter {
    out: Vec<u8>,
    acc: u128,
    bits: u32,
}

impl BitWriter {
    fn put(&mut self, v: u64, width: u32) {
        if width == 0 {
            return;
        }
        let mask = (1u128 << width) - 1;
        self.acc |= (u128::from(v) & mask) << self.bits;
        self.bits += width;
        while self.bits >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
    }

    /// A number of any size: its width in 7 bits, then its bits.
    fn num(&mut self, v: u64) {
        let w = width(v);
        self.put(u64::from(w), 7);
        self.put(v, w);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.bits > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u128,
    bits: u32,
}

impl BitReader<'_> {
    fn get(&mut self, width: u32) -> Result<u64, DecodeError> {
        if width == 0 {
            return Ok(0);
        }
        if width > 64 {
            return Err("a width past 64 bits");
        }
        while self.bits < width {
            let Some(b) = self.data.get(self.pos) else {
                return Err("cut short");
            };
            self.acc |= u128::from(*b) << self.bits;
            self.pos += 1;
            self.bits += 8;
        }
        let v = (self.acc & ((1u128 << width) - 1)) as u64;
        self.acc >>= width;
        self.bits -= width;
        Ok(v)
    }

    fn num(&mut self) -> Result<u64, DecodeError> {
        let w = self.get(7)? as u32;
        self.get(w)
    }
}

/// Bits needed for `v` (0 for 0).
fn width(v: u64) -> u32 {
    64 - v.leading_zeros()
}

/// The narrow width that stores `offsets` in the fewest bits, and the full width: equal when
/// one width for all is best.
fn widths(offsets: &[u64]) -> (u32, u32) {
    let mut count = [0usize; 65];
    for o in offsets {
        count[width(*o) as usize] += 1;
    }
    let full = (0..=64).rev().find(|w| count[*w] > 0).unwrap_or(0);
    let m = offsets.len();
    let mut best = (full, m * full);
    let mut narrow_count = 0;
    for (w, c) in count.iter().enumerate().take(full) {
        narrow_count += c;
        let cost = m + narrow_count * w + (m - narrow_count) * full;
        if cost < best.1 {
            best = (w, cost);
        }
    }
    (best.0 as u32, full as u32)
}

fn columns(gap: u64, r: &Row) -> [Option<u64>; COLUMNS] {
    let v = r.columns();
    let mut c = [None; COLUMNS];
    c[0] = Some(gap);
    c[1..].copy_from_slice(&v);
    c
}

/// Packs `rows` (time, row), each time in `[start, start + span)`, one row a time.
pub fn encode(start: i64, rows: &[(i64, Row)]) -> Vec<u8> {
    let mut rows = rows.to_vec();
    rows.sort_by_key(|(at, _)| *at);
    let mut w = BitWriter {
        out: vec![FORMAT],
        acc: 0,
        bits: 0,
    };
    w.num(rows.len() as u64);
    let mut previous = start;
    let cols: Vec<[Option<u64>; COLUMNS]> = rows
        .iter()
        .map(|(at, r)| {
            let gap = u64::try_from(at - previous).unwrap_or(0);
            previous = *at;
            columns(gap, r)
        })
        .collect();
    for c in 0..COLUMNS {
        let present: Vec<u64> = cols.iter().filter_map(|r| r[c]).collect();
        if present.is_empty() {
            w.put(0, 2);
            continue;
        }
        if present.len() == cols.len() {
            w.put(1, 2);
        } else {
            w.put(2, 2);
            for r in &cols {
                w.put(u64::from(r[c].is_some()), 1);
            }
        }
        let base = present.iter().copied().min().unwrap_or(0);
        let offsets: Vec<u64> = present.iter().map(|v| v - base).collect();
        let (narrow, full) = widths(&offsets);
        w.num(base);
        w.put(u64::from(full), 7);
        w.put(u64::from(narrow), 7);
        for o in offsets {
            if narrow == full {
                w.put(o, full);
            } else if width(o) <= narrow {
                w.put(0, 1);
                w.put(o, narrow);
            } else {
                w.put(1, 1);
                w.put(o, full);
            }
        }
    }
    w.finish()
}

/// The rows of a blob made by `encode` with the same `start`; `span`: the bucket's seconds
/// (no time outside it, and no more rows than it has seconds).
pub fn decode(start: i64, span: i64, blob: &[u8]) -> Result<Vec<(i64, Row)>, DecodeError> {
    let Some((&format, rest)) = blob.split_first() else {
        return Err("empty");
    };
    if format != FORMAT {
        return Err("an unknown layout");
    }
    let mut r = BitReader {
        data: rest,
        pos: 0,
        acc: 0,
        bits: 0,
    };
    let n = r.num()?;
    if n > u64::try_from(span).unwrap_or(0) {
        return Err("more rows than the bucket has seconds");
    }
    let n = n as usize;
    let mut cols = vec![[None; COLUMNS]; n];
    #[allow(clippy::needless_range_loop)] // column-wise: every row's value `c` in turn
    for c in 0..COLUMNS {
        let present: Vec<bool> = match r.get(2)? {
            0 => continue,
            1 => vec![true; n],
            2 => (0..n)
                .map(|_| r.get(1).map(|b| b == 1))
                .collect::<Result<_, _>>()?,
            _ => return Err("an unknown presence kind"),
        };
        let base = r.num()?;
        let full = r.get(7)? as u32;
        let narrow = r.get(7)? as u32;
        if full > 64 || narrow > full {
            return Err("a bad width");
        }
        for (i, there) in present.iter().enumerate() {
            if !there {
                continue;
            }
            let o = if narrow == full || r.get(1)? == 0 {
                r.get(narrow)?
            } else {
                r.get(full)?
            };
            cols[i][c] = Some(base.checked_add(o).ok_or("a value past 64 bits")?);
        }
    }
    let mut offset = 0i64;
    cols.into_iter()
        .map(|c| {
            let gap = c[0].ok_or("a row without its time")?;
            offset = i64::try_from(gap)
                .ok()
                .and_then(|g| offset.checked_add(g))
                .filter(|o| *o < span)
                .ok_or("a time outside its bucket")?;
            let mut v = [None; COLUMNS - 1];
            v.copy_from_slice(&c[1..]);
            Ok((start + offset, Row::from_columns(v)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(i: u64) -> Row {
        Row {
            samples: 1,
            secs: 60,
            cpu_usec: Some(if i % 5 == 0 { 40_000_000 + i } else { i * 7 }),
            throttled_usec: Some(0),
            nr_throttled: None,
            memory_sum: Some(100 << 20),
            memory_peak: Some((100 << 20) + i * 4096),
            pids_peak: Some(3),
            io_read: if i % 2 == 0 { Some(i) } else { None },
            ..Row::default()
        }
    }

    #[test]
    fn round_trip_keeps_every_value_and_every_none() {
        let start = 500_000 * 3600;
        let rows: Vec<(i64, Row)> = (0..60)
            .map(|i| (start + i as i64 * 60, sample(i)))
            .collect();
        let blob = encode(start, &rows);
        assert_eq!(decode(start, 3600, &blob).unwrap(), rows);
        // Much smaller than 58 bytes a row.
        assert!(blob.len() < rows.len() * 20, "{} bytes", blob.len());
        // None and 0 stay apart, in a column of both and in columns of one only.
        let mixed = vec![
            (
                start,
                Row {
                    cpu_usec: Some(0),
                    io_read: None,
                    ..Row::default()
                },
            ),
            (
                start + 1,
                Row {
                    cpu_usec: None,
                    io_read: Some(0),
                    ..Row::default()
                },
            ),
        ];
        assert_eq!(decode(start, 3600, &encode(start, &mixed)).unwrap(), mixed);
        assert_eq!(decode(start, 3600, &encode(start, &[])).unwrap(), vec![]);
    }

    #[test]
    fn the_largest_values_come_back() {
        let start = 86_400 * 20_000;
        let big = Row {
            samples: u64::MAX,
            secs: u64::MAX - 1,
            cpu_usec: Some(u64::MAX),
            memory_sum: Some(0),
            memory_peak: Some(u64::MAX),
            ..Row::default()
        };
        let rows = vec![
            (start, big),
            (
                start + 86_399,
                Row {
                    cpu_usec: Some(1),
                    ..big
                },
            ),
        ];
        assert_eq!(decode(start, 86_400, &encode(start, &rows)).unwrap(), rows);
    }

    #[test]
    fn a_damaged_blob_is_an_error() {
        let start = 0;
        let rows: Vec<(i64, Row)> = (0..60).map(|i| (i as i64 * 60, sample(i))).collect();
        let blob = encode(start, &rows);
        assert!(decode(start, 3600, &[]).is_err());
        assert!(decode(start, 3600, &[9]).is_err());
        for cut in 1..blob.len() {
            assert!(decode(start, 3600, &blob[..cut]).is_err(), "cut at {cut}");
        }
        // Times past the bucket, or more rows than it has seconds.
        assert!(decode(start, 60, &blob).is_err());
        // Flipped bytes: an error or some rows, never a panic.
        for i in 1..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0xa5;
            let _ = decode(start, 3600, &bad);
        }
        // A huge row count in a few bytes is refused before anything is allocated for it.
        let mut w = BitWriter {
            out: vec![FORMAT],
            acc: 0,
            bits: 0,
        };
        w.num(u64::MAX);
        assert!(decode(start, 3600, &w.finish()).is_err());
    }
}
