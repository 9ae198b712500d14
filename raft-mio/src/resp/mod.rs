//! RESP2, the Redis protocol: the request parser the server reads clients with
//! ([`parse_request`]), the replies it writes ([`Reply`]), and a small blocking client
//! ([`client::Client`]) for the demo and the tests.
//!
//! Written here rather than taken from a crate: the server needs inline commands (what
//! `redis-benchmark`'s `PING_INLINE` and a telnet user send), limits checked from a length's
//! header before any of its bytes are buffered (a bulk length of 2^40 is refused at once), and
//! Redis's own protocol error texts. The parser is total, never panics on any input, and is
//! fuzzed (`fuzz/fuzz_targets/resp_request.rs`).

pub mod client;

use std::fmt;
use std::io::Write as _;

/// Limits on what one request may claim.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The most arguments one request may have. Default 1,048,576 (Redis's limit for an
    /// unauthenticated client is lower; its hard limit is higher).
    pub max_args: usize,
    /// The longest argument, in bytes. Default 16 MiB (Redis: `proto-max-bulk-len`, 512 MiB).
    pub max_bulk: usize,
    /// The longest inline command or header line. Default 64 KiB, as in Redis.
    pub max_inline: usize,
    /// The most bytes of arguments one request may carry. Default 32 MiB (the store's largest
    /// value is 8 MiB; Redis's `client-query-buffer-limit` is 1 GiB).
    pub max_request: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_args: 1 << 20,
            max_bulk: 16 << 20,
            max_inline: 64 << 10,
            max_request: 32 << 20,
        }
    }
}

/// A request that breaks the protocol. The server answers `-ERR Protocol error: ...` and closes
/// the connection, as Redis does: after it, nothing on the connection can be framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// `*` with a count that is not a number, or is too large.
    InvalidMultibulkLength,
    /// `$` with a length that is not a number, or is too large.
    InvalidBulkLength,
    /// An array element that is not a bulk string.
    ExpectedDollar(u8),
    /// A header line with no end within the limit.
    TooBigCount,
    /// An inline command with no end within the limit.
    TooBigInline,
    /// A bulk string not followed by CRLF.
    MissingCrlf,
    /// An inline command with an unbalanced quote.
    UnbalancedQuotes,
    /// A request whose arguments add up to more than the limit.
    TooBigRequest,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidMultibulkLength => f.write_str("invalid multibulk length"),
            Self::InvalidBulkLength => f.write_str("invalid bulk length"),
            Self::ExpectedDollar(b) => write!(f, "expected '$', got '{}'", char::from(*b)),
            Self::TooBigCount => f.write_str("too big count string"),
            Self::TooBigInline => f.write_str("too big inline request"),
            Self::MissingCrlf => f.write_str("expected CRLF after a bulk string"),
            Self::UnbalancedQuotes => f.write_str("unbalanced quotes in request"),
            Self::TooBigRequest => f.write_str("too big request"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// What the front of a client's buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole request: its arguments (command name first; none for an empty request, which
    /// is ignored), and how many bytes it took.
    Request(Vec<Vec<u8>>, usize),
    /// Only part of a request: read more. Parsing again before the buffer holds at least
    /// `need` bytes cannot get further.
    Incomplete {
        /// The buffer length below which the request is still incomplete.
        need: usize,
    },
}

impl Parsed {
    /// Incomplete, needing at least `need` bytes.
    const fn more(need: usize) -> Self {
        Self::Incomplete { need }
    }
}

/// Finds `\r\n` in `buf` from `from`; the index of the `\r`.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    let at = rest.iter().position(|&b| b == b'\n')?;
    // A lone `\n` ends an inline line too (as in Redis); `\r\n` is the usual.
    let end = from + at;
    Some(if end > from && buf.get(end - 1) == Some(&b'\r') {
        end - 1
    } else {
        end
    })
}

