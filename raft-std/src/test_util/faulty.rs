//! [`FaultyFs`]: an in-memory [`FileSystem`] that knows what is durable and what is not, injects
//! faults on demand, and crashes.
//!
//! It models the guarantees POSIX gives and no more:
//!
//! - a file's bytes are durable once the file is synced; bytes written after the last sync may be
//!   lost in a crash, wholly or in part (a random prefix survives, its end possibly garbage: a
//!   torn write);
//! - a create, rename or remove is durable once its directory is synced; until then a crash may
//!   undo it (the directory operations survive as a random prefix, in order);
//! - after a failed fsync the kernel has marked the pages clean: later fsyncs of that file
//!   "succeed" without making anything durable (Rebello et al., ATC'20).
//!
//! A directory's creation is a directory operation like the others: durable once its parent is
//! synced. A crash that undoes it loses everything in it. Everything is deterministic: short writes draw from a seeded generator, and a
//! crash takes its own seed.
//!
//! The handle is cheap to clone and every clone sees the same files, so a test keeps one clone,
//! hands another to the storage, crashes it, and reopens storage on it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::storage::fs::{FileSystem, WriteFile, parent_dir};
use raft_core::SplitMix64;

/// Faults to inject, counted from the moment the plan is set with [`FaultyFs::set_plan`].
#[derive(Clone, Default, Debug)]
pub struct FaultPlan {
    /// The `n`-th sync (of a file or a directory, counting from 1) fails with `EIO`. A failed file
    /// sync also makes every later sync of that file lie: it returns success and makes nothing
    /// durable.
    pub fail_sync_at: Option<u64>,
    /// The `n`-th write (counting from 1) fails with `EIO`, writing nothing.
    pub fail_write_at: Option<u64>,
    /// Bytes that may still be written in all; past them writes fail with `ENOSPC` (a write that
    /// crosses the limit writes what fits and returns that short count).
    pub space_left: Option<u64>,
    /// Every write writes a random non-empty prefix of what it was given (a short write).
    pub short_writes: bool,
    /// Every file sync takes this long before it does anything (a slow or stalled disk). Other
    /// calls, from other threads too, go on meanwhile; a crash during the wait fails the sync.
    pub sync_delay: Option<Duration>,
}

/// What a crash does to data that was not durable.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CrashMode {
    /// Everything not synced is lost: files hold their last synced bytes, directories their last
    /// synced entries.
    LoseUnsynced,
    /// A random part of what was not synced survives: each file keeps its synced bytes plus a
    /// random prefix of the rest, whose last bytes may be garbage; directory operations survive as
    /// a random prefix.
    Tear,
    /// The process died but the machine did not: everything written survives.
    KeepAll,
}

#[derive(Default, Debug)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// A sync failed: later syncs succeed without effect.
    sync_lies: bool,
}

#[derive(Clone, Debug)]
enum DirOp {
    Mkdir(PathBuf),
    Link(PathBuf, u64),
    Rename(PathBuf, PathBuf, u64),
    Unlink(PathBuf),
}

impl DirOp {
    fn touches(&self, dir: &Path) -> bool {
        match self {
            Self::Mkdir(p) | Self::Link(p, _) | Self::Unlink(p) => parent_dir(p) == dir,
            Self::Rename(a, b, _) => parent_dir(a) == dir || parent_dir(b) == dir,
        }
    }

    fn apply(&self, names: &mut BTreeMap<PathBuf, u64>, dirs: &mut BTreeSet<PathBuf>) {
        match self {
            Self::Mkdir(p) => {
                dirs.insert(p.clone());
            }
            Self::Link(p, ino) => {
                names.insert(p.clone(), *ino);
            }
            Self::Rename(from, to, ino) => {
                names.remove(from);
                names.insert(to.clone(), *ino);
            }
            Self::Unlink(p) => {
                names.remove(p);
            }
        }
    }
}

#[derive(Debug)]
struct State {
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    pending: Vec<DirOp>,
    dirs: BTreeSet<PathBuf>,
    durable_dirs: BTreeSet<PathBuf>,
    generation: u64,
    plan: FaultPlan,
    syncs: u64,
    writes: u64,
    rng: SplitMix64,
}

