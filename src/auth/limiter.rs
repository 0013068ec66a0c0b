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
    /// Key (address or user) -> (failures, start of the window). Only
    /// logins that miss the password cache come here.
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

fn keys(client: IpAddr, user: &str) -> [String; 2] {
    [format!("addr {client}"), format!("user {user}")]
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> LoginLimiter {
        LoginLimiter {
            limits,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` when the address or the user is locked out.
    pub fn check(&self, client: IpAddr, user: &str) -> Result<(), Duration> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys(client, user) {
            if let Some(&(n, since)) = map.get(&key) {
                let age = since.elapsed();
                if n >= self.limits.max_failures && age < self.limits.window {
                    return Err(self.limits.window - age);
                }
            }
        }
        Ok(())
    }

    /// Count a failure, then wait out the failure delay.
    pub async fn failed(&self, client: IpAddr, user: &str) {
        {
            let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() >= MAX_KEYS {
                let window = self.limits.window;
                map.retain(|_, (_, since)| since.elapsed() < window);
                if map.len() >= MAX_KEYS {
                    map.clear();
                }
            }
            for key in keys(client, user) {
                let e = map.entry(key).or_insert((0, Instant::now()));
                if e.1.elapsed() >= self.limits.window {
                    *e = (0, Instant::now());
                }
                e.0 += 1;
            }
        }
        tokio::time::sleep(self.limits.failure_delay).await;
    }

    /// A good password clears the user's failures (not the address's).
    pub fn succeeded(&self, user: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("user {user}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn locks_out_after_max_failures() {
        let l = LoginLimiter::new(LoginLimits {
            max_failures: 3,
            window: Duration::from_secs(60),
            failure_delay: Duration::ZERO,
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check(a, "alice").is_ok());
            l.failed(a, "alice").await;
        }
        assert!(l.check(a, "alice").is_err());
        // The address is locked for every user, the user from every address.
        assert!(l.check(a, "bob").is_err());
        assert!(l.check(b, "alice").is_err());
        assert!(l.check(b, "bob").is_ok());
        l.succeeded("alice");
        assert!(l.check(b, "alice").is_ok());
        assert!(l.check(a, "alice").is_err());
    }
}
