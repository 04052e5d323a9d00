//! How much of the control socket each peer may hold, so that no unprivileged user
//! can starve root or the daemon: connections per uid with slots only root may take,
//! requests in flight to the state owner per uid, reply bytes buffered for
//! unprivileged peers. Pure bookkeeping; the server asks before it serves.

use std::collections::{HashMap, HashSet};

/// The limits (see `ServerConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once, all peers together.
    pub max_clients: usize,
    /// Of those, how many only root may take.
    pub root_reserve: usize,
    /// Connections one unprivileged uid may hold.
    pub per_uid_clients: usize,
    /// Requests one unprivileged uid may have at the state owner at once.
    pub per_uid_in_flight: usize,
    /// Reply bytes buffered (all peers) above which unprivileged replies are refused.
    pub reply_budget: usize,
}

/// A limit a peer ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    Connections,
    InFlight,
    ReplyMemory,
}

/// Connections per uid, and which peers were told about which limit.
#[derive(Debug, Default)]
pub struct Peers {
    clients: HashMap<u32, usize>,
    total: usize,
    unprivileged: usize,
    /// Logged once per peer: re-armed when the uid has no connection left.
    logged: HashSet<(u32, Limit)>,
}

impl Peers {
    /// Counts a new connection of `uid` if the limits allow it; false (and logged once)
    /// if not. Root is refused only when every slot is taken.
    pub fn admit(&mut self, uid: u32, privileged: bool, lim: &Limits) -> bool {
        let mine = self.clients.get(&uid).copied().unwrap_or(0);
        let ok = self.total < lim.max_clients
            && (privileged
                || (self.unprivileged < lim.max_clients.saturating_sub(lim.root_reserve)
                    && mine < lim.per_uid_clients));
        if !ok {
            self.hit(uid, Limit::Connections, lim);
            return false;
        }
        *self.clients.entry(uid).or_default() += 1;
        self.total += 1;
        if !privileged {
            self.unprivileged += 1;
        }
        true
    }

    /// A connection admitted by [`Peers::admit`] closed.
    pub fn left(&mut self, uid: u32, privileged: bool) {
        self.total = self.total.saturating_sub(1);
        if !privileged {
            self.unprivileged = self.unprivileged.saturating_sub(1);
        }
        if let Some(n) = self.clients.get_mut(&uid) {
            *n -= 1;
            if *n == 0 {
                self.clients.remove(&uid);
                self.logged.retain(|(u, _)| *u != uid);
            }
        }
    }

    /// Connections served now.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Record that `uid` ran into `limit`; logged the first time only. True the first time.
    pub fn hit(&mut self, uid: u32, limit: Limit, lim: &Limits) -> bool {
        if !self.logged.insert((uid, limit)) {
            return false;
        }
        match limit {
            Limit::Connections => log::warn!(
                "cli: uid {uid} holds {} connections, the most allowed ({} per user, {} of {} kept for root); \
                 refusing more",
                self.clients.get(&uid).copied().unwrap_or(0),
                lim.per_uid_clients,
                lim.root_reserve,
                lim.max_clients
            ),
            Limit::InFlight => log::warn!(
                "cli: uid {uid} has {} requests waiting for the daemon; holding its others back",
                lim.per_uid_in_flight
            ),
            Limit::ReplyMemory => log::warn!(
                "cli: replies buffered for slow readers exceed {} bytes; refusing uid {uid}'s",
                lim.reply_budget
            ),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: Limits = Limits {
        max_clients: 10,
        root_reserve: 4,
        per_uid_clients: 4,
        per_uid_in_flight: 2,
        reply_budget: 100,
    };

    #[test]
    fn unprivileged_users_leave_root_its_reserve() {
        let mut p = Peers::default();
        assert!((0..4).all(|_| p.admit(1000, false, &LIM)));
        assert!(!p.admit(1000, false, &LIM), "per-uid limit");
        assert!(p.admit(1001, false, &LIM));
        assert!(p.admit(1001, false, &LIM));
        assert!(!p.admit(1002, false, &LIM), "unprivileged share (10 - 4) is used up");
        assert!((0..4).all(|_| p.admit(0, true, &LIM)), "root takes its reserve");
        assert!(!p.admit(0, true, &LIM), "every slot taken");
        p.left(1000, false);
        assert!(p.admit(0, true, &LIM), "root takes any free slot");
        assert_eq!(p.total(), 10);
    }

    #[test]
    fn a_limit_is_logged_once_per_peer_until_it_has_no_connection_left() {
        let mut p = Peers::default();
        assert!((0..4).all(|_| p.admit(7, false, &LIM)));
        assert!(p.hit(7, Limit::InFlight, &LIM));
        assert!(!p.hit(7, Limit::InFlight, &LIM));
        assert!(p.hit(7, Limit::ReplyMemory, &LIM));
        assert!(p.hit(8, Limit::InFlight, &LIM), "another peer");
        for _ in 0..4 {
            p.left(7, false);
        }
        assert!(p.hit(7, Limit::InFlight, &LIM), "re-armed");
    }
}
