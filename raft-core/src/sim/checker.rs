//! The safety properties of Raft (§5.2, Figure 3), checked across the whole cluster.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::types::{Index, Term};

/// Cluster-wide knowledge the properties are checked against.
#[derive(Debug, Default)]
pub struct Checker {
    /// Election Safety: the leader of each term, and the incarnation (restart count) of the
    /// node that was elected.
    leaders: BTreeMap<u64, (usize, u64)>,
    /// Log Matching: the fingerprint of the log prefix ending at each (index, term) ever seen.
    prefixes: BTreeMap<(u64, u64), u64>,
    /// The committed log, as the term and prefix fingerprint of each entry: `committed[i]`
    /// covers indexes `1..=i + 1`.
    committed: Vec<(Term, u64)>,
    /// The highest commit index observed by a node in each term (Leader Completeness: every
    /// leader of a later term must hold it).
    commit_marks: BTreeMap<u64, u64>,
    /// The highest commit index any node has ever reported.
    max_commit: Index,
}

impl Checker {
    /// Election Safety: at most one leader is elected per term. `incarnation` counts the node's
    /// restarts: a node elected in a term, restarted, and leading the same term again won a
    /// second election in it (a restarted node is a follower, and campaigns only in a later
    /// term), so two leaders with possibly different logs held one term.
    pub fn leader(&mut self, term: Term, node: usize, incarnation: u64) -> Result<(), String> {
        match self.leaders.get(&term.0) {
            Some(&(other, _)) if other != node => Err(format!(
                "election safety: nodes {other} and {node} both lead term {}",
                term.0
            )),
            Some(&(_, was)) if was != incarnation => Err(format!(
                "election safety: node {node} elected in term {} twice, before and after a \
                 restart",
                term.0
            )),
            Some(_) => Ok(()),
            None => {
                self.leaders.insert(term.0, (node, incarnation));
                Ok(())
            }
        }
    }

    /// The node that led `term`, if any did.
    #[must_use]
    pub fn leader_of(&self, term: Term) -> Option<usize> {
        self.leaders.get(&term.0).map(|&(node, _)| node)
    }

    /// Log Matching: an entry with this index and term is always preceded by the same log.
    pub fn entry(&mut self, index: Index, term: Term, prefix: u64) -> Result<(), String> {
        match self.prefixes.get(&(index.0, term.0)) {
            Some(&p) if p != prefix => Err(format!(
                "log matching: two logs hold entry {}.{} after different prefixes",
                term.0, index.0
            )),
            Some(_) => Ok(()),
            None => {
                self.prefixes.insert((index.0, term.0), prefix);
                Ok(())
            }
        }
    }

    /// A node in `term` knows the log is committed up to `commit`; `prefix_at(i)` is the
    /// fingerprint of its log up to `i`. Committed logs never differ (State Machine Safety at
    /// the log level).
    pub fn commit(
        &mut self,
        term: Term,
        commit: Index,
        entry_at: impl Fn(u64) -> Option<(Term, u64)>,
    ) -> Result<(), String> {
        let c = commit.0;
        if c == 0 {
            return Ok(());
        }
        let known = self.committed.len() as u64;
        let check_at = c.min(known);
        if check_at > 0 && entry_at(check_at) != self.committed.get(check_at as usize - 1).copied()
        {
            return Err(format!(
                "state machine safety: a node in term {} committed a log that differs from the \
                 committed log at index {check_at}",
                term.0
            ));
        }
        for i in known + 1..=c {
            let p = entry_at(i).ok_or_else(|| format!("commit index {c} past the node's log"))?;
            self.committed.push(p);
        }
        let mark = self.commit_marks.entry(term.0).or_default();
        *mark = (*mark).max(c);
        self.max_commit = self.max_commit.max(commit);
        Ok(())
    }

    /// Leader Completeness: a leader of `term` holds every entry committed in earlier terms.
    pub fn leader_complete(
        &self,
        term: Term,
        node: usize,
        prefix_at: impl Fn(u64) -> Option<u64>,
    ) -> Result<(), String> {
        let needed = self
            .commit_marks
            .range(..term.0)
            .map(|(_, &c)| c)
            .max()
            .unwrap_or(0);
        if needed == 0 {
            return Ok(());
        }
        if prefix_at(needed) != self.committed.get(needed as usize - 1).map(|e| e.1) {
            return Err(format!(
                "leader completeness: node {node}, leader of term {}, lacks committed entry {needed}",
                term.0
            ));
        }
        Ok(())
    }

    /// State Machine Safety: a node applied the entry at `index` after a sequence fingerprinted
    /// `prefix`; it must be the committed one.
    pub fn applied(&self, node: usize, index: Index, prefix: u64) -> Result<(), String> {
        match self.committed.get((index.0 as usize).wrapping_sub(1)) {
            Some(&(_, p)) if p == prefix => Ok(()),
            Some(_) => Err(format!(
                "state machine safety: node {node} applied a different entry at index {}",
                index.0
            )),
            None => Err(format!(
                "node {node} applied index {} before any node knew it committed",
                index.0
            )),
        }
    }

    /// The committed entry at `index`: its term and prefix fingerprint.
    #[must_use]
    pub fn committed_entry(&self, index: u64) -> Option<(Term, u64)> {
        if index == 0 {
            return Some((Term::ZERO, 0));
        }
        self.committed
            .get(usize::try_from(index - 1).ok()?)
            .copied()
    }

    /// The committed log up to `index`, as (term, prefix) pairs.
    #[must_use]
    pub fn committed_prefix(&self, index: u64) -> &[(Term, u64)] {
        let n = usize::try_from(index)
            .unwrap_or(usize::MAX)
            .min(self.committed.len());
        self.committed.get(..n).unwrap_or(&[])
    }

    /// The highest commit index ever observed: a read issued now must be served at or after it.
    #[must_use]
    pub fn max_commit(&self) -> Index {
        self.max_commit
    }

    /// Entries known committed.
    #[must_use]
    pub fn committed_len(&self) -> u64 {
        self.committed.len() as u64
    }

    /// Terms that had a leader.
    #[must_use]
    pub fn leader_terms(&self) -> usize {
        self.leaders.len()
    }
}
