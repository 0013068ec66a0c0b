//! `berth bench` against a running berth, on small sizes: it runs every
//! workload, and both its table and its `--json` report every one of them.
//! The numbers are not asserted (this machine's speed is not the test's
//! business); that they are there and well-formed is.

use crate::common::{berth_cli, Berth};
use serde_json::Value;

/// Every workload label a run with sizes 1KiB and 64KiB reports.
fn labels() -> Vec<String> {
    let sized = ["push-monolithic", "push-chunked", "pull", "mixed"];
    let single = [
        "blob-head",
        "manifest-get-tag",
        "manifest-get-digest",
        "manifest-head-tag",
        "manifest-head-digest",
        "tags-list",
        "catalog",
    ];
    let mut out: Vec<String> = single.iter().map(|s| s.to_string()).collect();
    for s in sized {
        for size in ["1KiB", "64KiB"] {
            out.push(format!("{s} {size}"));
        }
    }
    out
}

fn bench(b: &Berth, extra: &[&str]) -> std::process::Output {
    let pid = b.pid().unwrap().to_string();
    let mut args = vec![
        "bench",
        &b.url,
        "-s",
        "1KiB,64KiB",
        "--chunk-size",
        "16KiB",
        "-c",
        "2",
        "--tags",
        "25",
        "--catalog-repos",
        "3",
        "--server-pid",
        &pid,
        "-q",
    ];
    args.extend_from_slice(extra);
    berth_cli(&args)
}

#[test]
fn json_report_covers_every_workload() {
    let b = Berth::start();
    let out = bench(&b, &["-n", "6", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "berth bench failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "--json output is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });

    assert_eq!(report["target"], b.url.as_str());
    assert_eq!(report["concurrency"], 2);
    assert_eq!(report["requests"], 6);
    let limits = &report["limits"];
    assert!(limits["sha256_mb_s"].as_f64().unwrap() > 0.0, "{limits}");
    assert!(limits["memcpy_mb_s"].as_f64().unwrap() > 0.0, "{limits}");

    let rows = report["workloads"].as_array().expect("workloads array");
    let got: Vec<&str> = rows.iter().map(|w| w["label"].as_str().unwrap()).collect();
    let mut want = labels();
    want.sort();
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, want);
    for w in rows {
        let label = w["label"].as_str().unwrap();
        assert_eq!(w["ops"], 6, "{label}: {w}");
        assert_eq!(w["errors"], 0, "{label}: {w}");
        assert!(w["http_requests"].as_u64().unwrap() >= 6, "{label}: {w}");
        for key in ["ops_per_s", "requests_per_s", "elapsed_s"] {
            assert!(w[key].as_f64().unwrap() > 0.0, "{label}: {key}: {w}");
        }
        let lat = &w["latency_ms"];
        let (p50, p90, p99, max) = (
            lat["p50"].as_f64().unwrap(),
            lat["p90"].as_f64().unwrap(),
            lat["p99"].as_f64().unwrap(),
            lat["max"].as_f64().unwrap(),
        );
        assert!(
            0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max,
            "{label}: {lat}"
        );
        let moves_blobs = label.starts_with("push") || label.starts_with("pull");
        if moves_blobs {
            let size: u64 = if label.ends_with("64KiB") {
                65536
            } else {
                1024
            };
            assert_eq!(w["blob_size"], size, "{label}");
            assert_eq!(w["bytes"], 6 * size, "{label}: {w}");
            assert!(w["mb_per_s"].as_f64().unwrap() > 0.0, "{label}");
        }
        if label.starts_with("push-chunked 64KiB") {
            // POST, four 16 KiB PATCHes and a PUT per push.
            assert_eq!(w["http_requests"], 6 * 6, "{label}: {w}");
        }
        let server = &w["server"];
        assert!(server["cpu_ms"].as_f64().unwrap() >= 0.0, "{label}: {w}");
        assert!(server["peak_rss_kib"].as_u64().unwrap() > 0, "{label}: {w}");
    }
    // It really talked to this server: its repositories are in the catalog.
    let catalog: Value = crate::common::client()
        .get(b.v2("_catalog?n=1000"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let run = report["run_id"].as_str().unwrap();
    assert!(
        catalog["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains(run)),
        "{catalog}"
    );
}

#[test]
fn table_lists_every_workload_and_the_progress_goes_to_stderr() {
    let b = Berth::start();
    let out = berth_cli(&[
        "bench",
        &b.url,
        "-w",
        "blob-head,tags-list",
        "-d",
        "300ms",
        "-c",
        "3",
        "--tags",
        "5",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("machine limits (one core): sha256 "),
        "{stdout}"
    );
    assert!(
        stdout.contains("300ms") || stdout.contains("0.3s"),
        "{stdout}"
    );
    // Not a terminal: progress comes as plain lines on stderr.
    assert!(stderr.contains("blob-head: setting up"), "{stderr}");
    let header = stdout
        .lines()
        .find(|l| l.starts_with("workload"))
        .expect("table header");
    for col in ["ops/s", "req/s", "MB/s", "p50 ms", "p90 ms", "p99 ms"] {
        assert!(header.contains(col), "{header}");
    }
    for label in ["blob-head", "tags-list"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label} row:\n{stdout}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        let ops: u64 = cells[1].parse().unwrap();
        assert!(ops > 0, "{row}");
        assert_eq!(cells[2], "0", "errors: {row}");
    }

    // Full table for the whole suite on the smallest size, quietly.
    let out = bench(&b, &["-n", "2", "-s", "1KiB", "--skip-limits"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("machine limits"), "{stdout}");
    assert!(
        stdout.contains("srv us/op") && stdout.contains("peak RSS"),
        "{stdout}"
    );
    for label in labels().iter().filter(|l| !l.ends_with("64KiB")) {
        assert!(
            stdout.lines().any(|l| l.starts_with(label.as_str())),
            "no {label} row:\n{stdout}"
        );
    }
}

#[test]
fn fails_clearly_without_a_registry() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = berth_cli(&["bench", &format!("http://127.0.0.1:{port}"), "-q"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("berth: GET http://127.0.0.1:"), "{stderr}");
    let out = berth_cli(&["bench", "https://example.invalid"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("plain http://"));
}

/// berth answers HTTP/2 with prior knowledge (h2c) on the same port as
/// HTTP/1.1; the bench drives it over one multiplexed connection.
#[test]
fn http2_cleartext_serves_pushes_and_pulls() {
    let b = Berth::start();
    let out = bench(
        &b,
        &[
            "--http2",
            "-w",
            "push-chunked,pull,manifest-get-tag,blob-head,tags-list",
            "-n",
            "4",
            "--skip-limits",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["http"], "HTTP/2");
    let rows = report["workloads"].as_array().unwrap();
    assert_eq!(rows.len(), 3 + 2 * 2, "{report}");
    for w in rows {
        assert_eq!(w["ops"], 4, "{w}");
        assert_eq!(w["errors"], 0, "{w}");
    }
}
