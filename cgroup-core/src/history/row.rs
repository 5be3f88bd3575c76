//! One row of the history: what one user used over one interval (a sample's), one hour or
//! one day. Counters are deltas over the row's time; `None`: not measured on this host (the
//! file's controller is not enabled), never 0.

/// The three tables, finest first, with the seconds each row spans (a sample row spans the
/// interval it was taken over: `secs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Sample,
    Hour,
    Day,
}

impl Table {
    pub const ALL: [Table; 3] = [Table::Sample, Table::Hour, Table::Day];

    pub fn name(self) -> &'static str {
        match self {
            Table::Sample => "sample",
            Table::Hour => "hour",
            Table::Day => "day",
        }
    }

    /// Seconds of one bucket (a sample row: 1, its time is the sample's).
    pub fn bucket(self) -> i64 {
        match self {
            Table::Sample => 1,
            Table::Hour => 3600,
            Table::Day => 86_400,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Row {
    /// Samples summed into this row.
    pub samples: u64,
    /// Wall-clock seconds the row covers (the time between samples, summed).
    pub secs: u64,
    pub cpu_usec: Option<u64>,
    pub throttled_usec: Option<u64>,
    /// cpu.stat nr_throttled: periods the cpu.max quota stopped the user.
    pub nr_throttled: Option<u64>,
    /// memory.current summed over the samples (the average is this / samples).
    pub memory_sum: Option<u64>,
    pub memory_peak: Option<u64>,
    pub pids_peak: Option<u64>,
    pub io_read: Option<u64>,
    pub io_write: Option<u64>,
    pub net_rx: Option<u64>,
    pub net_tx: Option<u64>,
    /// memory.events max, high and oom_kill; pids.events max.
    pub memory_max_hits: Option<u64>,
    pub memory_high_hits: Option<u64>,
    pub oom_kills: Option<u64>,
    pub pids_max_hits: Option<u64>,
}

/// The value columns, in `Row::values` order (the schema and every statement use this list).
pub const VALUE_COLUMNS: [&str; 16] = [
    "samples",
    "secs",
    "cpu_usec",
    "throttled_usec",
    "nr_throttled",
    "memory_sum",
    "memory_peak",
    "pids_peak",
    "io_read",
    "io_write",
    "net_rx",
    "net_tx",
    "memory_max_hits",
    "memory_high_hits",
    "oom_kills",
    "pids_max_hits",
];

/// How a rollup combines a column: peaks take the largest, everything else adds up.
pub fn rollup_of(column: &str) -> &'static str {
    if column.ends_with("_peak") {
        "MAX"
    } else {
        "SUM"
    }
}

fn to_sql(v: Option<u64>) -> Option<i64> {
    // SQLite integers are i64: a counter past that is kept at the largest value.
    v.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

fn from_sql(v: Option<i64>) -> Option<u64> {
    v.map(|n| u64::try_from(n).unwrap_or(0))
}

impl Row {
    pub fn values(&self) -> [Option<i64>; 16] {
        self.columns().map(to_sql)
    }

    /// The values in `VALUE_COLUMNS` order (`samples` and `secs` always present).
    pub fn columns(&self) -> [Option<u64>; 16] {
        [
            Some(self.samples),
            Some(self.secs),
            self.cpu_usec,
            self.throttled_usec,
            self.nr_throttled,
            self.memory_sum,
            self.memory_peak,
            self.pids_peak,
            self.io_read,
            self.io_write,
            self.net_rx,
            self.net_tx,
            self.memory_max_hits,
            self.memory_high_hits,
            self.oom_kills,
            self.pids_max_hits,
        ]
    }

    /// The row of `columns()`'s values.
    pub fn from_columns(v: [Option<u64>; 16]) -> Row {
        Row {
            samples: v[0].unwrap_or(0),
            secs: v[1].unwrap_or(0),
            cpu_usec: v[2],
            throttled_usec: v[3],
            nr_throttled: v[4],
            memory_sum: v[5],
            memory_peak: v[6],
            pids_peak: v[7],
            io_read: v[8],
            io_write: v[9],
            net_rx: v[10],
            net_tx: v[11],
            memory_max_hits: v[12],
            memory_high_hits: v[13],
            oom_kills: v[14],
            pids_max_hits: v[15],
        }
    }

    /// Adds `other` in as a rollup does (`rollup_of`): the largest of the peaks, the sum of
    /// the rest; a value missing on one side is the other's (SQL's SUM and MAX skip NULLs).
    pub fn merge(&mut self, other: &Row) {
        let mut mine = self.columns();
        for ((m, o), column) in mine.iter_mut().zip(other.columns()).zip(VALUE_COLUMNS) {
            *m = match (*m, o) {
                (Some(a), Some(b)) if rollup_of(column) == "MAX" => Some(a.max(b)),
                (Some(a), Some(b)) => Some(a.saturating_add(b)),
                (a, b) => a.or(b),
            };
        }
        *self = Row::from_columns(mine);
    }

    /// The row from the value columns of a result, starting at column `first`.
    pub fn from_sql_row(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Row> {
        let mut v = [None; 16];
        for (i, value) in v.iter_mut().enumerate() {
            *value = from_sql(r.get::<_, Option<i64>>(first + i)?);
        }
        Ok(Row::from_columns(v))
    }

    /// Limit hits of every kind together (`faults_total`); throttled periods count as one
    /// kind (`cpu_throttled`).
    pub fn faults_total(&self) -> u64 {
        [
            self.memory_max_hits,
            self.memory_high_hits,
            self.oom_kills,
            self.pids_max_hits,
            self.nr_throttled,
        ]
        .iter()
        .map(|v| v.unwrap_or(0))
        .fold(0u64, u64::saturating_add)
    }

    /// Nothing ran and nothing was used: no memory, no process, every counter still.
    /// The sampler keeps no row for such an interval (an empty user cgroup costs nothing).
    pub fn is_idle(&self) -> bool {
        // Every measured value (`samples` and `secs` are the interval's, not a use).
        self.columns()[2..].iter().all(|v| v.unwrap_or(0) == 0)
    }

    /// Average memory.current over the row's samples.
    pub fn memory_avg(&self) -> Option<u64> {
        self.memory_sum
            .map(|s| s.checked_div(self.samples).unwrap_or(0))
    }

    /// CPU use over the row's time, in percent of one CPU.
    pub fn cpu_percent(&self) -> Option<f64> {
        let usec = self.cpu_usec?;
        if self.secs == 0 {
            return Some(0.0);
        }
        Some(usec as f64 / (self.secs as f64 * 1e6) * 100.0)
    }
}
