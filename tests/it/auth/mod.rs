//! Authentication and authorization against the running binary, in both
//! modes: HTTP Basic against htpasswd, and bearer tokens (built-in issuer
//! and external ones).

mod logins;
mod policy;
mod probing;
mod tokens;

use crate::common::Berth;
use base64::Engine as _;
use reqwest::blocking::Client;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The users every auth test knows, with their passwords.
pub const USERS: [(&str, &str); 4] = [
    ("admin", "admin-pw"),
    ("alice", "alice-pw"),
    ("bob", "bob-pw"),
    ("eve", "eve-pw"),
];

pub fn password(user: &str) -> &'static str {
    USERS
        .iter()
        .find(|(u, _)| *u == user)
        .map(|(_, p)| *p)
        .expect("known user")
}

/// The policy the tests share: alice's team owns `team/**` (bob may only
/// pull there), `public/**` is readable by anyone, eve owns `eve/**`, and
/// `secret/**` belongs to the admin alone.
pub const POLICY: &str = r#"
admins = ["admin"]
[auth.groups]
team = ["alice"]
[[auth.policy]]
repositories = "team/**"
groups = { team = ["pull", "push", "delete"] }
users = { bob = ["pull"] }
[[auth.policy]]
repositories = "public/**"
anonymous = ["pull"]
users = { alice = ["push"] }
[[auth.policy]]
repositories = "eve/**"
users = { eve = ["pull", "push", "delete"] }
[[auth.policy]]
repositories = "secret/**"
"#;

/// Write an htpasswd file for [`USERS`] with `berth htpasswd`.
pub fn write_htpasswd(dir: &Path) -> PathBuf {
    let path = dir.join("htpasswd");
    for (user, pw) in USERS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("htpasswd")
            .arg(&path)
            .arg(user)
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("berth htpasswd");
        writeln!(child.stdin.take().unwrap(), "{pw}").unwrap();
        assert!(child.wait().unwrap().success());
    }
    path
}

/// A server in `mode` ("basic" or "token") with [`POLICY`], and `extra`
/// TOML appended to its `[auth]` table.
pub struct AuthServer {
    pub berth: Berth,
    _dir: tempfile::TempDir,
    pub mode: &'static str,
}

impl AuthServer {
    pub fn start(mode: &'static str) -> AuthServer {
        AuthServer::start_with(mode, "", &[])
    }

    /// `tables` (TOML tables such as `[auth.token]` or `[limits]`) go
    /// after the policies.
    pub fn start_with(mode: &'static str, tables: &str, args: &[&str]) -> AuthServer {
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = write_htpasswd(dir.path());
        let config = format!(
            "[auth]\nmode = \"{mode}\"\nhtpasswd = \"{}\"\n{POLICY}\n{tables}",
            htpasswd.display()
        );
        let berth = Berth::start_with_config(&config, args);
        AuthServer {
            berth,
            _dir: dir,
            mode,
        }
    }

    pub fn url(&self) -> &str {
        &self.berth.url
    }

    /// A client that authenticates as `user` the way this mode wants:
    /// Basic credentials, or a token for `scopes` from the token endpoint.
    pub fn client_as(&self, user: &str, scopes: &[&str]) -> Client {
        let value = if self.mode == "token" {
            format!("Bearer {}", self.token(Some(user), scopes))
        } else {
            basic(user, password(user))
        };
        authed_client(&value)
    }

    /// A token from the built-in endpoint (`user` None: anonymous).
    pub fn token(&self, user: Option<&str>, scopes: &[&str]) -> String {
        let mut url = format!("{}/auth/token?service=berth", self.url());
        for s in scopes {
            url.push_str(&format!("&scope={s}"));
        }
        let mut req = crate::common::client().get(url);
        if let Some(u) = user {
            req = req.basic_auth(u, Some(password(u)));
        }
        let resp = req.send().unwrap();
        assert_eq!(resp.status().as_u16(), 200, "token for {user:?}");
        let v: serde_json::Value = resp.json().unwrap();
        v["token"].as_str().unwrap().to_string()
    }
}

pub fn basic(user: &str, pw: &str) -> String {
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
    format!("Basic {creds}")
}

/// A client that sends `authorization` with every request.
pub fn authed_client(authorization: &str) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        authorization.parse().unwrap(),
    );
    Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(120))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The claims of a JWT, unverified (to look at what was granted).
pub fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
