//! Results: latency percentiles, the human table and the JSON document.

use super::procstat::Usage;
use serde::Serialize;

/// Everything one `berth bench` run measured (the `--json` document).
#[derive(Serialize, Debug, Clone)]
pub struct Report {
    pub target: String,
    pub run_id: String,
    pub concurrency: u32,
    /// `HTTP/1.1` (a connection per operation in flight) or `HTTP/2` (h2c,
    /// one connection).
    pub http: &'static str,
    /// Operations per workload, when the run was bounded by count.
    pub requests: Option<u64>,
    /// Seconds per workload, when the run was bounded by time.
    pub duration_s: Option<f64>,
    pub chunk_size: u64,
    pub limits: Option<Limits>,
    /// `--server-pid`: the registry process observed on this machine.
    pub server_pid: Option<u32>,
    pub workloads: Vec<Row>,
}

/// This machine's own speed, the ceiling for anything that hashes or copies.
#[derive(Serialize, Debug, Clone, Copy)]
pub struct Limits {
    /// SHA-256 on one core, MB/s (10^6 bytes).
    pub sha256_mb_s: f64,
    /// Memory-to-memory copy on one core, MB/s.
    pub memcpy_mb_s: f64,
}

/// One workload's result.
#[derive(Serialize, Debug, Clone)]
pub struct Row {
    /// Workload name, e.g. `push-monolithic`.
    pub workload: String,
    /// Blob size for blob workloads.
    pub blob_size: Option<u64>,
    /// Name and size, e.g. `push-monolithic 1MiB`.
    pub label: String,
    /// Operations that succeeded. An operation is what a client does for
    /// one result: a push is POST + PUT (or POST + PATCH... + PUT).
    pub ops: u64,
    /// Operations that failed.
    pub errors: u64,
    /// HTTP requests sent by successful operations.
    pub http_requests: u64,
    /// Payload bytes moved by successful operations.
    pub bytes: u64,
    pub elapsed_s: f64,
    pub ops_per_s: f64,
    /// HTTP requests per second.
    pub requests_per_s: f64,
    /// Payload MB/s (10^6 bytes).
    pub mb_per_s: f64,
    pub latency_ms: Latency,
    /// What the server process spent, with `--server-pid`.
    pub server: Option<Usage>,
    /// What this client spent (it shares the machine with a local server).
    pub client: Option<Usage>,
}

/// Per-operation latency in milliseconds.
#[derive(Serialize, Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Nearest-rank percentile (`p` in 0..=100) of sorted samples; 0 if none.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Summarise latencies given in microseconds (sorts them).
pub fn latency(samples_us: &mut [u64]) -> Latency {
    if samples_us.is_empty() {
        return Latency::default();
    }
    samples_us.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    let sum: u128 = samples_us.iter().map(|&v| v as u128).sum();
    Latency {
        mean: sum as f64 / samples_us.len() as f64 / 1000.0,
        p50: ms(percentile(samples_us, 50.0)),
        p90: ms(percentile(samples_us, 90.0)),
        p99: ms(percentile(samples_us, 99.0)),
        max: ms(*samples_us.last().unwrap()),
    }
}

