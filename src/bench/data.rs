//! Blob contents for the benchmark: distinct, random-looking, never held in
//! memory whole, and with digests that cost almost nothing to compute.
//!
//! Every blob of a run is `prefix(size - TAIL) ++ tail(index)`: the prefix is
//! one 1 MiB pseudo-random pattern repeated, the same for every blob of that
//! size; the tail is a few bytes unique to the blob. The SHA-256 state after
//! the prefix is computed once per size and cloned, so the digest of each new
//! blob costs a hash of its tail only. Bodies are streamed as slices of the
//! shared pattern (`Bytes` clones, no copying), so the client spends its CPU
//! on the network, not on making data. The pattern is seeded per run, so
//! blobs never repeat across runs either.
//!
//! A registry that deduplicated below the blob level (or compressed) would
//! find the repeated pattern; the registries this compares do neither.

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

/// Length of the repeated pattern and the largest frame a body yields.
pub const PATTERN_LEN: usize = 1 << 20;
/// Bytes at the end of each blob that make it unique.
pub const TAIL_LEN: u64 = 32;

/// splitmix64: a tiny, fast, good-enough generator (no `rand` dependency).
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The source of every blob in one run.
pub struct Corpus {
    pattern: Bytes,
    seed: u64,
    /// SHA-256 state after the shared prefix, by prefix length.
    prefix_states: Mutex<HashMap<u64, Sha256>>,
}

/// One blob: its size, digest, and how to produce its bytes.
#[derive(Clone)]
pub struct Blob {
    pub size: u64,
    pub digest: String,
    prefix_len: u64,
    tail: Bytes,
    pattern: Bytes,
}

impl Corpus {
    pub fn new(seed: u64) -> Corpus {
        let mut pattern = vec![0u8; PATTERN_LEN];
        SplitMix(seed).fill(&mut pattern);
        Corpus {
            pattern: Bytes::from(pattern),
            seed,
            prefix_states: Mutex::new(HashMap::new()),
        }
    }

    /// Blob number `index` of `size` bytes. The first call for a size hashes
    /// the shared prefix (about a second per GiB); later calls are cheap.
    pub fn blob(&self, size: u64, index: u64) -> Blob {
        let prefix_len = size.saturating_sub(TAIL_LEN);
        let mut tail = vec![0u8; (size - prefix_len) as usize];
        SplitMix(self.seed ^ index.wrapping_mul(0xA076_1D64_78BD_642F) ^ size.rotate_left(17))
            .fill(&mut tail);
        // Make the index visible too, so two blobs can never share a tail.
        let tag = index.to_le_bytes();
        let n = tail.len().min(tag.len());
        tail[..n].copy_from_slice(&tag[..n]);
        let mut state = self.prefix_state(prefix_len);
        state.update(&tail);
        Blob {
            size,
            digest: format!("sha256:{}", hex::encode(state.finalize())),
            prefix_len,
            tail: Bytes::from(tail),
            pattern: self.pattern.clone(),
        }
    }

    /// Hash the shared prefix of `size`-byte blobs now, so that the first
    /// timed operation does not pay for it.
    pub fn warm(&self, size: u64) {
        self.prefix_state(size.saturating_sub(TAIL_LEN));
    }

    fn prefix_state(&self, prefix_len: u64) -> Sha256 {
        if let Some(s) = self.prefix_states.lock().unwrap().get(&prefix_len) {
            return s.clone();
        }
        let mut state = Sha256::new();
        let mut left = prefix_len;
        while left > 0 {
            let n = left.min(PATTERN_LEN as u64) as usize;
            state.update(&self.pattern[..n]);
            left -= n as u64;
        }
        self.prefix_states
            .lock()
            .unwrap()
            .insert(prefix_len, state.clone());
        state
    }
}

impl Blob {
    /// The bytes `start..end` as a streaming body.
    pub fn body(&self, start: u64, end: u64) -> BlobBody {
        assert!(start <= end && end <= self.size);
        BlobBody {
            blob: self.clone(),
            pos: start,
            end,
        }
    }

    /// The next piece of the blob starting at `pos`, at most `max` bytes,
    /// without copying the pattern.
    fn piece(&self, pos: u64, max: u64) -> Bytes {
        if pos < self.prefix_len {
            let off = (pos % PATTERN_LEN as u64) as usize;
            let n = (PATTERN_LEN - off)
                .min((self.prefix_len - pos) as usize)
                .min(max as usize);
            self.pattern.slice(off..off + n)
        } else {
            let off = (pos - self.prefix_len) as usize;
            let n = (self.tail.len() - off).min(max as usize);
            self.tail.slice(off..off + n)
        }
    }

    /// The whole blob in memory (tests and small blobs only).
    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size as usize);
        let mut pos = 0;
        while pos < self.size {
            let p = self.piece(pos, u64::MAX);
            pos += p.len() as u64;
            out.extend_from_slice(&p);
        }
        out
    }
}

/// A range of a [`Blob`] as an HTTP body with an exact length.
pub struct BlobBody {
    blob: Blob,
    pos: u64,
    end: u64,
}

impl Body for BlobBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.pos >= self.end {
            return Poll::Ready(None);
        }
        let piece = self.blob.piece(self.pos, self.end - self.pos);
        self.pos += piece.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end - self.pos)
    }
}

/// Request bodies the benchmark sends.
pub enum ReqBody {
    Empty,
    Full(Bytes),
    Blob(BlobBody),
}

impl ReqBody {
    pub fn len(&self) -> u64 {
        match self {
            ReqBody::Empty => 0,
            ReqBody::Full(b) => b.len() as u64,
            ReqBody::Blob(b) => b.end - b.pos,
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Full(b) => {
                if b.is_empty() {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Ok(Frame::data(std::mem::take(b)))))
                }
            }
            ReqBody::Blob(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.len() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    #[test]
    fn digest_matches_the_bytes() {
        let c = Corpus::new(7);
        for size in [0, 1, 31, 32, 33, 100, PATTERN_LEN as u64 + 5, 3 << 20] {
            let b = c.blob(size, 3);
            let bytes = b.to_vec();
            assert_eq!(bytes.len() as u64, size);
            assert_eq!(b.digest, sha(&bytes), "size {size}");
        }
    }

    #[test]
    fn blobs_are_distinct() {
        let c = Corpus::new(1);
        let a = c.blob(1000, 0);
        let b = c.blob(1000, 1);
        assert_ne!(a.digest, b.digest);
        assert_ne!(Corpus::new(2).blob(1000, 0).digest, a.digest);
    }

    #[test]
    fn ranges_concatenate_to_the_blob() {
        use http_body_util::BodyExt;
        let c = Corpus::new(9);
        let b = c.blob((2 << 20) + 77, 5);
        let whole = b.to_vec();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut joined = Vec::new();
        let mut start = 0;
        while start < b.size {
            let end = (start + 700_001).min(b.size);
            let body = ReqBody::Blob(b.body(start, end));
            assert_eq!(body.size_hint().exact(), Some(end - start));
            let got = rt.block_on(body.collect()).unwrap().to_bytes();
            assert_eq!(got.len() as u64, end - start);
            joined.extend_from_slice(&got);
            start = end;
        }
        assert_eq!(joined, whole);
    }
}
