//! The floor under a push on this machine: the CPU work no registry can
//! avoid to take a blob over loopback TCP from a client on the same
//! machine, measured piece by piece, each in a tight loop with reused
//! buffers:
//!
//! - tcp: a sender thread writes SIZE bytes to a loopback socket and the
//!   receiver reads them (the kernel's copies and TCP work on both ends);
//! - sha256: hashing SIZE bytes (the crate berth uses);
//! - write: writing SIZE bytes to a new file in DIR (the page-cache copy;
//!   no fsync).
//!
//!     cargo run --release --example ingest_floor -- /dev/shm 1GiB
//!
//! Prints each in ns of CPU per byte (the least of three runs), their sum,
//! and the ceiling it implies with every core perfectly busy: no push,
//! client included, can beat it.
//! Compare a registry's push with `berth bench --server-pid`: its server
//! plus client CPU per byte against the sum.

use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

const BUF: usize = 1 << 20;

/// CPU seconds of this process so far (all threads).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    rest.split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<f64>().ok())
        .sum::<f64>()
        / 100.0
}

/// CPU ns per byte of `f` moving `total` bytes: the least of three runs,
/// since anything else on the machine only ever adds to it.
fn per_byte(total: usize, f: impl Fn() -> Result<(), String>) -> Result<f64, String> {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let cpu = cpu_seconds();
        f()?;
        best = best.min(cpu_seconds() - cpu);
    }
    // CPU time comes in 10 ms ticks: never report zero.
    Ok(best.max(0.01) * 1e9 / total as f64)
}

fn tcp(total: usize) -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        let buf = vec![0x5au8; BUF];
        let mut left = total;
        while left > 0 {
            let n = left.min(BUF);
            s.write_all(&buf[..n])?;
            left -= n;
        }
        Ok(())
    });
    let (mut sock, _) = listener.accept().map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; BUF];
    while sock.read(&mut buf).map_err(|e| e.to_string())? > 0 {}
    sender
        .join()
        .map_err(|_| "sender panicked")?
        .map_err(|e| e.to_string())
}

fn sha256(total: usize) -> Result<(), String> {
    let buf = vec![0x5au8; BUF];
    let mut h = Sha256::new();
    for _ in 0..total / BUF {
        h.update(&buf);
    }
    std::hint::black_box(h.finalize());
    Ok(())
}

fn write(dir: &str, total: usize) -> Result<(), String> {
    let path = std::path::Path::new(dir).join(format!("ingest-floor-{}", std::process::id()));
    let mut f = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let buf = vec![0x5au8; BUF];
    let written = (0..total / BUF).try_for_each(|_| f.write_all(&buf));
    drop(f);
    let _ = std::fs::remove_file(&path);
    written.map_err(|e| e.to_string())
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).map(String::as_str).unwrap_or("/dev/shm");
    let size = args.get(2).map(String::as_str).unwrap_or("1GiB");
    let total = match size.to_ascii_lowercase() {
        s if s.ends_with("gib") => s[..s.len() - 3].parse::<usize>().ok().map(|n| n << 30),
        s if s.ends_with("mib") => s[..s.len() - 3].parse::<usize>().ok().map(|n| n << 20),
        s => s.parse().ok(),
    }
    .filter(|&n| n >= BUF)
    .ok_or_else(|| format!("bad size {size:?} (e.g. 1GiB, at least 1MiB)"))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tcp = per_byte(total, || tcp(total))?;
    let sha = per_byte(total, || sha256(total))?;
    let wr = per_byte(total, || write(dir, total))?;
    let sum = tcp + sha + wr;
    println!(
        "ingest floor: tcp {tcp:.2} + sha256 {sha:.2} + write {wr:.2} = {sum:.2} ns of CPU per byte; \
         ceiling {:.0} MB/s on {cores} cores",
        cores as f64 / sum * 1e3
    );
    Ok(())
}
