//! The history format: what clients did to the key-value store, one operation per line.
//!
//! A history is a file of JSON lines, one operation each, in any order:
//!
//! ```text
//! {"client":1,"op":"set","key":"k","arg":"v1","call":100,"ret":180}
//! {"client":2,"op":"get","key":"k","result":"v1","call":150,"ret":200}
//! {"client":3,"op":"incr","key":"n","arg":5,"result":5,"call":160,"ret":210}
//! {"client":1,"op":"append","key":"k","arg":"x","call":300,"ret":null}
//! ```
//!
//! The fields:
//!
//! | field | what it holds |
//! | --- | --- |
//! | `client` | who issued the operation (an unsigned integer); only used in reports |
//! | `op` | `get`, `set`, `append`, `incr` or `del` |
//! | `key` | the key the operation touches (a string) |
//! | `arg` | the value for `set` and `append` (a string), the delta for `incr` (an integer); absent (or `null`) for `get` and `del` |
//! | `result` | for `get` the value read (a string, or `null` for an absent key); for `incr` the new value; for `append` the new length in bytes; for `del`, optionally, how many keys it removed (0 or 1); absent for `set` |
//! | `call` | when the client sent the request, in monotonic nanoseconds |
//! | `ret` | when the client received the answer, or `null` (or absent) when the outcome is unknown |
//!
//! An operation whose `ret` is `null` has an unknown outcome (the client timed out, the
//! connection dropped): it may have taken effect at any point after its call, or never, and it
//! has no `result`. An operation that failed with a definite "not applied" answer (an error
//! reply that guarantees nothing changed, such as `incr` on a value that is not an integer) is
//! simply left out of the history by the recorder: it changed nothing, so the checker need not
//! know about it.
//!
//! Unknown fields are rejected, so that a misspelt optional field (`"reslt"`) is not silently
//! ignored. [`History::from_reader`] reads a file, naming the line of any error;
//! [`HistoryWriter`] writes one, a line per operation.

use core::fmt;
use std::io::{self, BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// One operation of a history: a client's request on one key, when it was sent and when (if
/// ever) its answer came back.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Operation {
    /// Who issued the operation; only used to make reports readable.
    pub client: u64,
    /// The key the operation touches.
    pub key: String,
    /// What the operation does, with its argument.
    pub op: Op,
    /// When the request was sent, in monotonic nanoseconds.
    pub call: u64,
    /// When the answer came back, in monotonic nanoseconds, or `None` when the outcome is
    /// unknown: the operation may have taken effect at any point after `call`, or never.
    pub ret: Option<u64>,
    /// What the answer said: `None` for `set`, for an unknown outcome and for a `del` whose
    /// count was not recorded. See [`Operation::validate`] for which results go with which
    /// operation.
    pub result: Option<OpResult>,
}

/// What an operation does.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Op {
    /// Reads the key's value.
    Get,
    /// Stores a value.
    Set(String),
    /// Appends to the value (an absent key counts as empty); answers the new length in bytes.
    Append(String),
    /// Adds a delta to the value read as a decimal `i64` (an absent key counts as 0); answers
    /// the new value. On a value that is not an integer, or on overflow, it fails and changes
    /// nothing.
    Incr(i64),
    /// Removes the key; may answer how many keys it removed (0 or 1).
    Del,
}

impl Op {
    /// The name used in the `op` field: `get`, `set`, `append`, `incr` or `del`.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Set(_) => "set",
            Self::Append(_) => "append",
            Self::Incr(_) => "incr",
            Self::Del => "del",
        }
    }
}

/// What an operation answered.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum OpResult {
    /// The value a `get` read: `None` when the key was absent.
    Value(Option<String>),
    /// The number an `incr` (new value), an `append` (new length) or a `del` (keys removed)
    /// answered.
    Integer(i64),
}

/// Why an operation does not make sense (a result of the wrong kind, a return before the call).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum InvalidOperation {
    /// The `op` field names no known operation.
    UnknownOp(String),
    /// The `arg` field is missing or of the wrong kind for the operation.
    BadArg {
        /// The operation.
        op: &'static str,
        /// What the argument should have been.
        expected: &'static str,
    },
    /// The `result` field is missing or of the wrong kind for the operation.
    BadResult {
        /// The operation.
        op: &'static str,
        /// What the result should have been.
        expected: &'static str,
    },
    /// The operation has a result but an unknown outcome (`ret` is `null`).
    ResultWithoutReturn,
    /// `ret` is before `call`.
    ReturnBeforeCall {
        /// The call time.
        call: u64,
        /// The return time.
        ret: u64,
    },
}

