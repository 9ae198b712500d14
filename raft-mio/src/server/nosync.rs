//! `--fsync off`: real files whose syncs do nothing. For tests and benchmarks of everything but
//! the disk only: a machine crash can lose writes that were acknowledged.

use std::fs;
use std::io;
use std::path::Path;

use raft_std::storage::fs::{FileSystem, StdFs, WriteFile};

/// [`StdFs`] without `fdatasync`s.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct NoSyncFs;

/// A file of [`NoSyncFs`].
pub(super) struct NoSyncFile<W>(W);

impl<W: WriteFile> WriteFile for NoSyncFile<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl FileSystem for NoSyncFs {
    type WriteFile = NoSyncFile<<StdFs as FileSystem>::WriteFile>;
    type ReadFile = fs::File;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdFs.create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdFs.list_dir(dir)
    }

    fn create(&self, path: &Path) -> io::Result<Self::WriteFile> {
        StdFs.create(path).map(NoSyncFile)
    }

    fn open_append(&self, path: &Path) -> io::Result<Self::WriteFile> {
        StdFs.open_append(path).map(NoSyncFile)
    }

    fn open_read(&self, path: &Path) -> io::Result<fs::File> {
        StdFs.open_read(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdFs.rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        StdFs.remove(path)
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
}
