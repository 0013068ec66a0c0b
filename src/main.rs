//! The `berth` command.

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
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => args.common.resolve().and_then(|mut config| {
            if let Some(l) = args.listen {
                config.listen = l;
            }
            init_logging(&config);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("starting runtime: {e}"))?;
            runtime.block_on(berth::server::serve(config))
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e}");
            ExitCode::FAILURE
        }
    }
}
