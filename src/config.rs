//! Configuration: defaults, then the TOML file, then environment variables
//! and flags (which clap merges), each overriding the one before.

use crate::core::gc::GcPolicy;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Where blobs, uploads and the metadata database live.
    pub data_dir: PathBuf,
    pub log: LogConfig,
    pub limits: LimitsConfig,
    pub gc: GcConfig,
}

/// Garbage collection policy; see `berth.example.toml` for each key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcConfig {
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    #[serde(with = "humantime_serde")]
    pub delay: Duration,
    /// Absent: untagged manifests are kept.
    #[serde(with = "humantime_serde::option")]
    pub untagged_after: Option<Duration>,
    pub referrers_follow_subject: bool,
    #[serde(with = "humantime_serde")]
    pub upload_expiry: Duration,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    pub batch_size: usize,
}

impl Default for GcConfig {
    fn default() -> GcConfig {
        let p = GcPolicy::default();
        GcConfig {
            enabled: p.enabled,
            grace: p.grace,
            delay: p.delay,
            untagged_after: p.untagged_after,
            referrers_follow_subject: p.referrers_follow_subject,
            upload_expiry: p.upload_expiry,
            interval: p.interval,
            sweep_interval: p.sweep_interval,
            batch_size: p.batch_size,
        }
    }
}

impl GcConfig {
    pub fn policy(&self) -> GcPolicy {
        GcPolicy {
            enabled: self.enabled,
            grace: self.grace,
            delay: self.delay,
            untagged_after: self.untagged_after,
            referrers_follow_subject: self.referrers_follow_subject,
            upload_expiry: self.upload_expiry,
            interval: self.interval,
            sweep_interval: self.sweep_interval,
            batch_size: self.batch_size.max(1),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `berth=debug,info`, ...
    pub level: String,
    /// `text` for people, `json` for log pipelines.
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest manifest accepted, in bytes (larger: 413).
    pub max_manifest_bytes: usize,
    /// Largest blob accepted, in bytes; 0 means no limit.
    pub max_blob_bytes: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            data_dir: PathBuf::from("./berth-data"),
            log: LogConfig::default(),
            limits: LimitsConfig::default(),
            gc: GcConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            max_manifest_bytes: 4 << 20,
            max_blob_bytes: 0,
        }
    }
}

impl Config {
    /// Read a TOML file; unknown keys are errors so typos do not pass silently.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))
    }

    pub fn metadata_path(&self) -> PathBuf {
        self.data_dir.join("metadata.db")
    }

    pub fn core_limits(&self) -> crate::core::registry::Limits {
        crate::core::registry::Limits {
            max_manifest_bytes: self.limits.max_manifest_bytes,
            max_blob_bytes: match self.limits.max_blob_bytes {
                0 => u64::MAX,
                n => n,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let text = include_str!("../berth.example.toml");
        let c: Config = toml::from_str(text).unwrap();
        assert_eq!(c.listen.port(), 5000);
        assert_eq!(c.limits.max_manifest_bytes, 4 << 20);
        let defaults = GcPolicy::default();
        let p = c.gc.policy();
        assert_eq!(p.grace, defaults.grace);
        assert_eq!(p.interval, defaults.interval);
        assert_eq!(p.upload_expiry, defaults.upload_expiry);
        assert_eq!(p.untagged_after, None);
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
    }
}