/// `1MiB`, `100MiB`, `1GiB`, `1536KiB`, `1000B`: exact binary units.
pub fn fmt_size(bytes: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

fn fmt_ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn fmt_rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The human-readable report.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    let bound = match (r.duration_s, r.requests) {
        (Some(d), _) => format!("{d}s per workload"),
        (None, Some(n)) => format!("{n} ops per workload"),
        _ => String::new(),
    };
    out.push_str(&format!(
        "berth bench {}  run {}  {}  concurrency {}  {}  chunk {}\n",
        r.target,
        r.run_id,
        r.http,
        r.concurrency,
        bound,
        fmt_size(r.chunk_size)
    ));
    if let Some(l) = r.limits {
        out.push_str(&format!(
            "machine limits (one core): sha256 {} MB/s, memcpy {} MB/s\n",
            fmt_rate(l.sha256_mb_s),
            fmt_rate(l.memcpy_mb_s)
        ));
    }
    out.push('\n');
    let with_server = r.workloads.iter().any(|w| w.server.is_some());
    let mut header = vec![
        "workload", "ops", "errors", "ops/s", "req/s", "MB/s", "p50 ms", "p90 ms", "p99 ms",
        "max ms",
    ];
    if with_server {
        header.push("srv us/op");
    }
    let rows: Vec<Vec<String>> = r
        .workloads
        .iter()
        .map(|w| {
            let mut cells = vec![
                w.label.clone(),
                w.ops.to_string(),
                w.errors.to_string(),
                fmt_rate(w.ops_per_s),
                fmt_rate(w.requests_per_s),
                if w.bytes == 0 {
                    "-".to_string()
                } else {
                    fmt_rate(w.mb_per_s)
                },
                fmt_ms(w.latency_ms.p50),
                fmt_ms(w.latency_ms.p90),
                fmt_ms(w.latency_ms.p99),
                fmt_ms(w.latency_ms.max),
            ];
            if with_server {
                cells.push(match w.server {
                    Some(u) => fmt_rate(u.cpu_us_per_op),
                    None => "-".to_string(),
                });
            }
            cells
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, (cell, &w)) in cells.iter().zip(&widths).enumerate() {
            if i == 0 {
                s.push_str(&format!("{cell:<w$}"));
            } else {
                s.push_str(&format!("  {cell:>w$}"));
            }
        }
        s.push('\n');
        s
    };
    out.push_str(&line(&header));
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        out.push_str(&line(&cells));
    }
    let last = r.workloads.iter().rev().find_map(|w| w.server);
    if let (Some(pid), Some(u)) = (r.server_pid, last) {
        out.push_str(&format!(
            "\nserver pid {pid}: peak RSS {:.1} MiB, RSS now {:.1} MiB\n",
            u.peak_rss_kib as f64 / 1024.0,
            u.rss_kib as f64 / 1024.0
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 90.0), 90);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
        let v = [10, 20, 30, 40];
        assert_eq!(percentile(&v, 50.0), 20);
        assert_eq!(percentile(&v, 51.0), 30);
    }

    #[test]
    fn latency_sorts_and_converts() {
        let mut v = vec![3000, 1000, 2000];
        let l = latency(&mut v);
        assert_eq!(l.p50, 2.0);
        assert_eq!(l.max, 3.0);
        assert_eq!(l.mean, 2.0);
        assert_eq!(latency(&mut []), Latency::default());
    }

    #[test]
    fn sizes() {
        assert_eq!(fmt_size(1 << 20), "1MiB");
        assert_eq!(fmt_size(100 << 20), "100MiB");
        assert_eq!(fmt_size(1 << 30), "1GiB");
        assert_eq!(fmt_size(1536 << 10), "1536KiB");
        assert_eq!(fmt_size(1000), "1000B");
        assert_eq!(fmt_size(0), "0B");
    }

    fn row(label: &str, bytes: u64) -> Row {
        Row {
            workload: label.split(' ').next().unwrap().to_string(),
            blob_size: None,
            label: label.to_string(),
            ops: 1234,
            errors: 0,
            http_requests: 1234,
            bytes,
            elapsed_s: 2.0,
            ops_per_s: 617.0,
            requests_per_s: 617.0,
            mb_per_s: 12.345,
            latency_ms: Latency {
                mean: 1.0,
                p50: 0.5,
                p90: 12.34,
                p99: 456.7,
                max: 1000.0,
            },
            server: None,
            client: None,
        }
    }

    #[test]
    fn table_aligns_columns() {
        let r = Report {
            target: "http://x".into(),
            run_id: "run-1".into(),
            http: "HTTP/1.1",
            concurrency: 4,
            requests: Some(1234),
            duration_s: None,
            chunk_size: 5 << 20,
            limits: Some(Limits {
                sha256_mb_s: 1500.0,
                memcpy_mb_s: 9000.4,
            }),
            server_pid: None,
            workloads: vec![row("push-monolithic 1MiB", 5), row("catalog", 0)],
        };
        let t = table(&r);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains("concurrency 4") && lines[0].contains("chunk 5MiB"));
        assert_eq!(
            lines[1],
            "machine limits (one core): sha256 1500 MB/s, memcpy 9000 MB/s"
        );
        let head = lines[3];
        assert!(head.starts_with("workload "));
        assert_eq!(
            lines[4],
            "push-monolithic 1MiB  1234       0    617    617  12.3    0.50    12.3     457    1000"
        );
        // MB/s is a dash when nothing moved; every row as wide as the header.
        assert!(lines[5].starts_with("catalog "));
        assert!(lines[5].contains("    617    617     -  "));
        assert_eq!(lines[4].len(), head.len());
        assert_eq!(lines[5].len(), head.len());
    }

    #[test]
    fn server_usage_adds_a_column_and_a_footer() {
        let mut w = row("blob-head", 0);
        w.server = Some(Usage {
            cpu_ms: 1000.0,
            cpu_us_per_op: 12.5,
            rss_kib: 10 << 10,
            peak_rss_kib: 30 << 10,
        });
        let r = Report {
            target: "http://x".into(),
            run_id: "run-1".into(),
            http: "HTTP/2",
            concurrency: 32,
            requests: None,
            duration_s: Some(3.0),
            chunk_size: 5 << 20,
            limits: None,
            server_pid: Some(42),
            workloads: vec![w],
        };
        let t = table(&r);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[2].ends_with("srv us/op"), "{t}");
        assert!(lines[3].ends_with("12.5"), "{t}");
        assert_eq!(
            lines.last().copied(),
            Some("server pid 42: peak RSS 30.0 MiB, RSS now 10.0 MiB")
        );
    }
}
