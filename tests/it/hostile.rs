//! Hostile input: requests built to break, probe or exhaust the registry.
//! Each gets a clear answer with the spec's error code, and none changes
//! the stored state (every file and every metadata row are compared).

use crate::auth::{authed_client, basic, password, AuthServer};
use crate::common::image::{push_image, random_image};
use crate::common::{
    client, metadata_dump, raw_http, sha256, snapshot, wait_for, Berth, OCI_MANIFEST,
};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

const LIMITS: &str = "[limits]\nmax_header_bytes = 8192\nheader_timeout = \"1s\"\n\
                      body_idle_timeout = \"1s\"\nmax_upload_sessions = 8\n\
                      max_upload_sessions_per_client = 5\n";

type State = (BTreeMap<String, (u64, String)>, String);

/// Every file and every metadata row. The database's own files are left to
/// the dump: a refused upload may open and close a session row, which
/// leaves the rows as they were but the write-ahead log longer.
fn state(b: &Berth) -> State {
    let mut files = snapshot(&b.data_dir);
    files.retain(|k, _| !k.starts_with("metadata.db"));
    (files, metadata_dump(&b.metadata_path()))
}

/// A server with tight limits and one image in `repo`.
fn server() -> Berth {
    let b = Berth::start_with_config(LIMITS, &[]);
    push_image(
        &client(),
        &b.url,
        "repo",
        "v1",
        &random_image(51, 2, 16 << 10),
    );
    b
}

fn code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["errors"][0]["code"].as_str().unwrap_or("").to_string()
}

#[track_caller]
fn expect(
    b: &Berth,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    status: u16,
    error: &str,
) {
    let before = state(b);
    let resp = raw_http(&b.addr, method, target, headers, body);
    assert_eq!(
        (resp.status, code(&resp.body).as_str()),
        (status, error),
        "{method} {target}: {}",
        String::from_utf8_lossy(&resp.body)
    );
    assert!(before == state(b), "{method} {target} changed the store");
}

#[test]
fn path_traversal_in_every_part_of_the_path() {
    let b = server();
    let d = sha256(b"x");
    let mut cases: Vec<(&str, String, &[u8], u16, &str)> = Vec::new();
    let names = [
        "..",
        "a/../b",
        "a/./b",
        "%2e%2e",
        "a%2f..%2f..%2fb",
        "a%00b",
        "UPPER",
        "-a",
        "a//b",
    ];
    for name in names {
        cases.push((
            "GET",
            format!("/v2/{name}/tags/list"),
            b"",
            400,
            "NAME_INVALID",
        ));
        cases.push(("HEAD", format!("/v2/{name}/blobs/{d}"), b"", 400, ""));
        cases.push((
            "POST",
            format!("/v2/{name}/blobs/uploads/"),
            b"",
            400,
            "NAME_INVALID",
        ));
        cases.push((
            "PUT",
            format!("/v2/{name}/manifests/v1"),
            b"{}",
            400,
            "NAME_INVALID",
        ));
    }
    let digests = [
        "sha256:..%2f..%2fmetadata.db",
        "sha256:%2e%2e",
        "sha256:ABCDEF",
        "md5:abc",
        "sha256:",
        ":",
    ];
    for digest in digests {
        cases.push((
            "GET",
            format!("/v2/repo/blobs/{digest}"),
            b"",
            400,
            "DIGEST_INVALID",
        ));
        cases.push((
            "DELETE",
            format!("/v2/repo/blobs/{digest}"),
            b"",
            400,
            "DIGEST_INVALID",
        ));
        let monolithic = format!("/v2/repo/blobs/uploads/?digest={digest}");
        cases.push(("POST", monolithic, b"x", 400, "DIGEST_INVALID"));
    }
    let long_tag = "t".repeat(129);
    for tag in ["..", ".hidden", "-x", long_tag.as_str(), "a%2fb"] {
        cases.push((
            "PUT",
            format!("/v2/repo/manifests/{tag}"),
            b"{}",
            400,
            "MANIFEST_INVALID",
        ));
    }
    for id in ["..", "..%2f..%2fmetadata.db", "%2e%2e%2fx", "x%00"] {
        let path = format!("/v2/repo/blobs/uploads/{id}");
        cases.push(("PATCH", path.clone(), b"abc", 404, "BLOB_UPLOAD_UNKNOWN"));
        cases.push(("DELETE", path, b"", 404, "BLOB_UPLOAD_UNKNOWN"));
    }
    for (method, target, body, status, error) in cases {
        expect(&b, method, &target, &[], body, status, error);
    }
}

