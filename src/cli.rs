//! The maintenance commands (`berth gc`, `berth scrub`, `berth du`): they
//! open the same data directory as a running server (SQLite's WAL lets both
//! work at once) and print a table, or JSON with `--json`.

use crate::config::Config;
use crate::core::gc::{now_ms, PassReport};
use crate::core::metrics::GcMetrics;
use crate::core::scrub::{self, ScrubReport};
use crate::metadata::Usage;
use crate::server::Stores;
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Instant;

/// Progress on stderr: a rewritten line on a terminal, a line every few
/// seconds otherwise.
struct Progress {
    tty: bool,
    last: std::sync::Mutex<Instant>,
    start: Instant,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            last: std::sync::Mutex::new(Instant::now()),
            start: Instant::now(),
        }
    }

    fn update(&self, message: impl FnOnce() -> String) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let every = if self.tty { 100 } else { 5000 };
        if last.elapsed().as_millis() < every {
            return;
        }
        *last = Instant::now();
        let line = format!(
            "[{:>5.1}s] {}",
            self.start.elapsed().as_secs_f64(),
            message()
        );
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
    }

    fn done(&self) {
        if self.tty {
            eprint!("\r\x1b[2K");
        }
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A plain text table with aligned columns; numbers right-aligned.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

fn print_json(v: &impl Serialize) -> Result<(), String> {
    let s = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    println!("{s}");
    Ok(())
}

/// Open the stores of an existing data directory. The maintenance
/// commands work on a registry's data; a mistyped path must be an error,
/// not a fresh, empty store that then reports all is well.
fn open_existing(config: &Config) -> Result<Stores, String> {
    if !config.data_dir.is_dir() {
        return Err(format!(
            "data directory {} does not exist",
            config.data_dir.display()
        ));
    }
    crate::server::open_stores(config)
}

#[derive(Serialize)]
struct DryRun {
    queue_depth: u64,
    queue_due: u64,
    reclaimable_blobs: u64,
    reclaimable_bytes: u64,
    blobs: Vec<(String, u64)>,
}

pub async fn gc(config: &Config, dry_run: bool, json: bool) -> Result<(), String> {
    let stores = open_existing(config)?;
    if dry_run {
        let (queue_depth, queue_due) = stores
            .meta
            .gc_queue_depth(now_ms())
            .await
            .map_err(|e| e.to_string())?;
        let blobs = stores
            .meta
            .reclaimable(now_ms())
            .await
            .map_err(|e| e.to_string())?;
        let report = DryRun {
            queue_depth,
            queue_due,
            reclaimable_blobs: blobs.len() as u64,
            reclaimable_bytes: blobs.iter().map(|b| b.1).sum(),
            blobs,
        };
        if json {
            return print_json(&report);
        }
        let rows: Vec<Vec<String>> = report
            .blobs
            .iter()
            .map(|(d, s)| vec![d.clone(), human_bytes(*s)])
            .collect();
        print!("{}", table(&["would reclaim", "size"], &rows));
        println!(
            "\n{} blobs, {} reclaimable now; {} review items queued ({} due)",
            report.reclaimable_blobs,
            human_bytes(report.reclaimable_bytes),
            queue_depth,
            queue_due
        );
        return Ok(());
    }
    let collector = stores.collector(config, Arc::new(GcMetrics::default()));
    let progress = Progress::new();
    let started = Instant::now();
    let report: PassReport = collector
        .pass(&|done, total| progress.update(|| format!("sweeping files {done}/{total}")))
        .await
        .map_err(|e| e.to_string())?;
    progress.done();
    if json {
        return print_json(&report);
    }
    let rows = vec![
        vec!["queue items reviewed".into(), report.reviewed.to_string()],
        vec![
            "repository links removed".into(),
            report.links_removed.to_string(),
        ],
        vec![
            "manifests removed".into(),
            report.manifests_removed.to_string(),
        ],
        vec![
            "repositories removed".into(),
            report.repositories_removed.to_string(),
        ],
        vec![
            "upload sessions expired".into(),
            report.uploads_expired.to_string(),
        ],
        vec!["blobs reclaimed".into(), report.blobs_removed.to_string()],
        vec!["bytes reclaimed".into(), human_bytes(report.bytes_removed)],
        vec![
            "orphan files removed".into(),
            report.orphan_files_removed.to_string(),
        ],
        vec![
            "orphan bytes removed".into(),
            human_bytes(report.orphan_bytes_removed),
        ],
    ];
    print!("{}", table(&["garbage collection", ""], &rows));
    println!("done in {:.2}s", started.elapsed().as_secs_f64());
    Ok(())
}

pub async fn scrub(config: &Config, repair: bool, json: bool) -> Result<bool, String> {
    let stores = open_existing(config)?;
    let progress = Progress::new();
    let report: ScrubReport = scrub::scrub(
        &*stores.blobs,
        &*stores.meta,
        repair,
        config.gc.grace,
        &|n, what| progress.update(|| format!("checked {n} {what}")),
    )
    .await
    .map_err(|e| e.to_string())?;
    progress.done();
    let clean = report.clean();
    if json {
        print_json(&report)?;
        return Ok(clean);
    }
    let mut rows = vec![
        vec!["blobs checked".into(), report.blobs_checked.to_string()],
        vec!["bytes hashed".into(), human_bytes(report.bytes_checked)],
        vec![
            "manifests checked".into(),
            report.manifests_checked.to_string(),
        ],
        vec![
            "corrupt blobs".into(),
            report.corrupt_blobs.len().to_string(),
        ],
        vec![
            "missing blobs".into(),
            report.missing_blobs.len().to_string(),
        ],
        vec![
            "corrupt manifests".into(),
            report.corrupt_manifests.len().to_string(),
        ],
        vec!["orphan files".into(), report.orphans.len().to_string()],
    ];
    if repair {
        rows.push(vec![
            "marked corrupt".into(),
            report.marked_corrupt.to_string(),
        ]);
        rows.push(vec![
            "orphans removed".into(),
            report.orphans_removed.to_string(),
        ]);
    }
    print!("{}", table(&["scrub", ""], &rows));
    for d in &report.corrupt_blobs {
        println!("corrupt blob: {d}");
    }
    for d in &report.missing_blobs {
        println!("missing blob: {d}");
    }
    for d in &report.corrupt_manifests {
        println!("corrupt manifest: {d}");
    }
    for (k, s) in &report.orphans {
        println!("orphan file: {k} ({})", human_bytes(*s));
    }
    println!(
        "{}",
        if clean {
            "store is clean"
        } else {
            "problems found"
        }
    );
    Ok(clean)
}

#[derive(Serialize)]
struct DuReport {
    #[serde(flatten)]
    usage: Usage,
    reclaimable_bytes: u64,
}

pub async fn du(config: &Config, json: bool) -> Result<(), String> {
    let stores = open_existing(config)?;
    let usage = stores.meta.usage().await.map_err(|e| e.to_string())?;
    let reclaimable_bytes = stores
        .meta
        .reclaimable(now_ms())
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|b| b.1)
        .sum();
    let report = DuReport {
        usage,
        reclaimable_bytes,
    };
    if json {
        return print_json(&report);
    }
    let u = &report.usage;
    let rows: Vec<Vec<String>> = u
        .repositories
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.tags.to_string(),
                r.manifests.to_string(),
                r.blobs.to_string(),
                human_bytes(r.bytes),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["repository", "tags", "manifests", "blobs", "size"], &rows)
    );
    println!();
    let saved = u.undeduplicated_bytes.saturating_sub(u.stored_bytes);
    print!(
        "{}",
        table(
            &["total", ""],
            &[
                vec![
                    "stored blobs".into(),
                    format!("{} ({})", u.stored_blobs, human_bytes(u.stored_bytes))
                ],
                vec!["stored manifests".into(), human_bytes(u.manifest_bytes)],
                vec!["without dedupe".into(), human_bytes(u.undeduplicated_bytes)],
                vec!["saved by dedupe".into(), human_bytes(saved)],
                vec![
                    "reclaimable now".into(),
                    human_bytes(report.reclaimable_bytes)
                ],
            ]
        )
    );
    Ok(())
}