impl Default for State {
    fn default() -> Self {
        Self {
            inodes: BTreeMap::new(),
            next_inode: 0,
            names: BTreeMap::new(),
            durable_names: BTreeMap::new(),
            pending: Vec::new(),
            dirs: BTreeSet::new(),
            durable_dirs: BTreeSet::new(),
            generation: 0,
            plan: FaultPlan::default(),
            syncs: 0,
            writes: 0,
            // `FaultyFs::new` seeds it; a default file system draws from seed 0.
            rng: SplitMix64::new(0),
        }
    }
}

fn eio(what: &str) -> io::Error {
    io::Error::other(format!("injected EIO: {what}"))
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

/// An in-memory file system with durability tracking, fault injection and crashes. See the
/// module documentation.
#[derive(Clone, Debug, Default)]
pub struct FaultyFs {
    state: Arc<Mutex<State>>,
}

impl FaultyFs {
    /// An empty file system whose short writes draw from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        let fs = Self::default();
        fs.lock().rng = SplitMix64::new(seed);
        fs
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the fault plan and restarts its counters.
    pub fn set_plan(&self, plan: FaultPlan) {
        let mut s = self.lock();
        s.plan = plan;
        s.syncs = 0;
        s.writes = 0;
    }

    /// Removes every fault and clears the "syncs lie" marks left by failed syncs.
    pub fn heal(&self) {
        self.set_plan(FaultPlan::default());
        for inode in self.lock().inodes.values_mut() {
            inode.sync_lies = false;
        }
    }

    /// Syncs (files and directories) since the plan was last set.
    #[must_use]
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Kills the process but not the machine: every file handle opened before fails from now on,
    /// and what was written stays, in the page cache, exactly as durable as it was (a later
    /// [`Self::crash`] may still lose what was never synced).
    pub fn kill_process(&self) {
        self.lock().generation += 1;
    }

    /// Crashes the machine (see [`CrashMode`]); `seed` decides what survives a tear. Every file
    /// handle opened before fails from now on.
    pub fn crash(&self, mode: CrashMode, seed: u64) {
        let mut s = self.lock();
        let s = &mut *s;
        let mut rng = SplitMix64::new(seed ^ 0x5DEE_CE66_D1CE_4E5B);
        s.generation += 1;
        let (mut names, dirs) = match mode {
            CrashMode::KeepAll => (s.names.clone(), s.dirs.clone()),
            CrashMode::LoseUnsynced => (s.durable_names.clone(), s.durable_dirs.clone()),
            CrashMode::Tear => {
                let mut names = s.durable_names.clone();
                let mut dirs = s.durable_dirs.clone();
                let keep = rng.below(s.pending.len() as u64 + 1);
                for op in s
                    .pending
                    .iter()
                    .take(usize::try_from(keep).unwrap_or(usize::MAX))
                {
                    op.apply(&mut names, &mut dirs);
                }
                (names, dirs)
            }
        };
        s.pending.clear();
        // A directory whose creation was lost takes everything under it along.
        let reachable = |p: &Path| {
            p.ancestors()
                .skip(1)
                .all(|a| a.parent().is_none() || a.as_os_str().is_empty() || dirs.contains(a))
        };
        let dirs: BTreeSet<PathBuf> = dirs.iter().filter(|d| reachable(d)).cloned().collect();
        names.retain(|p, _| {
            p.parent()
                .is_none_or(|d| d.as_os_str().is_empty() || dirs.contains(d))
        });
        s.dirs = dirs.clone();
        s.durable_dirs = dirs;
        let live: BTreeSet<u64> = names.values().copied().collect();
        s.inodes.retain(|ino, _| live.contains(ino));
        for inode in s.inodes.values_mut() {
            match mode {
                CrashMode::KeepAll => {}
                CrashMode::LoseUnsynced => inode.data = inode.durable.clone(),
                CrashMode::Tear => tear(inode, &mut rng),
            }
            inode.durable = inode.data.clone();
            inode.sync_lies = false;
        }
        s.names = names.clone();
        s.durable_names = names;
    }

    /// The current bytes of `path` (durable or not), if it exists.
    #[must_use]
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock();
        let ino = s.names.get(path)?;
        s.inodes.get(ino).map(|i| i.data.clone())
    }

    /// Damages `path` durably: XORs the byte at `offset` with `mask`. Returns whether the byte
    /// exists.
    pub fn corrupt(&self, path: &Path, offset: u64, mask: u8) -> bool {
        self.edit(path, |data| {
            let Ok(at) = usize::try_from(offset) else {
                return false;
            };
            data.get_mut(at).map(|b| *b ^= mask).is_some()
        })
    }

    /// Cuts `path` durably to `len` bytes. Returns whether the file exists.
    pub fn truncate(&self, path: &Path, len: u64) -> bool {
        self.edit(path, |data| {
            data.truncate(usize::try_from(len).unwrap_or(usize::MAX));
            true
        })
    }

    /// Creates (or replaces) `path` durably with `bytes`, as if it had always been there.
    pub fn put(&self, path: &Path, bytes: &[u8]) {
        let mut s = self.lock();
        let s = &mut *s;
        for d in path.ancestors().skip(1) {
            if !d.as_os_str().is_empty() {
                s.dirs.insert(d.to_path_buf());
                s.durable_dirs.insert(d.to_path_buf());
            }
        }
        let ino = s.next_inode;
        s.next_inode += 1;
        s.inodes.insert(
            ino,
            Inode {
                data: bytes.to_vec(),
                durable: bytes.to_vec(),
                sync_lies: false,
            },
        );
        s.names.insert(path.to_path_buf(), ino);
        s.durable_names.insert(path.to_path_buf(), ino);
    }

    fn edit(&self, path: &Path, f: impl Fn(&mut Vec<u8>) -> bool) -> bool {
        let mut s = self.lock();
        let s = &mut *s;
        let Some(ino) = s.names.get(path).copied() else {
            return false;
        };
        let Some(inode) = s.inodes.get_mut(&ino) else {
            return false;
        };
        let a = f(&mut inode.data);
        let b = f(&mut inode.durable);
        a && b
    }

    fn handle(&self, ino: u64, generation: u64) -> FaultyFile {
        FaultyFile {
            state: Arc::clone(&self.state),
            ino,
            generation,
        }
    }
}

