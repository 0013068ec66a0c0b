//! The brake on password guessing: every failed login is answered late,
//! and a client address or a user name with too many recent failures is
//! refused (429) until its window passes, whatever the password.

use crate::config::LoginLimits;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tracked keys at most; beyond, expired ones are dropped first.
const MAX_KEYS: usize = 100_000;

pub struct LoginLimiter {
    limits: LoginLimits,
    /// Key (address or user) -> its recent failures and pending checks.
    /// Only logins that miss the password cache come here.
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Clone, Copy)]
struct Entry {
    failures: u32,
    /// Checks under way (bcrypt takes a while): they count against the
    /// limit too, or a burst of concurrent guesses would all be checked
    /// before the first failure was counted.
    pending: u32,
    since: Instant,
}

fn keys(client: IpAddr, user: &str) -> [String; 2] {
    [format!("addr {client}"), format!("user {user}")]
}

/// A login being checked: report how it went with [`Attempt::failed`] or
/// [`Attempt::succeeded`]; dropped unresolved (the request went away), it
/// just stops counting as pending.
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    keys: [String; 2],
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> LoginLimiter {
        LoginLimiter {
            limits,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start checking a login, or `Err(retry_after)` when the address or
    /// the user has used up its attempts (failed or still pending).
    pub fn begin(&self, client: IpAddr, user: &str) -> Result<Attempt<'_>, Duration> {
        let keys = keys(client, user);
        let mut map = self.map();
        let window = self.limits.window;
        if map.len() >= MAX_KEYS {
            map.retain(|_, e| e.pending > 0 || e.since.elapsed() < window);
            if map.len() >= MAX_KEYS {
                map.retain(|_, e| e.pending > 0);
            }
        }
        for key in &keys {
            if let Some(e) = map.get_mut(key) {
                let age = e.since.elapsed();
                if age >= window {
                    e.failures = 0;
                    e.since = Instant::now();
                } else if e.failures + e.pending >= self.limits.max_failures {
                    return Err(window - age);
                }
            }
        }
        for key in &keys {
            map.entry(key.clone())
                .or_insert(Entry {
                    failures: 0,
                    pending: 0,
                    since: Instant::now(),
                })
                .pending += 1;
        }
        drop(map);
        Ok(Attempt {
            limiter: self,
            keys,
        })
    }
}

impl Attempt<'_> {
    /// Count a failure, then wait out the failure delay.
    pub async fn failed(self) {
        {
            let mut map = self.limiter.map();
            for key in &self.keys {
                if let Some(e) = map.get_mut(key) {
                    e.failures += 1;
                }
            }
        }
        let delay = self.limiter.limits.failure_delay;
        drop(self);
        tokio::time::sleep(delay).await;
    }

    /// A good password clears the user's failures (not the address's).
    pub fn succeeded(self) {
        let mut map = self.limiter.map();
        if let Some(e) = map.get_mut(&self.keys[1]) {
            e.failures = 0;
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let mut map = self.limiter.map();
        for key in &self.keys {
            if let Some(e) = map.get_mut(key) {
                e.pending = e.pending.saturating_sub(1);
                if e.pending == 0 && e.failures == 0 {
                    map.remove(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max_failures: u32) -> LoginLimiter {
        LoginLimiter::new(LoginLimits {
            max_failures,
            window: Duration::from_secs(60),
            failure_delay: Duration::ZERO,
        })
    }

    #[tokio::test]
    async fn locks_out_after_max_failures() {
        let l = limiter(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            l.begin(a, "alice").unwrap().failed().await;
        }
        assert!(l.begin(a, "alice").is_err());
        // The address is locked for every user, the user from every address.
        assert!(l.begin(a, "bob").is_err());
        assert!(l.begin(b, "alice").is_err());
        assert!(l.begin(b, "bob").is_ok());
    }

    #[tokio::test]
    async fn a_success_clears_the_users_failures_not_the_addresss() {
        let l = limiter(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        l.begin(a, "alice").unwrap().failed().await;
        l.begin(b, "alice").unwrap().succeeded();
        l.begin(c, "alice").unwrap().failed().await;
        // One failure since the success: alice may still try from a new address.
        assert!(l.begin("10.0.0.4".parse().unwrap(), "alice").is_ok());
        l.begin(a, "bob").unwrap().failed().await;
        assert!(l.begin(a, "carol").is_err(), "address a has two failures");
    }

    #[test]
    fn concurrent_checks_count_against_the_limit() {
        let l = limiter(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        // Three guesses in flight at once: a fourth is refused before any
        // of them has failed.
        let pending: Vec<_> = (0..3).map(|_| l.begin(a, "alice").unwrap()).collect();
        assert!(l.begin(a, "alice").is_err());
        assert!(l.begin("10.0.0.9".parse().unwrap(), "alice").is_err());
        // Abandoned checks stop counting.
        drop(pending);
        assert!(l.begin(a, "alice").is_ok());
        assert!(l.map().is_empty(), "nothing left behind");
    }
}