/// Parses a decimal length: digits only, optionally a leading `-` (for `-1`).
fn parse_len(digits: &[u8]) -> Option<i64> {
    let (negative, digits) = match digits {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0_i64, |n, &d| n * 10 + i64::from(d - b'0'));
    Some(if negative { -n } else { n })
}

/// Parses the request at the front of `buf`.
///
/// # Errors
///
/// [`ProtocolError`] for bytes that break the protocol; the connection must then be closed.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Parsed, ProtocolError> {
    match buf.first() {
        None => Ok(Parsed::more(1)),
        Some(b'*') => parse_multibulk(buf, limits),
        Some(_) => parse_inline(buf, limits),
    }
}

fn parse_multibulk(buf: &[u8], limits: &Limits) -> Result<Parsed, ProtocolError> {
    let Some(end) = line_end(buf, 1) else {
        return if buf.len() > limits.max_inline {
            Err(ProtocolError::TooBigCount)
        } else {
            Ok(Parsed::more(buf.len() + 1))
        };
    };
    let count = buf
        .get(1..end)
        .and_then(parse_len)
        .ok_or(ProtocolError::InvalidMultibulkLength)?;
    let mut pos = skip_line_end(buf, end);
    if count <= 0 {
        return Ok(Parsed::Request(Vec::new(), pos));
    }
    let count = usize::try_from(count).map_err(|_| ProtocolError::InvalidMultibulkLength)?;
    if count > limits.max_args {
        return Err(ProtocolError::InvalidMultibulkLength);
    }
    // Frame the whole request before copying any of it: a large request arriving in pieces is
    // scanned again at each piece, never copied again.
    let mut ranges = Vec::with_capacity(count.min(64));
    let mut total: usize = 0;
    for _ in 0..count {
        match buf.get(pos) {
            None => return Ok(Parsed::more(pos + 1)),
            Some(b'$') => {}
            Some(&other) => return Err(ProtocolError::ExpectedDollar(other)),
        }
        let Some(end) = line_end(buf, pos + 1) else {
            return if buf.len() - pos > limits.max_inline {
                Err(ProtocolError::TooBigCount)
            } else {
                Ok(Parsed::more(buf.len() + 1))
            };
        };
        let len = buf
            .get(pos + 1..end)
            .and_then(parse_len)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= limits.max_bulk)
            .ok_or(ProtocolError::InvalidBulkLength)?;
        total = total.saturating_add(len);
        if total > limits.max_request {
            return Err(ProtocolError::TooBigRequest);
        }
        let start = skip_line_end(buf, end);
        match buf.get(start + len..start + len + 2) {
            None => return Ok(Parsed::more(start + len + 2)),
            Some(b"\r\n") => {}
            Some(_) => return Err(ProtocolError::MissingCrlf),
        }
        ranges.push(start..start + len);
        pos = start + len + 2;
    }
    let args = ranges
        .into_iter()
        .map(|r| buf.get(r).unwrap_or_default().to_vec())
        .collect();
    Ok(Parsed::Request(args, pos))
}

/// The index after the line ending at `end` (which is a `\r` followed by `\n`, or a `\n`).
fn skip_line_end(buf: &[u8], end: usize) -> usize {
    if buf.get(end) == Some(&b'\r') {
        end + 2
    } else {
        end + 1
    }
}

fn parse_inline(buf: &[u8], limits: &Limits) -> Result<Parsed, ProtocolError> {
    let Some(end) = line_end(buf, 0) else {
        return if buf.len() > limits.max_inline {
            Err(ProtocolError::TooBigInline)
        } else {
            Ok(Parsed::more(buf.len() + 1))
        };
    };
    let line = buf.get(..end).unwrap_or_default();
    let args = split_inline(line)?;
    Ok(Parsed::Request(args, skip_line_end(buf, end)))
}