#[test]
fn oversized_and_malformed_manifests() {
    let b = server();
    let big = vec![b' '; 5 << 20];
    expect(
        &b,
        "PUT",
        "/v2/repo/manifests/big",
        &[("Content-Type", OCI_MANIFEST)],
        &big,
        413,
        "SIZE_INVALID",
    );
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let not_utf8 = [0xff, 0xfe, b'{', b'}'];
    for body in [
        &b"{"[..],
        b"null",
        b"[]",
        b"{\"schemaVersion\": 2}",
        nested.as_bytes(),
        &not_utf8,
    ] {
        expect(
            &b,
            "PUT",
            "/v2/repo/manifests/bad",
            &[("Content-Type", OCI_MANIFEST)],
            body,
            400,
            "MANIFEST_INVALID",
        );
    }
    // A manifest naming a blob that is not there, by the thousand.
    let layers: Vec<serde_json::Value> = (0..5000)
        .map(|i| serde_json::json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(format!("{i}").as_bytes()), "size": 1 }))
        .collect();
    let m = serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(b"c"), "size": 1 },
        "layers": layers });
    expect(
        &b,
        "PUT",
        "/v2/repo/manifests/many",
        &[("Content-Type", OCI_MANIFEST)],
        m.to_string().as_bytes(),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );
}

#[test]
fn oversized_heads_get_431() {
    let b = server();
    let before = state(&b);
    let long = "x".repeat(20_000);
    let resp = raw_http(
        &b.addr,
        "GET",
        "/v2/repo/tags/list",
        &[("X-Long", &long)],
        b"",
    );
    assert_eq!(resp.status, 431);
    let long_path = format!("/v2/repo/manifests/{}", "a".repeat(20_000));
    assert_eq!(raw_http(&b.addr, "GET", &long_path, &[], b"").status, 431);
    let many: Vec<(String, String)> = (0..500).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(raw_http(&b.addr, "GET", "/v2/", &many, b"").status, 431);
    assert!(before == state(&b));
}

#[test]
fn bad_content_ranges_and_pagination() {
    let b = server();
    let s = client().post(b.v2("repo/blobs/uploads/")).send().unwrap();
    let loc = s.headers()["location"].to_str().unwrap().to_string();
    for range in [
        "abc",
        "5-3",
        "0-18446744073709551615",
        "18446744073709551615-0",
        "-",
        "0-",
        "bytes=0-2",
    ] {
        let before = state(&b);
        let resp = raw_http(&b.addr, "PATCH", &loc, &[("Content-Range", range)], b"abc");
        assert!(
            matches!(resp.status, 400 | 416),
            "Content-Range {range}: {} {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        );
        assert!(
            before == state(&b),
            "Content-Range {range} changed the store"
        );
    }
    for n in ["-1", "abc", "99999999999999999999999", "1e3"] {
        expect(
            &b,
            "GET",
            &format!("/v2/repo/tags/list?n={n}"),
            &[],
            b"",
            400,
            "SIZE_INVALID",
        );
        expect(
            &b,
            "GET",
            &format!("/v2/_catalog?n={n}"),
            &[],
            b"",
            400,
            "SIZE_INVALID",
        );
    }
}

/// A body shorter than its Content-Length (the client goes away), and one
/// longer than it (the rest is not part of the request).
#[test]
fn wrong_content_length_stores_nothing() {
    let b = server();
    let before = state(&b);
    let full = vec![7u8; 1000];
    let mut s = TcpStream::connect(&b.addr).unwrap();
    write!(
        s,
        "POST /v2/repo/blobs/uploads/?digest={} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n",
        sha256(&full)
    )
    .unwrap();
    s.write_all(&full[..10]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 400"),
        "{text}"
    );
    wait_for(10, "staging of the aborted upload to go", || {
        before == state(&b)
    });

    // Declared 5, sent 10: the 5 do not hash to the digest of all 10, and
    // the other 5 are not a request.
    let ten = b"helloworld";
    let mut s = TcpStream::connect(&b.addr).unwrap();
    write!(
        s,
        "POST /v2/repo/blobs/uploads/?digest={} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
        sha256(ten)
    )
    .unwrap();
    s.write_all(ten).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("DIGEST_INVALID"), "{text}");
    // Two different lengths in one request are refused outright.
    let resp = raw_http(
        &b.addr,
        "POST",
        &format!("/v2/repo/blobs/uploads/?digest={}", sha256(ten)),
        &[("Content-Length", "5")],
        ten,
    );
    assert_eq!(resp.status, 400);
    wait_for(10, "staging of the refused uploads to go", || {
        before == state(&b)
    });
}

