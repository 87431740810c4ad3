//! One-shot tokens that stand for a stored streaming request.
//!
//! A token is the hex of SHA-256 over a random key (read once at start) and a counter, so
//! handing out URLs never fails and tokens cannot be guessed. Each token is valid once and only
//! for the configured time; the cache never holds more than [`MAX_PENDING`] tokens (the oldest
//! go first).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::{AttachRequest, Error, ExecRequest, PortForwardRequest};

/// Tokens handed out and not yet used; more than kubelet's 1000 in flight.
const MAX_PENDING: usize = 4096;

/// A request waiting for its client.
#[derive(Clone, Debug)]
pub(crate) enum Pending {
    Exec(ExecRequest),
    Attach(AttachRequest),
    PortForward(PortForwardRequest),
}

impl Pending {
    /// The URL path segment this request is served under.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Pending::Exec(_) => "exec",
            Pending::Attach(_) => "attach",
            Pending::PortForward(_) => "portforward",
        }
    }
}

pub(crate) struct Tokens {
    key: [u8; 32],
    counter: AtomicU64,
    ttl: Duration,
    pending: Mutex<HashMap<String, (Instant, Pending)>>,
}

impl Tokens {
    pub(crate) fn new(ttl: Duration) -> Result<Self, Error> {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).map_err(|e| Error::Random(e.to_string()))?;
        Ok(Self {
            key,
            counter: AtomicU64::new(0),
            ttl,
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// Stores `req` and returns its new token.
    pub(crate) fn insert(&self, req: Pending) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let digest = Sha256::new()
            .chain_update(self.key)
            .chain_update(n.to_le_bytes())
            .finalize();
        let token = hex::encode(&digest[..16]);
        let now = Instant::now();
        let mut pending = self.lock();
        pending.retain(|_, (expires, _)| *expires > now);
        while pending.len() >= MAX_PENDING {
            let oldest = pending
                .iter()
                .min_by_key(|(_, (expires, _))| *expires)
                .map(|(t, _)| t.clone());
            match oldest {
                Some(t) => {
                    tracing::warn!("too many unused stream tokens; dropping the oldest");
                    pending.remove(&t);
                }
                None => break,
            }
        }
        pending.insert(token.clone(), (now + self.ttl, req));
        token
    }

    /// The request behind a live token of `kind`, without using the token up.
    pub(crate) fn peek(&self, kind: &str, token: &str) -> Option<Pending> {
        let pending = self.lock();
        match pending.get(token) {
            Some((expires, req)) if *expires > Instant::now() && req.kind() == kind => {
                Some(req.clone())
            }
            _ => None,
        }
    }

    /// Uses up a live token of `kind` and returns its request.
    pub(crate) fn take(&self, kind: &str, token: &str) -> Option<Pending> {
        let mut pending = self.lock();
        match pending.get(token) {
            Some((_, req)) if req.kind() != kind => return None,
            None => return None,
            Some(_) => {}
        }
        match pending.remove(token) {
            Some((expires, req)) if expires > Instant::now() => Some(req),
            _ => None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Pending)>> {
        // A panic while holding the lock leaves a consistent map: keep using it.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pf() -> Pending {
        Pending::PortForward(PortForwardRequest {
            pod_sandbox_id: "p".into(),
            ports: vec![80],
        })
    }

    #[test]
    fn token_is_one_shot_and_kind_bound() {
        let t = Tokens::new(Duration::from_secs(60)).expect("tokens");
        let a = t.insert(pf());
        let b = t.insert(pf());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(t.peek("exec", &a).is_none());
        assert!(t.take("exec", &a).is_none(), "wrong kind must not consume");
        assert!(t.peek("portforward", &a).is_some());
        assert!(t.take("portforward", &a).is_some());
        assert!(t.take("portforward", &a).is_none(), "reused token");
        assert!(t.take("portforward", "nope").is_none());
    }

    #[test]
    fn token_expires() {
        let t = Tokens::new(Duration::from_millis(1)).expect("tokens");
        let a = t.insert(pf());
        std::thread::sleep(Duration::from_millis(5));
        assert!(t.peek("portforward", &a).is_none());
        assert!(t.take("portforward", &a).is_none());
    }
}
