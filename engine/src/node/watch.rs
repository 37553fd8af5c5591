//! What a node is doing right now, for a watchdog on another thread: which
//! field of which group is inside a detector call, and since when.
//!
//! The node writes it around every detector call (two atomic stores and a
//! clock read; the group text once per batch); the watcher only reads. A
//! detector call that never returns cannot be interrupted, but it can be
//! seen, named and reported.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Shared between a node and its watcher.
#[derive(Debug)]
pub struct Progress {
    epoch: Instant,
    /// Nanoseconds since `epoch` when the current call started; 0 = idle.
    since: AtomicU64,
    field: AtomicUsize,
    group: Mutex<String>,
}

/// A detector call that has run too long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck {
    /// Index of the field (in the node's configuration order).
    pub field: usize,
    /// Kapacitor group id of the batch.
    pub group: String,
    /// How long the call has been running.
    pub running: Duration,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            epoch: Instant::now(),
            since: AtomicU64::new(0),
            field: AtomicUsize::new(0),
            group: Mutex::new(String::new()),
        }
    }
}

impl Progress {
    /// A batch of `group` begins.
    pub fn batch(&self, group: &str) {
        if let Ok(mut g) = self.group.lock() {
            g.clear();
            g.push_str(group);
        }
    }

    /// A detector call for field `field` begins.
    pub fn enter(&self, field: usize) {
        self.field.store(field, Ordering::Relaxed);
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1);
        self.since.store(now, Ordering::Release);
    }

    /// The call returned.
    pub fn leave(&self) {
        self.since.store(0, Ordering::Release);
    }

    /// The current call, if it has been running longer than `limit`.
    pub fn stuck(&self, limit: Duration) -> Option<Stuck> {
        let since = self.since.load(Ordering::Acquire);
        if since == 0 {
            return None;
        }
        let running = self.epoch.elapsed().saturating_sub(Duration::from_nanos(since));
        (running > limit).then(|| Stuck {
            field: self.field.load(Ordering::Relaxed),
            group: self.group.lock().map(|g| g.clone()).unwrap_or_default(),
            running,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_only_a_call_running_past_the_limit() {
        let p = Progress::default();
        assert_eq!(p.stuck(Duration::ZERO), None, "idle");
        p.batch("printer=a");
        p.enter(2);
        std::thread::sleep(Duration::from_millis(20));
        let s = p.stuck(Duration::from_millis(5)).unwrap();
        assert_eq!((s.field, s.group.as_str()), (2, "printer=a"));
        assert!(s.running >= Duration::from_millis(20));
        assert_eq!(p.stuck(Duration::from_secs(60)), None, "not past a long limit");
        p.leave();
        assert_eq!(p.stuck(Duration::ZERO), None);
    }
}
