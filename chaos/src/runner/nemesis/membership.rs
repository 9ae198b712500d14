//! The membership faults: a member removed, added, or replaced, each command retried until a
//! node applies it, and the configuration reconciled with the nodes that run after a heal.

use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

use raft_mio::resp::client::Value;

use super::{Nemesis, show, voters};
use crate::runner::cluster::{self, Cluster};

impl Nemesis {
    /// A membership command, retried at each running node (leader first) for up to 6 s while
    /// its answer says it was not applied; the last answer.
    pub(super) fn membership(cl: &Cluster, args: &[&str]) -> (bool, String) {
        let deadline = Instant::now() + Duration::from_secs(6);
        let mut last = String::new();
        while Instant::now() < deadline {
            let mut order = cl.running();
            if let Some(l) = cl.leader() {
                order.retain(|&n| n != l);
                order.insert(0, l);
            }
            for id in order {
                let reply = cl.call(id, args);
                last = show(&reply);
                match reply {
                    Ok(Value::Simple(_)) => return (true, last),
                    Ok(Value::Error(e)) if e.starts_with("TRYAGAIN") => {}
                    // Refused for good, or an outcome that is unknown: not retried.
                    Ok(_) | Err(_) => return (false, last),
                }
            }
            thread::sleep(Duration::from_millis(200));
        }
        (false, last)
    }

    pub(super) fn remove(&mut self, cl: &mut Cluster) {
        let Some(leader) = cl.wait_leader(Duration::from_secs(5)) else {
            return self.event("no leader: no removal");
        };
        let voters = voters(cl, leader);
        let Some(victim) = self.pick(&voters) else {
            return;
        };
        let (ok, reply) = Self::membership(cl, &["RAFT.REMOVE", &victim.to_string()]);
        self.count("member-remove");
        self.event(format!("RAFT.REMOVE {victim}: {reply}"));
        if !ok {
            return;
        }
        // +OK says the change was appended, not that it is done: a node stopped while the
        // joint configuration still needs it may leave the cluster without a quorum for good.
        if !Self::wait_change_done(cl, victim) {
            self.event(format!(
                "the removal of {victim} did not finish within 10 s: it keeps running"
            ));
            return;
        }
        cl.kill(victim);
        if let Some(n) = cl.nodes.get_mut(&victim) {
            n.retired = true;
        }
        cl.publish();
        self.event(format!(
            "node {victim} removed (the change is committed): stopped for good"
        ));
    }

    /// Waits up to 10 s for the leader to say no change is in progress and `gone` is no member.
    pub(super) fn wait_change_done(cl: &Cluster, gone: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let info = cl.leader().and_then(|l| cl.info(l));
            if let Some(i) = info {
                let named = |f: &str| {
                    i.get(f)
                        .is_some_and(|v| v.split(',').any(|x| x == gone.to_string()))
                };
                if i.get("joint").map(String::as_str) == Some("0")
                    && !named("voters")
                    && !named("learners")
                {
                    return true;
                }
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub(super) fn add(&mut self, cl: &mut Cluster) -> bool {
        let Some(leader) = cl.wait_leader(Duration::from_secs(5)) else {
            self.event("no leader: no new node");
            return false;
        };
        let peers = voters(cl, leader);
        let mono = self.rng.chance(0.5);
        let id = match cl.create(&peers, true, mono) {
            Ok(id) => id,
            Err(e) => {
                self.note(format!("could not create a node: {e}"));
                return false;
            }
        };
        if let Err(e) = cl.spawn(id) {
            self.note(format!("could not start node {id}: {e}"));
            return false;
        }
        let addr = cl.net.peer_addr(id, 0).to_string();
        let (ok, reply) = Self::membership(cl, &["RAFT.ADDLEARNER", &id.to_string(), &addr]);
        self.count("member-add");
        self.event(format!(
            "new node {id} (fresh data) joins: RAFT.ADDLEARNER {id} {addr}: {reply}"
        ));
        if !ok {
            return false;
        }
        // Let it catch up (from a snapshot, most likely) before it votes.
        let deadline = Instant::now() + Duration::from_secs(8);
        while Instant::now() < deadline {
            let lead = cl.leader().and_then(|l| cl.info(l));
            let me = cl.info(id);
            let idx = |i: &Option<cluster::Info>, f: &str| {
                i.as_ref()
                    .and_then(|i| i.get(f)?.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if me.is_some() && idx(&me, "applied_index") + 50 >= idx(&lead, "commit_index") {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        let (ok, reply) = Self::membership(cl, &["RAFT.PROMOTE", &id.to_string()]);
        self.event(format!("RAFT.PROMOTE {id}: {reply}"));
        ok && Self::wait_change_done(cl, 0)
    }

    pub(super) fn member(&mut self, cl: &mut Cluster) {
        let during = self.rng.chance(0.7) && self.partition(cl).is_some();
        let voters = cl.leader().map(|l| voters(cl, l)).unwrap_or_default();
        if voters.len() < self.size {
            // Below its size (an earlier change half done): grow back only.
            self.count("member-grow");
            self.add(cl);
            self.heal_links(cl);
            self.reconcile(cl);
            return;
        }
        let remove_first = if voters.len() > self.size {
            true
        } else if voters.len() < self.size {
            false
        } else {
            self.rng.chance(0.5)
        };
        self.count(if remove_first {
            "member-remove-add"
        } else {
            "member-replace"
        });
        if remove_first {
            self.remove(cl);
            if during && self.rng.chance(0.5) {
                self.heal_links(cl);
            }
            self.add(cl);
        } else {
            let added = self.add(cl);
            if during && self.rng.chance(0.5) {
                self.heal_links(cl);
            }
            // A replacement: the old node goes only once the new one votes.
            if added {
                self.remove(cl);
            }
        }
        self.heal_links(cl);
        self.reconcile(cl);
    }

    /// Makes the processes agree with the membership the leader has: a node that is no member
    /// (a removal whose answer was lost) is stopped for good, a member that does not run is
    /// started.
    pub(crate) fn reconcile(&mut self, cl: &mut Cluster) {
        let Some(leader) = cl.wait_leader(Duration::from_secs(10)) else {
            return;
        };
        let Some(info) = cl.info(leader) else { return };
        let mut members: BTreeSet<u64> = BTreeSet::new();
        for field in ["voters", "learners"] {
            if let Some(list) = info.get(field) {
                members.extend(list.split(',').filter_map(|s| s.parse::<u64>().ok()));
            }
        }
        if members.is_empty() {
            return;
        }
        for id in cl.active() {
            if !members.contains(&id) {
                cl.kill(id);
                if let Some(n) = cl.nodes.get_mut(&id) {
                    n.retired = true;
                }
                self.event(format!("node {id} is no member: stopped for good"));
            }
        }
        for id in members {
            let Some(node) = cl.nodes.get(&id) else {
                continue;
            };
            if node.retired {
                // Stopped for good after an answer that said it was not added (or removed),
                // but it was: take it out again.
                let (_, reply) = Self::membership(cl, &["RAFT.REMOVE", &id.to_string()]);
                self.event(format!(
                    "node {id} is a member but was stopped for good: RAFT.REMOVE {id}: {reply}"
                ));
            } else if node.child.is_none() {
                self.restart(cl, id);
            }
        }
        cl.publish();
    }
}