/// A chunked PATCH (no Content-Length) whose body is longer or shorter
/// than its Content-Range says is refused and stores none of it; the
/// session still ends where it did, and a right chunk then goes in.
#[test]
fn chunked_body_must_fill_its_content_range() {
    let b = server();
    let c = client();
    let s = c.post(b.v2("repo/blobs/uploads/")).send().unwrap();
    let loc = s.headers()["location"].to_str().unwrap().to_string();
    let chunked = |range: &str, body: Vec<u8>| {
        let len = body.len();
        client()
            .patch(format!("{}{loc}", b.url))
            .header("content-range", range)
            .header("content-type", "application/octet-stream")
            // A reader of unknown length: sent with Transfer-Encoding: chunked.
            .body(reqwest::blocking::Body::new(std::io::Cursor::new(body)))
            .send()
            .map(|r| (r.status().as_u16(), len))
            .unwrap()
    };
    for (range, body) in [("0-9", vec![1u8; 50_000]), ("0-9", vec![1u8; 4])] {
        let (status, len) = chunked(range, body);
        assert!(
            (400..500).contains(&status),
            "{range} with {len} bytes: {status}"
        );
        // A fresh client: the refused request's connection is closed.
        let st = client().get(format!("{}{loc}", b.url)).send().unwrap();
        assert_eq!(st.status().as_u16(), 204);
        assert_eq!(st.headers()["range"], "0-0", "{range} with {len} bytes");
    }
    assert_eq!(chunked("0-9", vec![1u8; 10]).0, 202);
    let st = client().get(format!("{}{loc}", b.url)).send().unwrap();
    assert_eq!(st.headers()["range"], "0-9");
}

/// A body that stops sending fails after the idle timeout; the session is
/// left as it was and can be resumed.
#[test]
fn a_body_that_never_ends_times_out() {
    let b = server();
    let c = client();
    let s = c.post(b.v2("repo/blobs/uploads/")).send().unwrap();
    let loc = s.headers()["location"].to_str().unwrap().to_string();
    let meta_before = metadata_dump(&b.metadata_path());
    let mut conn = TcpStream::connect(&b.addr).unwrap();
    write!(
        conn,
        "PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n"
    )
    .unwrap();
    conn.write_all(&[1u8; 100]).unwrap();
    // ...and then nothing, with the connection held open.
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut answer = [0u8; 4096];
    let n = conn.read(&mut answer).unwrap_or(0);
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("BLOB_UPLOAD_INVALID"), "{text}");
    assert_eq!(meta_before, metadata_dump(&b.metadata_path()));
    // The session holds nothing and still works.
    let st = c.get(format!("{}{loc}", b.url)).send().unwrap();
    assert_eq!(st.status().as_u16(), 204);
    assert_eq!(st.headers()["range"], "0-0");
    let bytes = b"finally".to_vec();
    let done = c
        .put(format!("{}{loc}?digest={}", b.url, sha256(&bytes)))
        .body(bytes)
        .send()
        .unwrap();
    assert_eq!(done.status().as_u16(), 201);
}

