//! The machine's own ceilings, measured in-process on one core: how fast it
//! hashes SHA-256 (every byte a registry accepts is hashed once) and copies
//! memory. A registry pushing near the first number is CPU-bound on hashing.

use super::data::SplitMix;
use super::report::Limits;
use sha2::{Digest as _, Sha256};
use std::hint::black_box;
use std::time::{Duration, Instant};

pub fn measure(each: Duration) -> Limits {
    Limits {
        sha256_mb_s: sha256_mb_s(each),
        memcpy_mb_s: memcpy_mb_s(each),
    }
}

/// SHA-256 throughput of one core over 1 MiB updates.
pub fn sha256_mb_s(time: Duration) -> f64 {
    let mut buf = vec![0u8; 1 << 20];
    SplitMix(1).fill(&mut buf);
    let mut h = Sha256::new();
    let start = Instant::now();
    let mut bytes = 0u64;
    while start.elapsed() < time {
        h.update(black_box(&buf));
        bytes += buf.len() as u64;
    }
    black_box(h.finalize());
    bytes as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// Copy throughput of one core between two 32 MiB buffers (larger than the
/// caches), counting bytes copied.
pub fn memcpy_mb_s(time: Duration) -> f64 {
    const LEN: usize = 32 << 20;
    let mut src = vec![0u8; LEN];
    SplitMix(2).fill(&mut src);
    let mut dst = vec![0u8; LEN];
    // Touch the destination first so page faults are not measured.
    dst.copy_from_slice(&src);
    let start = Instant::now();
    let mut bytes = 0u64;
    while start.elapsed() < time {
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
        bytes += LEN as u64;
    }
    bytes as f64 / start.elapsed().as_secs_f64() / 1e6
}

#[cfg(test)]
mod tests {
    #[test]
    fn rates_are_positive() {
        let t = std::time::Duration::from_millis(20);
        assert!(super::sha256_mb_s(t) > 0.0);
        assert!(super::memcpy_mb_s(t) > 0.0);
    }
}
