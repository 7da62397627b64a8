//! Latency histograms and the process memory readings the scenarios report.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Latencies in microseconds, from 1 µs to 10 minutes, 3 significant digits.
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"))
    }
}

impl Latencies {
    pub fn record(&mut self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros.max(1));
    }

    pub fn add(&mut self, other: &Latencies) {
        self.0.add(&other.0).expect("same bounds");
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    fn ms(micros: u64) -> f64 {
        (micros as f64 / 1000.0 * 1000.0).round() / 1000.0
    }

    /// Count, mean, p50, p99 and max in milliseconds.
    pub fn summary(&self) -> Value {
        if self.0.is_empty() {
            return json!({"count": 0});
        }
        json!({
            "count": self.0.len(),
            "mean_ms": (self.0.mean() / 1000.0 * 1000.0).round() / 1000.0,
            "p50_ms": Self::ms(self.0.value_at_quantile(0.50)),
            "p99_ms": Self::ms(self.0.value_at_quantile(0.99)),
            "max_ms": Self::ms(self.0.max()),
        })
    }
}

/// Resident memory of a process, in bytes (Linux: VmRSS of /proc/PID/status).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for process {pid}"))?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("unreadable VmRSS line {line:?}"))?
        .parse()?;
    Ok(kib * 1024)
}

/// CPU time (user + system) used so far by each process of this machine, in
/// seconds, with the group it belongs to: ramp's server (`server_pid`), PostgreSQL,
/// the engine (Java), this load tool, pgbench, everything else. Read from /proc.
pub type CpuReading = std::collections::HashMap<u32, (&'static str, f64)>;

pub fn cpu_by_group(server_pid: Option<u32>) -> CpuReading {
    let mut reading = CpuReading::new();
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return reading;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // comm is in parentheses and may hold spaces: fields follow the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after comm.
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let seconds = (ticks(11) + ticks(12)) / 100.0;
        let group = if Some(pid) == server_pid {
            "ramp"
        } else if pid == me {
            "load tool"
        } else if comm == "postgres" {
            "postgres"
        } else if comm == "java" {
            "engine"
        } else if comm == "pgbench" {
            "pgbench"
        } else {
            "other"
        };
        reading.insert(pid, (group, seconds));
    }
    reading
}

/// CPU milliseconds per operation for each group between two readings: each
/// process's use in between (a process that started in between counts from its
/// start; one that ended in between is missing, its last moments with it).
pub fn cpu_per_op(before: &CpuReading, after: &CpuReading, ops: u64) -> Value {
    let mut used: std::collections::BTreeMap<&str, f64> = std::collections::BTreeMap::new();
    for (pid, (group, end)) in after {
        let start = before.get(pid).map(|(_, s)| *s).unwrap_or(0.0);
        *used.entry(group).or_insert(0.0) += (end - start).max(0.0);
    }
    let mut out = serde_json::Map::new();
    for (group, seconds) in used {
        if ops > 0 && group != "other" {
            out.insert(
                group.to_owned(),
                json!((seconds * 1000.0 / ops as f64 * 1000.0).round() / 1000.0),
            );
        }
    }
    Value::Object(out)
}
