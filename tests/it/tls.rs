//! HTTPS with rustls: HTTP/2 by ALPN, and a certificate swapped on SIGHUP
//! without dropping the connections that are open.

use crate::common::{send_signal, wait_for, Berth};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

type Ca = CertifiedIssuer<'static, KeyPair>;

fn ca() -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, "berth test CA");
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

/// A server certificate for 127.0.0.1 named `cn`; returns its DER.
fn issue(ca: &Ca, cn: &str, dir: &Path) -> Vec<u8> {
    let mut p =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, ca).unwrap();
    // Write both, then rename, as a certificate manager would.
    std::fs::write(dir.join("tls.crt.new"), cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key.new"), key.serialize_pem()).unwrap();
    std::fs::rename(dir.join("tls.crt.new"), dir.join("tls.crt")).unwrap();
    std::fs::rename(dir.join("tls.key.new"), dir.join("tls.key")).unwrap();
    cert.der().to_vec()
}

/// A TLS connection to berth (HTTP/1.1), to send requests on.
struct Conn {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl Conn {
    fn open(addr: &str, ca: &Ca) -> Conn {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        Conn {
            tls: rustls::StreamOwned::new(conn, tcp),
        }
    }

    /// `GET /v2/` on this connection; the status code.
    fn get_base(&mut self, addr: &str) -> u16 {
        write!(self.tls, "GET /v2/ HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
        self.tls.flush().unwrap();
        let mut reader = BufReader::new(&mut self.tls);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        status.split(' ').nth(1).unwrap().parse().unwrap()
    }

    fn peer_certificate(&self) -> Vec<u8> {
        self.tls.conn.peer_certificates().unwrap()[0].to_vec()
    }
}

#[test]
fn https_serves_http2_and_reloads_its_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    let first = issue(&ca, "berth-one", dir.path());
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let crt = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    let b = Berth::start_with_args(&[
        "--tls-cert",
        crt.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(b.url.starts_with("https://"), "{}", b.url);

    // curl negotiates HTTP/2 by ALPN and verifies the chain.
    let out = Command::new("curl")
        .args([
            "-sS",
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .arg("--cacert")
        .arg(dir.path().join("ca.pem"))
        .arg(format!("{}/v2/", b.url))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200");

    let mut old = Conn::open(&b.addr, &ca);
    assert_eq!(old.get_base(&b.addr), 200);
    assert_eq!(old.peer_certificate(), first);

    let second = issue(&ca, "berth-two", dir.path());
    send_signal(b.pid().unwrap(), "HUP");
    wait_for(30, "the certificate reload", || {
        b.logs().contains("reloaded the TLS certificate")
    });
    // The open connection goes on, with the certificate it shook hands with.
    assert_eq!(old.get_base(&b.addr), 200);
    assert_eq!(old.peer_certificate(), first);
    // New connections get the new one.
    let mut new = Conn::open(&b.addr, &ca);
    assert_eq!(new.get_base(&b.addr), 200);
    assert_eq!(new.peer_certificate(), second);

    // A broken pair of files is refused on reload; the good one stays.
    std::fs::write(&key, "not a key").unwrap();
    send_signal(b.pid().unwrap(), "HUP");
    wait_for(30, "the failed reload", || {
        b.logs().contains("TLS reload failed")
    });
    let mut after = Conn::open(&b.addr, &ca);
    assert_eq!(after.get_base(&b.addr), 200);
    assert_eq!(after.peer_certificate(), second);
}

#[test]
fn plain_http_speaks_http2_with_prior_knowledge() {
    let b = Berth::start();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .arg(format!("{}/v2/", b.url))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200");
}

#[test]
fn a_missing_or_mismatched_key_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    issue(&ca, "one", dir.path());
    let other = KeyPair::generate().unwrap();
    std::fs::write(dir.path().join("other.key"), other.serialize_pem()).unwrap();
    for (key, expect) in [
        ("missing.key", "reading private key"),
        ("other.key", "does not match"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(dir.path().join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.path().join(key))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{key}: {err}");
    }
}
