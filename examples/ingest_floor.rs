//! The floor under a push on this machine: the least work any registry
//! must do to take a blob over loopback TCP, with the client on the same
//! machine. A sender thread writes SIZE bytes to a loopback socket; the
//! receiver reads them into reused 256 KiB buffers, hashes them (SHA-256,
//! the same crate berth uses) and writes them to a file in DIR, in the
//! arrangement that measured best (receive and hash on one thread, write on
//! another). No HTTP, no metadata, no fsync: a push cannot be cheaper.
//!
//!     cargo run --release --example ingest_floor -- /dev/shm 1GiB
//!
//! Prints MB/s and the CPU time per byte of the whole process (sender
//! included, as the client's share of the machine is in a real push too).

use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

const CHUNK: usize = 256 << 10;

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

fn parse_size(s: &str) -> Option<usize> {
    let (n, mult) = match s.to_ascii_lowercase() {
        t if t.ends_with("gib") => (t[..t.len() - 3].to_string(), 1 << 30),
        t if t.ends_with("mib") => (t[..t.len() - 3].to_string(), 1 << 20),
        t => (t, 1),
    };
    n.parse::<usize>().ok().map(|n| n * mult)
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).map(String::as_str).unwrap_or("/dev/shm");
    let total = args.get(2).and_then(|s| parse_size(s)).unwrap_or(1 << 30);
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let path = std::path::Path::new(dir).join(format!("ingest-floor-{}", std::process::id()));
    let mut file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;

    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let sender = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let buf = vec![0x5au8; 1 << 20];
        let mut left = total;
        while left > 0 {
            let n = left.min(buf.len());
            s.write_all(&buf[..n]).expect("send");
            left -= n;
        }
    });
    let (mut sock, _) = listener.accept().map_err(|e| e.to_string())?;
    let (full_tx, full_rx) = sync_channel::<Vec<u8>>(4);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(8);
    let writer = std::thread::spawn(move || {
        for buf in full_rx {
            file.write_all(&buf).expect("write");
            let _ = empty_tx.try_send(buf);
        }
    });
    let mut hasher = Sha256::new();
    let mut spare = Vec::new();
    loop {
        while let Ok(b) = empty_rx.try_recv() {
            spare.push(b);
        }
        let mut buf = spare.pop().unwrap_or_default();
        buf.resize(CHUNK, 0);
        let n = sock.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        hasher.update(&buf);
        full_tx.send(buf).map_err(|e| e.to_string())?;
    }
    drop(full_tx);
    writer.join().map_err(|_| "writer panicked")?;
    sender.join().map_err(|_| "sender panicked")?;
    std::hint::black_box(hasher.finalize());
    let (secs, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    let _ = std::fs::remove_file(&path);
    println!(
        "ingest floor: {:.0} MB/s, {:.2} ns of CPU per byte ({total} bytes into {dir})",
        total as f64 / secs / 1e6,
        cpu * 1e9 / total as f64
    );
    Ok(())
}
