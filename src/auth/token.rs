//! Docker/OCI bearer tokens: JWTs whose `access` claim lists what the
//! bearer may do, in the format docker, podman, skopeo, containerd and oras
//! expect (the one CNCF distribution's token auth reads).
//!
//! berth can issue them itself ([`TokenIssuer`], ES256 with a key kept in
//! the data directory) and verify them ([`TokenVerifier`]), its own and
//! those of external issuers whose public keys (PEM or JWKS) it is given.

use super::Actions;
use crate::config::TokenConfig;
use crate::core::names::RepoName;
use crate::shards::Sharded;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 60;
/// Verified tokens remembered (signature checks are the costly part).
const CACHE_MAX: usize = 10_000;

/// One entry of the `access` claim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub actions: Vec<String>,
}

/// `aud` may be one string or a list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    iss: String,
    #[serde(default)]
    sub: String,
    aud: Audience,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(default)]
    access: Vec<AccessEntry>,
}

/// A requested or granted scope: `repository:<name>:<actions>` or
/// `registry:catalog:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Repository(String, Actions),
    Catalog,
}

impl Scope {
    /// Parse one scope; `None` for kinds berth does not grant (they are
    /// left out of the token, as the token spec allows).
    pub fn parse(s: &str) -> Option<Scope> {
        let (kind, rest) = s.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        // `repository(plugin)` and the like are repositories too.
        let kind = kind.split('(').next().unwrap_or(kind);
        match kind {
            "repository" => {
                let name = RepoName::parse(name)?;
                Some(Scope::Repository(
                    name.to_string(),
                    Actions::parse_list(actions.split(',')),
                ))
            }
            // The catalog has one action, `*`; asking for anything else
            // is asking for nothing.
            "registry" if name == "catalog" && actions.split(',').any(|a| a.trim() == "*") => {
                Some(Scope::Catalog)
            }
            _ => None,
        }
    }

    fn to_entry(&self) -> AccessEntry {
        match self {
            Scope::Repository(name, a) => AccessEntry {
                kind: "repository".into(),
                name: name.clone(),
                actions: a.names().into_iter().map(String::from).collect(),
            },
            Scope::Catalog => AccessEntry {
                kind: "registry".into(),
                name: "catalog".into(),
                actions: vec!["*".into()],
            },
        }
    }
}

/// What a verified token lets its bearer do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub subject: String,
    /// Signed by berth's own key (so the policy of `subject` applies to the
    /// catalog); otherwise the external issuer's claims are all there is.
    pub builtin: bool,
    pub repositories: HashMap<String, Actions>,
    pub catalog: bool,
    /// Expiry, seconds since the epoch.
    pub expires: u64,
}

impl Grant {
    pub fn actions(&self, repo: &str) -> Actions {
        self.repositories.get(repo).copied().unwrap_or_default()
    }

    fn from_claims(c: Claims, builtin: bool) -> Grant {
        let mut repositories: HashMap<String, Actions> = HashMap::new();
        let mut catalog = false;
        for e in c.access {
            match e.kind.split('(').next().unwrap_or("") {
                "repository" => {
                    let a = Actions::parse_list(e.actions.iter().map(String::as_str));
                    let slot = repositories.entry(e.name).or_default();
                    *slot = slot.union(a);
                }
                "registry" if e.name == "catalog" => {
                    catalog = e.actions.iter().any(|a| a == "*" || a == "list");
                }
                _ => {}
            }
        }
        Grant {
            subject: c.sub,
            builtin,
            repositories,
            catalog,
            expires: c.exp,
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A short key id: the first 16 bytes of the public key's sha256, base64url.
fn key_id(public_key: &[u8]) -> String {
    use base64::Engine as _;
    let h = Sha256::digest(public_key);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&h[..16])
}

/// A freshly issued token, as the token endpoint returns it.
pub struct Issued {
    pub token: String,
    pub expires_in: u64,
    pub issued_at: SystemTime,
}

/// The built-in issuer: signs tokens with an EC P-256 key (ES256).
pub struct TokenIssuer {
    key: EncodingKey,
    /// Public key (uncompressed point), for the verifier.
    public: Vec<u8>,
    kid: String,
    issuer: String,
    service: String,
    ttl: Duration,
}

impl TokenIssuer {
    /// The service (audience) tokens are issued for.
    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn from_config(config: &TokenConfig, data_dir: &Path) -> Result<TokenIssuer, String> {
        let path = config
            .signing_key
            .clone()
            .unwrap_or_else(|| data_dir.join("token-signing-key.pem"));
        let pkcs8 = if path.exists() {
            let text =
                std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            let p = pem::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            if p.tag() != "PRIVATE KEY" {
                return Err(format!(
                    "{}: expected a PKCS#8 \"PRIVATE KEY\" (EC P-256), found {:?}",
                    path.display(),
                    p.tag()
                ));
            }
            p.into_contents()
        } else {
            let rng = ring::rand::SystemRandom::new();
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| "generating the token signing key failed".to_string())?;
            let text = pem::encode(&pem::Pem::new("PRIVATE KEY", doc.as_ref().to_vec()));
            write_private(&path, text.as_bytes())?;
            tracing::info!(path = %path.display(), "created the token signing key");
            doc.as_ref().to_vec()
        };
        let rng = ring::rand::SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .map_err(|e| format!("{}: not an EC P-256 PKCS#8 key: {e}", path.display()))?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(TokenIssuer {
            key: EncodingKey::from_ec_der(&pkcs8),
            kid: key_id(&public),
            public,
            issuer: config.issuer.clone(),
            service: config.service.clone(),
            ttl: config.ttl,
        })
    }

    /// Sign a token for `subject` (empty: anonymous) granting `scopes`.
    pub fn issue(&self, subject: &str, scopes: &[Scope]) -> Result<Issued, String> {
        let now = now_secs();
        let ttl = self.ttl.as_secs().max(1);
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: subject.to_owned(),
            aud: Audience::One(self.service.clone()),
            exp: now + ttl,
            nbf: Some(now.saturating_sub(1)),
            iat: Some(now),
            jti: Some(uuid::Uuid::new_v4().simple().to_string()),
            access: scopes.iter().map(Scope::to_entry).collect(),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("signing token: {e}"))?;
        Ok(Issued {
            token,
            expires_in: ttl,
            issued_at: SystemTime::now(),
        })
    }
}

