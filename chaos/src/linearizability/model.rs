//! The sequential model of one key: its values interned as states, and the operations as the
//! model runs them.

use std::collections::HashMap;
use std::rc::Rc;

/// A model state: an index into [`States`]; [`ABSENT`] is the absent key.
pub(super) type StateId = u32;

/// The absent key.
pub(super) const ABSENT: StateId = 0;

/// The values a key takes during the search, interned so that a state is a small number.
pub(super) struct States {
    ids: HashMap<Rc<str>, StateId>,
    /// Index 0 is [`ABSENT`].
    values: Vec<Option<Rc<str>>>,
    /// Each value read as an integer, as `incr` reads it (`ABSENT` is 0).
    ints: Vec<Option<i64>>,
}

impl States {
    pub(super) fn new() -> Self {
        Self {
            ids: HashMap::new(),
            values: vec![None],
            ints: vec![Some(0)],
        }
    }

    pub(super) fn intern(&mut self, value: &str) -> StateId {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = StateId::try_from(self.values.len()).unwrap_or(StateId::MAX);
        let value: Rc<str> = Rc::from(value);
        self.ids.insert(Rc::clone(&value), id);
        self.ints.push(parse_i64(value.as_bytes()));
        self.values.push(Some(value));
        id
    }

    pub(super) fn value(&self, id: StateId) -> Option<&str> {
        self.values.get(id as usize).and_then(|v| v.as_deref())
    }

    pub(super) fn int(&self, id: StateId) -> Option<i64> {
        self.ints.get(id as usize).copied().flatten()
    }
}

/// Parses the canonical decimal form of an `i64`, as the store's `incr` does (and Redis's
/// `string2ll`): an optional `-`, then digits without leading zeros (`0` alone, not `-0`), no
/// `+`, no spaces, no overflow.
fn parse_i64(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes {
        [b'0'] => return Some(0),
        [b'-', rest @ ..] => (true, rest),
        _ => (false, bytes),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut n: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        // Accumulate negatively so that i64::MIN parses.
        n = n.checked_mul(10)?.checked_sub(i64::from(b - b'0'))?;
    }
    if negative { Some(n) } else { n.checked_neg() }
}

/// One operation as the model runs it.
pub(super) enum Step {
    /// Must see this state.
    Get(StateId),
    /// Stores this state.
    Set(StateId),
    /// Appends; must answer this length if known.
    Append { suffix: Rc<str>, len: Option<i64> },
    /// Adds; must answer this value if known.
    Incr { delta: i64, result: Option<i64> },
    /// Removes; must answer this count if known.
    Del { removed: Option<i64> },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_i64_is_canonical() {
        for (s, want) in [
            ("0", Some(0)),
            ("-1", Some(-1)),
            ("42", Some(42)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-0", None),
            ("007", None),
            ("+1", None),
            (" 1", None),
            ("", None),
            ("-", None),
            ("1a", None),
        ] {
            assert_eq!(parse_i64(s.as_bytes()), want, "{s:?}");
        }
    }
}
