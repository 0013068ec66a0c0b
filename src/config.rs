//! Configuration: defaults, then the TOML file, then environment variables
//! and flags (which clap merges), each overriding the one before.

use crate::core::gc::GcPolicy;
use serde::Deserialize;
use std::collections::BTreeMap;
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
    pub auth: AuthConfig,
    /// Serve HTTPS with these files; absent: plain HTTP.
    pub tls: Option<TlsConfig>,
}

/// Certificate chain and private key, PEM; re-read on SIGHUP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How callers prove who they are.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Everyone may do everything (the default, for a registry on loopback).
    #[default]
    None,
    /// HTTP Basic against the htpasswd file.
    Basic,
    /// Docker/OCI bearer tokens (built-in issuer or a trusted external one).
    Token,
}

/// `[auth]`: users, groups, admins and per-repository policies.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// An htpasswd file with bcrypt entries (`htpasswd -B`).
    pub htpasswd: Option<PathBuf>,
    /// Users who may do everything everywhere.
    pub admins: Vec<String>,
    /// Group name -> member user names.
    pub groups: BTreeMap<String, Vec<String>>,
    /// `[[auth.policy]]` entries; the most specific pattern decides.
    pub policy: Vec<PolicyRule>,
    pub token: TokenConfig,
    pub login: LoginLimits,
}

/// One `[[auth.policy]]`: a repository pattern and who may do what there.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyRule {
    /// A name pattern: `team-a/**`, `*/app`, `exact/name`.
    pub repositories: String,
    /// Actions (pull, push, delete, *) for everyone, logged in or not.
    pub anonymous: Vec<String>,
    /// Actions for every logged-in user.
    pub authenticated: Vec<String>,
    /// User name -> actions.
    pub users: BTreeMap<String, Vec<String>>,
    /// Group name -> actions.
    pub groups: BTreeMap<String, Vec<String>>,
}

/// `[auth.token]`: the bearer token scheme.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// Serve `/auth/token` and issue tokens to htpasswd users.
    pub builtin: bool,
    /// Where clients get tokens; default: this server's `/auth/token`, at
    /// the host the client used.
    pub realm: Option<String>,
    /// The `service` of the challenge and the tokens' audience.
    pub service: String,
    /// The tokens' issuer (`iss`), checked on every token.
    pub issuer: String,
    /// The built-in issuer's key (PKCS#8 PEM, EC P-256); created on first
    /// start when absent. Default: `<data_dir>/token-signing-key.pem`.
    pub signing_key: Option<PathBuf>,
    /// Lifetime of issued tokens.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Public keys (PEM: RSA, EC or Ed25519) of external issuers to trust.
    pub trusted_keys: Vec<PathBuf>,
    /// A JWKS file of external issuers' keys to trust.
    pub jwks: Option<PathBuf>,
}

impl Default for TokenConfig {
    fn default() -> TokenConfig {
        TokenConfig {
            builtin: true,
            realm: None,
            service: "berth".into(),
            issuer: "berth".into(),
            signing_key: None,
            ttl: Duration::from_secs(300),
            trusted_keys: Vec::new(),
            jwks: None,
        }
    }
}

/// `[auth.login]`: the brake on password guessing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginLimits {
    /// Failed logins allowed per client address, and per user, in `window`.
    pub max_failures: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Every failed login is answered only after this delay.
    #[serde(with = "humantime_serde")]
    pub failure_delay: Duration,
}

impl Default for LoginLimits {
    fn default() -> LoginLimits {
        LoginLimits {
            max_failures: 10,
            window: Duration::from_secs(60),
            failure_delay: Duration::from_millis(500),
        }
    }
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
    /// Largest request head (request line and headers), in bytes (431).
    pub max_header_bytes: usize,
    /// A client has this long to send a request's headers (slow-loris);
    /// a connection with no request in flight this long is closed.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A request body that sends nothing for this long fails.
    #[serde(with = "humantime_serde")]
    pub body_idle_timeout: Duration,
    /// Open upload sessions, in all (429 beyond).
    pub max_upload_sessions: u64,
    /// Open upload sessions per user, or per address for anonymous callers.
    pub max_upload_sessions_per_client: u64,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Repository names one filtered catalog request reads at most (a
    /// caller who may pull few of many repositories gets short pages).
    pub catalog_scan: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            data_dir: PathBuf::from("./berth-data"),
            log: LogConfig::default(),
            limits: LimitsConfig::default(),
            gc: GcConfig::default(),
            auth: AuthConfig::default(),
            tls: None,
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
            max_header_bytes: 64 << 10,
            header_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(120),
            max_upload_sessions: 10_000,
            max_upload_sessions_per_client: 1_000,
            max_connections: 4_096,
            catalog_scan: 10_000,
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
            max_upload_sessions: self.limits.max_upload_sessions,
            max_upload_sessions_per_client: self.limits.max_upload_sessions_per_client,
            catalog_scan: self.limits.catalog_scan.max(1),
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
