//! The `berth` command.

mod bench;

use berth::config::{Config, LogFormat};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// berth: an OCI Distribution registry that stores each blob once, frees
/// space when images are deleted, and never writes on a read.
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry server.
    Serve(ServeArgs),
    /// Collect garbage now (the server also does this online).
    Gc(GcArgs),
    /// Re-hash every blob and manifest and check metadata and storage agree.
    Scrub(ScrubArgs),
    /// Show space use per repository, savings from dedupe, reclaimable bytes.
    Du(DuArgs),
    /// Load-test an OCI registry (berth or any other) and report throughput and latency.
    Bench(bench::BenchArgs),
    /// Add a user to an htpasswd file, or change their password (read from
    /// standard input), with a bcrypt hash.
    Htpasswd(HtpasswdArgs),
}

#[derive(Args)]
#[command(after_help = "Example:\n  echo 's3cret' | berth htpasswd /etc/berth/htpasswd alice")]
struct HtpasswdArgs {
    /// The htpasswd file (created if missing, readable by its owner only).
    file: PathBuf,
    /// The user name.
    user: String,
}

/// Settings shared by every command that opens the data directory.
#[derive(Args)]
struct Common {
    /// TOML configuration file (see berth.example.toml).
    #[arg(long, short = 'c', env = "BERTH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for blobs, uploads and metadata [default: ./berth-data].
    #[arg(long, env = "BERTH_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Log filter, e.g. info, debug, berth=debug [default: info].
    #[arg(long, env = "BERTH_LOG_LEVEL", value_name = "FILTER")]
    log_level: Option<String>,
    /// Log format [default: text].
    #[arg(long, env = "BERTH_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    common: Common,
    /// Address to listen on [default: 127.0.0.1:5000]; port 0 picks a free port.
    #[arg(long, env = "BERTH_LISTEN", value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(
        long,
        env = "BERTH_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(
        long,
        env = "BERTH_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// How long uploaded or mounted blobs stay without a manifest naming
    /// them [default: 1h].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    gc_grace: Option<std::time::Duration>,
    /// How often the online collector runs [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    gc_interval: Option<std::time::Duration>,
    /// Review delay after a reference is removed [default: 0s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    gc_delay: Option<std::time::Duration>,
}

#[derive(Args)]
struct GcArgs {
    #[command(flatten)]
    common: Common,
    /// List what a collection would free, with sizes, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ScrubArgs {
    #[command(flatten)]
    common: Common,
    /// Remove orphan files older than the grace period and mark corrupt
    /// blobs so reads fail closed until they are pushed again.
    #[arg(long)]
    repair: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct DuArgs {
    #[command(flatten)]
    common: Common,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Run a maintenance command on a small runtime, logging warnings only.
fn maintenance<T>(
    common: &Common,
    f: impl AsyncFnOnce(Config) -> Result<T, String>,
) -> Result<T, String> {
    let mut config = common.resolve()?;
    if common.log_level.is_none() {
        config.log.level = "warn".into();
    }
    init_logging(&config);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting runtime: {e}"))?
        .block_on(f(config))
}

impl Common {
    /// Defaults, then the config file, then environment and flags.
    fn resolve(&self) -> Result<Config, String> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(l) = &self.log_level {
            config.log.level = l.clone();
        }
        if let Some(f) = self.log_format {
            config.log.format = f;
        }
        Ok(config)
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(berth::logwriter::LogWriter::default());
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// glibc's malloc serves allocations above 128 KiB with fresh mmap'd pages
/// and unmaps them on free (its dynamic threshold adapts only partly).
/// hyper's read buffers are a few hundred KiB and stay alive while their
/// chunks wait for the staging writer, so a push kept getting new buffers:
/// page faults and zeroing were a tenth of the server's CPU on a 1 GiB
/// push. Allocations up to 2 MiB now come from the heap, which keeps up to
/// 32 MiB free before returning memory, so buffers are reused warm.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 2 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => args.common.resolve().and_then(|mut config| {
            if let Some(l) = args.listen {
                config.listen = l;
            }
            if let Some(d) = args.gc_grace {
                config.gc.grace = d;
            }
            if let Some(d) = args.gc_interval {
                config.gc.interval = d;
            }
            if let Some(d) = args.gc_delay {
                config.gc.delay = d;
            }
            if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
                config.tls = Some(berth::config::TlsConfig { cert, key });
            }
            init_logging(&config);
            tune_malloc();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("starting runtime: {e}"))?;
            let served = runtime.block_on(berth::server::serve(config));
            berth::logwriter::flush();
            served
        }),
        Command::Bench(args) => bench::run(args),
        Command::Htpasswd(a) => berth::cli::htpasswd(&a.file, &a.user, std::io::stdin().lock())
            .map(|msg| eprintln!("berth: {msg}")),
        Command::Gc(a) => maintenance(&a.common, async |c| {
            berth::cli::gc(&c, a.dry_run, a.json).await
        }),
        Command::Du(a) => maintenance(&a.common, async |c| berth::cli::du(&c, a.json).await),
        Command::Scrub(a) => {
            match maintenance(&a.common, async |c| {
                berth::cli::scrub(&c, a.repair, a.json).await
            }) {
                // Exit status 1 when problems were found, for scripts and CI.
                Ok(false) => return ExitCode::from(1),
                other => other.map(|_| ()),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e}");
            ExitCode::FAILURE
        }
    }
}
