//! `berth bench`: a load generator for any OCI Distribution registry, in the
//! spirit of zot's `zb`. Each workload pushes the data it needs into a
//! repository unique to the run, then runs timed operations at a fixed
//! concurrency for a number of operations or a duration, and the run ends
//! with a table (or `--json`) of operations/s, MB/s and latency percentiles.

mod client;
mod data;
mod limits;
mod procstat;
mod report;
mod workloads;

use clap::Args;
use client::{Done, Registry};
use report::{Report, Row};
use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use workloads::{Ctx, Kind, Plan};

const AFTER_HELP: &str = "\
Workloads (all by default; blob ones run once per --blob-size):
  push-monolithic       POST, then PUT ?digest= with the whole blob
  push-chunked          POST, PATCH per --chunk-size (Content-Range), PUT ?digest=
  pull                  GET a blob, reading every byte
  blob-head             HEAD a blob
  manifest-get-tag      GET a manifest by tag       (OCI and Docker types in Accept)
  manifest-get-digest   GET a manifest by digest
  manifest-head-tag     HEAD a manifest by tag
  manifest-head-digest  HEAD a manifest by digest
  tags-list             GET the tags list of a repository with --tags tags
  catalog               GET one page (n=100) of the catalog
  mixed                 image pulls (manifest + layer) and pushes (layer + manifest)

An operation is what a client does for one result (a monolithic push is two
requests); ops/s counts operations, MB/s counts blob payload (10^6 bytes).
Blob contents are pseudo-random and unique per run but cheap to make: the
client streams them without copying and hashes only a short tail per blob.
Runs against any registry speaking plain HTTP, e.g. CNCF distribution or
zot. With --server-pid (a registry on this machine) each workload also
reports the server's CPU time per operation and its resident memory: on a
busy machine the work per request moves much less than the throughput.

Examples:
  berth bench http://127.0.0.1:5000
  berth bench http://127.0.0.1:5000 -w pull,push-chunked -s 1MiB,100MiB -c 8 -d 10s
  berth bench http://127.0.0.1:5000 -w push-monolithic -s 1GiB -n 3 -c 1 --json
  berth bench http://127.0.0.1:5000 -w manifest-get-tag,blob-head -c 32 -d 10s \\
      --server-pid \"$(pidof berth)\"
  berth bench http://127.0.0.1:5000 --http2 -w pull -s 100MiB -c 32 -n 64";

/// Load-test an OCI registry (berth or any other) and report operations/s,
/// MB/s and latency percentiles per workload.
#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct BenchArgs {
    /// Registry base URL, e.g. http://127.0.0.1:5000 (plain HTTP only).
    #[arg(value_name = "URL")]
    pub url: String,

    /// Workloads to run, comma-separated [default: all].
    #[arg(
        long,
        short = 'w',
        value_enum,
        value_delimiter = ',',
        value_name = "LIST"
    )]
    pub workloads: Vec<Kind>,

    /// Blob sizes for the blob workloads, comma-separated (B, KiB, MiB,
    /// GiB; KB, MB, GB are powers of ten).
    #[arg(long, short = 's', value_delimiter = ',', value_parser = parse_size,
          default_value = "1MiB", value_name = "SIZES")]
    pub blob_size: Vec<u64>,

    /// Bytes per PATCH in push-chunked.
    #[arg(long, value_parser = parse_size, default_value = "5MiB", value_name = "SIZE")]
    pub chunk_size: u64,

    /// Operations in flight at once (one connection each over HTTP/1.1).
    #[arg(long, short = 'c', default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,

    /// Operations per workload.
    #[arg(long, short = 'n', default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: u64,

    /// Run each workload for this long instead of --requests operations
    /// (e.g. 10s, 1m).
    #[arg(long, short = 'd', value_parser = humantime::parse_duration,
          conflicts_with = "requests", value_name = "DURATION")]
    pub duration: Option<Duration>,

    /// Tags the tags-list setup creates.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub tags: u32,

    /// Repositories the catalog setup creates.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub catalog_repos: u32,

    /// Share of mixed operations that push (the rest pull).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub mixed_push_percent: u8,

    /// First component(s) of every repository the run creates; each run
    /// adds a unique `run-XXXXXXXX` below it.
    #[arg(long, default_value = "berth-bench", value_name = "NAME")]
    pub repo_prefix: String,

    /// Speak HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1: one
    /// connection carries all --concurrency streams.
    #[arg(long)]
    pub http2: bool,

    /// Print the results as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,

    /// No progress line on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Do not measure this machine's sha256 and memcpy speed first.
    #[arg(long)]
    pub skip_limits: bool,

    /// Process id of the registry when it runs on this machine: each
    /// workload then also reports the server's CPU time per operation and
    /// its resident memory (from /proc; Linux only).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,

    /// HTTP basic authentication.
    #[arg(
        long,
        env = "BERTH_BENCH_BASIC_AUTH",
        value_name = "USER:PASSWORD",
        hide_env_values = true
    )]
    pub basic_auth: Option<String>,

    /// Give up on one operation after this long.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration,
          value_name = "DURATION")]
    pub timeout: Duration,
}