/// Slow-loris: connections that never finish their headers are closed
/// after the header timeout, and do not keep others from being served.
#[test]
fn slow_headers_are_cut_off() {
    let b = server();
    let mut slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(&b.addr).unwrap();
            s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    assert_eq!(
        client().get(b.v2("")).send().unwrap().status().as_u16(),
        200
    );
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 512];
        // Closed by the server (EOF, or a 408 and then EOF), not left hanging.
        match s.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => assert!(
                String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
                "{:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
    }
}

/// Silent connections: one that never sends a byte, one that sends only
/// the HTTP/2 preface, and a kept-alive one idle after its request, are
/// all closed about the header timeout (1 s here) later, so a client that
/// opens `max_connections` sockets and says nothing cannot lock others
/// out.
#[test]
fn silent_connections_are_closed() {
    let b = Berth::start_with_config(&format!("{LIMITS}max_connections = 4\n"), &[]);
    let started = std::time::Instant::now();
    let mut silent: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(&b.addr).unwrap())
        .collect();
    let mut preface = TcpStream::connect(&b.addr).unwrap();
    preface
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .unwrap();
    silent.push(preface);
    for s in &mut silent {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 256];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                // HTTP/2 settings or a GOAWAY before the close.
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("still open after {:?}: {e}", started.elapsed()),
            }
        }
    }
    assert!(started.elapsed() < Duration::from_secs(15));
    // The slots are free again, and an idle keep-alive goes the same way.
    let mut kept = TcpStream::connect(&b.addr).unwrap();
    kept.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let idle = std::time::Instant::now();
    loop {
        match kept.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("idle keep-alive still open after {:?}: {e}", idle.elapsed()),
        }
    }
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(idle.elapsed() < Duration::from_secs(15));
}

/// Upload sessions are capped per client and in all: a client cannot
/// exhaust the registry by opening sessions and walking away.
#[test]
fn upload_sessions_are_capped() {
    let s = AuthServer::start_with("basic", LIMITS, &[]);
    let alice = authed_client(&basic("alice", password("alice")));
    let admin = authed_client(&basic("admin", password("admin")));
    let open = |c: &reqwest::blocking::Client, repo: &str| {
        let resp = c
            .post(format!("{}/v2/{repo}/blobs/uploads/", s.url()))
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        let v: serde_json::Value = resp.json().unwrap_or_default();
        let code = v["errors"][0]["code"].as_str().unwrap_or("").to_string();
        (status, code, location)
    };
    let mut alices = Vec::new();
    for _ in 0..5 {
        let (status, _, location) = open(&alice, "team/app");
        assert_eq!(status, 202);
        alices.push(location.unwrap());
    }
    let (status, code, _) = open(&alice, "team/app");
    assert_eq!((status, code.as_str()), (429, "TOOMANYREQUESTS"));
    for _ in 0..3 {
        assert_eq!(open(&admin, "secret/app").0, 202);
    }
    // Eight open: the registry-wide cap holds for everyone.
    let (status, code, _) = open(&admin, "secret/app");
    assert_eq!((status, code.as_str()), (429, "TOOMANYREQUESTS"));
    // A monolithic push is a session while it streams: it counts too.
    let bytes = b"one shot".to_vec();
    let monolithic = || {
        alice
            .post(format!(
                "{}/v2/team/app/blobs/uploads/?digest={}",
                s.url(),
                sha256(&bytes)
            ))
            .body(bytes.clone())
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(monolithic(), 429);
    // Cancelling a session makes room again.
    let cancelled = alice
        .delete(format!("{}{}", s.url(), alices[0]))
        .send()
        .unwrap();
    assert_eq!(cancelled.status().as_u16(), 204);
    assert_eq!(monolithic(), 201);
    assert_eq!(monolithic(), 201);
}
