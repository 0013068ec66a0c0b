//! Streaming bytes into an upload's staging object while hashing them.
//!
//! Each session keeps its running hash in memory so a chunked push is hashed
//! exactly once. After a restart (or for a sha512 digest) the staged bytes are
//! re-read and hashed instead, so a session opened before a restart can still
//! be finished.

use super::digest::{Algorithm, Digest, Hasher};
use super::error::{Error, Result};
use crate::storage::BlobStore;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// A request body, as the core sees it.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

/// The running hash of a session's first `offset` staged bytes.
#[derive(Clone)]
pub(crate) struct HashState {
    pub offset: u64,
    pub hasher: Hasher,
}

/// One session's in-memory state: the lock that orders its requests, and
/// its running hash.
pub(crate) type Slot = tokio::sync::Mutex<Option<HashState>>;

/// Idle slots kept before the idle ones are dropped; see [`Sessions::slot`].
const KEEP_SLOTS: usize = 1024;
/// How long a slot nobody uses is kept past [`KEEP_SLOTS`].
const IDLE_SLOT: Duration = Duration::from_secs(600);
/// Idle slots are looked for at most this often, so a new session does not
/// pay for a walk over every slot (the walk is O(slots)).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Per-session state held in memory: a lock that orders requests on the same
/// session, and its running hash. Sessions of different uploads never share
/// a lock. The map is a cache over the metadata: callers look a session up
/// before asking for its slot (so unknown ids add nothing), and forget it
/// once its metadata is gone. Sessions that simply stop (abandoned, then
/// expired by the collector) are dropped when idle: losing the running hash
/// of a live one costs a re-hash of its staged bytes, never correctness.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<SlotMap>,
}

#[derive(Default)]
struct SlotMap {
    slots: HashMap<String, (Arc<Slot>, Instant)>,
    last_sweep: Option<Instant>,
}

impl Sessions {
    pub fn slot(&self, id: &str) -> Arc<Slot> {
        self.slot_at(id, Instant::now())
    }

    fn slot_at(&self, id: &str, now: Instant) -> Arc<Slot> {
        let mut guard = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let map = &mut *guard;
        let due = map
            .last_sweep
            .is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_EVERY);
        if due && map.slots.len() >= KEEP_SLOTS && !map.slots.contains_key(id) {
            // Only the map holds an idle slot, so nobody holds or waits
            // for its lock, and dropping it cannot let two requests in.
            map.slots.retain(|_, (slot, used)| {
                Arc::strong_count(slot) > 1 || now.saturating_duration_since(*used) < IDLE_SLOT
            });
            map.last_sweep = Some(now);
        }
        let entry = map
            .slots
            .entry(id.to_owned())
            .or_insert_with(|| (Arc::default(), now));
        entry.1 = now;
        entry.0.clone()
    }

    /// Drop a session's slot. Only once its metadata is gone: a request
    /// that then makes a new slot finds the session closed.
    pub fn forget(&self, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.slots.remove(id);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .slots
            .len()
    }
}

/// Stream `body` into staging at `offset`, hashing as it goes. Returns the
/// new size and hash; the bytes are durable when it returns.
pub(crate) async fn append(
    store: &dyn BlobStore,
    id: &str,
    offset: u64,
    state: Option<HashState>,
    mut body: ByteStream,
    max_size: u64,
) -> Result<HashState> {
    let mut state = match state {
        Some(s) if s.offset == offset => s,
        _ => rehash(store, id, offset, Algorithm::Sha256).await?,
    };
    let mut writer = store
        .staging_writer(id, offset)
        .await
        .map_err(|e| Error::internal("opening upload staging", e))?;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            Error::new(
                super::error::Code::BlobUploadInvalid,
                format!("reading request body: {e}"),
            )
        })?;
        state.offset += chunk.len() as u64;
        if state.offset > max_size {
            return Err(Error::new(
                super::error::Code::TooLarge,
                format!("blob exceeds the {max_size}-byte limit"),
            ));
        }
        state.hasher.update(&chunk);
        writer
            .write(chunk)
            .await
            .map_err(|e| Error::internal("writing upload staging", e))?;
    }
    writer
        .finish()
        .await
        .map_err(|e| Error::internal("syncing upload staging", e))?;
    Ok(state)
}

/// Hash the first `len` staged bytes of an upload with `algorithm`.
pub(crate) async fn rehash(
    store: &dyn BlobStore,
    id: &str,
    len: u64,
    algorithm: Algorithm,
) -> Result<HashState> {
    let mut hasher = algorithm.hasher();
    if len > 0 {
        let reader = store
            .staging_reader(id)
            .await
            .map_err(|e| Error::internal("reading upload staging", e))?;
        let mut reader = reader.take(len);
        let mut buf = vec![0u8; 1 << 20];
        let mut seen = 0u64;
        loop {
            let n = reader
                .read(&mut buf)
                .await
                .map_err(|e| Error::internal("reading upload staging", e))?;
            if n == 0 {
                break;
            }
            seen += n as u64;
            hasher.update(&buf[..n]);
        }
        if seen != len {
            return Err(Error::internal(
                "upload staging",
                format!("staging for {id} holds {seen} of {len} acknowledged bytes"),
            ));
        }
    }
    Ok(HashState {
        offset: len,
        hasher,
    })
}

/// The digest of a session's bytes with `algorithm`, reusing the running
/// hash when it is of that algorithm.
pub(crate) async fn final_digest(
    store: &dyn BlobStore,
    id: &str,
    state: HashState,
    algorithm: Algorithm,
) -> Result<Digest> {
    let state = if state.hasher.algorithm() == algorithm {
        state
    } else {
        rehash(store, id, state.offset, algorithm).await?
    };
    Ok(state.hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Abandoned sessions do not pile up: past [`KEEP_SLOTS`], slots idle
    /// for [`IDLE_SLOT`] go, while a slot in use (locked or waited for)
    /// and recently used ones stay.
    #[test]
    fn idle_slots_are_dropped() {
        let s = Sessions::default();
        let t0 = Instant::now();
        for i in 0..KEEP_SLOTS {
            drop(s.slot_at(&format!("old{i}"), t0));
        }
        let held = s.slot_at("held", t0);
        assert_eq!(s.len(), KEEP_SLOTS + 1);
        let later = t0 + IDLE_SLOT + Duration::from_secs(1);
        drop(s.slot_at("recent", later - Duration::from_secs(1)));
        let _new = s.slot_at("new", later);
        assert_eq!(s.len(), 3, "idle slots were kept");
        assert!(Arc::ptr_eq(&held, &s.slot_at("held", later)));
    }
}