/// Parse `1MiB`, `100MiB`, `1GiB`, `512k`, `1000`, `5MB`...
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number with an optional unit, e.g. 1MiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        u => return Err(format!("{s:?}: unknown unit {u:?} (use B, KiB, MiB, GiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?}: too large"))
}

/// How long each workload runs.
#[derive(Clone, Copy, Debug)]
enum Bound {
    Ops(u64),
    Time(Duration),
}

/// Counters the progress line reads while workers run.
#[derive(Default)]
struct Live {
    ops: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
}

pub fn run(args: BenchArgs) -> Result<(), String> {
    if args.chunk_size == 0 {
        return Err("--chunk-size must be at least 1 byte".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting runtime: {e}"))?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: BenchArgs) -> Result<(), String> {
    let reg = Registry::new(
        &args.url,
        args.basic_auth.as_deref(),
        args.concurrency as usize,
        args.http2,
    )?;
    reg.ping().await?;
    if let Some(pid) = args.server_pid {
        procstat::sample(pid).map_err(|e| format!("--server-pid {pid}: {e}"))?;
    }
    let progress = Progress::new(args.quiet);

    let limits = if args.skip_limits {
        None
    } else {
        progress.note("measuring this machine's sha256 and memcpy speed");
        let l = tokio::task::spawn_blocking(|| limits::measure(Duration::from_millis(500)))
            .await
            .map_err(|e| format!("measuring limits: {e}"))?;
        Some(l)
    };

    let seed = run_seed();
    let run_id = format!("run-{:08x}", seed as u32);
    let ctx = Arc::new(Ctx::new(
        reg,
        seed,
        run_id.clone(),
        args.repo_prefix.trim_matches('/').to_string(),
        args.chunk_size,
        args.concurrency,
        args.tags,
        args.catalog_repos,
        args.mixed_push_percent,
    ));
    let bound = match args.duration {
        Some(d) => Bound::Time(d),
        None => Bound::Ops(args.requests),
    };

    let mut rows = Vec::new();
    let run = Run {
        bound,
        timeout: args.timeout,
        server_pid: args.server_pid,
    };
    for plan in workloads::plans(&args.workloads, &args.blob_size) {
        rows.push(run_one(&ctx, &plan, &run, &progress).await);
    }
    progress.clear();

    let report = Report {
        target: args.url.clone(),
        run_id,
        concurrency: args.concurrency,
        http: if args.http2 { "HTTP/2" } else { "HTTP/1.1" },
        requests: args.duration.is_none().then_some(args.requests),
        duration_s: args.duration.map(|d| d.as_secs_f64()),
        chunk_size: args.chunk_size,
        limits,
        server_pid: args.server_pid,
        workloads: rows,
    };
    if args.json {
        let json = serde_json::to_string_pretty(&report).expect("report JSON");
        println!("{json}");
    } else {
        print!("{}", report::table(&report));
    }
    let _ = std::io::stdout().flush();
    let failed: Vec<&str> = report
        .workloads
        .iter()
        .filter(|w| w.errors > 0 || w.ops == 0)
        .map(|w| w.label.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("operations failed in: {}", failed.join(", ")))
    }
}

/// A seed (and run id) unlikely to repeat: time and process id.
fn run_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    data::SplitMix(nanos ^ (u64::from(std::process::id()) << 32)).next_u64()
}

