//! The loopback fallback: every node listens for peers on its own loopback port, and the others
//! reach it through a proxy in this process, one listener per node ("front"), that knows each
//! connection's direction from the transport's handshake (the `Hello` names `from` and `to`).
//!
//! The listener of raft-kv checks that a dialer claims the address it has on record for it: the
//! others have the dialer's front on record, while the dialer claims the port it listens on, so
//! the proxy rewrites the `Hello`'s address to the dialer's front. After the handshake it moves
//! frames (length-prefixed) from the dialer to the node, and bytes back:
//!
//! - a cut link `(from, to)` discards everything on the connections `from` dialed to `to` (in both
//!   directions: silence, as with a real partition); once healed, those connections are closed,
//!   since bytes were lost in the middle of them, and the nodes dial again;
//! - loss drops whole frames (Raft messages, forwarded requests) at random, which is what loss
//!   does to a message-based protocol once TCP has given up retransmitting.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use raft_mio::frame::{self, FrameDecoder, PeerFrame};

use super::net::{LinkFaults, Net};
use crate::generate::SplitMix64;

#[derive(Clone, Copy, Debug)]
struct Ports {
    /// Where the node listens for peers.
    real: u16,
    /// Where the others reach it (the proxy).
    front: u16,
    /// Where clients reach it.
    client: u16,
}

struct Shared {
    ports: Mutex<BTreeMap<u64, Ports>>,
    faults: RwLock<LinkFaults>,
    stop: AtomicBool,
}

impl Shared {
    fn ports(&self, id: u64) -> Option<Ports> {
        self.ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .copied()
    }

    fn cut(&self, from: u64, to: u64) -> bool {
        self.faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .cut
            .contains(&(from, to))
    }

    fn loss(&self, from: u64, to: u64) -> u8 {
        self.faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .loss
            .get(&(from, to))
            .copied()
            .unwrap_or(0)
    }
}

/// Loopback and proxies.
pub(crate) struct ProxyNet {
    shared: Arc<Shared>,
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn lo(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl ProxyNet {
    pub(crate) fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                ports: Mutex::new(BTreeMap::new()),
                faults: RwLock::new(LinkFaults::default()),
                stop: AtomicBool::new(false),
            }),
        }
    }
}

