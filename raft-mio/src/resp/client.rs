//! A small blocking RESP2 client: what the demo's load generator and the tests' raw checks
//! use. Replies are parsed with limits, like requests on the server.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `+text`.
    Simple(String),
    /// `-text`.
    Error(String),
    /// `:n`.
    Integer(i64),
    /// `$len bytes`, `None` for `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*n elements`, `None` for `*-1`.
    Array(Option<Vec<Self>>),
}

impl Value {
    /// The error text, if this is an error reply.
    #[must_use]
    pub fn as_error(&self) -> Option<&str> {
        match self {
            Self::Error(e) => Some(e),
            _ => None,
        }
    }
}

/// The largest reply element accepted.
const MAX_REPLY: usize = 64 << 20;

/// A connection to a RESP server.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bad RESP reply: {what}"),
    )
}

impl Client {
    /// Connects to `addr`, waiting at most `timeout` for the connection and then for each
    /// reply.
    ///
    /// # Errors
    ///
    /// The connection fails.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::new(),
            pos: 0,
        })
    }

    /// Sends one command and reads its reply.
    ///
    /// # Errors
    ///
    /// The connection fails or times out, or the reply is not RESP.
    pub fn call(&mut self, args: &[&[u8]]) -> io::Result<Value> {
        self.send(args)?;
        self.read()
    }

    /// Sends commands without reading replies (a pipeline); read them with [`Client::read`].
    ///
    /// # Errors
    ///
    /// The connection fails.
    pub fn send(&mut self, args: &[&[u8]]) -> io::Result<()> {
        let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
        write!(out, "*{}\r\n", args.len())?;
        for a in args {
            write!(out, "${}\r\n", a.len())?;
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&out)
    }

    /// Reads the next reply.
    ///
    /// # Errors
    ///
    /// The connection fails or times out, or the reply is not RESP.
    pub fn read(&mut self) -> io::Result<Value> {
        loop {
            if let Some((value, used)) = parse_value(self.buf.get(self.pos..).unwrap_or_default())?
            {
                self.pos += used;
                if self.pos == self.buf.len() {
                    self.buf.clear();
                    self.pos = 0;
                }
                return Ok(value);
            }
            let mut chunk = [0_u8; 16 << 10];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            self.buf
                .extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    }
}

/// The line at the front of `buf` (without `\r\n`) and the bytes it took.
fn line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let at = buf.windows(2).position(|w| w == b"\r\n")?;
    Some((buf.get(..at)?, at + 2))
}

fn number(bytes: &[u8]) -> io::Result<i64> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("not a number"))
}

/// Parses one reply from the front of `buf`: `None` if incomplete.
///
/// # Errors
///
/// Bytes that are not a RESP2 reply.
pub fn parse_value(buf: &[u8]) -> io::Result<Option<(Value, usize)>> {
    let Some((&kind, rest)) = buf.split_first() else {
        return Ok(None);
    };
    let Some((head, used)) = line(rest) else {
        return Ok(None);
    };
    let text = || String::from_utf8_lossy(head).into_owned();
    let after = 1 + used;
    Ok(Some(match kind {
        b'+' => (Value::Simple(text()), after),
        b'-' => (Value::Error(text()), after),
        b':' => (Value::Integer(number(head)?), after),
        b'$' => {
            let len = number(head)?;
            if len < 0 {
                return Ok(Some((Value::Bulk(None), after)));
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|&n| n <= MAX_REPLY)
                .ok_or_else(|| invalid("bulk too long"))?;
            let Some(data) = buf.get(after..after + len) else {
                return Ok(None);
            };
            match buf.get(after + len..after + len + 2) {
                None => return Ok(None),
                Some(b"\r\n") => {}
                Some(_) => return Err(invalid("no CRLF after a bulk string")),
            }
            (Value::Bulk(Some(data.to_vec())), after + len + 2)
        }
        b'*' => {
            let count = number(head)?;
            if count < 0 {
                return Ok(Some((Value::Array(None), after)));
            }
            let count = usize::try_from(count)
                .ok()
                .filter(|&n| n <= MAX_REPLY)
                .ok_or_else(|| invalid("array too long"))?;
            let mut items = Vec::with_capacity(count.min(1024));
            let mut pos = after;
            for _ in 0..count {
                let Some((item, used)) = parse_value(buf.get(pos..).unwrap_or_default())? else {
                    return Ok(None);
                };
                items.push(item);
                pos += used;
            }
            (Value::Array(Some(items)), pos)
        }
        other => return Err(invalid(&format!("unknown type byte {other:#04x}"))),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_and_prefixes_are_incomplete() {
        let bytes = b"*3\r\n+OK\r\n$2\r\nhi\r\n*2\r\n:5\r\n$-1\r\n";
        let (v, used) = parse_value(bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(
            v,
            Value::Array(Some(vec![
                Value::Simple("OK".into()),
                Value::Bulk(Some(b"hi".to_vec())),
                Value::Array(Some(vec![Value::Integer(5), Value::Bulk(None)])),
            ]))
        );
        for cut in 0..bytes.len() {
            assert!(parse_value(&bytes[..cut]).unwrap().is_none());
        }
        assert!(parse_value(b"?x\r\n").is_err());
    }
}
