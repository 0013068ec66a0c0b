//! The token scheme: what the built-in endpoint grants, and tokens from an
//! external issuer trusted by its public key (PEM) or JWKS.

use super::{authed_client, claims, password, AuthServer};
use crate::common::client;
use crate::common::image::{push_image, random_image};
use base64::Engine as _;
use serde_json::json;

fn actions(token: &str, repo: &str) -> Vec<String> {
    claims(token)["access"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "repository" && e["name"] == repo)
        .flat_map(|e| e["actions"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn token_endpoint_grants_the_intersection_of_asked_and_allowed() {
    let s = AuthServer::start("token");
    let t = s.token(Some("bob"), &["repository:team/app:pull,push,delete"]);
    assert_eq!(actions(&t, "team/app"), ["pull"]);
    let t = s.token(Some("alice"), &["repository:team/app:*"]);
    assert_eq!(actions(&t, "team/app"), ["pull", "push", "delete"]);
    let t = s.token(
        None,
        &[
            "repository:public/web:pull,push",
            "repository:team/app:pull",
        ],
    );
    assert_eq!(actions(&t, "public/web"), ["pull"]);
    assert!(actions(&t, "team/app").is_empty());
    // Scopes that name nothing valid grant nothing, and break nothing.
    let t = s.token(
        Some("admin"),
        &["repository:../etc:pull", "garbage", "repository:UPPER:pull"],
    );
    assert_eq!(claims(&t)["access"], json!([]));
    // The catalog's one action is `*`: asking for another gets nothing.
    let t = s.token(Some("admin"), &["registry:catalog:search"]);
    assert_eq!(claims(&t)["access"], json!([]));
    // Tokens for another service are not made here.
    let resp = client()
        .get(format!(
            "{}/auth/token?service=other&scope=repository:team/app:pull",
            s.url()
        ))
        .basic_auth("alice", Some(super::password("alice")))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let c = claims(&t);
    assert_eq!(c["sub"], "admin");
    assert_eq!(c["aud"], "berth");
    assert_eq!(c["iss"], "berth");
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 300);

    // The response carries both field names clients read, and the times.
    let resp = client()
        .get(format!(
            "{}/auth/token?service=berth&scope=repository:team/app:pull",
            s.url()
        ))
        .basic_auth("bob", Some(password("bob")))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let v: serde_json::Value = resp.json().unwrap();
    assert_eq!(v["token"], v["access_token"]);
    assert_eq!(v["expires_in"], 300);
    assert!(v["issued_at"].as_str().unwrap().ends_with('Z'));

    // The OAuth2 password grant (containerd POSTs it).
    let resp = client()
        .post(format!("{}/auth/token", s.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=password&username=alice&password={}&service=berth&scope=repository%3Ateam%2Fapp%3Apull%2Cpush&client_id=test",
            password("alice")
        ))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let v: serde_json::Value = resp.json().unwrap();
    assert_eq!(
        actions(v["access_token"].as_str().unwrap(), "team/app"),
        ["pull", "push"]
    );
    let resp = client()
        .post(format!("{}/auth/token", s.url()))
        .body("grant_type=refresh_token&refresh_token=x&service=berth")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(
        resp.json::<serde_json::Value>().unwrap()["error"],
        "unsupported_grant_type"
    );

    // Wrong passwords get no token, by GET or by POST.
    let resp = client()
        .get(format!(
            "{}/auth/token?scope=repository:team/app:pull",
            s.url()
        ))
        .basic_auth("bob", Some("wrong"))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = client()
        .post(format!("{}/auth/token", s.url()))
        .body("grant_type=password&username=bob&password=wrong")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    // A token works for what it grants and for nothing else.
    let t = s.token(Some("alice"), &["repository:team/app:pull,push"]);
    let c = authed_client(&format!("Bearer {t}"));
    let image = random_image(31, 1, 4 << 10);
    push_image(&c, s.url(), "team/app", "v1", &image);
    let resp = c
        .delete(format!("{}/v2/team/app/manifests/v1", s.url()))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("scope=\"repository:team/app:delete\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
}

/// An external issuer: its EC key is trusted from a PEM file, a second
/// key from a JWKS file (chosen by `kid`). Tokens must carry the right
/// issuer and audience and be unexpired; berth's own endpoint is off.
#[test]
fn external_issuer_tokens_are_trusted_by_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let pem_key = rcgen::KeyPair::generate().unwrap();
    let jwks_key = rcgen::KeyPair::generate().unwrap();
    let pem_path = dir.path().join("issuer.pem");
    std::fs::write(&pem_path, pem_key.public_key_pem()).unwrap();
    let raw = jwks_key.public_key_raw();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = json!({ "keys": [{
        "kty": "EC", "crv": "P-256", "kid": "key-2", "use": "sig", "alg": "ES256",
        "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
    }]});
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks.to_string()).unwrap();
    let tables = format!(
        "[auth.token]\nbuiltin = false\nrealm = \"https://auth.example.com/token\"\n\
         service = \"registry.example.com\"\nissuer = \"auth.example.com\"\n\
         trusted_keys = [\"{}\"]\njwks = \"{}\"\n",
        pem_path.display(),
        jwks_path.display()
    );
    let s = AuthServer::start_with("token", &tables, &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sign = |key: &rcgen::KeyPair, kid: Option<&str>, claims: serde_json::Value| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = kid.map(str::to_owned);
        let k = jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &claims, &k).unwrap()
    };
    let good = |access: serde_json::Value| {
        json!({ "iss": "auth.example.com", "sub": "ci-bot", "aud": "registry.example.com",
                "exp": now + 300, "nbf": now - 10, "iat": now, "access": access })
    };
    let push =
        json!([{ "type": "repository", "name": "anything/app", "actions": ["pull", "push"] }]);

    // The external issuer's claims are the rights, whatever berth's policy says.
    let c = authed_client(&format!(
        "Bearer {}",
        sign(&pem_key, None, good(push.clone()))
    ));
    let image = random_image(32, 1, 4 << 10);
    push_image(&c, s.url(), "anything/app", "v1", &image);
    let c2 = authed_client(&format!(
        "Bearer {}",
        sign(&jwks_key, Some("key-2"), good(push.clone()))
    ));
    let resp = c2
        .head(format!("{}/v2/anything/app/manifests/v1", s.url()))
        .header("accept", crate::common::OCI_MANIFEST)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let resp = c2
        .get(format!("{}/v2/anything/other/tags/list", s.url()))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    // Its catalog grant lists only what the token may pull.
    push_image(&c, s.url(), "anything/app", "v1", &image);
    let other = json!([{ "type": "repository", "name": "anything/other", "actions": ["push"] }]);
    let pusher = authed_client(&format!("Bearer {}", sign(&pem_key, None, good(other))));
    push_image(&pusher, s.url(), "anything/other", "v1", &image);
    let catalog = json!([
        { "type": "registry", "name": "catalog", "actions": ["*"] },
        { "type": "repository", "name": "anything/app", "actions": ["pull"] },
    ]);
    let lister = authed_client(&format!("Bearer {}", sign(&pem_key, None, good(catalog))));
    let v: serde_json::Value = lister
        .get(format!("{}/v2/_catalog", s.url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["repositories"], json!(["anything/app"]));

    let mut bad = vec![
        (
            "unknown key",
            sign(
                &rcgen::KeyPair::generate().unwrap(),
                None,
                good(push.clone()),
            ),
        ),
        (
            "unknown key with a known kid",
            sign(
                &rcgen::KeyPair::generate().unwrap(),
                Some("key-2"),
                good(push.clone()),
            ),
        ),
    ];
    for (what, field, value) in [
        ("wrong audience", "aud", json!("elsewhere")),
        ("wrong issuer", "iss", json!("someone")),
        ("expired", "exp", json!(now - 3600)),
        ("not yet valid", "nbf", json!(now + 3600)),
    ] {
        let mut c = good(push.clone());
        c[field] = value;
        bad.push((what, sign(&pem_key, None, c)));
    }
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &good(push.clone()),
        &jsonwebtoken::EncodingKey::from_secret(b"guessable"),
    )
    .unwrap();
    bad.push(("HMAC", hs));
    bad.push(("garbage", "not.a.token".into()));
    for (what, token) in bad {
        let resp = authed_client(&format!("Bearer {token}"))
            .get(format!("{}/v2/anything/app/tags/list", s.url()))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{what}");
        let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with(
                "Bearer realm=\"https://auth.example.com/token\",service=\"registry.example.com\""
            ),
            "{what}: {challenge}"
        );
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
    }
    // berth issues no tokens of its own in this setup.
    let resp = client()
        .get(format!("{}/auth/token", s.url()))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
}