/// Write a private key file readable by its owner only, durably.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Key families and the algorithms each may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec,
    Ed,
}

impl Family {
    fn of(alg: Algorithm) -> Option<Family> {
        use Algorithm::*;
        match alg {
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Some(Family::Rsa),
            ES256 | ES384 => Some(Family::Ec),
            EdDSA => Some(Family::Ed),
            // Shared-secret HMAC tokens are never accepted.
            HS256 | HS384 | HS512 => None,
        }
    }
}

struct TrustedKey {
    kid: Option<String>,
    family: Family,
    key: DecodingKey,
    builtin: bool,
}

/// Checks bearer tokens: signature by a trusted key, `iss`, `aud`, `exp`,
/// `nbf`.
pub struct TokenVerifier {
    keys: Vec<TrustedKey>,
    issuer: String,
    service: String,
    /// sha256(token) -> grant, until the token expires.
    cache: Sharded<[u8; 32], Arc<Grant>>,
}

type KeyLoader = fn(&[u8]) -> jsonwebtoken::errors::Result<DecodingKey>;

fn load_pem_key(path: &Path) -> Result<TrustedKey, String> {
    let text = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let attempts: [(Family, KeyLoader); 3] = [
        (Family::Rsa, DecodingKey::from_rsa_pem),
        (Family::Ec, DecodingKey::from_ec_pem),
        (Family::Ed, DecodingKey::from_ed_pem),
    ];
    for (family, f) in attempts {
        if let Ok(key) = f(&text) {
            return Ok(TrustedKey {
                kid: None,
                family,
                key,
                builtin: false,
            });
        }
    }
    Err(format!(
        "{}: not an RSA, EC or Ed25519 public key in PEM",
        path.display()
    ))
}

fn load_jwks(path: &Path) -> Result<Vec<TrustedKey>, String> {
    use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
    let text = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let set: JwkSet = serde_json::from_slice(&text)
        .map_err(|e| format!("{}: not a JWKS: {e}", path.display()))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Family::Rsa,
            AlgorithmParameters::EllipticCurve(_) => Family::Ec,
            AlgorithmParameters::OctetKeyPair(_) => Family::Ed,
            AlgorithmParameters::OctetKey(_) => {
                return Err(format!(
                    "{}: symmetric keys are not accepted",
                    path.display()
                ))
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("{}: {e}", path.display()))?;
        keys.push(TrustedKey {
            kid: jwk.common.key_id.clone(),
            family,
            key,
            builtin: false,
        });
    }
    Ok(keys)
}