/// Keeps the synced bytes and a random prefix of the rest, its end possibly garbage, and
/// sometimes with holes: sectors written after the last sync that read back as zeros while later
/// ones survived (writeback is not in order).
fn tear(inode: &mut Inode, rng: &mut SplitMix64) {
    if inode.data == inode.durable {
        return;
    }
    if !inode.data.starts_with(&inode.durable) {
        // Cut or rewritten since the last sync: either state may be what reached the disk.
        if rng.next_u64().is_multiple_of(2) {
            inode.data = inode.durable.clone();
        }
        return;
    }
    let synced = inode.durable.len();
    let extra = (inode.data.len() - synced) as u64;
    let kept = usize::try_from(rng.below(extra + 1)).unwrap_or(0);
    inode.data.truncate(synced + kept);
    if kept > 0 && rng.next_u64().is_multiple_of(2) {
        // The last sector written was half new bytes, half whatever was there before.
        let garbage = 1 + usize::try_from(rng.below(kept.min(512) as u64)).unwrap_or(0);
        let zero = rng.next_u64().is_multiple_of(2);
        let start = inode.data.len() - garbage;
        for b in inode.data.iter_mut().skip(start) {
            *b = if zero { 0 } else { rng.next_u64() as u8 };
        }
    }
    // Only whole sectors past the synced bytes can be lost.
    let first = synced.div_ceil(SECTOR);
    let sectors = (inode.data.len() / SECTOR).saturating_sub(first) as u64;
    if sectors > 0 && rng.next_u64().is_multiple_of(3) {
        let at = first + usize::try_from(rng.below(sectors)).unwrap_or(0);
        let run = 1 + usize::try_from(rng.below(8)).unwrap_or(0);
        let end = ((at + run) * SECTOR).min(inode.data.len() / SECTOR * SECTOR);
        for b in inode.data.iter_mut().take(end).skip(at * SECTOR) {
            *b = 0;
        }
    }
}

/// The unit a disk writes atomically (or loses whole).
const SECTOR: usize = 512;

/// A [`FaultyFs`] file opened for appending.
#[derive(Debug)]
pub struct FaultyFile {
    state: Arc<Mutex<State>>,
    ino: u64,
    generation: u64,
}

impl FaultyFile {
    fn lock(&self) -> io::Result<MutexGuard<'_, State>> {
        let s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if s.generation == self.generation {
            Ok(s)
        } else {
            Err(eio("file handle from before a crash"))
        }
    }
}