impl fmt::Display for InvalidOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownOp(op) => write!(
                f,
                "unknown op {op:?} (expected get, set, append, incr or del)"
            ),
            Self::BadArg { op, expected } => write!(f, "{op}: arg must be {expected}"),
            Self::BadResult { op, expected } => write!(f, "{op}: result must be {expected}"),
            Self::ResultWithoutReturn => {
                f.write_str("an operation with an unknown outcome (ret null) has no result")
            }
            Self::ReturnBeforeCall { call, ret } => {
                write!(f, "ret {ret} is before call {call}")
            }
        }
    }
}

impl std::error::Error for InvalidOperation {}

impl Operation {
    /// Whether the outcome is unknown (`ret` is `None`).
    #[must_use]
    pub const fn is_unknown(&self) -> bool {
        self.ret.is_none()
    }

    /// Checks that the fields fit together: `ret` is not before `call`; an unknown outcome has
    /// no result; a completed `get` has a [`OpResult::Value`], a completed `incr` or `append` an
    /// [`OpResult::Integer`], a `set` none, and a `del` none or `Integer` 0 or 1.
    ///
    /// # Errors
    ///
    /// What does not fit.
    pub fn validate(&self) -> Result<(), InvalidOperation> {
        let Some(ret) = self.ret else {
            return match self.result {
                None => Ok(()),
                Some(_) => Err(InvalidOperation::ResultWithoutReturn),
            };
        };
        if ret < self.call {
            return Err(InvalidOperation::ReturnBeforeCall {
                call: self.call,
                ret,
            });
        }
        let op = self.op.name();
        let bad = |expected| Err(InvalidOperation::BadResult { op, expected });
        match (&self.op, &self.result) {
            (Op::Get, Some(OpResult::Value(_)))
            | (Op::Set(_), None)
            | (Op::Append(_) | Op::Incr(_), Some(OpResult::Integer(_)))
            | (Op::Del, None | Some(OpResult::Integer(0 | 1))) => Ok(()),
            (Op::Get, _) => bad("the value read (a string, or null for an absent key)"),
            (Op::Set(_), _) => bad("absent"),
            (Op::Append(_), _) => bad("the new length (an integer)"),
            (Op::Incr(_), _) => bad("the new value (an integer)"),
            (Op::Del, _) => bad("absent, 0 or 1"),
        }
    }
}

/// Writes a string the way reports show it: quoted and escaped.
fn quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    write!(f, "{s:?}")
}

impl fmt::Display for Operation {
    /// `client 2: get("k") -> "v1" [150..200]`; an unknown outcome shows `-> ?` and `[300..?]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {}: {}(", self.client, self.op.name())?;
        quoted(f, &self.key)?;
        match &self.op {
            Op::Get | Op::Del => {}
            Op::Set(v) | Op::Append(v) => {
                f.write_str(", ")?;
                quoted(f, v)?;
            }
            Op::Incr(d) => write!(f, ", {d}")?,
        }
        f.write_str(")")?;
        match (&self.result, self.ret) {
            (_, None) => f.write_str(" -> ?")?,
            (Some(OpResult::Value(Some(v))), Some(_)) => {
                f.write_str(" -> ")?;
                quoted(f, v)?;
            }
            (Some(OpResult::Value(None)), Some(_)) => f.write_str(" -> nil")?,
            (Some(OpResult::Integer(n)), Some(_)) => write!(f, " -> {n}")?,
            (None, Some(_)) => {}
        }
        match self.ret {
            Some(ret) => write!(f, " [{}..{}]", self.call, ret),
            None => write!(f, " [{}..?]", self.call),
        }
    }
}

/// A history: operations whose fields fit together (see [`Operation::validate`]).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct History {
    ops: Vec<Operation>,
}

/// Why a history could not be read.
#[derive(Debug)]
pub enum HistoryError {
    /// Reading failed (or a line is not UTF-8).
    Io {
        /// The line being read (1-based); 0 if the file could not be opened.
        line: usize,
        /// What went wrong.
        source: io::Error,
    },
    /// A line is not a JSON object of the expected shape.
    Json {
        /// The line (1-based).
        line: usize,
        /// What serde_json said.
        source: serde_json::Error,
    },
    /// A line is well-formed JSON but not a sensible operation.
    Invalid {
        /// The line (1-based), or for [`History::new`] the operation's position (1-based).
        line: usize,
        /// What is wrong with it.
        reason: InvalidOperation,
    },
}