/// Splits an inline command on spaces, honouring `"double"` (with `\` escapes) and `'single'`
/// quotes, as `redis-cli` and Redis's `sdssplitargs` do.
fn split_inline(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let mut args = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while line.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let Some(&first) = line.get(i) else {
            break;
        };
        let mut arg = Vec::new();
        match first {
            b'"' | b'\'' => {
                i += 1;
                loop {
                    match line.get(i) {
                        None => return Err(ProtocolError::UnbalancedQuotes),
                        Some(&c) if c == first => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') if first == b'"' => {
                            let (byte, used) = unescape(line.get(i + 1..).unwrap_or_default());
                            arg.push(byte);
                            i += 1 + used;
                        }
                        Some(&c) => {
                            arg.push(c);
                            i += 1;
                        }
                    }
                }
                // A closing quote must be followed by a space or the end.
                if line.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
            }
            _ => {
                while let Some(&c) = line.get(i).filter(|c| !c.is_ascii_whitespace()) {
                    arg.push(c);
                    i += 1;
                }
            }
        }
        args.push(arg);
    }
    Ok(args)
}

/// The byte a `\` escape stands for, and how many bytes after the `\` it used.
fn unescape(rest: &[u8]) -> (u8, usize) {
    let hex = |c: u8| char::from(c).to_digit(16);
    match rest {
        [b'x', h, l, ..] => match (hex(*h), hex(*l)) {
            (Some(h), Some(l)) => (u8::try_from(h * 16 + l).unwrap_or(0), 3),
            _ => (b'x', 1),
        },
        [b'n', ..] => (b'\n', 1),
        [b'r', ..] => (b'\r', 1),
        [b't', ..] => (b'\t', 1),
        [b'b', ..] => (8, 1),
        [b'a', ..] => (7, 1),
        [c, ..] => (*c, 1),
        [] => (b'\\', 0),
    }
}

/// Appends replies to a buffer, in RESP2, or in RESP3 for a client that asked for it with
/// `HELLO 3` (the types differ only for nil and maps here).
#[derive(Debug)]
pub struct Reply<'a> {
    out: &'a mut Vec<u8>,
    resp3: bool,
}

impl<'a> Reply<'a> {
    /// RESP2 replies into `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out, resp3: false }
    }

    /// Replies into `out` in RESP3 if `resp3`, else RESP2.
    pub fn with_protocol(out: &'a mut Vec<u8>, resp3: bool) -> Self {
        Self { out, resp3 }
    }
}