impl WriteFile for FaultyFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut s = self.lock()?;
        let s = &mut *s;
        s.writes += 1;
        if s.plan.fail_write_at == Some(s.writes) {
            return Err(eio("write"));
        }
        let mut n = buf.len();
        if s.plan.short_writes && n > 1 {
            n = 1 + usize::try_from(s.rng.below(n as u64)).unwrap_or(0);
        }
        if let Some(left) = s.plan.space_left.as_mut() {
            if *left == 0 && n > 0 {
                return Err(io::Error::from_raw_os_error(28));
            }
            n = n.min(usize::try_from(*left).unwrap_or(usize::MAX));
            *left -= n as u64;
        }
        let inode = s.inodes.entry(self.ino).or_default();
        inode.data.extend_from_slice(buf.get(..n).unwrap_or(buf));
        Ok(n)
    }

    fn sync(&mut self) -> io::Result<()> {
        let delay = self.lock()?.plan.sync_delay;
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        let mut s = self.lock()?;
        let s = &mut *s;
        s.syncs += 1;
        let fail = s.plan.fail_sync_at == Some(s.syncs);
        let inode = s.inodes.entry(self.ino).or_default();
        if fail {
            inode.sync_lies = true;
            return Err(eio("fsync"));
        }
        if !inode.sync_lies {
            inode.durable = inode.data.clone();
        }
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut s = self.lock()?;
        let inode = s.inodes.entry(self.ino).or_default();
        inode
            .data
            .resize(usize::try_from(len).unwrap_or(usize::MAX), 0);
        Ok(())
    }
}

impl FileSystem for FaultyFs {
    type WriteFile = FaultyFile;
    type ReadFile = Cursor<Vec<u8>>;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let s = &mut *s;
        let mut missing: Vec<&Path> = dir
            .ancestors()
            .filter(|p| !p.as_os_str().is_empty() && !s.dirs.contains(*p))
            .collect();
        // Outermost first, as `mkdir -p` creates them.
        missing.reverse();
        for p in missing {
            s.dirs.insert(p.to_path_buf());
            if p.parent().is_none() {
                // The root is always there.
                s.durable_dirs.insert(p.to_path_buf());
            } else {
                s.pending.push(DirOp::Mkdir(p.to_path_buf()));
            }
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.lock();
        if !s.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(s.names
            .keys()
            .filter(|p| parent_dir(p) == dir)
            .filter_map(|p| p.file_name()?.to_str().map(String::from))
            .collect())
    }

    fn create(&self, path: &Path) -> io::Result<FaultyFile> {
        let mut s = self.lock();
        let s = &mut *s;
        if !s.dirs.contains(&parent_dir(path)) {
            return Err(not_found(path));
        }
        let ino = s.next_inode;
        s.next_inode += 1;
        s.inodes.insert(ino, Inode::default());
        s.names.insert(path.to_path_buf(), ino);
        s.pending.push(DirOp::Link(path.to_path_buf(), ino));
        let generation = s.generation;
        Ok(self.handle(ino, generation))
    }

    fn open_append(&self, path: &Path) -> io::Result<FaultyFile> {
        let s = self.lock();
        let ino = *s.names.get(path).ok_or_else(|| not_found(path))?;
        let generation = s.generation;
        Ok(self.handle(ino, generation))
    }

    fn open_read(&self, path: &Path) -> io::Result<Cursor<Vec<u8>>> {
        self.contents(path)
            .map(Cursor::new)
            .ok_or_else(|| not_found(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let ino = s.names.remove(from).ok_or_else(|| not_found(from))?;
        s.names.insert(to.to_path_buf(), ino);
        s.pending
            .push(DirOp::Rename(from.to_path_buf(), to.to_path_buf(), ino));
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.names.remove(path).ok_or_else(|| not_found(path))?;
        s.pending.push(DirOp::Unlink(path.to_path_buf()));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let s = &mut *s;
        s.syncs += 1;
        if s.plan.fail_sync_at == Some(s.syncs) {
            return Err(eio("fsync of a directory"));
        }
        let (now, later): (Vec<DirOp>, Vec<DirOp>) =
            s.pending.drain(..).partition(|op| op.touches(dir));
        for op in &now {
            op.apply(&mut s.durable_names, &mut s.durable_dirs);
        }
        s.pending = later;
        Ok(())
    }
}
