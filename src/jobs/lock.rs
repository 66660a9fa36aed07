//! `--lock[=PATH]`: one run of a job at a time. The lock is an `flock` on
//! an open file, so it goes away with the process however the process ends
//! (a crash, SIGKILL, a reboot): a failed run never blocks the next one.
//! The holder writes its PID and start time into the file so a refused run
//! can say who holds it. The descriptor is close-on-exec, so commands herd
//! starts never inherit (and so never prolong) the lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct JobLock {
    _file: File,
    pub path: PathBuf,
}

/// Who holds a lock, as its holder wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: String,
    pub started: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open the lock file {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot lock {path}: {source}")]
    Flock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another run holds the lock {path} ({holder}){waited}; this run was not started", holder = fmt_holder(.holder), waited = fmt_waited(.waited))]
    Busy {
        path: PathBuf,
        holder: Option<Holder>,
        waited: Option<u64>,
    },
}

fn fmt_holder(holder: &Option<Holder>) -> String {
    match holder {
        Some(h) => format!("pid {}, started {}", h.pid, h.started),
        None => "holder unknown".into(),
    }
}

fn fmt_waited(w: &Option<u64>) -> String {
    match w {
        Some(s) => format!(", still held after waiting {s} s"),
        None => String::new(),
    }
}

/// The lock file used by `--lock` without a path: per job, in
/// `/run/lock` for root, else in `$XDG_RUNTIME_DIR`, else in `/tmp` with
/// the user's id in the name.
pub fn default_path(job: &str) -> PathBuf {
    let name: String = job
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 && Path::new("/run/lock").is_dir() {
        return PathBuf::from(format!("/run/lock/herd-{name}.lock"));
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join(format!("herd-{name}.lock")),
        None => PathBuf::from(format!("/tmp/herd-{uid}-{name}.lock")),
    }
}

/// Take the lock at `path`, waiting up to `wait` for a holder to finish
/// (none: refuse at once). `started` is this run's start time, written
/// into the file for the next run's message.
pub fn acquire(path: &Path, wait: Option<Duration>, started: &str) -> Result<JobLock, LockError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        // A symlink planted at a predictable /tmp name must not redirect
        // the write of the holder line.
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| LockError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let deadline = wait.map(|w| Instant::now() + w);
    loop {
        // SAFETY: flock on a descriptor this function owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => {}
            Some(libc::EINTR) => continue,
            _ => {
                return Err(LockError::Flock {
                    path: path.to_path_buf(),
                    source: err,
                })
            }
        }
        match deadline {
            Some(d) if Instant::now() < d => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                return Err(LockError::Busy {
                    path: path.to_path_buf(),
                    holder: read_holder(&mut file),
                    waited: wait.map(|w| w.as_secs()),
                })
            }
        }
    }
    // Best effort: the lock holds whether or not the note is written.
    let _ = file.set_len(0).and_then(|()| {
        file.seek(SeekFrom::Start(0))?;
        writeln!(file, "pid={} started={started}", std::process::id())
    });
    Ok(JobLock {
        _file: file,
        path: path.to_path_buf(),
    })
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(4096).read_to_string(&mut text).ok()?;
    parse_holder(&text)
}

fn parse_holder(text: &str) -> Option<Holder> {
    let mut pid = None;
    let mut started = None;
    for word in text.split_whitespace() {
        if let Some(p) = word.strip_prefix("pid=") {
            pid = Some(p.to_string());
        } else if let Some(s) = word.strip_prefix("started=") {
            started = Some(s.to_string());
        }
    }
    Some(Holder {
        pid: pid?,
        started: started?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.lock");
        let held = acquire(&path, None, "2026-01-01T02:30:00Z").unwrap();
        match acquire(&path, None, "later") {
            Err(LockError::Busy { holder, .. }) => assert_eq!(
                holder,
                Some(Holder {
                    pid: std::process::id().to_string(),
                    started: "2026-01-01T02:30:00Z".into()
                })
            ),
            other => panic!("expected Busy, got {other:?}"),
        }
        let t = Instant::now();
        let e = acquire(&path, Some(Duration::from_millis(300)), "later").unwrap_err();
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert!(e.to_string().contains("after waiting 0 s"), "{e}");
        drop(held);
        acquire(&path, None, "later").unwrap();
    }

    #[test]
    fn default_paths_keep_job_names_to_safe_characters() {
        let p = default_path("../etc/x y");
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with(".._etc_x_y.lock"), "{name}");
        assert!(!name.contains('/'));
    }
}