impl HistoryError {
    /// The line (1-based) the error is on.
    #[must_use]
    pub const fn line(&self) -> usize {
        match self {
            Self::Io { line, .. } | Self::Json { line, .. } | Self::Invalid { line, .. } => *line,
        }
    }
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { line: 0, source } => write!(f, "{source}"),
            Self::Io { line, source } => write!(f, "line {line}: {source}"),
            Self::Json { line, source } => write!(f, "line {line}: {source}"),
            Self::Invalid { line, reason } => write!(f, "line {line}: {reason}"),
        }
    }
}

impl std::error::Error for HistoryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Json { source, .. } => Some(source),
            Self::Invalid { reason, .. } => Some(reason),
        }
    }
}

/// One line as it is in the file, before its fields are checked against each other.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    client: u64,
    op: String,
    key: String,
    #[serde(default)]
    arg: Option<Value>,
    /// `None` when absent, `Some(Value::Null)` when `null`: a get's `null` means "absent key".
    #[serde(default, deserialize_with = "present")]
    result: Option<Value>,
    call: u64,
    #[serde(default)]
    ret: Option<u64>,
}

/// Deserializes a field that is present (possibly `null`) as `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl RawLine {
    fn into_operation(self) -> Result<Operation, InvalidOperation> {
        let op = match self.op.as_str() {
            "get" => no_arg(self.arg, "get").map(|()| Op::Get),
            "del" => no_arg(self.arg, "del").map(|()| Op::Del),
            "set" => string_arg(self.arg, "set").map(Op::Set),
            "append" => string_arg(self.arg, "append").map(Op::Append),
            "incr" => match self.arg.as_ref().and_then(Value::as_i64) {
                Some(delta) => Ok(Op::Incr(delta)),
                None => Err(InvalidOperation::BadArg {
                    op: "incr",
                    expected: "the delta (an integer)",
                }),
            },
            _ => Err(InvalidOperation::UnknownOp(self.op)),
        }?;
        let name = op.name();
        let bad = |expected| InvalidOperation::BadResult { op: name, expected };
        let result = match (&op, self.result) {
            (_, None) => None,
            (Op::Get, Some(Value::Null)) => Some(OpResult::Value(None)),
            (Op::Get, Some(Value::String(s))) => Some(OpResult::Value(Some(s))),
            (Op::Get, Some(_)) => {
                return Err(bad("the value read (a string, or null for an absent key)"));
            }
            (_, Some(Value::Null)) => None,
            (_, Some(v)) => match v.as_i64() {
                Some(n) => Some(OpResult::Integer(n)),
                None => return Err(bad("an integer")),
            },
        };
        let operation = Operation {
            client: self.client,
            key: self.key,
            op,
            call: self.call,
            ret: self.ret,
            result,
        };
        operation.validate()?;
        Ok(operation)
    }
}

fn no_arg(arg: Option<Value>, op: &'static str) -> Result<(), InvalidOperation> {
    match arg {
        None | Some(Value::Null) => Ok(()),
        Some(_) => Err(InvalidOperation::BadArg {
            op,
            expected: "absent",
        }),
    }
}

fn string_arg(arg: Option<Value>, op: &'static str) -> Result<String, InvalidOperation> {
    match arg {
        Some(Value::String(s)) => Ok(s),
        _ => Err(InvalidOperation::BadArg {
            op,
            expected: "the value (a string)",
        }),
    }
}

impl History {
    /// A history of these operations, if each one's fields fit together.
    ///
    /// # Errors
    ///
    /// [`HistoryError::Invalid`] for the first operation that does not pass
    /// [`Operation::validate`], with its 1-based position as the line.
    pub fn new(ops: Vec<Operation>) -> Result<Self, HistoryError> {
        for (i, op) in ops.iter().enumerate() {
            op.validate().map_err(|reason| HistoryError::Invalid {
                line: i + 1,
                reason,
            })?;
        }
        Ok(Self { ops })
    }