/// How every workload of a run is bounded and observed.
struct Run {
    bound: Bound,
    timeout: Duration,
    server_pid: Option<u32>,
}

/// Set up and run one workload.
async fn run_one(ctx: &Arc<Ctx>, plan: &Plan, run: &Run, progress: &Progress) -> Row {
    let (bound, timeout) = (run.bound, run.timeout);
    let label = plan.label();
    progress.note(&format!("{label}: setting up"));
    let prepared = match workloads::setup(ctx, plan).await {
        Ok(p) => Arc::new(p),
        Err(e) => {
            progress.clear();
            eprintln!("berth bench: {label}: setup failed: {e}");
            return summarize(plan, Vec::new(), Done::default(), 1, Duration::ZERO);
        }
    };

    let before = run.server_pid.and_then(|pid| procstat::sample(pid).ok());
    let me = procstat::sample(std::process::id()).ok();
    let live = Arc::new(Live::default());
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let ticker = progress.spawn_ticker(label.clone(), bound, live.clone(), start);
    let mut workers = Vec::new();
    for _ in 0..ctx.concurrency {
        let (ctx, prepared, live, next) =
            (ctx.clone(), prepared.clone(), live.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut done = Done::default();
            let mut errors = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                match bound {
                    Bound::Ops(n) if i >= n => break,
                    Bound::Time(d) if start.elapsed() >= d => break,
                    _ => {}
                }
                let t = Instant::now();
                let r = tokio::time::timeout(timeout, workloads::op(&ctx, &prepared, i)).await;
                let us = t.elapsed().as_micros() as u64;
                match r {
                    Ok(Ok(d)) => {
                        lat.push(us);
                        done += d;
                        live.ops.fetch_add(1, Ordering::Relaxed);
                        live.bytes.fetch_add(d.bytes, Ordering::Relaxed);
                    }
                    Ok(Err(e)) => {
                        errors.push(e);
                        live.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        errors.push(format!("operation {i} timed out after {timeout:?}"));
                        live.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            (lat, done, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut done = Done::default();
    let mut errors = Vec::new();
    for w in workers {
        match w.await {
            Ok((l, d, e)) => {
                lat.extend(l);
                done += d;
                errors.extend(e);
            }
            Err(e) => errors.push(format!("worker panicked: {e}")),
        }
    }
    let elapsed = start.elapsed();
    let after = run.server_pid.and_then(|pid| procstat::sample(pid).ok());
    let me_after = procstat::sample(std::process::id()).ok();
    if let Some(t) = ticker {
        t.abort();
    }
    if !errors.is_empty() {
        progress.clear();
        for e in errors.iter().take(3) {
            eprintln!("berth bench: {label}: {e}");
        }
        if errors.len() > 3 {
            eprintln!("berth bench: {label}: ... {} errors in all", errors.len());
        }
    }
    let mut row = summarize(plan, lat, done, errors.len() as u64, elapsed);
    if let (Some(b), Some(a)) = (before, after) {
        row.server = Some(procstat::Usage::between(b, a, row.ops));
    }
    if let (Some(b), Some(a)) = (me, me_after) {
        row.client = Some(procstat::Usage::between(b, a, row.ops));
    }
    row
}

fn summarize(plan: &Plan, mut lat: Vec<u64>, done: Done, errors: u64, elapsed: Duration) -> Row {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let ops = lat.len() as u64;
    Row {
        workload: plan.kind.name(),
        blob_size: plan.size,
        label: plan.label(),
        ops,
        errors,
        http_requests: done.requests,
        bytes: done.bytes,
        elapsed_s: elapsed.as_secs_f64(),
        ops_per_s: ops as f64 / secs,
        requests_per_s: done.requests as f64 / secs,
        mb_per_s: done.bytes as f64 / secs / 1e6,
        latency_ms: report::latency(&mut lat),
        server: None,
        client: None,
    }
}

/// The progress line on stderr: rewritten in place on a terminal, a line
/// every few seconds otherwise, nothing with --quiet.
struct Progress {
    quiet: bool,
    tty: bool,
    dirty: Arc<AtomicBool>,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        Progress {
            quiet,
            tty: std::io::stderr().is_terminal(),
            dirty: Arc::new(AtomicBool::new(false)),
        }
    }

    fn show(tty: bool, dirty: &AtomicBool, line: &str) {
        let mut err = std::io::stderr().lock();
        if tty {
            let _ = write!(err, "\r\x1b[K{line}");
            dirty.store(true, Ordering::Relaxed);
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    fn note(&self, line: &str) {
        if !self.quiet {
            Progress::show(self.tty, &self.dirty, line);
        }
    }

    /// Erase the progress line so other output starts on a clean line.
    fn clear(&self) {
        if self.tty && self.dirty.swap(false, Ordering::Relaxed) {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }

    fn spawn_ticker(
        &self,
        label: String,
        bound: Bound,
        live: Arc<Live>,
        start: Instant,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if self.quiet {
            return None;
        }
        let (tty, dirty) = (self.tty, self.dirty.clone());
        let every = if tty {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(5)
        };
        Some(tokio::spawn(async move {
            loop {
                let secs = start.elapsed().as_secs_f64().max(1e-9);
                let ops = live.ops.load(Ordering::Relaxed);
                let bytes = live.bytes.load(Ordering::Relaxed);
                let errors = live.errors.load(Ordering::Relaxed);
                let of = match bound {
                    Bound::Ops(n) => format!("{ops}/{n} ops"),
                    Bound::Time(d) => format!("{ops} ops, {secs:.0}/{}s", d.as_secs_f64()),
                };
                let line = format!(
                    "{label}: {of}, {:.1} ops/s, {:.1} MB/s, {errors} errors",
                    ops as f64 / secs,
                    bytes as f64 / secs / 1e6
                );
                Progress::show(tty, &dirty, &line);
                tokio::time::sleep(every).await;
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(argv: &[&str]) -> Result<BenchArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("100MiB"), Ok(100 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("5MB"), Ok(5_000_000));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("1TiB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
    }

    #[test]
    fn defaults() {
        let a = parse(&["http://h:5000"]).unwrap();
        assert_eq!(a.url, "http://h:5000");
        assert!(a.workloads.is_empty());
        assert_eq!(a.blob_size, vec![1 << 20]);
        assert_eq!(a.chunk_size, 5 << 20);
        assert_eq!(a.concurrency, 4);
        assert_eq!(a.requests, 100);
        assert_eq!(a.duration, None);
        assert_eq!(a.tags, 1000);
        assert!(!a.json);
        assert_eq!(a.timeout, Duration::from_secs(600));
    }

    #[test]
    fn lists_and_durations() {
        let a = parse(&[
            "http://h",
            "-w",
            "pull,push-chunked,tags-list",
            "-s",
            "1MiB,100MiB,1GiB",
            "--chunk-size",
            "1MiB",
            "-c",
            "8",
            "-d",
            "10s",
            "--json",
        ])
        .unwrap();
        assert_eq!(
            a.workloads,
            vec![Kind::Pull, Kind::PushChunked, Kind::TagsList]
        );
        assert_eq!(a.blob_size, vec![1 << 20, 100 << 20, 1 << 30]);
        assert_eq!(a.chunk_size, 1 << 20);
        assert_eq!(a.concurrency, 8);
        assert_eq!(a.duration, Some(Duration::from_secs(10)));
        assert!(a.json);
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["http://h", "-w", "nope"]).is_err());
        assert!(parse(&["http://h", "-c", "0"]).is_err());
        assert!(parse(&["http://h", "-n", "0"]).is_err());
        assert!(parse(&["http://h", "-n", "5", "-d", "1s"]).is_err());
        assert!(parse(&["http://h", "-s", "1XB"]).is_err());
        assert!(parse(&["http://h", "--mixed-push-percent", "101"]).is_err());
    }
}
