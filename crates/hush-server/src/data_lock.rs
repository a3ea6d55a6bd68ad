//! One server per SQLite database: an exclusive lock on a file beside the
//! database in its data directory (`hush.sqlite3.lock` for
//! `hush.sqlite3`), taken when the server binds and held until it stops.
//!
//! Two `hush serve` processes on one SQLite file would each believe they
//! are the cluster: two webhook senders on one outbox, two writers of the
//! key directory's log. The lock is an OS file lock (`flock(2)`, through
//! rustix; std's `File::try_lock` needs a newer Rust than the workspace's
//! `rust-version`), so the kernel releases it when
//! the process ends, however it ends (`kill -9` included): a stale lock file
//! never blocks a restart. The holder writes its process id into the file,
//! so a refused server can say who holds it. Other tools that open the
//! store (`hush webhooks`, `hush apps`) do not take the lock. Outside Unix
//! no lock is taken.
//!
//! A PostgreSQL store (`postgres://`) takes no lock: several nodes share
//! one database on purpose, and what SQLite's lock prevents is handled in
//! the database there (webhook queues are leased to one node at a time, the
//! key directory serialises its epochs with an advisory lock and re-reads
//! what other nodes wrote). [`sqlite_file`] is `None` for it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Appended to the database file's name to name its lock file.
pub const LOCK_SUFFIX: &str = ".lock";

/// Why the data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum DataLockError {
    /// Another process holds the lock.
    #[error(
        "data directory {dir}: the store {} is in use by another hush server ({holder}, lock file {file}): stop it, or give this server its own server.data_dir",
        db.display()
    )]
    InUse {
        /// The data directory.
        dir: PathBuf,
        /// The database file.
        db: PathBuf,
        /// The lock file.
        file: PathBuf,
        /// Who holds it, as far as its file says (`process 1234`).
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock data directory {dir} (lock file {file}): {source}")]
    Io {
        /// The data directory.
        dir: PathBuf,
        /// The lock file.
        file: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The held lock; released when dropped.
#[derive(Debug)]
pub struct DataLock {
    _file: File,
    path: PathBuf,
}

impl DataLock {
    /// Locks the SQLite database `db` (creating its directory and the lock
    /// file if needed) for this process, or says which process holds it.
    pub fn acquire(db: &Path) -> Result<Self, DataLockError> {
        let mut name = db.file_name().unwrap_or(db.as_os_str()).to_owned();
        name.push(LOCK_SUFFIX);
        let path = db.with_file_name(name);
        let dir = match db.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let io = |source| DataLockError::Io {
            dir: dir.to_owned(),
            file: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        // Absolute in messages: the operator may not know the server's
        // working directory.
        let (dir, db, path) = match dir.canonicalize() {
            Ok(abs) => {
                let name = db.file_name().unwrap_or_default();
                let lock = path.file_name().unwrap_or_default();
                (abs.clone(), abs.join(name), abs.join(lock))
            }
            Err(_) => (dir.to_owned(), db.to_owned(), path.clone()),
        };
        let (dir, db) = (dir.as_path(), db.as_path());
        let io = |source| DataLockError::Io {
            dir: dir.to_owned(),
            file: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match try_lock(&file) {
            Ok(true) => {}
            Ok(false) => {
                let mut text = String::new();
                // Best effort: the holder may be writing it right now.
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("process {pid}"),
                    Err(_) => "a process that did not record its id".to_owned(),
                };
                return Err(DataLockError::InUse {
                    dir: dir.to_owned(),
                    db: db.to_owned(),
                    file: path,
                    holder,
                });
            }
            Err(e) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes an exclusive lock on `file` without waiting: false when another
/// open file (of this or another process) holds one.
#[cfg(unix)]
fn try_lock(file: &File) -> std::io::Result<bool> {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> std::io::Result<bool> {
    Ok(true)
}

/// The SQLite database file named by `url` (`sqlite://PATH`,
/// `sqlite:PATH`, a `?query` ignored), or `None` for an in-memory database
/// or another kind of store.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path == ":memory:" || path.starts_with("file::memory:") {
        return None;
    }
    Some(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_file_is_found_in_the_url() {
        let d = |u| sqlite_file(u).map(|p| p.display().to_string());
        let file = d("sqlite://./hush-data/hush.sqlite3");
        assert_eq!(file.as_deref(), Some("./hush-data/hush.sqlite3"));
        assert_eq!(d("postgres://hush:pw@db:5432/hush"), None);
        assert_eq!(d("postgresql://db/hush"), None);
        let file = d("sqlite:/var/lib/hush/h.db?mode=rwc");
        assert_eq!(file.as_deref(), Some("/var/lib/hush/h.db"));
        assert_eq!(d("sqlite:h.db").as_deref(), Some("h.db"));
        assert_eq!(d("sqlite::memory:"), None);
        assert_eq!(d("postgres://h/db"), None);
    }

    #[test]
    fn a_second_lock_on_a_database_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hush.sqlite3");
        let first = DataLock::acquire(&db).unwrap();
        let e = DataLock::acquire(&db).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, DataLockError::InUse { .. }), "{msg}");
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(
            msg.contains(&format!("process {}", std::process::id())),
            "{msg}"
        );
        // Another database in the same directory is another lock.
        let other = DataLock::acquire(&dir.path().join("other.sqlite3")).unwrap();
        drop(first);
        // Other tests of this binary spawn processes (the PostgreSQL
        // tests): a child forked before its exec closes our descriptors
        // shares the lock for that instant.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let again = loop {
            match DataLock::acquire(&db) {
                Ok(lock) => break lock,
                Err(e) if std::time::Instant::now() >= deadline => panic!("{e}"),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        };
        let abs = dir.path().canonicalize().unwrap();
        assert_eq!(again.path(), abs.join("hush.sqlite3.lock"));
        drop(other);
    }
}