    /// Reads a history of JSON lines (see the [module documentation](self)). Blank lines are
    /// skipped.
    ///
    /// # Errors
    ///
    /// The first line that cannot be read or is not a valid operation, with its number.
    pub fn from_reader(reader: impl BufRead) -> Result<Self, HistoryError> {
        let mut ops = Vec::new();
        for (i, line) in reader.lines().enumerate() {
            let line_no = i + 1;
            let text = line.map_err(|source| HistoryError::Io {
                line: line_no,
                source,
            })?;
            if text.trim().is_empty() {
                continue;
            }
            let raw: RawLine =
                serde_json::from_str(&text).map_err(|source| HistoryError::Json {
                    line: line_no,
                    source,
                })?;
            let op = raw
                .into_operation()
                .map_err(|reason| HistoryError::Invalid {
                    line: line_no,
                    reason,
                })?;
            ops.push(op);
        }
        Ok(Self { ops })
    }

    /// Reads a history from a string of JSON lines, as [`History::from_reader`] does.
    ///
    /// # Errors
    ///
    /// As [`History::from_reader`].
    pub fn parse(text: &str) -> Result<Self, HistoryError> {
        Self::from_reader(text.as_bytes())
    }

    /// Reads the history file at `path`, as [`History::from_reader`] does.
    ///
    /// # Errors
    ///
    /// [`HistoryError::Io`] (line 0) if the file cannot be opened; otherwise as
    /// [`History::from_reader`].
    pub fn read_file(path: impl AsRef<Path>) -> Result<Self, HistoryError> {
        let file =
            std::fs::File::open(path).map_err(|source| HistoryError::Io { line: 0, source })?;
        Self::from_reader(io::BufReader::new(file))
    }

    /// The operations, in the order they were given.
    #[must_use]
    pub fn ops(&self) -> &[Operation] {
        &self.ops
    }

    /// The operations, in the order they were given.
    #[must_use]
    pub fn into_ops(self) -> Vec<Operation> {
        self.ops
    }

    /// How many operations there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Writes the history as JSON lines, one per operation.
    ///
    /// # Errors
    ///
    /// What writing to `out` returned.
    pub fn write_to(&self, out: impl Write) -> io::Result<()> {
        let mut writer = HistoryWriter::new(out);
        for op in &self.ops {
            writer.write(op)?;
        }
        writer.flush()
    }
}

/// One line as it is written.
#[derive(Serialize)]
struct OutLine<'a> {
    client: u64,
    op: &'static str,
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    arg: Option<OutValue<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<OutValue<'a>>,
    call: u64,
    ret: Option<u64>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum OutValue<'a> {
    Str(Option<&'a str>),
    Int(i64),
}

/// Appends operations to a history file (or any [`Write`]), one JSON line each, for a recorder.
///
/// Each line goes out in a single `write_all`, so that lines from a process that is killed are
/// whole or missing more often than cut; wrap a file in an [`io::BufWriter`] for speed, and
/// [`flush`](Self::flush) at the end.
///
/// ```
/// use chaos::history::{History, HistoryWriter, Op, OpResult, Operation};
///
/// let mut writer = HistoryWriter::new(Vec::new());
/// writer.write(&Operation {
///     client: 1,
///     key: "k".into(),
///     op: Op::Get,
///     call: 100,
///     ret: Some(180),
///     result: Some(OpResult::Value(None)),
/// })?;
/// let text = String::from_utf8(writer.into_inner()).unwrap();
/// assert_eq!(
///     text,
///     "{\"client\":1,\"op\":\"get\",\"key\":\"k\",\"result\":null,\"call\":100,\"ret\":180}\n"
/// );
/// assert_eq!(History::parse(&text).unwrap().len(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct HistoryWriter<W: Write> {
    out: W,
    line: Vec<u8>,
}

impl<W: Write> HistoryWriter<W> {
    /// A writer that appends to `out`.
    pub const fn new(out: W) -> Self {
        Self {
            out,
            line: Vec::new(),
        }
    }

    /// Appends one operation as a line.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] (wrapping an [`InvalidOperation`]) if the operation does
    /// not pass [`Operation::validate`] (nothing is written then), or what writing returned.
    pub fn write(&mut self, op: &Operation) -> io::Result<()> {
        op.validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let arg = match &op.op {
            Op::Get | Op::Del => None,
            Op::Set(v) | Op::Append(v) => Some(OutValue::Str(Some(v))),
            Op::Incr(d) => Some(OutValue::Int(*d)),
        };
        let result = op.result.as_ref().map(|r| match r {
            OpResult::Value(v) => OutValue::Str(v.as_deref()),
            OpResult::Integer(n) => OutValue::Int(*n),
        });
        let line = OutLine {
            client: op.client,
            op: op.op.name(),
            key: &op.key,
            arg,
            result,
            call: op.call,
            ret: op.ret,
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, &line).map_err(io::Error::other)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    /// Flushes the underlying writer.
    ///
    /// # Errors
    ///
    /// What flushing returned.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(line: &str) -> Result<Operation, HistoryError> {
        History::parse(line).map(|h| h.into_ops().remove(0))
    }

