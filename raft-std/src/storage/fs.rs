//! The narrow file-system interface [`FileStorage`](super::file::FileStorage) is written against,
//! and [`StdFs`], its implementation on real files.
//!
//! The interface holds only what a write-ahead log and a snapshot store need: append-only
//! writers, whole-file or seekable readers, rename, remove, list, and the two fsyncs (a file's data
//! and a directory's entries). It is small so that tests can put a fault-injecting layer under the
//! storage: `FaultyFs` (in `raft_std::test_util`, behind the feature `test-util`).

use std::fs;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

/// A file opened for appending.
pub trait WriteFile: Send + 'static {
    /// Appends bytes from `buf` at the end of the file and returns how many were written, which
    /// may be fewer than `buf.len()` (a short write): the caller writes the rest.
    ///
    /// # Errors
    ///
    /// The operating system's error (`ENOSPC`, `EIO`, ...).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;

    /// Makes the file's data durable (`fdatasync`).
    ///
    /// # Errors
    ///
    /// The operating system's error. After one, what was written since the last successful sync
    /// may be lost whatever a later sync says.
    fn sync(&mut self) -> io::Result<()>;

    /// Cuts the file to `len` bytes (nothing is durable until [`Self::sync`]).
    ///
    /// # Errors
    ///
    /// The operating system's error.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

/// The file operations storage needs. Paths are full paths (directory joined with a name).
pub trait FileSystem: Send + 'static {
    /// A file opened for appending.
    type WriteFile: WriteFile;
    /// A file opened for reading.
    type ReadFile: Read + Seek + Send + 'static;

    /// Creates `dir` and its missing parents; succeeds if it exists.
    ///
    /// # Errors
    ///
    /// The operating system's error.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// The names of the entries in `dir` (not full paths), in no particular order.
    ///
    /// # Errors
    ///
    /// The operating system's error; [`io::ErrorKind::NotFound`] if `dir` does not exist.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// Creates `path` empty for appending, replacing any file of that name.
    ///
    /// # Errors
    ///
    /// The operating system's error.
    fn create(&self, path: &Path) -> io::Result<Self::WriteFile>;

    /// Opens the existing file `path` for appending at its end.
    ///
    /// # Errors
    ///
    /// The operating system's error.
    fn open_append(&self, path: &Path) -> io::Result<Self::WriteFile>;

    /// Opens the existing file `path` for reading from its start.
    ///
    /// # Errors
    ///
    /// The operating system's error.
    fn open_read(&self, path: &Path) -> io::Result<Self::ReadFile>;

    /// Reads the whole file `path`.
    ///
    /// # Errors
    ///
    /// The operating system's error.
    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.open_read(path)?.read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// Renames `from` to `to`, replacing `to` atomically if it exists.
    ///
    /// # Errors
    ///
    /// The operating system's error.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes the file `path`.
    ///
    /// # Errors
    ///
    /// The operating system's error.
    fn remove(&self, path: &Path) -> io::Result<()>;

    /// Makes the entries of `dir` durable: creates, renames and removes done in it so far.
    ///
    /// # Errors
    ///
    /// The operating system's error.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// Real files through [`std::fs`]: `fdatasync` for files, and an fsync of the directory opened
/// read-only for directory entries.
#[derive(Clone, Copy, Default, Debug)]
pub struct StdFs;

/// A real file opened for appending.
#[derive(Debug)]
pub struct StdWriteFile {
    file: fs::File,
}

impl WriteFile for StdWriteFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::Write::write(&mut self.file, buf)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        // A file opened by `create` writes at its position, not with O_APPEND: keep that
        // position at the end.
        self.file.seek(io::SeekFrom::Start(len))?;
        Ok(())
    }
}

impl FileSystem for StdFs {
    type WriteFile = StdWriteFile;
    type ReadFile = fs::File;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            // Names that are not UTF-8 are none of ours.
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn create(&self, path: &Path) -> io::Result<StdWriteFile> {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(path)?;
        Ok(StdWriteFile { file })
    }

    fn open_append(&self, path: &Path) -> io::Result<StdWriteFile> {
        let file = fs::OpenOptions::new().append(true).open(path)?;
        Ok(StdWriteFile { file })
    }

    fn open_read(&self, path: &Path) -> io::Result<fs::File> {
        fs::File::open(path)
    }

    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        fs::File::open(dir)?.sync_all()
    }
}

/// The directory holding `path` (`.` for a bare name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
