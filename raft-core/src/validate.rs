//! Validation of received messages: everything that can be checked before any state changes.

use crate::error::Reject;
use crate::membership::Membership;
use crate::message::{Message, MessageBody};
use crate::shared::Shared;
use crate::types::{EntryKind, Index, LogId};

/// Checks what can be checked of a received message before any state changes: it is for this
/// node, from another, and well-formed (contiguous entries of sane terms, decodable
/// configurations, no overflow, a heartbeat commit within the log). A message that fails cannot
/// come from a correct peer.
pub(crate) fn validate(s: &Shared, m: &Message) -> Result<(), Reject> {
    if m.to != s.id {
        return Err(Reject::WrongRecipient { to: m.to });
    }
    if m.from == s.id {
        return Err(Reject::FromSelf);
    }
    // Requests are processed from any sender (Raft thesis §4.1): a leader or candidate of a
    // configuration this node has not yet received must be heard, or the node could never
    // catch up with it. Responses come only from members this node asked.
    let request = matches!(
        m.body,
        MessageBody::AppendEntries { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::Commit { .. }
            | MessageBody::InstallSnapshot { .. }
            | MessageBody::VoteRequest { .. }
            | MessageBody::TimeoutNow
    );
    if !request && !s.membership.contains(m.from) {
        return Err(Reject::UnknownSender { from: m.from });
    }
    if m.term.next().is_none() {
        return Err(Reject::Overflow);
    }
    match &m.body {
        MessageBody::VoteRequest { last_log, .. }
            if last_log.term > m.term || !well_formed(*last_log) =>
        {
            Err(Reject::MalformedVoteRequest)
        }
        MessageBody::AppendEntries { prev, entries, .. } => {
            let mut last = *prev;
            if last.term > m.term || !well_formed(last) {
                return Err(Reject::MalformedEntries);
            }
            for e in entries {
                let index = last.index.next().ok_or(Reject::Overflow)?;
                if e.id.index != index
                    || e.id.term < last.term
                    || e.id.term > m.term
                    || !well_formed(e.id)
                {
                    return Err(Reject::MalformedEntries);
                }
                if e.kind == EntryKind::Config && Membership::decode(&e.data).is_err() {
                    return Err(Reject::MalformedEntries);
                }
                last = e.id;
            }
            Ok(())
        }
        MessageBody::InstallSnapshot {
            meta, offset, data, ..
        } => {
            if meta.last.term > m.term || meta.last.index == Index::ZERO || !well_formed(meta.last)
            {
                return Err(Reject::MalformedSnapshot);
            }
            offset
                .checked_add(data.len() as u64)
                .map(drop)
                .ok_or(Reject::Overflow)
        }
        MessageBody::Heartbeat { commit, .. }
            if m.term >= s.term && *commit > s.log.last_index() =>
        {
            Err(Reject::CommitPastLog {
                commit: *commit,
                last: s.log.last_index(),
            })
        }
        // Checked from the commit index up (the log holds it: it is never compacted past what is
        // committed); below it the log may be compacted, and the notice says nothing new.
        MessageBody::Commit { commit } if m.term >= s.term && commit.index >= s.commit => {
            if commit.index > s.log.last_index() {
                Err(Reject::CommitPastLog {
                    commit: commit.index,
                    last: s.log.last_index(),
                })
            } else if !s.log.matches(*commit) {
                Err(Reject::CommitNotInLog { commit: *commit })
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// Whether `id` can name a log position: index 0 with term 0 (the empty log), or an entry, whose
/// term is that of the leader that made it (1 or more). A log or snapshot holding anything else
/// could not be restored after a restart (`Restored::validate` refuses it), so a message carrying
/// one is nonsense.
fn well_formed(id: LogId) -> bool {
    (id.index == Index::ZERO) == (id.term.0 == 0)
}
