//! The local filesystem blob store: `blobs/<alg>/<first two hex>/<hex>.<suffix>`
//! for content, `uploads/<id>` for staging. Content files are written only by
//! renaming a fully written, fsynced staging file into place, so a reader never
//! sees a partial blob and a crash never leaves one under a digest's name.

use super::{BlobKey, BlobRead, BlobStore, BoxRead, StagingWriter, StoredObject};
use crate::core::digest::Digest;
use async_trait::async_trait;
use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::fs::{self, File};

/// Bytes per body chunk when serving a blob: one mapped window, sent as it
/// is. Large enough that per-chunk costs (a map, an unmap, a hand-off) are
/// noise next to copying the bytes; small enough that a connection holds
/// little memory.
const WINDOW: u64 = 1 << 20;

/// Serve `len` bytes of `file` (of `file_len` bytes) from `start`, as
/// memory-mapped windows (see `mmap`): the bytes go from the page cache to
/// the socket with one copy, and no buffer is allocated or zeroed per chunk.
/// Each window is mapped and faulted in on the blocking pool, so disk reads
/// never block an async thread, one window ahead of the connection: a
/// connection holds at most two windows, and nothing more is mapped once
/// the body is dropped (a client that disconnects).
fn map_chunks(file: std::fs::File, file_len: u64, start: u64, len: u64) -> super::ChunkStream {
    type Next = tokio::task::JoinHandle<io::Result<bytes::Bytes>>;
    let src = std::sync::Arc::new(WindowSource {
        file,
        file_len,
        end: start + len,
        read_instead: std::sync::atomic::AtomicBool::new(false),
    });
    let fetch = |src: &std::sync::Arc<WindowSource>, pos: u64| -> Option<Next> {
        let src = src.clone();
        (pos < src.end).then(|| tokio::task::spawn_blocking(move || src.window(pos)))
    };
    let first = fetch(&src, start);
    Box::pin(futures_util::stream::unfold(
        (src, start, first),
        move |(src, pos, next)| async move {
            let chunk = match next?.await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Some((Err(e), (src, pos, None))),
                Err(e) => return Some((Err(io::Error::other(e)), (src, pos, None))),
            };
            let pos = pos + chunk.len() as u64;
            let ahead = fetch(&src, pos);
            Some((Ok(chunk), (src, pos, ahead)))
        },
    ))
}

/// Where [`map_chunks`] takes its windows from.
struct WindowSource {
    file: std::fs::File,
    file_len: u64,
    end: u64,
    /// Set when the file cannot be mapped (a filesystem without mmap, or
    /// no address space left): windows are then read into buffers.
    read_instead: std::sync::atomic::AtomicBool,
}

impl WindowSource {
    /// The window starting at `pos`, ready to send. Windows end on
    /// [`WINDOW`] boundaries of the file, so all but the first start
    /// page-aligned.
    fn window(&self, pos: u64) -> io::Result<bytes::Bytes> {
        use std::sync::atomic::Ordering::Relaxed;
        let n = (WINDOW - pos % WINDOW).min(self.end - pos) as usize;
        if !self.read_instead.load(Relaxed) {
            match super::mmap::Window::map(&self.file, self.file_len, pos, n) {
                Ok(w) => {
                    w.populate();
                    return Ok(bytes::Bytes::from_owner(w));
                }
                Err(_) => self.read_instead.store(true, Relaxed),
            }
        }
        use std::os::unix::fs::FileExt;
        let mut buf = bytes::BytesMut::zeroed(n);
        self.file.read_exact_at(&mut buf, pos)?;
        Ok(buf.freeze())
    }
}

/// Staging writes go through a bounded queue to one blocking thread per
/// upload: this many chunks (hyper's, up to a few hundred KiB each) may
/// wait, which keeps the disk busy while the request task hashes the next.
const WRITE_QUEUE: usize = 4;

/// Ask the kernel to start writing back every this many bytes, so the
/// final fsync waits for the tail of the upload, not all of it.
const WRITEBACK_EVERY: u64 = 8 << 20;

pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// Use `root` (created if missing) for `blobs/` and `uploads/`.
    pub fn open(root: &Path) -> io::Result<FsBlobStore> {
        for dir in ["blobs", "uploads"] {
            let dir = root.join(dir);
            if !dir.is_dir() {
                std::fs::create_dir_all(&dir)?;
                std::fs::File::open(root)?.sync_all()?;
            }
        }
        Ok(FsBlobStore {
            root: root.to_owned(),
        })
    }

    /// Path of a key's content. Keys are validated (see [`BlobKey::parse`]),
    /// so the path cannot leave `blobs/`.
    pub fn blob_path(&self, key: &BlobKey) -> PathBuf {
        let mut parts = key.as_str().splitn(3, '/');
        let alg = parts.next().unwrap_or_default();
        let hex = parts.next().unwrap_or_default();
        let suffix = parts.next().unwrap_or_default();
        self.root
            .join("blobs")
            .join(alg)
            .join(hex.get(..2).unwrap_or_default())
            .join(format!("{hex}.{suffix}"))
    }

    fn staging_path(&self, upload: &str) -> io::Result<PathBuf> {
        // Upload ids are generated by us; refuse anything else outright.
        if upload.is_empty()
            || upload.len() > 64
            || !upload
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad upload id"));
        }
        Ok(self.root.join("uploads").join(upload))
    }
}

/// Appends to a staging file from a blocking thread, fed the request's
/// chunks as they are (no copy into a buffer in between).
///
/// The thread holds an exclusive `flock` on the file while it lives, and a
/// new writer for the same upload takes it before touching the file: a
/// request that was dropped half-way (its client went away) can never
/// write into the staging file after a retry reopened it. Dropping the
/// writer without [`finish`](StagingWriter::finish) makes the thread stop
/// at its next write.
struct FsStagingWriter {
    queue: Option<tokio::sync::mpsc::Sender<bytes::Bytes>>,
    thread: tokio::task::JoinHandle<io::Result<()>>,
    abandoned: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FsStagingWriter {
    fn start(file: std::fs::File, offset: u64) -> FsStagingWriter {
        let (tx, rx) = tokio::sync::mpsc::channel(WRITE_QUEUE);
        let abandoned = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = abandoned.clone();
        let thread = tokio::task::spawn_blocking(move || write_queue(file, offset, rx, &flag));
        FsStagingWriter {
            queue: Some(tx),
            thread,
            abandoned,
        }
    }

    /// The writer thread's result, once it has stopped.
    async fn join(&mut self) -> io::Result<()> {
        (&mut self.thread).await.map_err(io::Error::other)?
    }
}

impl Drop for FsStagingWriter {
    fn drop(&mut self) {
        self.abandoned
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Write each chunk from `rx` to `file` (positioned at `offset`), batching
/// whatever is queued into one `writev`; when the queue closes, make it all
/// durable. Stops without syncing once `abandoned` is set.
fn write_queue(
    mut file: std::fs::File,
    offset: u64,
    mut rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    abandoned: &std::sync::atomic::AtomicBool,
) -> io::Result<()> {
    use std::io::{IoSlice, Write};
    use std::sync::atomic::Ordering;
    let stop = || -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "upload abandoned",
        ))
    };
    let mut batch: Vec<bytes::Bytes> = Vec::with_capacity(WRITE_QUEUE);
    let (mut written, mut synced) = (offset, offset);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < WRITE_QUEUE {
            match rx.try_recv() {
                Ok(b) => batch.push(b),
                Err(_) => break,
            }
        }
        batch.retain(|b| !b.is_empty());
        let (mut i, mut at) = (0, 0);
        while i < batch.len() {
            if abandoned.load(Ordering::Acquire) {
                return stop();
            }
            let slices: Vec<IoSlice<'_>> = std::iter::once(IoSlice::new(&batch[i][at..]))
                .chain(batch[i + 1..].iter().map(|b| IoSlice::new(b)))
                .collect();
            let mut n = match file.write_vectored(&slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            written += n as u64;
            while n > 0 {
                let left = batch[i].len() - at;
                if n >= left {
                    n -= left;
                    i += 1;
                    at = 0;
                } else {
                    at += n;
                    n = 0;
                }
            }
        }
        batch.clear();
        if written - synced >= WRITEBACK_EVERY {
            start_writeback(&file, synced, written - synced);
            synced = written;
        }
    }
    if abandoned.load(Ordering::Acquire) {
        return stop();
    }
    file.sync_data()
}