impl Reply<'_> {
    /// `+text`.
    pub fn simple(&mut self, text: &str) {
        self.out.push(b'+');
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// `+OK`.
    pub fn ok(&mut self) {
        self.out.extend_from_slice(b"+OK\r\n");
    }

    /// `-text` (text starts with the error code: `ERR ...`, `TRYAGAIN ...`). Line breaks in
    /// `text` are replaced by spaces: they would end the reply early.
    pub fn error(&mut self, text: &str) {
        self.out.push(b'-');
        self.out.extend(
            text.bytes()
                .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        self.out.extend_from_slice(b"\r\n");
    }

    /// `:n`.
    pub fn integer(&mut self, n: i64) {
        let _ = write!(self.out, ":{n}\r\n");
    }

    /// `$len bytes`, or nil for `None` (`$-1` in RESP2, `_` in RESP3).
    pub fn bulk(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            Some(b) => {
                let _ = write!(self.out, "${}\r\n", b.len());
                self.out.extend_from_slice(b);
                self.out.extend_from_slice(b"\r\n");
            }
            None if self.resp3 => self.out.extend_from_slice(b"_\r\n"),
            None => self.out.extend_from_slice(b"$-1\r\n"),
        }
    }

    /// `*n`: an array header; the caller writes the `n` elements after it.
    pub fn array(&mut self, n: usize) {
        let _ = write!(self.out, "*{n}\r\n");
    }

    /// A map of `n` pairs: `%n` in RESP3, an array of `2n` elements in RESP2; the caller writes
    /// the keys and values after it, alternately.
    pub fn map(&mut self, n: usize) {
        if self.resp3 {
            let _ = write!(self.out, "%{n}\r\n");
        } else {
            self.array(n * 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Parsed, ProtocolError> {
        parse_request(bytes, &Limits::default())
    }

    fn args(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn a_multibulk_request_parses_and_every_prefix_is_incomplete() {
        let req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        assert_eq!(
            parse(req),
            Ok(Parsed::Request(args(&["SET", "k", "hello"]), req.len()))
        );
        for cut in 0..req.len() {
            let Ok(Parsed::Incomplete { need }) = parse(&req[..cut]) else {
                panic!("cut at {cut}: not incomplete");
            };
            assert!(need > cut && need <= req.len(), "cut at {cut}: need {need}");
        }
    }

    #[test]
    fn pipelined_requests_parse_one_after_another() {
        let two = b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        let Ok(Parsed::Request(first, used)) = parse(two) else {
            panic!("first");
        };
        assert_eq!(first, args(&["PING"]));
        let Ok(Parsed::Request(second, rest)) = parse(&two[used..]) else {
            panic!("second");
        };
        assert_eq!(second, args(&["GET", "k"]));
        assert_eq!(used + rest, two.len());
    }

    #[test]
    fn inline_requests_split_on_spaces_and_quotes() {
        assert_eq!(parse(b"PING\r\n"), Ok(Parsed::Request(args(&["PING"]), 6)));
        assert_eq!(
            parse(b"set k \"a b\\n\" 'c d'\n"),
            Ok(Parsed::Request(args(&["set", "k", "a b\n", "c d"]), 20))
        );
        assert_eq!(parse(b"\r\n"), Ok(Parsed::Request(vec![], 2)));
        assert_eq!(parse(b"set \"k\r\n"), Err(ProtocolError::UnbalancedQuotes));
        assert!(matches!(parse(b"PING"), Ok(Parsed::Incomplete { .. })));
    }

    #[test]
    fn limits_are_checked_from_the_header() {
        assert_eq!(
            parse(b"*1\r\n$1099511627776\r\n"),
            Err(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            parse(b"*99999999999\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(parse(b"*x\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(
            parse(b"*1\r\n$-1\r\n"),
            Err(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            parse(b"*1\r\n:1\r\n"),
            Err(ProtocolError::ExpectedDollar(b':'))
        );
        assert_eq!(
            parse(b"*1\r\n$1\r\nab\r\n"),
            Err(ProtocolError::MissingCrlf)
        );
        assert_eq!(parse(b"*0\r\n"), Ok(Parsed::Request(vec![], 4)));
        let limits = Limits {
            max_request: 10,
            ..Limits::default()
        };
        assert_eq!(
            parse_request(b"*2\r\n$6\r\nabcdef\r\n$6\r\n", &limits),
            Err(ProtocolError::TooBigRequest)
        );
        let long = vec![b'a'; 70 << 10];
        assert_eq!(parse(&long), Err(ProtocolError::TooBigInline));
        let mut long_count = b"*".to_vec();
        long_count.extend(vec![b'1'; 70 << 10]);
        assert_eq!(parse(&long_count), Err(ProtocolError::TooBigCount));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = raft_core::SplitMix64::new(0x5eed);
        let alphabet = b"*$\r\n0123456789-abc \"'\\x";
        for _ in 0..50_000 {
            let state = rng.next_u64();
            let len = (state % 32) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| alphabet[((state >> (i % 16 * 4)) % alphabet.len() as u64) as usize])
                .collect();
            let _ = parse(&bytes);
        }
    }

    #[test]
    fn replies_are_framed() {
        let mut out = Vec::new();
        let mut r = Reply::new(&mut out);
        r.ok();
        r.integer(-3);
        r.bulk(Some(b"v"));
        r.bulk(None);
        r.array(2);
        r.error("ERR bad\r\nthing");
        assert_eq!(
            out,
            b"+OK\r\n:-3\r\n$1\r\nv\r\n$-1\r\n*2\r\n-ERR bad  thing\r\n"
        );
    }
}
