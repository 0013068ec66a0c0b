//! Where log lines go: stderr, with request lines batched.
//!
//! A request line costs a `write(2)` to stderr when written as it comes,
//! which at tens of thousands of requests a second is a good share of what
//! a cheap request costs. Request lines (target `berth::request`) are
//! appended to a buffer instead; a writer thread, woken by the first line
//! after it went idle, waits [`LINGER`] for more to arrive and writes them
//! all with one call. At low rates a line reaches stderr about a
//! millisecond after its request; under load many lines share a syscall.
//!
//! Every other line (start-up, warnings, shutdown) is written at once,
//! after whatever request lines are pending, so the log keeps its order.
//! [`flush`] writes what is pending; `berth serve` calls it before exiting.
//! A kill -9 loses at most the last [`LINGER`] of request lines.

use std::io::Write;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;

/// How long the writer thread lets request lines gather before writing.
pub const LINGER: Duration = Duration::from_millis(1);

/// A buffer larger than this is written without waiting out the linger.
const HIGH_WATER: usize = 256 << 10;

#[derive(Default)]
struct State {
    pending: Vec<u8>,
    writer_idle: bool,
    writer_started: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Held while writing, taken while `state` is held: lines leave in the
    /// order they were handed over, without producers waiting on a write.
    output: Mutex<()>,
    /// Where lines end up: stderr, or a capture in tests.
    out: fn(&[u8]),
}

fn to_stderr(bytes: &[u8]) {
    let _ = std::io::stderr().lock().write_all(bytes);
}

fn stderr_shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| Shared::new(to_stderr))
}

impl Shared {
    fn new(out: fn(&[u8])) -> Shared {
        Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            output: Mutex::new(()),
            out,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hand `bytes` (taken from `st.pending`, plus anything after them)
    /// to the output, after everything handed over before.
    fn emit(&self, st: std::sync::MutexGuard<'_, State>, bytes: &[u8]) {
        let out = self.output.lock().unwrap_or_else(|p| p.into_inner());
        drop(st);
        if !bytes.is_empty() {
            (self.out)(bytes);
        }
        drop(out);
    }

    /// Write pending request lines now.
    fn flush(&self) {
        let mut st = self.lock();
        let pending = std::mem::take(&mut st.pending);
        self.emit(st, &pending);
    }
}

/// The `MakeWriter` to give `tracing_subscriber::fmt`: lines go to stderr.
#[derive(Clone, Copy)]
pub struct LogWriter {
    shared: &'static Shared,
}

impl Default for LogWriter {
    fn default() -> LogWriter {
        LogWriter {
            shared: stderr_shared(),
        }
    }
}

/// One event's writer: batched for request lines, direct otherwise.
pub struct EventWriter {
    shared: &'static Shared,
    batched: bool,
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> EventWriter {
        EventWriter {
            shared: self.shared,
            batched: false,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> EventWriter {
        EventWriter {
            shared: self.shared,
            batched: meta.target() == "berth::request",
        }
    }
}

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let s = self.shared;
        let mut st = s.lock();
        if self.batched {
            st.pending.extend_from_slice(buf);
            if !st.writer_started {
                st.writer_started = true;
                start_writer(s);
            } else if st.writer_idle {
                st.writer_idle = false;
                s.wake.notify_one();
            } else if st.pending.len() > HIGH_WATER {
                s.wake.notify_one();
            }
        } else {
            let mut pending = std::mem::take(&mut st.pending);
            pending.extend_from_slice(buf);
            s.emit(st, &pending);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn start_writer(s: &'static Shared) {
    let spawned = std::thread::Builder::new()
        .name("berth-log".into())
        .spawn(move || writer_loop(s));
    if spawned.is_err() {
        // No thread: the next direct line or `flush` writes what is pending.
        s.lock().writer_started = false;
    }
}

fn writer_loop(s: &'static Shared) {
    let mut spare = Vec::new();
    loop {
        let mut st = s.lock();
        while st.pending.is_empty() {
            st.writer_idle = true;
            st = s.wake.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.writer_idle = false;
        if st.pending.len() < HIGH_WATER {
            drop(st);
            std::thread::sleep(LINGER);
            st = s.lock();
        }
        std::mem::swap(&mut st.pending, &mut spare);
        s.emit(st, &spare);
        spare.clear();
        if spare.capacity() > 4 * HIGH_WATER {
            spare = Vec::new();
        }
    }
}

/// Write pending request lines to stderr now.
pub fn flush() {
    stderr_shared().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    static CAPTURED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

    fn capture(bytes: &[u8]) {
        CAPTURED.lock().unwrap().extend_from_slice(bytes);
    }

    fn captured() -> String {
        String::from_utf8(CAPTURED.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn request_lines_are_batched_and_keep_their_order() {
        let shared: &'static Shared = Box::leak(Box::new(Shared::new(capture)));
        let w = LogWriter { shared };
        let request = |line: &str| {
            let mut e = EventWriter {
                shared,
                batched: true,
            };
            e.write_all(line.as_bytes()).unwrap();
        };
        request("r1\n");
        request("r2\n");
        // A direct line goes out at once, after the pending request lines.
        w.make_writer().write_all(b"start\n").unwrap();
        assert!(captured().starts_with("r1\nr2\nstart\n"), "{}", captured());
        // The writer thread writes request lines on its own, soon.
        request("r3\n");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !captured().contains("r3") {
            assert!(std::time::Instant::now() < deadline, "r3 never written");
            std::thread::sleep(Duration::from_millis(1));
        }
        request("r4\n");
        shared.flush();
        assert!(captured().ends_with("r3\nr4\n"), "{}", captured());
    }
}
