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
