//! Read-only memory maps of published blob files, so a blob body goes from
//! the page cache to the socket with one copy (the kernel's, into the
//! socket buffer) instead of a `read` into a buffer and a `write` out of it.
//!
//! Safety argument: reading a mapping is sound while the mapped bytes of
//! the file exist and do not change. berth never changes a published blob
//! file: it is written whole under a staging name, fsynced, renamed into
//! place, and later only unlinked (an unlinked file stays readable through
//! existing mappings). [`Window::map`] refuses ranges past the file's end.
//! The one way left to break this is to truncate a blob file by hand while
//! it is being served, which would raise SIGBUS: do not edit `blobs/`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// A mapped range of a file; unmapped on drop. As a [`bytes::Bytes`] owner
/// it serves the range without copying.
pub struct Window {
    /// Start of the mapping (page-aligned).
    base: *mut libc::c_void,
    /// Length of the mapping from `base`.
    mapped: usize,
    /// Offset of the requested bytes within the mapping.
    skip: usize,
}

// SAFETY: the mapping is read-only and owned by this value alone; reading
// it from any thread is as safe as reading a `&[u8]`.
unsafe impl Send for Window {}
unsafe impl Sync for Window {}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

impl Window {
    /// Map `len` (> 0) bytes of `file` from `offset`; `file_len` is the
    /// file's size, which the range must lie within.
    pub fn map(file: &File, file_len: u64, offset: u64, len: usize) -> io::Result<Window> {
        let end = offset.checked_add(len as u64);
        if len == 0 || end.is_none_or(|e| e > file_len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot map {len} bytes at {offset} of a {file_len}-byte file"),
            ));
        }
        let page = page_size();
        let aligned = offset - offset % page;
        let skip = (offset - aligned) as usize;
        let mapped = skip + len;
        // SAFETY: a fresh shared read-only mapping of a range inside the
        // file; the kernel picks the address. Failure is checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                aligned as libc::off_t,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Window { base, mapped, skip })
    }

    /// Fault the pages in now (reading them from disk if needed), so that
    /// sending them later does not block on I/O. Called off the async
    /// threads. It reads a byte of every page: the kernel then maps pages
    /// already cached sixteen at a time (fault-around) and reads ahead the
    /// others, which measured cheaper per page than MADV_POPULATE_READ.
    pub fn populate(&self) {
        let bytes = self.as_ref();
        let page = page_size() as usize;
        let mut sum = 0u8;
        let mut i = 0;
        while i < bytes.len() {
            // SAFETY: `i` is inside the mapping; a volatile read so the
            // touch is not optimised away.
            sum = sum.wrapping_add(unsafe { std::ptr::read_volatile(bytes.as_ptr().add(i)) });
            i += page;
        }
        std::hint::black_box(sum);
    }
}

impl AsRef<[u8]> for Window {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `base..base+mapped` is mapped readable for our lifetime
        // and, by the module's argument, its contents never change.
        unsafe {
            std::slice::from_raw_parts(
                (self.base as *const u8).add(self.skip),
                self.mapped - self.skip,
            )
        }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped, once.
        unsafe {
            libc::munmap(self.base, self.mapped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn maps_any_range_inside_the_file() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let len = data.len() as u64;
        for (off, n) in [
            (0, 20_000),
            (1, 5),
            (4095, 2),
            (4096, 4096),
            (12_345, 7_655),
        ] {
            let w = Window::map(&f, len, off, n).unwrap();
            w.populate();
            assert_eq!(w.as_ref(), &data[off as usize..off as usize + n]);
            let b = bytes::Bytes::from_owner(w);
            assert_eq!(&b[..], &data[off as usize..off as usize + n]);
        }
        assert!(Window::map(&f, len, 19_999, 2).is_err());
        assert!(Window::map(&f, len, 0, 0).is_err());
        assert!(Window::map(&f, len, u64::MAX, 1).is_err());
    }
}
