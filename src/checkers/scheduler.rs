//! Which paths are due for a check: a min-heap of next-check times.
//!
//! One tick costs O(k log n) for k due paths and nothing per idle path: no scan over
//! all paths and no syscalls. Rescheduling or removing a path does not search the
//! heap; the old entry is left behind and recognised as stale by its generation
//! number, and the heap is rebuilt once stale entries outnumber live ones.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// The identifier the state owner gives a path.
pub type PathId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    at: Instant,
    // Ties at the same instant go in scheduling order.
    seq: u64,
    id: PathId,
    generation: u64,
}

/// Next-check times of all paths.
#[derive(Debug, Default)]
pub struct Scheduler {
    heap: BinaryHeap<Reverse<Entry>>,
    /// Live generation and due time per scheduled path.
    live: HashMap<PathId, (u64, Instant)>,
    seq: u64,
}

impl Scheduler {
    pub fn new() -> Scheduler {
        Scheduler::default()
    }

    /// Number of scheduled paths.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// When `id` is due, if scheduled.
    pub fn due_at(&self, id: PathId) -> Option<Instant> {
        self.live.get(&id).map(|&(_, at)| at)
    }

    /// Schedules (or reschedules) the next check of `id` at `at`.
    pub fn schedule(&mut self, id: PathId, at: Instant) {
        self.seq += 1;
        let generation = self.seq;
        self.live.insert(id, (generation, at));
        self.heap.push(Reverse(Entry {
            at,
            seq: self.seq,
            id,
            generation,
        }));
        self.compact_if_stale();
    }

    /// Schedules `id` `secs` seconds after `now` (the state machine's `tick`).
    pub fn schedule_in(&mut self, id: PathId, now: Instant, secs: u32) {
        self.schedule(id, now + Duration::from_secs(u64::from(secs)));
    }

    /// Forgets `id` (path removed).
    pub fn remove(&mut self, id: PathId) {
        self.live.remove(&id);
        self.compact_if_stale();
    }

