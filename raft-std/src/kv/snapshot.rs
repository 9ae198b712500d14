//! The snapshot format of [`KvStore`], written and read streaming.
//!
//! All integers little-endian:
//!
//! ```text
//! magic         8 bytes  "RAFTKVS\n"
//! version       u32      2
//! sessions      u64      count, then per session in ascending client id:
//!   client      u64
//!   floor       u64      >= 1: writes below it are forgotten
//!   last_used   u64      log index of its last write
//!   responses   u64      count >= 1, then per response in strictly ascending seq:
//!     seq       u64      >= floor
//!     tag       u8       0 Ok, 1 Integer, 2 Error, 3 Nil
//!     payload   i64      the integer (tag 1), the error code (tag 2), 0 (tags 0 and 3)
//! peers         u64      count, then per peer in strictly ascending id:
//!   id          u64
//!   addr_len    u64
//!   addr        addr_len bytes of UTF-8
//! keys          u64      count, then per key in strictly ascending byte order:
//!   key_len     u64
//!   key         key_len bytes
//!   value_len   u64
//!   value       value_len bytes
//! end marker    8 bytes  "RAFTKVE\n"
//! crc32c        u32      CRC32C (Castagnoli) of every byte before it
//! ```
//!
//! Version 1 (still read) kept one response per session: `client`, `seq`, `last_used`, `tag`,
//! `payload`, read as a session with `floor` = `seq` and that one response; it has no peers.
//!
//! Nothing may follow. A reader rejects anything else (bad magic or version, unsorted or
//! duplicate keys or clients, unknown tags, a wrong checksum, truncation, trailing bytes) with
//! [`io::ErrorKind::InvalidData`], and allocates only as bytes actually arrive: a length field
//! claiming gigabytes costs at most one chunk before the input runs out.

use std::collections::BTreeMap;
use std::io::{self, BufReader, BufWriter, Read, Write};

use imbl::OrdMap;

use super::{ClientId, KvConfig, KvError, KvStore, Saved, Session};

const MAGIC: [u8; 8] = *b"RAFTKVS\n";
const END: [u8; 8] = *b"RAFTKVE\n";
const VERSION: u32 = 2;
/// Buffer size for writing and reading, and the most a length field makes us allocate ahead
/// of the bytes that back it.
const CHUNK: usize = 64 * 1024;

/// A writer that checksums what passes through.
struct CrcWriter<'a> {
    inner: &'a mut dyn Write,
    crc: u32,
}

impl Write for CrcWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, buf.get(..n).unwrap_or(buf));
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What a snapshot holds of a [`KvStore`]: its maps, shared with the store (a copy is O(1)),
/// so a snapshot can be written while the store goes on applying.
pub(super) struct View {
    pub(super) sessions: OrdMap<ClientId, Session>,
    pub(super) peers: BTreeMap<u64, String>,
    pub(super) data: OrdMap<Vec<u8>, Vec<u8>>,
}

/// Streams `store` to `out`.
pub(super) fn write(store: &View, out: &mut dyn Write) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(CHUNK, CrcWriter { inner: out, crc: 0 });
    w.write_all(&MAGIC)?;
    w.write_all(&VERSION.to_le_bytes())?;
    w.write_all(&(store.sessions.len() as u64).to_le_bytes())?;
    for (client, session) in &store.sessions {
        w.write_all(&client.0.to_le_bytes())?;
        w.write_all(&session.floor.to_le_bytes())?;
        w.write_all(&session.last_used.to_le_bytes())?;
        w.write_all(&(session.responses.len() as u64).to_le_bytes())?;
        for (seq, response) in &session.responses {
            let (tag, payload) = match *response {
                Saved::Ok => (0_u8, 0_i64),
                Saved::Integer(n) => (1, n),
                Saved::Error(e) => (2, i64::from(e.code())),
                Saved::Nil => (3, 0),
            };
            w.write_all(&seq.to_le_bytes())?;
            w.write_all(&[tag])?;
            w.write_all(&payload.to_le_bytes())?;
        }
    }
    w.write_all(&(store.peers.len() as u64).to_le_bytes())?;
    for (id, addr) in &store.peers {
        w.write_all(&id.to_le_bytes())?;
        w.write_all(&(addr.len() as u64).to_le_bytes())?;
        w.write_all(addr.as_bytes())?;
    }
    w.write_all(&(store.data.len() as u64).to_le_bytes())?;
    for (key, value) in &store.data {
        w.write_all(&(key.len() as u64).to_le_bytes())?;
        w.write_all(key)?;
        w.write_all(&(value.len() as u64).to_le_bytes())?;
        w.write_all(value)?;
    }
    w.write_all(&END)?;
    w.flush()?;
    let crc = w.get_ref().crc;
    w.write_all(&crc.to_le_bytes())?;
    w.flush()
}

/// A reader that checksums what passes through.
struct CrcReader<R> {
    inner: R,
    crc: u32,
}

impl<R: Read> Read for CrcReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, buf.get(..n).unwrap_or(buf));
        Ok(n)
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not a KV snapshot: {what}"),
    )
}

/// Truncation is malformed data, not an I/O failure.
fn eof_is_invalid(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        invalid("truncated")
    } else {
        e
    }
}

