//! Password guessing is slowed and then refused; secrets never reach the
//! log.

use super::{authed_client, basic, password, AuthServer};
use crate::common::client;

#[test]
fn failed_logins_are_throttled_per_address_and_user() {
    let s = AuthServer::start_with(
        "basic",
        "[auth.login]\nmax_failures = 3\nwindow = \"10m\"\nfailure_delay = \"10ms\"\n",
        &[],
    );
    let wrong = authed_client(&basic("alice", "guess"));
    for _ in 0..3 {
        let resp = wrong.get(format!("{}/v2/", s.url())).send().unwrap();
        assert_eq!(resp.status().as_u16(), 401);
    }
    // Locked out now, even with the right password (the guesser must not
    // learn when it guessed right), with a Retry-After.
    let right = authed_client(&basic("alice", password("alice")));
    let resp = right.get(format!("{}/v2/", s.url())).send().unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 600, "{retry}");
    let v: serde_json::Value = resp.json().unwrap();
    assert_eq!(v["errors"][0]["code"], "TOOMANYREQUESTS");
    // The token endpoint shares the limit.
    let resp = client()
        .get(format!("{}/auth/token", s.url()))
        .basic_auth("bob", Some(password("bob")))
        .send()
        .unwrap();
    assert!(matches!(resp.status().as_u16(), 404 | 429));
}

/// A burst of concurrent guesses gets no more checks than the limit:
/// checks still running count against it, not only failures already seen.
#[test]
fn concurrent_guesses_get_no_more_than_the_limit() {
    let s = AuthServer::start_with(
        "basic",
        "[auth.login]\nmax_failures = 5\nwindow = \"10m\"\nfailure_delay = \"200ms\"\n",
        &[],
    );
    let url = format!("{}/v2/", s.url());
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..30)
            .map(|i| {
                let url = url.clone();
                scope.spawn(move || {
                    authed_client(&basic("alice", &format!("guess-{i}")))
                        .get(url)
                        .send()
                        .unwrap()
                        .status()
                        .as_u16()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let checked = statuses.iter().filter(|&&s| s == 401).count();
    let refused = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!(checked + refused, 30, "{statuses:?}");
    assert!(checked <= 5, "{checked} guesses were checked: {statuses:?}");
}

#[test]
fn a_login_verified_once_is_not_throttled_by_later_failures_of_others() {
    let s = AuthServer::start_with(
        "basic",
        "[auth.login]\nmax_failures = 2\nwindow = \"10m\"\nfailure_delay = \"10ms\"\n",
        &[],
    );
    // alice logs in, then someone at the same address guesses at bob.
    let alice = authed_client(&basic("alice", password("alice")));
    assert_eq!(
        alice
            .get(format!("{}/v2/", s.url()))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let guesser = authed_client(&basic("bob", "guess"));
    for _ in 0..3 {
        guesser.get(format!("{}/v2/", s.url())).send().unwrap();
    }
    // alice's verified password is remembered: her requests go on.
    assert_eq!(
        alice
            .get(format!("{}/v2/", s.url()))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}

/// Passwords, Authorization headers and tokens appear nowhere in the log,
/// even at trace level.
#[test]
fn secrets_never_reach_the_log() {
    for mode in ["basic", "token"] {
        let s = AuthServer::start_with(mode, "", &["--log-level", "trace"]);
        let token = if mode == "token" {
            Some(s.token(Some("alice"), &["repository:team/app:pull,push"]))
        } else {
            None
        };
        let c = s.client_as("alice", &["repository:team/app:pull,push"]);
        let image = crate::common::image::random_image(41, 1, 4 << 10);
        crate::common::image::push_image(&c, s.url(), "team/app", "v1", &image);
        authed_client(&basic("alice", "a-wrong-secret-guess"))
            .get(format!("{}/v2/", s.url()))
            .send()
            .unwrap();
        client()
            .post(format!("{}/auth/token", s.url()))
            .body(format!(
                "grant_type=password&username=alice&password={}&scope=repository%3Ateam%2Fapp%3Apull",
                password("alice")
            ))
            .send()
            .unwrap();
        // Log lines are written in batches: wait for the last request's.
        crate::common::wait_for(30, "the token request's log line", || {
            s.berth.logs().contains("path=\"/auth/token\"")
        });
        let logs = s.berth.logs();
        let header = basic("alice", password("alice"));
        let mut secrets = vec![
            password("alice").to_string(),
            "a-wrong-secret-guess".to_string(),
            header.trim_start_matches("Basic ").to_string(),
        ];
        if let Some(t) = token {
            secrets.push(t.clone());
            // Even a piece of the signature.
            secrets.push(t.rsplit('.').next().unwrap()[..20].to_string());
        }
        for secret in secrets {
            assert!(
                !logs.contains(&secret),
                "{mode}: the log holds a secret: {secret}"
            );
        }
    }
}