    /// Spreads first checks of `ids` evenly over `[now, now + window)`, so that
    /// thousands of paths added together (startup, reconfigure) do not all fall
    /// on the same tick and then stay bunched.
    pub fn spread(&mut self, ids: &[PathId], now: Instant, window: Duration) {
        let n = ids.len().max(1) as u128;
        let window_ns = window.as_nanos();
        for (i, &id) in ids.iter().enumerate() {
            let offset = window_ns * i as u128 / n;
            // offset < window, which fits in u64 nanoseconds for any sane window.
            self.schedule(
                id,
                now + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX)),
            );
        }
    }

    /// The earliest pending check, for the loop's sleep.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.drop_stale_top();
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Removes and returns up to `max` paths due at `now`, earliest first. Paths
    /// left over stay due and come first on the next call, which bounds the work
    /// of one tick. A returned path is no longer scheduled until rescheduled.
    pub fn take_due(&mut self, now: Instant, max: usize) -> Vec<PathId> {
        let mut out = Vec::new();
        while out.len() < max {
            self.drop_stale_top();
            match self.heap.peek() {
                Some(Reverse(e)) if e.at <= now => {
                    let id = e.id;
                    self.heap.pop();
                    self.live.remove(&id);
                    out.push(id);
                }
                _ => break,
            }
        }
        out
    }

    fn is_live(&self, e: &Entry) -> bool {
        self.live.get(&e.id).is_some_and(|&(g, _)| g == e.generation)
    }

    fn drop_stale_top(&mut self) {
        while let Some(Reverse(e)) = self.heap.peek() {
            if self.is_live(e) {
                break;
            }
            self.heap.pop();
        }
    }

    /// Keeps the heap within twice the live count (plus slack for tiny sets).
    fn compact_if_stale(&mut self) {
        if self.heap.len() > 2 * self.live.len() + 64 {
            let live = &self.live;
            let entries: Vec<Reverse<Entry>> = std::mem::take(&mut self.heap)
                .into_vec()
                .into_iter()
                .filter(|Reverse(e)| live.get(&e.id).is_some_and(|&(g, _)| g == e.generation))
                .collect();
            self.heap = BinaryHeap::from(entries);
        }
    }

    /// Heap entries including stale ones (for the memory-bound test).
    #[cfg(test)]
    fn heap_len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: u64 = 4096;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn spread_4096_paths_over_5_seconds() {
        let t0 = Instant::now();
        let mut s = Scheduler::new();
        let ids: Vec<PathId> = (0..N).collect();
        s.spread(&ids, t0, secs(5));
        assert_eq!(s.len(), 4096);
        // Ticks just before each second take one fifth of the paths (4096/5 ≈ 819.2) in id order.
        let mut all = Vec::new();
        let mut per_tick = Vec::new();
        for tick in 0..5 {
            let due = s.take_due(t0 + Duration::from_millis(tick * 1000 + 999), usize::MAX);
            per_tick.push(due.len());
            all.extend(due);
        }
        assert_eq!(per_tick, vec![819, 819, 819, 819, 820]);
        assert_eq!(all, ids);
        assert!(s.is_empty());
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn nothing_is_due_before_its_time() {
        let t0 = Instant::now();
        let mut s = Scheduler::new();
        for id in 0..N {
            s.schedule(id, t0 + secs(1 + id % 20));
        }
        assert!(s.take_due(t0, usize::MAX).is_empty());
        assert_eq!(s.next_deadline(), Some(t0 + secs(1)));
        let due = s.take_due(t0 + secs(1), usize::MAX);
        assert_eq!(due.len(), (N / 20 + 1) as usize);
        assert!(due.iter().all(|id| id % 20 == 0));
        assert_eq!(s.len(), (N - due.len() as u64) as usize);
    }

    #[test]
    fn rescheduling_keeps_only_the_latest_time() {
        let t0 = Instant::now();
        let mut s = Scheduler::new();
        for id in 0..N {
            s.schedule(id, t0 + secs(1));
        }
        // Half the paths get pushed back (grown interval), some twice.
        for id in (0..N).step_by(2) {
            s.schedule_in(id, t0, 10);
        }
        for id in (0..N).step_by(4) {
            s.schedule_in(id, t0, 20);
        }
        let due = s.take_due(t0 + secs(1), usize::MAX);
        assert_eq!(due, (0..N).filter(|i| i % 2 == 1).collect::<Vec<_>>());
        let due = s.take_due(t0 + secs(10), usize::MAX);
        assert_eq!(due, (0..N).filter(|i| i % 4 == 2).collect::<Vec<_>>());
        let due = s.take_due(t0 + secs(20), usize::MAX);
        assert_eq!(due, (0..N).step_by(4).collect::<Vec<_>>());
        assert!(s.is_empty());
    }

    #[test]
    fn removed_paths_never_come_due() {
        let t0 = Instant::now();
        let mut s = Scheduler::new();
        for id in 0..N {
            s.schedule(id, t0);
        }
        for id in (0..N).filter(|i| i % 3 != 0) {
            s.remove(id);
        }
        let due = s.take_due(t0, usize::MAX);
        assert_eq!(due, (0..N).step_by(3).collect::<Vec<_>>());
        assert_eq!(s.due_at(0), None);
    }

    #[test]
    fn per_tick_cap_carries_over_earliest_first() {
        let t0 = Instant::now();
        let mut s = Scheduler::new();
        for id in 0..N {
            s.schedule(id, t0 + Duration::from_millis(id));
        }
        let now = t0 + secs(10);
        let first = s.take_due(now, 1000);
        assert_eq!(first, (0..1000).collect::<Vec<_>>());
        // A path scheduled later but earlier in time than the backlog goes first.
        s.schedule(9999, t0);
        let next = s.take_due(now, 3);
        assert_eq!(next, vec![9999, 1000, 1001]);
        assert_eq!(s.take_due(now, usize::MAX).len(), 4096 - 1002);
    }

    #[test]
    fn stale_entries_stay_bounded() {
        let t0 = Instant::now();
        let mut s = Scheduler::new();
        for round in 0..50 {
            for id in 0..N {
                s.schedule(id, t0 + secs(round));
            }
        }
        assert!(s.heap_len() <= 2 * 4096 + 64 + 1, "heap {}", s.heap_len());
        assert_eq!(s.len(), 4096);
        assert_eq!(s.next_deadline(), Some(t0 + secs(49)));
    }
}