    #[test]
    fn parses_each_kind() {
        let h = History::parse(concat!(
            "{\"client\":1,\"op\":\"set\",\"key\":\"k\",\"arg\":\"v1\",\"call\":100,\"ret\":180}\n",
            "\n",
            "{\"client\":2,\"op\":\"get\",\"key\":\"k\",\"result\":null,\"call\":1,\"ret\":2}\n",
            "{\"client\":2,\"op\":\"get\",\"key\":\"k\",\"result\":\"v\",\"call\":1,\"ret\":2}\n",
            "{\"client\":3,\"op\":\"incr\",\"key\":\"n\",\"arg\":-2,\"result\":5,\"call\":1,\"ret\":2}\n",
            "{\"client\":3,\"op\":\"append\",\"key\":\"k\",\"arg\":\"x\",\"result\":3,\"call\":1,\"ret\":2}\n",
            "{\"client\":3,\"op\":\"del\",\"key\":\"k\",\"call\":1,\"ret\":2}\n",
            "{\"client\":3,\"op\":\"del\",\"key\":\"k\",\"result\":1,\"call\":1,\"ret\":2}\n",
            "{\"client\":3,\"op\":\"set\",\"key\":\"k\",\"arg\":\"v\",\"call\":1,\"ret\":null}\n",
            "{\"client\":3,\"op\":\"incr\",\"key\":\"k\",\"arg\":1,\"call\":1}\n",
        ))
        .unwrap();
        let ops = h.ops();
        assert_eq!(ops.len(), 9);
        assert_eq!(ops[0].op, Op::Set("v1".into()));
        assert_eq!(ops[0].ret, Some(180));
        assert_eq!(ops[1].result, Some(OpResult::Value(None)));
        assert_eq!(ops[2].result, Some(OpResult::Value(Some("v".into()))));
        assert_eq!(ops[3].op, Op::Incr(-2));
        assert_eq!(ops[3].result, Some(OpResult::Integer(5)));
        assert_eq!(ops[4].result, Some(OpResult::Integer(3)));
        assert_eq!(ops[5].result, None);
        assert_eq!(ops[6].result, Some(OpResult::Integer(1)));
        assert!(ops[7].is_unknown() && ops[8].is_unknown());
    }

    #[test]
    fn errors_name_the_line() {
        let text = "{\"client\":1,\"op\":\"get\",\"key\":\"k\",\"result\":null,\"call\":1,\"ret\":2}\n\
                    {\"client\":1,\"op\":\"get\",\"key\":\"k\",\"call\":1,\"ret\":2}\n";
        let e = History::parse(text).unwrap_err();
        assert_eq!(e.line(), 2);
        assert!(matches!(
            e,
            HistoryError::Invalid {
                reason: InvalidOperation::BadResult { op: "get", .. },
                ..
            }
        ));
        assert!(e.to_string().starts_with("line 2: get: result must be"));

        let e = History::parse("\n\n{\"client\":1,").unwrap_err();
        assert!(matches!(e, HistoryError::Json { line: 3, .. }), "{e}");
        let e = History::parse(&String::from_utf8_lossy(b"\n")).unwrap();
        assert!(e.is_empty());
        let e = History::from_reader(&b"{}\n\xff\n"[..]).unwrap_err();
        assert!(matches!(e, HistoryError::Json { line: 1, .. }), "{e}");
        let e = History::from_reader(&b"\xff\n"[..]).unwrap_err();
        assert!(matches!(e, HistoryError::Io { line: 1, .. }), "{e}");
    }