fn read_array<const N: usize>(r: &mut impl Read) -> io::Result<[u8; N]> {
    let mut buf = [0; N];
    r.read_exact(&mut buf).map_err(eof_is_invalid)?;
    Ok(buf)
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    read_array(r).map(u64::from_le_bytes)
}

/// Reads a length-prefixed byte string, growing the buffer only as bytes arrive.
fn read_bytes(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let len = usize::try_from(read_u64(r)?).map_err(|_| invalid("length out of range"))?;
    let mut v = Vec::with_capacity(len.min(CHUNK));
    while v.len() < len {
        let start = v.len();
        v.resize(start + (len - start).min(CHUNK), 0);
        let Some(dst) = v.get_mut(start..) else {
            return Err(invalid("length out of range"));
        };
        r.read_exact(dst).map_err(eof_is_invalid)?;
    }
    Ok(v)
}

/// Reads one saved response: its tag and payload.
fn read_response(r: &mut impl Read) -> io::Result<Saved> {
    let [tag] = read_array::<1>(r)?;
    let payload = i64::from_le_bytes(read_array(r)?);
    match (tag, payload) {
        (0, 0) => Ok(Saved::Ok),
        (1, n) => Ok(Saved::Integer(n)),
        (2, code) => u8::try_from(code)
            .ok()
            .and_then(KvError::from_code)
            .map(Saved::Error)
            .ok_or_else(|| invalid("unknown error code")),
        (3, 0) => Ok(Saved::Nil),
        _ => Err(invalid("unknown response tag")),
    }
}

/// A version 1 session (after its client id): one response, at `seq`.
fn read_session_v1(r: &mut impl Read) -> io::Result<Session> {
    let seq = read_u64(r)?;
    let last_used = read_u64(r)?;
    let response = read_response(r)?;
    if seq == 0 {
        return Err(invalid("session with seq 0"));
    }
    Ok(Session {
        floor: seq,
        responses: BTreeMap::from([(seq, response)]),
        last_used,
    })
}

/// A session (after its client id).
fn read_session(r: &mut impl Read) -> io::Result<Session> {
    let floor = read_u64(r)?;
    let last_used = read_u64(r)?;
    let count = read_u64(r)?;
    if floor == 0 {
        return Err(invalid("session with floor 0"));
    }
    if count == 0 {
        return Err(invalid("session without responses"));
    }
    let mut responses = BTreeMap::new();
    for _ in 0..count {
        let seq = read_u64(r)?;
        if seq < floor
            || responses
                .last_key_value()
                .is_some_and(|(&last, _)| last >= seq)
        {
            return Err(invalid("response out of order"));
        }
        responses.insert(seq, read_response(r)?);
    }
    Ok(Session {
        floor,
        responses,
        last_used,
    })
}

/// Reads a snapshot into a new store with `config`.
pub(super) fn read(config: KvConfig, input: &mut dyn Read) -> io::Result<KvStore> {
    let mut r = CrcReader {
        inner: BufReader::with_capacity(CHUNK, input),
        crc: 0,
    };
    if read_array::<8>(&mut r)? != MAGIC {
        return Err(invalid("bad magic"));
    }
    let version = u32::from_le_bytes(read_array(&mut r)?);
    if version != 1 && version != VERSION {
        return Err(invalid("unknown version"));
    }

    let mut store = KvStore::new(config);
    let session_count = read_u64(&mut r)?;
    let mut previous: Option<ClientId> = None;
    for _ in 0..session_count {
        let client = ClientId(read_u64(&mut r)?);
        if previous.is_some_and(|p| p >= client) {
            return Err(invalid("sessions out of order"));
        }
        previous = Some(client);
        let session = if version == 1 {
            read_session_v1(&mut r)?
        } else {
            read_session(&mut r)?
        };
        store.lru.insert((session.last_used, client));
        store.sessions.insert(client, session);
    }
    if version >= 2 {
        let peer_count = read_u64(&mut r)?;
        for _ in 0..peer_count {
            let id = read_u64(&mut r)?;
            let addr = String::from_utf8(read_bytes(&mut r)?)
                .map_err(|_| invalid("peer address not UTF-8"))?;
            if store
                .peers
                .last_key_value()
                .is_some_and(|(&last, _)| last >= id)
            {
                return Err(invalid("peers out of order"));
            }
            store.peers.insert(id, addr);
        }
    }

    let key_count = read_u64(&mut r)?;
    let mut data = OrdMap::new();
    let mut bytes = 0_usize;
    for _ in 0..key_count {
        let key = read_bytes(&mut r)?;
        let value = read_bytes(&mut r)?;
        if data.get_max().is_some_and(|(last, _)| *last >= key) {
            return Err(invalid("keys out of order"));
        }
        bytes = bytes.saturating_add(key.len()).saturating_add(value.len());
        data.insert(key, value);
    }

    if read_array::<8>(&mut r)? != END {
        return Err(invalid("bad end marker"));
    }
    let crc = r.crc;
    let mut inner = r.inner;
    if u32::from_le_bytes(read_array(&mut inner)?) != crc {
        return Err(invalid("checksum mismatch"));
    }
    let mut extra = [0_u8; 1];
    loop {
        match inner.read(&mut extra) {
            Ok(0) => break,
            Ok(_) => return Err(invalid("trailing bytes")),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }

    store.data = data;
    store.bytes = bytes;
    // A snapshot from a store with a larger cap: evict down the same way everywhere.
    store.evict();
    Ok(store)
}