/// Wait for an exclusive lock on `file` (released when it is closed).
fn lock_exclusive(file: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: flock on a descriptor we own; no memory is passed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Start writing `len` bytes at `offset` back to disk without waiting.
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a hint on our own open file; it reads no memory of ours.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                offset as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

#[async_trait]
impl StagingWriter for FsStagingWriter {
    async fn write(&mut self, buf: bytes::Bytes) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let Some(queue) = &self.queue else {
            return Err(io::Error::other("staging writer already stopped"));
        };
        if queue.send(buf).await.is_err() {
            // The thread stopped on an error: report it.
            self.queue = None;
            self.join().await?;
            return Err(io::Error::other("staging writer stopped"));
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.queue = None;
        self.join().await
    }
}

async fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(io::Error::other)?
}

/// Create `dir` and its missing parents, fsyncing the parent of each one
/// created: a new directory's entry is not durable until its parent is
/// synced, and a blob renamed into a directory that a power loss forgets is
/// lost with it.
async fn create_dir_durable(dir: &Path) -> io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut missing = Vec::new();
        let mut d = dir.as_path();
        while !d.is_dir() {
            missing.push(d);
            d = d
                .parent()
                .ok_or_else(|| io::Error::other("no existing parent directory"))?;
        }
        for m in missing.into_iter().rev() {
            match std::fs::create_dir(m) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
            if let Some(parent) = m.parent() {
                std::fs::File::open(parent)?.sync_all()?;
            }
        }
        Ok(())
    })
    .await
    .map_err(io::Error::other)?
}