    #[test]
    fn rejects_what_does_not_fit() {
        let cases = [
            (
                r#"{"client":1,"op":"put","key":"k","call":1,"ret":2}"#,
                "unknown op",
            ),
            (
                r#"{"client":1,"op":"set","key":"k","arg":5,"call":1,"ret":2}"#,
                "set: arg",
            ),
            (
                r#"{"client":1,"op":"incr","key":"k","arg":"1","result":1,"call":1,"ret":2}"#,
                "incr: arg",
            ),
            (
                r#"{"client":1,"op":"get","key":"k","arg":"x","result":null,"call":1,"ret":2}"#,
                "get: arg",
            ),
            (
                r#"{"client":1,"op":"incr","key":"k","arg":1,"call":1,"ret":2}"#,
                "incr: result",
            ),
            (
                r#"{"client":1,"op":"append","key":"k","arg":"x","result":"3","call":1,"ret":2}"#,
                "append: result",
            ),
            (
                r#"{"client":1,"op":"set","key":"k","arg":"x","result":1,"call":1,"ret":2}"#,
                "set: result",
            ),
            (
                r#"{"client":1,"op":"del","key":"k","result":2,"call":1,"ret":2}"#,
                "del: result",
            ),
            (
                r#"{"client":1,"op":"get","key":"k","result":"v","call":1,"ret":null}"#,
                "unknown outcome",
            ),
            (
                r#"{"client":1,"op":"get","key":"k","result":"v","call":5,"ret":4}"#,
                "before call",
            ),
            (
                r#"{"client":1,"op":"get","key":"k","result":"v","call":1,"ret":2,"x":1}"#,
                "unknown field",
            ),
            (
                r#"{"client":-1,"op":"get","key":"k","result":"v","call":1,"ret":2}"#,
                "invalid value",
            ),
            (
                r#"{"client":1,"op":"get","key":"k","result":"v","ret":2}"#,
                "call",
            ),
            (r#"[1,2]"#, "invalid type"),
        ];
        for (line, want) in cases {
            let e = op(line).unwrap_err();
            assert_eq!(e.line(), 1);
            assert!(e.to_string().contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn writer_round_trips() {
        let ops = vec![
            Operation {
                client: 1,
                key: "k\"\n".into(),
                op: Op::Set("v\u{e9}".into()),
                call: 1,
                ret: Some(2),
                result: None,
            },
            Operation {
                client: 2,
                key: "k".into(),
                op: Op::Incr(-3),
                call: 3,
                ret: None,
                result: None,
            },
            Operation {
                client: 2,
                key: "k".into(),
                op: Op::Append("x".into()),
                call: 3,
                ret: Some(9),
                result: Some(OpResult::Integer(4)),
            },
            Operation {
                client: 2,
                key: "k".into(),
                op: Op::Del,
                call: 3,
                ret: Some(9),
                result: Some(OpResult::Integer(0)),
            },
            Operation {
                client: 2,
                key: "k".into(),
                op: Op::Get,
                call: 3,
                ret: Some(u64::MAX),
                result: Some(OpResult::Value(Some(String::new()))),
            },
        ];
        let history = History::new(ops.clone()).unwrap();
        let mut out = Vec::new();
        history.write_to(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), ops.len());
        assert!(text.contains(r#""op":"incr","key":"k","arg":-3,"call":3,"ret":null"#));
        assert_eq!(History::parse(&text).unwrap().into_ops(), ops);
    }

    #[test]
    fn writer_refuses_an_invalid_operation() {
        let mut writer = HistoryWriter::new(Vec::new());
        let bad = Operation {
            client: 1,
            key: "k".into(),
            op: Op::Get,
            call: 1,
            ret: Some(2),
            result: None,
        };
        let e = writer.write(&bad).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(writer.into_inner().is_empty());
        assert!(matches!(
            History::new(vec![bad]),
            Err(HistoryError::Invalid { line: 1, .. })
        ));
    }

    #[test]
    fn display_is_readable() {
        let h = History::parse(concat!(
            "{\"client\":2,\"op\":\"get\",\"key\":\"k\",\"result\":\"v1\",\"call\":150,\"ret\":200}\n",
            "{\"client\":2,\"op\":\"get\",\"key\":\"k\",\"result\":null,\"call\":150,\"ret\":200}\n",
            "{\"client\":1,\"op\":\"incr\",\"key\":\"n\",\"arg\":5,\"call\":300}\n",
            "{\"client\":1,\"op\":\"set\",\"key\":\"n\",\"arg\":\"a\",\"call\":3,\"ret\":4}\n",
        ))
        .unwrap();
        let shown: Vec<String> = h.ops().iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                r#"client 2: get("k") -> "v1" [150..200]"#,
                r#"client 2: get("k") -> nil [150..200]"#,
                r#"client 1: incr("n", 5) -> ? [300..?]"#,
                r#"client 1: set("n", "a") [3..4]"#,
            ]
        );
    }
}
