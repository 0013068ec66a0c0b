//! What the registry process spent, when it runs on this machine
//! (`--server-pid`), and what the client itself spent: CPU time from
//! `/proc/PID/stat` and resident memory from `/proc/PID/status`. CPU time per operation is the number to compare
//! on a busy machine: throughput moves with whatever else runs, the work a
//! server does per request much less.

use serde::Serialize;

/// One reading of the server process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// User plus system CPU seconds of all its threads so far.
    pub cpu_s: f64,
    /// Resident memory now, KiB (VmRSS).
    pub rss_kib: u64,
    /// Peak resident memory since it started, KiB (VmHWM).
    pub peak_rss_kib: u64,
}

/// What a process did during one workload.
#[derive(Serialize, Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// CPU milliseconds it used during the timed operations.
    pub cpu_ms: f64,
    /// CPU microseconds per successful operation.
    pub cpu_us_per_op: f64,
    /// Resident memory at the end, KiB.
    pub rss_kib: u64,
    /// Peak resident memory since the server started, KiB.
    pub peak_rss_kib: u64,
}

/// Clock ticks per second for `/proc/PID/stat` times. Linux has reported
/// them in USER_HZ = 100 on every architecture for decades.
const TICKS_PER_S: f64 = 100.0;

pub fn sample(pid: u32) -> Result<Sample, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("reading /proc/{pid}/stat: {e}"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("reading /proc/{pid}/status: {e}"))?;
    let cpu_s = parse_cpu(&stat).ok_or_else(|| format!("/proc/{pid}/stat: unexpected format"))?;
    let kib = |key| parse_kib(&status, key).ok_or_else(|| format!("/proc/{pid}/status: no {key}"));
    Ok(Sample {
        cpu_s,
        rss_kib: kib("VmRSS:")?,
        peak_rss_kib: kib("VmHWM:")?,
    })
}

impl Usage {
    pub fn between(before: Sample, after: Sample, ops: u64) -> Usage {
        let cpu_ms = (after.cpu_s - before.cpu_s).max(0.0) * 1000.0;
        Usage {
            cpu_ms,
            cpu_us_per_op: if ops == 0 {
                0.0
            } else {
                cpu_ms * 1000.0 / ops as f64
            },
            rss_kib: after.rss_kib,
            peak_rss_kib: after.peak_rss_kib,
        }
    }
}

/// utime + stime (fields 14 and 15) in seconds. The command name (field 2)
/// is in parentheses and may hold spaces, so fields count from the last `)`.
fn parse_cpu(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_S)
}

fn parse_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "1234 (tokio rt) worker) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 9";
        assert_eq!(parse_cpu(stat), Some(3.0));
        let status = "Name:\tberth\nVmHWM:\t   20480 kB\nVmRSS:\t    9000 kB\n";
        assert_eq!(parse_kib(status, "VmHWM:"), Some(20480));
        assert_eq!(parse_kib(status, "VmRSS:"), Some(9000));
        assert_eq!(parse_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_kib > 0 && s.peak_rss_kib >= s.rss_kib);
        let u = Usage::between(
            s,
            Sample {
                cpu_s: s.cpu_s + 0.5,
                ..s
            },
            1000,
        );
        assert_eq!(u.cpu_ms, 500.0);
        assert_eq!(u.cpu_us_per_op, 500.0);
    }
}