/// `berth htpasswd FILE USER`: add or replace a user's bcrypt entry, with
/// the password read from the first line of `password_input` (stdin).
pub fn htpasswd(
    file: &std::path::Path,
    user: &str,
    mut password_input: impl std::io::BufRead,
) -> Result<String, String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut password = String::new();
    password_input
        .read_line(&mut password)
        .map_err(|e| format!("reading the password: {e}"))?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err("the password is empty (give it on standard input)".into());
    }
    let entry = crate::auth::htpasswd::Htpasswd::entry(user, password)?;
    let old = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("reading {}: {e}", file.display())),
    };
    let mut replaced = false;
    let mut lines: Vec<String> = old
        .lines()
        .map(|l| {
            if l.split_once(':').is_some_and(|(u, _)| u == user) {
                replaced = true;
                entry.clone()
            } else {
                l.to_owned()
            }
        })
        .collect();
    if !replaced {
        lines.push(entry);
    }
    let tmp = file.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all((lines.join("\n") + "\n").as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    };
    write().map_err(|e| format!("writing {}: {e}", file.display()))?;
    Ok(format!(
        "{} {user} in {}",
        if replaced { "updated" } else { "added" },
        file.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_tables() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        let t = table(
            &["a", "n"],
            &[
                vec!["x".into(), "10".into()],
                vec!["long".into(), "2".into()],
            ],
        );
        assert_eq!(t, "a      n\nx     10\nlong   2\n");
    }
}
