//! `Queue`: the bounded, cost-weighted FIFO between a session's reader,
//! worker and writer.
//!
//! Bounded in what an item costs (points, bytes), not in how many items are
//! queued: one batch may hold ten points or a million. A sender blocks while
//! the queued cost plus its item's would pass the limit, except that an item
//! is always admitted into an empty queue (a batch must be scored whole, so
//! the bound is "limit + one item"). So a sender far ahead of the receiver
//! stalls instead of growing the process, and a receiver that is never read
//! from (Kapacitor not reading stdout) stalls the senders in turn.
//!
//! Either side going away wakes the other: a send to a queue whose receiver
//! is gone fails (the session is ending), and `recv` on an empty queue whose
//! senders are all gone returns `None` (a thread vanished). Owns no policy
//! about what to do then; the session does.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

struct Inner<T> {
    items: VecDeque<(T, usize)>,
    /// Sum of the queued items' costs.
    cost: usize,
    senders: usize,
    receiver: bool,
    /// Senders waiting for room and receivers waiting for an item: a send
    /// or a receive wakes the other side only when someone waits (a
    /// condvar's notify is a futex syscall even when nobody waits, two per
    /// batch when the worker keeps up).
    waiting_senders: usize,
    waiting_receivers: usize,
}

struct Shared<T> {
    inner: Mutex<Inner<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    limit: usize,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // A panic while holding this lock can only come from VecDeque's
        // allocation; the queue's fields are updated together, so the data
        // stays consistent and the poison flag can be ignored.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The sending side; clone it for more senders.
pub struct Sender<T>(Arc<Shared<T>>);

/// The receiving side (one per queue).
pub struct Receiver<T>(Arc<Shared<T>>);

/// The receiver is gone: the item comes back.
#[derive(Debug)]
pub struct Closed<T>(pub T);

/// A queue holding at most `limit` cost (plus one item when empty).
pub fn bounded<T>(limit: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        inner: Mutex::new(Inner {
            items: VecDeque::new(),
            cost: 0,
            senders: 1,
            receiver: true,
            waiting_senders: 0,
            waiting_receivers: 0,
        }),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
        limit,
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Sender<T> {
    /// Queues `item`, blocking while it does not fit.
    pub fn send(&self, item: T, cost: usize) -> Result<(), Closed<T>> {
        self.send_waiting(item, cost, Duration::MAX, || {})
    }

    /// Queues `item`; while it does not fit, calls `waiting` every `tick`
    /// (without the lock held), e.g. to show Kapacitor the process is alive.
    pub fn send_waiting(
        &self,
        item: T,
        cost: usize,
        tick: Duration,
        mut waiting: impl FnMut(),
    ) -> Result<(), Closed<T>> {
        let s = &self.0;
        let mut g = s.lock();
        loop {
            if !g.receiver {
                return Err(Closed(item));
            }
            if g.cost == 0 || g.cost.saturating_add(cost) <= s.limit {
                break;
            }
            g.waiting_senders += 1;
            if tick == Duration::MAX {
                g = s.not_full.wait(g).unwrap_or_else(std::sync::PoisonError::into_inner);
                g.waiting_senders -= 1;
            } else {
                let (g2, timeout) = s
                    .not_full
                    .wait_timeout(g, tick)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                g = g2;
                g.waiting_senders -= 1;
                if timeout.timed_out() {
                    drop(g);
                    waiting();
                    g = s.lock();
                }
            }
        }
        g.cost += cost;
        g.items.push_back((item, cost));
        let wake = g.waiting_receivers > 0;
        drop(g);
        if wake {
            s.not_empty.notify_one();
        }
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        Sender(self.0.clone())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let last = {
            let mut g = self.0.lock();
            g.senders -= 1;
            g.senders == 0
        };
        if last {
            self.0.not_empty.notify_all();
        }
    }
}

impl<T> Receiver<T> {
    /// The next item, waiting for one; `None` once the queue is empty and
    /// every sender is gone.
    pub fn recv(&self) -> Option<T> {
        let s = &self.0;
        let mut g = s.lock();
        loop {
            if let Some((item, cost)) = g.items.pop_front() {
                g.cost -= cost;
                let wake = g.waiting_senders > 0;
                drop(g);
                if wake {
                    s.not_full.notify_all();
                }
                return Some(item);
            }
            if g.senders == 0 {
                return None;
            }
            g.waiting_receivers += 1;
            g = s.not_empty.wait(g).unwrap_or_else(std::sync::PoisonError::into_inner);
            g.waiting_receivers -= 1;
        }
    }

    /// The next item if one is queued now.
    pub fn try_recv(&self) -> Option<T> {
        let s = &self.0;
        let mut g = s.lock();
        let (item, cost) = g.items.pop_front()?;
        g.cost -= cost;
        let wake = g.waiting_senders > 0;
        drop(g);
        if wake {
            s.not_full.notify_all();
        }
        Some(item)
    }

    /// Waits at most `limit` for an item to be queued (returns at once if
    /// one is); whether one is queued now. `false` once every sender is
    /// gone and the queue is empty.
    pub fn wait_for_item(&self, limit: std::time::Duration) -> bool {
        let s = &self.0;
        let deadline = std::time::Instant::now() + limit;
        let mut g = s.lock();
        loop {
            if !g.items.is_empty() {
                return true;
            }
            let now = std::time::Instant::now();
            if g.senders == 0 || now >= deadline {
                return false;
            }
            g.waiting_receivers += 1;
            g = s
                .not_empty
                .wait_timeout(g, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
            g.waiting_receivers -= 1;
        }
    }

    /// Whether the next queued item (if any) satisfies `pred`; `false` when
    /// the queue is empty. Lets a receiver take a run of like items.
    pub fn next_is(&self, pred: impl FnOnce(&T) -> bool) -> bool {
        self.0.lock().items.front().is_some_and(|(item, _)| pred(item))
    }
}

/// Reads how much a queue holds, from any thread, without keeping it (or
/// its items) alive.
#[derive(Clone)]
pub struct Depth(std::sync::Weak<dyn Load + Send + Sync>);

trait Load {
    /// (items, cost) queued now.
    fn load(&self) -> (usize, usize);
}

impl<T> Load for Shared<T> {
    fn load(&self) -> (usize, usize) {
        let g = self.lock();
        (g.items.len(), g.cost)
    }
}

impl Depth {
    /// (items, cost) queued now; `None` once the queue is gone.
    pub fn load(&self) -> Option<(usize, usize)> {
        self.0.upgrade().map(|s| s.load())
    }

    /// The same as a metrics probe.
    pub fn probe(&self) -> crate::metrics::QueueProbe {
        let d = self.clone();
        Box::new(move || d.load().map(|(n, c)| (n as u64, c as u64)))
    }
}

impl<T: Send + 'static> Receiver<T> {
    /// A reader of this queue's depth.
    pub fn depth(&self) -> Depth {
        let weak: std::sync::Weak<Shared<T>> = Arc::downgrade(&self.0);
        Depth(weak)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.0.lock().receiver = false;
        self.0.not_full.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_blocks_the_sender_until_the_receiver_takes() {
        let (tx, rx) = bounded::<u32>(10);
        tx.send(1, 6).ok();
        tx.send(2, 4).ok();
        let t = std::thread::spawn(move || tx.send(3, 1).is_ok());
        // Wait (without a clock) until the sender is blocked on the full queue.
        while rx.0.lock().waiting_senders == 0 {
            assert!(!t.is_finished(), "the sender did not wait for room");
            std::thread::yield_now();
        }
        assert_eq!(rx.0.lock().items.len(), 2, "the third item must wait for room");
        assert_eq!(rx.recv(), Some(1));
        assert_eq!(t.join().ok(), Some(true));
        assert_eq!(rx.recv(), Some(2));
        assert_eq!(rx.recv(), Some(3));
        assert_eq!(rx.recv(), None);
    }

    #[test]
    fn an_item_larger_than_the_limit_enters_an_empty_queue() {
        let (tx, rx) = bounded::<u32>(10);
        assert!(tx.send(1, 100).is_ok());
        assert_eq!(rx.try_recv(), Some(1));
    }

    #[test]
    fn a_sender_blocked_on_a_full_queue_wakes_when_the_receiver_goes() {
        let (tx, rx) = bounded::<u32>(1);
        tx.send(1, 1).ok();
        let t = std::thread::spawn(move || tx.send(2, 1).is_err());
        std::thread::sleep(Duration::from_millis(20));
        drop(rx);
        assert_eq!(t.join().ok(), Some(true));
    }

    #[test]
    fn depth_reads_items_and_cost_until_the_queue_is_gone() {
        let (tx, rx) = bounded::<u32>(100);
        let depth = rx.depth();
        assert_eq!(depth.load(), Some((0, 0)));
        tx.send(1, 30).ok();
        tx.send(2, 5).ok();
        assert_eq!(depth.load(), Some((2, 35)));
        assert_eq!((depth.probe())(), Some((2, 35)));
        assert_eq!(rx.recv(), Some(1));
        assert_eq!(depth.load(), Some((1, 5)));
        drop((tx, rx));
        assert_eq!(depth.load(), None);
    }

    #[test]
    fn a_waiting_sender_ticks() {
        let (tx, rx) = bounded::<u32>(1);
        tx.send(1, 1).ok();
        let t = std::thread::spawn(move || {
            let mut ticks = 0;
            let _ = tx.send_waiting(2, 1, Duration::from_millis(10), || ticks += 1);
            ticks
        });
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(rx.recv(), Some(1));
        assert!(t.join().ok().is_some_and(|n| n >= 3));
        assert!(rx.next_is(|&x| x == 2));
    }

    #[test]
    fn waiting_for_an_item_ends_with_it_the_limit_or_the_senders() {
        let (tx, rx) = bounded::<u32>(10);
        // Nothing comes: false, after the limit.
        let t0 = std::time::Instant::now();
        assert!(!rx.wait_for_item(Duration::from_millis(30)));
        assert!(t0.elapsed() >= Duration::from_millis(30));
        // Queued already: at once, and still queued.
        tx.send(1, 1).ok();
        assert!(rx.wait_for_item(Duration::from_secs(10)));
        assert_eq!(rx.try_recv(), Some(1));
        // Sent while waiting: wakes with it, long before the limit.
        let t0 = std::time::Instant::now();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(2, 1).ok();
            tx
        });
        assert!(rx.wait_for_item(Duration::from_secs(10)));
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert_eq!(rx.try_recv(), Some(2));
        // Every sender gone: false at once.
        drop(sender.join());
        let t0 = std::time::Instant::now();
        assert!(!rx.wait_for_item(Duration::from_secs(10)));
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