impl Net for ProxyNet {
    fn name(&self) -> &'static str {
        "loopback"
    }

    fn privileged(&self) -> bool {
        false
    }

    fn add_node(&self, id: u64) -> io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let ports = Ports {
            real: free_port()?,
            front: listener.local_addr()?.port(),
            client: free_port()?,
        };
        self.shared
            .ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, ports);
        let shared = Arc::clone(&self.shared);
        thread::spawn(move || accept_loop(&shared, &listener, id));
        Ok(())
    }

    fn peer_addr(&self, id: u64, seen_by: u64) -> SocketAddr {
        let p = self.shared.ports(id).map_or((0, 0), |p| (p.real, p.front));
        lo(if seen_by == id { p.0 } else { p.1 })
    }

    fn client_addr(&self, id: u64) -> SocketAddr {
        lo(self.shared.ports(id).map_or(0, |p| p.client))
    }

    fn command(&self, _id: u64, exe: &Path) -> Command {
        Command::new(exe)
    }

    fn set_faults(&self, faults: &LinkFaults) -> io::Result<()> {
        faults.clone_into(
            &mut self
                .shared
                .faults
                .write()
                .unwrap_or_else(PoisonError::into_inner),
        );
        Ok(())
    }

    fn teardown(&self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener, to: u64) {
    while !shared.stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = Arc::clone(shared);
                thread::spawn(move || {
                    let _ = serve(&shared, stream, to);
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

const POLL: Duration = Duration::from_millis(50);

/// One connection dialed to node `to`: handshake, then the two pumps.
fn serve(shared: &Arc<Shared>, mut down: TcpStream, to: u64) -> io::Result<()> {
    down.set_nodelay(true)?;
    down.set_read_timeout(Some(POLL))?;
    let decoder = FrameDecoder::new(64 << 20);
    let mut buf = Vec::new();
    let started = Instant::now();
    let (mut hello, used) = loop {
        if let Ok(Some((frame, used))) = decoder.decode(&buf) {
            match frame {
                PeerFrame::Hello(h) => break (h, used),
                _ => return Ok(()),
            }
        }
        if started.elapsed() > Duration::from_secs(5) || shared.stop.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut chunk = [0_u8; 4096];
        match down.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    };
    let from = hello.from.get();
    // While the link is cut, a new connection hangs in silence, as a SYN into a partition
    // would (the dialer's handshake times out).
    while shared.cut(from, to) {
        if shared.stop.load(Ordering::Acquire) {
            return Ok(());
        }
        thread::sleep(POLL);
    }
    let (Some(target), Some(dialer)) = (shared.ports(to), shared.ports(from)) else {
        return Ok(());
    };
    hello.addr = lo(dialer.front).to_string();
    let mut up = TcpStream::connect_timeout(&lo(target.real), Duration::from_secs(1))?;
    up.set_nodelay(true)?;
    up.set_read_timeout(Some(POLL))?;
    let mut first = Vec::new();
    frame::encode(&PeerFrame::Hello(hello), &mut first);
    up.write_all(&first)?;
    let rest = buf.split_off(used);
    let broken = Arc::new(AtomicBool::new(false));
    let back = {
        let (shared, broken) = (Arc::clone(shared), Arc::clone(&broken));
        let (up, down) = (up.try_clone()?, down.try_clone()?);
        thread::spawn(move || pump_back(&shared, up, down, from, to, &broken))
    };
    let seed = (from << 32) ^ to ^ u64::from(target.front);
    let result = pump_frames(shared, &down, &up, rest, (from, to), &broken, seed);
    let _ = up.shutdown(Shutdown::Both);
    let _ = down.shutdown(Shutdown::Both);
    let _ = back.join();
    result
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Whether the pump should go on: not stopped, and not a connection that lost bytes to a cut
/// since healed (then it is closed).
fn keep_going(shared: &Shared, from: u64, to: u64, broken: &AtomicBool) -> bool {
    if shared.stop.load(Ordering::Acquire) {
        return false;
    }
    if shared.cut(from, to) {
        broken.store(true, Ordering::Release);
        return true;
    }
    !broken.load(Ordering::Acquire)
}

/// Dialer to node: whole frames, each dropped at the link's loss rate, all while it is cut.
fn pump_frames(
    shared: &Shared,
    mut down: &TcpStream,
    mut up: &TcpStream,
    mut buf: Vec<u8>,
    (from, to): (u64, u64),
    broken: &AtomicBool,
    seed: u64,
) -> io::Result<()> {
    let mut rng = SplitMix64::new(seed);
    let mut chunk = vec![0_u8; 64 << 10];
    loop {
        if !keep_going(shared, from, to, broken) {
            return Ok(());
        }
        let cut = shared.cut(from, to);
        let loss = shared.loss(from, to);
        // Whole frames: 4 bytes of length (little-endian), then that many.
        while let Some(head) = buf.get(..4) {
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
            if buf.len() < 4 + len {
                break;
            }
            let frame: Vec<u8> = buf.drain(..4 + len).collect();
            let dropped = cut || (loss > 0 && rng.below(100) < u64::from(loss));
            if !dropped {
                up.write_all(&frame)?;
            }
        }
        match down.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Node to dialer (the handshake's answer): bytes, none while the link is cut.
fn pump_back(
    shared: &Shared,
    mut up: TcpStream,
    mut down: TcpStream,
    from: u64,
    to: u64,
    broken: &AtomicBool,
) {
    let mut chunk = vec![0_u8; 16 << 10];
    loop {
        if !keep_going(shared, from, to, broken) {
            break;
        }
        match up.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                if !shared.cut(from, to) && down.write_all(&chunk[..n]).is_err() {
                    break;
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => break,
        }
    }
    let _ = up.shutdown(Shutdown::Both);
    let _ = down.shutdown(Shutdown::Both);
}