/// Ready a staging file to become content: check it holds exactly `size`
/// bytes, and make it young and durable. The sweep and scrub judge unnamed
/// files by age, and a rename keeps the staging file's modification time,
/// which is the time of its last write: a push that stalled, or a session
/// resumed after hours, would otherwise publish a file that already looks
/// older than the grace period and is deleted before its metadata commits.
/// A missing staging file is an empty upload only when `size` is 0.
fn seal_staging(staging: &Path, size: u64) -> io::Result<()> {
    let file = match std::fs::OpenOptions::new().write(true).open(staging) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound && size == 0 => {
            // An empty upload that never wrote a byte.
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(staging)?;
            if let Some(dir) = staging.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            f
        }
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if len != size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("staging holds {len} bytes, the upload {size}"),
        ));
    }
    file.set_modified(std::time::SystemTime::now())?;
    file.sync_all()
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn staging_writer(
        &self,
        upload: &str,
        offset: u64,
    ) -> io::Result<Box<dyn StagingWriter>> {
        let path = self.staging_path(upload)?;
        let uploads = self.root.join("uploads");
        let file = tokio::task::spawn_blocking(move || -> io::Result<std::fs::File> {
            let mut file = match std::fs::OpenOptions::new().write(true).open(&path) {
                Ok(f) => f,
                // Only a session's first write creates its staging file; one
                // that went missing later (expired, or published) is an
                // error, never silently replaced by an empty file.
                Err(e) if e.kind() == io::ErrorKind::NotFound && offset == 0 => {
                    let f = std::fs::OpenOptions::new()
                        .create(true)
                        .write(true)
                        .truncate(false)
                        .open(&path)?;
                    // The new entry must be durable before the session's
                    // metadata says bytes were received.
                    std::fs::File::open(&uploads)?.sync_all()?;
                    f
                }
                Err(e) => return Err(e),
            };
            // Wait out a writer of an earlier request on this upload.
            lock_exclusive(&file)?;
            let len = file.metadata()?.len();
            if len < offset {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("staging holds {len} bytes, session says {offset}"),
                ));
            }
            if len > offset {
                file.set_len(offset)?;
            }
            std::io::Seek::seek(&mut file, SeekFrom::Start(offset))?;
            Ok(file)
        })
        .await
        .map_err(io::Error::other)??;
        Ok(Box::new(FsStagingWriter::start(file, offset)))
    }

    async fn staging_reader(&self, upload: &str) -> io::Result<BoxRead> {
        let path = self.staging_path(upload)?;
        match File::open(&path).await {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Box::new(tokio::io::empty())),
            Err(e) => Err(e),
        }
    }

    async fn remove_staging(&self, upload: &str) -> io::Result<()> {
        match fs::remove_file(self.staging_path(upload)?).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    async fn commit(&self, upload: &str, digest: &Digest, size: u64) -> io::Result<BlobKey> {
        let staging = self.staging_path(upload)?;
        let key = BlobKey::new(digest, upload);
        let target = self.blob_path(&key);
        let sealed = staging.clone();
        tokio::task::spawn_blocking(move || seal_staging(&sealed, size))
            .await
            .map_err(io::Error::other)??;
        let parent = target
            .parent()
            .ok_or_else(|| io::Error::other("blob path has no parent"))?;
        create_dir_durable(parent).await?;
        if let Err(e) = fs::rename(&staging, &target).await {
            // The collector removes emptied shard directories; one may have
            // gone between creating it and the rename.
            if e.kind() != io::ErrorKind::NotFound || !fs::try_exists(&staging).await? {
                return Err(e);
            }
            create_dir_durable(parent).await?;
            fs::rename(&staging, &target).await?;
        }
        sync_dir(parent).await?;
        // What was published is what was hashed, or nothing is.
        let len = fs::metadata(&target).await?.len();
        if len != size {
            let _ = fs::remove_file(&target).await;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("published {len} bytes of a {size}-byte upload"),
            ));
        }
        Ok(key)
    }

    async fn stored_size(&self, key: &BlobKey) -> io::Result<Option<u64>> {
        match fs::metadata(self.blob_path(key)).await {
            Ok(md) => Ok(Some(md.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn read(&self, key: &BlobKey, range: Option<(u64, u64)>) -> io::Result<Option<BlobRead>> {
        let path = self.blob_path(key);
        let opened = tokio::task::spawn_blocking(move || -> io::Result<Option<_>> {
            let file = match std::fs::File::open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let stored_len = file.metadata()?.len();
            Ok(Some((file, stored_len)))
        })
        .await
        .map_err(io::Error::other)??;
        let Some((file, stored_len)) = opened else {
            return Ok(None);
        };
        let (start, len) = range.unwrap_or((0, stored_len));
        if start.checked_add(len).is_none_or(|end| end > stored_len) {
            // The caller compares `stored_len` with the metadata and fails
            // the read; no chunk is ever produced past the end of the file.
            return Ok(Some(BlobRead {
                stored_len,
                chunks: Box::pin(futures_util::stream::empty()),
            }));
        }
        Ok(Some(BlobRead {
            stored_len,
            chunks: map_chunks(file, stored_len, start, len),
        }))
    }

    async fn delete(&self, key: &BlobKey) -> io::Result<()> {
        let path = self.blob_path(key);
        match fs::remove_file(&path).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        // Leave no empty shard directory behind; fails harmlessly when the
        // directory still holds other blobs.
        if let Some(parent) = path.parent() {
            let _ = fs::remove_dir(parent).await;
        }
        Ok(())
    }

    async fn list_objects(&self) -> io::Result<Vec<StoredObject>> {
        let root = self.root.join("blobs");
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for alg in read_dir_or_empty(&root)? {
                for shard in read_dir_or_empty(&alg.path())? {
                    for file in read_dir_or_empty(&shard.path())? {
                        let name = file.file_name().to_string_lossy().to_string();
                        let alg_name = alg.file_name().to_string_lossy().to_string();
                        let Some((hex, suffix)) = name.split_once('.') else {
                            continue;
                        };
                        let Some(key) = BlobKey::parse(&format!("{alg_name}/{hex}/{suffix}"))
                        else {
                            continue;
                        };
                        let md = file.metadata()?;
                        out.push(StoredObject {
                            key,
                            size: md.len(),
                            age: age(&md),
                        });
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn list_staging(&self) -> io::Result<Vec<(String, u64, Duration)>> {
        let dir = self.root.join("uploads");
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for file in read_dir_or_empty(&dir)? {
                let md = file.metadata()?;
                if md.is_file() {
                    out.push((
                        file.file_name().to_string_lossy().to_string(),
                        md.len(),
                        age(&md),
                    ));
                }
            }
            Ok(out)
        })
        .await
        .map_err(io::Error::other)?
    }
}

fn read_dir_or_empty(dir: &Path) -> io::Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd.collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Time since a file was last modified (zero for clock skew).
fn age(md: &std::fs::Metadata) -> Duration {
    md.modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn stage_commit_read_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let digest = Digest::sha256_of(b"hello world");
        let mut keys = Vec::new();
        for id in ["u1", "u2"] {
            let mut w = store.staging_writer(id, 0).await.unwrap();
            w.write(bytes::Bytes::from_static(b"hello ")).await.unwrap();
            w.write(bytes::Bytes::from_static(b"world")).await.unwrap();
            w.finish().await.unwrap();
            keys.push(store.commit(id, &digest, 11).await.unwrap());
        }
        // Each commit has its own key; staging is gone.
        assert_ne!(keys[0], keys[1]);
        assert_eq!(
            std::fs::read_dir(dir.path().join("uploads"))
                .unwrap()
                .count(),
            0
        );
        let r = store.read(&keys[0], Some((6, 5))).await.unwrap().unwrap();
        assert_eq!(r.stored_len, 11);
        let chunks: Vec<bytes::Bytes> = futures_util::TryStreamExt::try_collect(r.chunks)
            .await
            .unwrap();
        assert_eq!(chunks.concat(), b"world");
        // Deleting one copy leaves the other.
        store.delete(&keys[0]).await.unwrap();
        assert!(store.read(&keys[0], None).await.unwrap().is_none());
        assert!(store.read(&keys[1], None).await.unwrap().is_some());
    }

    #[test]
    fn keys_are_validated() {
        let d = Digest::sha256_of(b"x");
        let k = BlobKey::new(&d, "abc-123");
        assert_eq!(BlobKey::parse(k.as_str()), Some(k));
        assert!(BlobKey::parse("sha256/../x").is_none());
        assert!(BlobKey::parse(&format!("sha256/{}/../../x", d.hex())).is_none());
        assert!(BlobKey::parse(&format!("md5/{}/a", d.hex())).is_none());
    }

    #[tokio::test]
    async fn resume_truncates_unacknowledged_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let mut w = store.staging_writer("u", 0).await.unwrap();
        w.write(bytes::Bytes::from_static(b"abcdef")).await.unwrap();
        w.finish().await.unwrap();
        let mut w = store.staging_writer("u", 3).await.unwrap();
        w.write(bytes::Bytes::from_static(b"XY")).await.unwrap();
        w.finish().await.unwrap();
        let mut s = String::new();
        store
            .staging_reader("u")
            .await
            .unwrap()
            .read_to_string(&mut s)
            .await
            .unwrap();
        assert_eq!(s, "abcXY");
        assert!(store.staging_writer("u", 9).await.is_err());
        assert!(store.staging_writer("../x", 0).await.is_err());
    }

    /// A staging file last written long ago (a stalled client, a session
    /// resumed after hours) is published young: the sweep and scrub, which
    /// judge unnamed files by age, must not take it for an orphan in the
    /// window before its metadata commits.
    #[tokio::test]
    async fn committed_file_from_old_staging_is_young() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let mut w = store.staging_writer("old", 0).await.unwrap();
        w.write(bytes::Bytes::from_static(b"stale bytes"))
            .await
            .unwrap();
        w.finish().await.unwrap();
        let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
        std::fs::File::options()
            .write(true)
            .open(dir.path().join("uploads/old"))
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
        let staged = store.list_staging().await.unwrap();
        assert!(staged[0].2 > Duration::from_secs(3600), "{staged:?}");

        let key = store
            .commit("old", &Digest::sha256_of(b"stale bytes"), 11)
            .await
            .unwrap();
        let objects = store.list_objects().await.unwrap();
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].key, key);
        assert!(
            objects[0].age < Duration::from_secs(600),
            "a just-committed file looks {:?} old",
            objects[0].age
        );
    }

    /// Commit publishes exactly the bytes the upload hashed, or nothing: a
    /// staging file of the wrong length, or a missing one for a non-empty
    /// upload, is an error and leaves nothing under blobs/. Only an empty
    /// upload may have no staging file.
    #[tokio::test]
    async fn commit_publishes_exactly_the_expected_size_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let d = Digest::sha256_of(b"abc");
        let mut w = store.staging_writer("short", 0).await.unwrap();
        w.write(bytes::Bytes::from_static(b"ab")).await.unwrap();
        w.finish().await.unwrap();
        assert!(store.commit("short", &d, 3).await.is_err());
        assert!(store.commit("missing", &d, 3).await.is_err());
        assert!(store.list_objects().await.unwrap().is_empty());

        let empty = Digest::sha256_of(b"");
        let key = store.commit("empty", &empty, 0).await.unwrap();
        assert_eq!(store.stored_size(&key).await.unwrap(), Some(0));
        assert_eq!(
            store.stored_size(&BlobKey::new(&d, "none")).await.unwrap(),
            None
        );
    }

    /// A session's staging file is created by its first write only; a
    /// write at an offset into a staging file that is gone fails instead of
    /// creating an empty one.
    #[tokio::test]
    async fn staging_is_created_only_at_offset_zero() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        assert!(store.staging_writer("gone", 5).await.is_err());
        assert!(!dir.path().join("uploads/gone").exists());
    }

    async fn staged(store: &FsBlobStore, id: &str) -> Vec<u8> {
        let mut out = Vec::new();
        store
            .staging_reader(id)
            .await
            .unwrap()
            .read_to_end(&mut out)
            .await
            .unwrap();
        out
    }

    #[tokio::test]
    async fn many_chunks_land_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let mut w = store.staging_writer("u", 0).await.unwrap();
        let mut want = Vec::new();
        for i in 0..2000u32 {
            let chunk: Vec<u8> = (0..(i * 37 % 5000)).map(|j| (i + j) as u8).collect();
            want.extend_from_slice(&chunk);
            w.write(bytes::Bytes::from(chunk)).await.unwrap();
        }
        w.finish().await.unwrap();
        assert_eq!(staged(&store, "u").await, want);
        // Reads come back whole, over window boundaries, and in ranges.
        let d = Digest::sha256_of(&want);
        let key = store.commit("u", &d, want.len() as u64).await.unwrap();
        for range in [
            None,
            Some((1, want.len() as u64 - 1)),
            Some((WINDOW - 3, 7)),
        ] {
            let r = store.read(&key, range).await.unwrap().unwrap();
            let chunks: Vec<bytes::Bytes> = futures_util::TryStreamExt::try_collect(r.chunks)
                .await
                .unwrap();
            let (start, len) = range.unwrap_or((0, want.len() as u64));
            assert_eq!(
                chunks.concat(),
                &want[start as usize..(start + len) as usize]
            );
            assert!(chunks.iter().all(|c| c.len() as u64 <= WINDOW));
        }
    }

    /// A request dropped half-way (its client went away) leaves a writer
    /// thread behind; the retry's writer waits for it, so nothing the old
    /// request sent can land after the retry truncated the file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_writer_never_writes_after_a_retry() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        for round in 0..20 {
            let id = format!("u{round}");
            let mut old = store.staging_writer(&id, 0).await.unwrap();
            for _ in 0..WRITE_QUEUE {
                old.write(bytes::Bytes::from(vec![b'o'; 256 << 10]))
                    .await
                    .unwrap();
            }
            drop(old);
            let mut retry = store.staging_writer(&id, 0).await.unwrap();
            retry
                .write(bytes::Bytes::from_static(b"new"))
                .await
                .unwrap();
            retry.finish().await.unwrap();
            assert_eq!(staged(&store, &id).await, b"new", "round {round}");
        }
    }
}
