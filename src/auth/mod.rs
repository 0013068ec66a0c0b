//! Who may do what: authentication (htpasswd over HTTP Basic, or bearer
//! tokens from the built-in issuer or a trusted external one) and
//! authorization (per-repository policies). Nothing here knows HTTP; the
//! HTTP layer asks [`Auth`] before it calls the core.

pub mod actions;
pub mod cursor;
pub mod htpasswd;
pub mod limiter;
pub mod policy;
pub mod token;

pub use actions::Actions;

use crate::config::{AuthConfig, AuthMode};
use htpasswd::Htpasswd;
use limiter::LoginLimiter;
use policy::Policy;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use token::{TokenIssuer, TokenVerifier};

/// Who is asking, once their credentials (if any) have been checked.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Authentication is off: everything is allowed.
    Unrestricted,
    /// No credentials: the policy's anonymous grants apply.
    Anonymous,
    /// A user who proved their password (HTTP Basic).
    User(String),
    /// A bearer token: its access claims are the caller's rights.
    Token(Arc<token::Grant>),
}

impl Caller {
    /// The name the caller is known by, for per-client limits and logs.
    pub fn name(&self) -> Option<&str> {
        match self {
            Caller::User(u) => Some(u),
            Caller::Token(g) if !g.subject.is_empty() => Some(&g.subject),
            _ => None,
        }
    }

    pub fn is_anonymous(&self) -> bool {
        matches!(self, Caller::Anonymous)
    }
}

/// Why credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Wrong user or password, or a token that does not verify.
    Invalid,
    /// Too many failed logins from this address or for this user; retry
    /// after the given seconds.
    Throttled(u64),
}

/// Authentication and authorization, built from the `[auth]` config.
pub struct Auth {
    pub mode: AuthMode,
    policy: Policy,
    htpasswd: Option<Htpasswd>,
    pub issuer: Option<TokenIssuer>,
    pub verifier: Option<TokenVerifier>,
    limiter: LoginLimiter,
    /// `service` of the token challenge.
    pub service: String,
    /// `realm` of the token challenge; `None`: this server's `/auth/token`.
    pub realm: Option<String>,
}

impl Auth {
    /// No authentication: every caller is [`Caller::Unrestricted`].
    pub fn disabled() -> Auth {
        Auth {
            mode: AuthMode::None,
            policy: Policy::default(),
            htpasswd: None,
            issuer: None,
            verifier: None,
            limiter: LoginLimiter::new(Default::default()),
            service: String::new(),
            realm: None,
        }
    }

    /// Build from the config; `data_dir` holds a generated token signing
    /// key when none is configured.
    pub fn from_config(config: &AuthConfig, data_dir: &Path) -> Result<Auth, String> {
        if config.mode == AuthMode::None {
            return Ok(Auth::disabled());
        }
        let policy = Policy::from_config(config)?;
        let htpasswd = match &config.htpasswd {
            Some(path) => Some(Htpasswd::open(path)?),
            None => None,
        };
        let (issuer, verifier) = match config.mode {
            AuthMode::Token => {
                let issuer = if config.token.builtin {
                    if htpasswd.is_none() {
                        return Err("auth.token.builtin needs auth.htpasswd for the users it \
                                    issues tokens to"
                            .into());
                    }
                    Some(TokenIssuer::from_config(&config.token, data_dir)?)
                } else {
                    None
                };
                let verifier = TokenVerifier::from_config(&config.token, issuer.as_ref())?;
                (issuer, Some(verifier))
            }
            _ => {
                if htpasswd.is_none() {
                    return Err("auth.mode = \"basic\" needs auth.htpasswd".into());
                }
                (None, None)
            }
        };
        Ok(Auth {
            mode: config.mode,
            policy,
            htpasswd,
            issuer,
            verifier,
            limiter: LoginLimiter::new(config.login.clone()),
            service: config.token.service.clone(),
            realm: config.token.realm.clone(),
        })
    }

    pub fn enabled(&self) -> bool {
        self.mode != AuthMode::None
    }

    /// Re-read the htpasswd file (on SIGHUP); the old users stay on error.
    pub fn reload(&self) {
        if let Some(h) = &self.htpasswd {
            match h.reload() {
                Ok(n) => tracing::info!(users = n, "reloaded htpasswd"),
                Err(e) => {
                    tracing::error!(error = %e, "htpasswd reload failed; keeping the old users")
                }
            }
        }
    }

    /// Check a user's password, with the failed-login limit for `client`.
    pub async fn login(&self, client: IpAddr, user: &str, password: &str) -> Result<(), Refusal> {
        let Some(h) = &self.htpasswd else {
            return Err(Refusal::Invalid);
        };
        if h.cached(user, password) {
            return Ok(());
        }
        let attempt = self
            .limiter
            .begin(client, user)
            .map_err(|retry| Refusal::Throttled(retry.as_secs().max(1)))?;
        if h.verify(user, password).await {
            attempt.succeeded();
            Ok(())
        } else {
            tracing::warn!(user, %client, "failed login");
            attempt.failed().await;
            Err(Refusal::Invalid)
        }
    }

    /// Verify a bearer token.
    pub fn verify_token(&self, token: &str) -> Result<Arc<token::Grant>, Refusal> {
        let v = self.verifier.as_ref().ok_or(Refusal::Invalid)?;
        v.verify(token).map_err(|e| {
            tracing::debug!(error = %e, "bearer token refused");
            Refusal::Invalid
        })
    }

    /// What `caller` may do in repository `repo`.
    pub fn actions(&self, caller: &Caller, repo: &str) -> Actions {
        match caller {
            Caller::Unrestricted => Actions::ALL,
            Caller::Anonymous => self.policy.actions(None, repo),
            Caller::User(u) => self.policy.actions(Some(u), repo),
            Caller::Token(g) => g.actions(repo),
        }
    }

    /// What the policy grants `user` (or anonymous) in `repo`: what the
    /// built-in token issuer may put in a token.
    pub fn policy_actions(&self, user: Option<&str>, repo: &str) -> Actions {
        self.policy.actions(user, repo)
    }

    /// Whether `caller` may list the catalog at all (entries are then
    /// filtered by [`Auth::catalog_filter`]).
    pub fn may_list_catalog(&self, caller: &Caller) -> bool {
        match caller {
            Caller::Token(g) => g.catalog,
            _ => true,
        }
    }

    /// Whether the catalog shows `repo` to `caller`: only repositories the
    /// caller may pull. A token from the built-in issuer lists what its
    /// subject may pull; an external issuer's token, what it grants pull on.
    pub fn catalog_shows(&self, caller: &Caller, repo: &str) -> bool {
        match caller {
            Caller::Token(g) if g.builtin => {
                let user = (!g.subject.is_empty()).then_some(g.subject.as_str());
                self.policy.actions(user, repo).contains(Actions::PULL)
                    || g.actions(repo).contains(Actions::PULL)
            }
            Caller::Token(g) => g.actions(repo).contains(Actions::PULL),
            other => self.actions(other, repo).contains(Actions::PULL),
        }
    }
}