impl TokenVerifier {
    pub fn from_config(
        config: &TokenConfig,
        issuer: Option<&TokenIssuer>,
    ) -> Result<TokenVerifier, String> {
        let mut keys = Vec::new();
        if let Some(i) = issuer {
            keys.push(TrustedKey {
                kid: Some(i.kid.clone()),
                family: Family::Ec,
                key: DecodingKey::from_ec_der(&i.public),
                builtin: true,
            });
        }
        for p in &config.trusted_keys {
            keys.push(load_pem_key(p)?);
        }
        if let Some(p) = &config.jwks {
            keys.extend(load_jwks(p)?);
        }
        if keys.is_empty() {
            return Err(
                "auth.mode = \"token\" needs a key to trust: the built-in issuer \
                        (auth.token.builtin = true), auth.token.trusted_keys or auth.token.jwks"
                    .into(),
            );
        }
        Ok(TokenVerifier {
            keys,
            issuer: config.issuer.clone(),
            service: config.service.clone(),
            cache: Sharded::new(CACHE_MAX),
        })
    }

    /// Verify a token and return what it grants.
    pub fn verify(&self, token: &str) -> Result<Arc<Grant>, String> {
        let id: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = now_secs();
        if let Some(g) = self.cache.get_cloned(&id) {
            if g.expires + LEEWAY_SECS > now {
                return Ok(g);
            }
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("token header: {e}"))?;
        let family = Family::of(header.alg).ok_or("token algorithm not accepted")?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.service]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let mut last = String::from("no trusted key for this token");
        for k in self.keys.iter().filter(|k| k.family == family) {
            if let (Some(want), Some(have)) = (&header.kid, &k.kid) {
                if want != have {
                    continue;
                }
            }
            match jsonwebtoken::decode::<Claims>(token, &k.key, &validation) {
                Ok(data) => {
                    let grant = Arc::new(Grant::from_claims(data.claims, k.builtin));
                    self.cache.insert(id, grant.clone(), |g: &Arc<Grant>| {
                        g.expires + LEEWAY_SECS <= now
                    });
                    return Ok(grant);
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> TokenConfig {
        TokenConfig {
            signing_key: Some(dir.join("key.pem")),
            ..TokenConfig::default()
        }
    }

    #[test]
    fn scopes_parse() {
        assert_eq!(
            Scope::parse("repository:team/app:pull,push"),
            Some(Scope::Repository(
                "team/app".into(),
                Actions::PULL.union(Actions::PUSH)
            ))
        );
        assert_eq!(
            Scope::parse("repository(plugin):x:pull"),
            Some(Scope::Repository("x".into(), Actions::PULL))
        );
        assert_eq!(Scope::parse("registry:catalog:*"), Some(Scope::Catalog));
        assert_eq!(Scope::parse("registry:catalog:search"), None);
        assert_eq!(Scope::parse("repository:../etc:pull"), None);
        assert_eq!(Scope::parse("repository:UPPER:pull"), None);
        assert_eq!(Scope::parse("nonsense"), None);
        assert_eq!(Scope::parse("registry:other:*"), None);
    }

    #[test]
    fn issue_and_verify_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let issuer = TokenIssuer::from_config(&c, dir.path()).unwrap();
        // The generated key is kept, private, and loads again to the same key.
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("key.pem"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let again = TokenIssuer::from_config(&c, dir.path()).unwrap();
        assert_eq!(again.kid, issuer.kid);
        let v = TokenVerifier::from_config(&c, Some(&issuer)).unwrap();
        let t = issuer
            .issue(
                "alice",
                &[
                    Scope::Repository("a/b".into(), Actions::PULL),
                    Scope::Catalog,
                ],
            )
            .unwrap();
        let g = v.verify(&t.token).unwrap();
        assert_eq!(g.subject, "alice");
        assert!(g.builtin && g.catalog);
        assert_eq!(g.actions("a/b"), Actions::PULL);
        assert_eq!(g.actions("a/c"), Actions::NONE);
        // Tampering breaks the signature.
        let mut bad = t.token.clone();
        bad.pop();
        assert!(v.verify(&bad).is_err());
        assert!(v.verify("not a token").is_err());
    }

    #[test]
    fn other_issuers_and_audiences_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let issuer = TokenIssuer::from_config(&c, dir.path()).unwrap();
        let other = TokenIssuer::from_config(
            &TokenConfig {
                signing_key: Some(dir.path().join("other.pem")),
                ..c.clone()
            },
            dir.path(),
        )
        .unwrap();
        let v = TokenVerifier::from_config(&c, Some(&issuer)).unwrap();
        // Signed by a key berth does not trust.
        assert!(v.verify(&other.issue("x", &[]).unwrap().token).is_err());
        // Right key, wrong audience / issuer.
        for cfg in [
            TokenConfig {
                service: "elsewhere".into(),
                ..c.clone()
            },
            TokenConfig {
                issuer: "someone".into(),
                ..c.clone()
            },
        ] {
            let i = TokenIssuer::from_config(&cfg, dir.path()).unwrap();
            assert!(v.verify(&i.issue("x", &[]).unwrap().token).is_err());
        }
    }
}
