//! The `Host` trait: the only way a module touches a machine.
//!
//! A transport (local, SSH) implements [`Host::run`]; file reads and atomic
//! writes have default implementations on top of it so every transport gets
//! them, and a transport with a faster path (SFTP) may override them.
//! Become and task `environment` are applied by the engine's wrapper around
//! the transport, so modules never think about them.

use crate::shell_quote::quote;
use std::io::Write;

/// How much one command may print on each of stdout and stderr before it
/// is stopped and its task fails: 64 MiB, far above real output and far
/// below what exhausts the controller (`command: cat /dev/zero`).
pub const DEFAULT_MAX_OUTPUT: u64 = 64 * 1024 * 1024;

/// What a command printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit status (negative: killed by that signal).
    pub rc: i32,
    /// What the command printed on standard output.
    pub stdout: Vec<u8>,
    /// What it printed on standard error.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.rc == 0
    }
    /// Standard output as text (invalid UTF-8 replaced).
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// Standard error as text (invalid UTF-8 replaced).
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Why a host could not do what was asked. `Unreachable` marks the host
/// unreachable for the rest of the run; the others fail only the task.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("host unreachable: {0}")]
    /// The host cannot be reached; it is left out of the rest of the run.
    Unreachable(String),
    #[error("command timed out after {seconds}s")]
    /// The command ran past the command timeout.
    Timeout {
        /// The timeout.
        seconds: u64,
    },
    #[error("{action} failed on the host (rc={rc}): {stderr}")]
    /// A helper command the module ran failed.
    Command {
        /// What it was doing.
        action: &'static str,
        /// Its exit status.
        rc: i32,
        /// What it printed on standard error.
        stderr: String,
    },
    #[error("i/o error: {0}")]
    /// A local I/O error.
    Io(#[from] std::io::Error),
    /// The command printed more than the run's limit on one stream; it was
    /// stopped (its output pipe or channel closed, the local process killed).
    #[error("{stream} passed the limit of {limit} bytes and the command was stopped (raise the limit with --max-command-output)")]
    OutputLimit {
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The limit, in bytes.
        limit: u64,
    },
    /// A value that cannot reach the host's shell (a NUL byte, a bad
    /// environment name); nothing was run.
    #[error("refused before running: {0}")]
    Quote(#[from] crate::shell_quote::QuoteError),
    /// `herd` was interrupted by this signal; the command was stopped.
    #[error("interrupted by {}: the command was stopped", signal_name(*.signal))]
    Interrupted {
        /// The signal's number.
        signal: i32,
    },
    /// The task ran past its `timeout:`; the command was stopped. The
    /// words are Ansible's.
    #[error("The command action failed to execute in the expected time frame ({seconds}) and was terminated")]
    TaskTimeout {
        /// The task's `timeout:`.
        seconds: u64,
    },
    /// The transport cannot do this (a stream to a host that only runs
    /// whole commands).
    #[error("the {transport} transport cannot {what}")]
    Unsupported {
        /// The transport.
        transport: &'static str,
        /// What was asked.
        what: &'static str,
    },
}

/// `SIGINT`, `SIGTERM`, ... for messages.
pub fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        n => format!("signal {n}"),
    }
}

/// Ownership and permissions applied to a file before it is renamed into place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileAttrs {
    /// The owner to set, by name or uid.
    pub owner: Option<String>,
    /// The group to set, by name or gid.
    pub group: Option<String>,
    /// Numeric (`0644`) or symbolic (`u=rw,g=r`) mode, as chmod takes it.
    pub mode: Option<String>,
}

impl FileAttrs {
    /// A fixed mode, for a file the module owns outright (a sudoers
    /// drop-in, an apt key, a unit file); owner and group are left to the
    /// write (a replaced file keeps its own).
    pub fn with_mode(mode: &str) -> Self {
        FileAttrs {
            mode: Some(mode.to_string()),
            ..FileAttrs::default()
        }
    }
}

/// A target host as modules see it: run commands, read and write files. The SSH and local
/// transports implement it; modules never see which.
pub trait Host: Send {
    /// The inventory name of the host, for messages.
    fn name(&self) -> &str;

    /// Run `script` with `/bin/sh -c` on the host, feeding `stdin` when given.
    fn run(&mut self, script: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, HostError>;

    /// Read a whole file. `Ok(None)` when it does not exist.
    fn read_file(&mut self, path: &str) -> Result<Option<Vec<u8>>, HostError> {
        default_read_file(self, path)
    }

    /// Write a file atomically: a temp file in the same directory gets the
    /// content, owner, group and mode, then is renamed over `path`. A reader
    /// never sees a half-written file, and a failed write leaves the old one.
    fn write_file(
        &mut self,
        path: &str,
        content: &[u8],
        attrs: &FileAttrs,
    ) -> Result<(), HostError> {
        default_write_file(self, path, content, attrs)
    }

    /// Copy a file of any size from the host into `dest`, holding at most
    /// one piece of [`FETCH_PIECE`] bytes in memory (backup archives can be
    /// larger than the controller's memory). Returns the bytes copied, or
    /// `Ok(None)` when the file does not exist.
    fn fetch_file(
        &mut self,
        path: &str,
        dest: &mut dyn Write,
    ) -> Result<Option<u64>, FetchFileError> {
        default_fetch_file(self, path, dest)
    }

    /// Run `command` on the host as the login shell runs a remote command
    /// (what `ssh host COMMAND` does), its stdin read from `peer` and its
    /// stdout written to `peer` while it runs, until it exits and its
    /// output has all been delivered; `peer` is then shut down for
    /// writing. The result holds the exit status and standard error
    /// (stdout went to `peer`). For a controller program that speaks to a
    /// program on the host over a pipe (rsync). Become and the task's
    /// environment do not apply: the command is the program's own.
    fn stream(
        &mut self,
        command: &str,
        peer: std::os::unix::net::UnixStream,
    ) -> Result<ExecOutput, HostError> {
        let _ = (command, peer);
        Err(HostError::Unsupported {
            transport: "this",
            what: "carry a stream to a command",
        })
    }
}

/// The piece size of [`Host::fetch_file`]: large enough that the round
/// trip per piece is small next to moving it.
pub const FETCH_PIECE: u64 = 8 * 1024 * 1024;

/// Why [`Host::fetch_file`] failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchFileError {
    #[error(transparent)]
    /// The transport failed.
    Host(#[from] HostError),
    #[error("cannot write the copy: {0}")]
    /// The controller-side copy could not be written.
    Write(#[source] std::io::Error),
    #[error("{path} changed size while it was copied ({was} bytes, then {now})")]
    /// The file changed size while it was copied.
    Changed {
        /// The file on the host.
        path: String,
        /// Its size when the copy started.
        was: u64,
        /// Its size later.
        now: u64,
    },
}

/// [`Host::fetch_file`] through `run`: the size first, then one `dd` per
/// piece, so it works the same through become and any transport.
pub fn default_fetch_file<H: Host + ?Sized>(
    host: &mut H,
    path: &str,
    dest: &mut dyn Write,
) -> Result<Option<u64>, FetchFileError> {
    let p = quote(path);
    let out = host.run(
        &format!("if [ -f {p} ]; then wc -c < {p}; else exit 66; fi"),
        None,
    )?;
    let size: u64 = match out.rc {
        0 => out
            .stdout_str()
            .trim()
            .parse()
            .map_err(|_| HostError::Command {
                action: "size a file",
                rc: 0,
                stderr: format!("unexpected size {:?}", out.stdout_str().trim()),
            })?,
        66 => return Ok(None),
        rc => {
            return Err(HostError::Command {
                action: "size a file",
                rc,
                stderr: out.stderr_str(),
            }
            .into())
        }
    };
    let mut copied = 0u64;
    let mut piece = 0u64;
    while copied < size {
        let out = host.run(
            &format!("dd if={p} bs={FETCH_PIECE} skip={piece} count=1 iflag=fullblock status=none"),
            None,
        )?;
        if out.rc != 0 {
            return Err(HostError::Command {
                action: "read a file piece",
                rc: out.rc,
                stderr: out.stderr_str(),
            }
            .into());
        }
        let want = FETCH_PIECE.min(size - copied);
        if out.stdout.len() as u64 != want {
            return Err(FetchFileError::Changed {
                path: path.to_string(),
                was: size,
                now: copied + out.stdout.len() as u64,
            });
        }
        dest.write_all(&out.stdout).map_err(FetchFileError::Write)?;
        copied += want;
        piece += 1;
    }
    Ok(Some(copied))
}

/// [`Host::read_file`] through `run`, for transports without a faster way
/// and for wrappers that must go through `run` (become).
pub fn default_read_file<H: Host + ?Sized>(
    host: &mut H,
    path: &str,
) -> Result<Option<Vec<u8>>, HostError> {
    let p = quote(path);
    let out = host.run(
        &format!("if [ -e {p} ]; then cat -- {p}; else exit 66; fi"),
        None,
    )?;
    match out.rc {
        0 => Ok(Some(out.stdout)),
        66 => Ok(None),
        rc => Err(HostError::Command {
            action: "read file",
            rc,
            stderr: out.stderr_str(),
        }),
    }
}

/// Write a file atomically: a temp file in the same directory gets the
/// content, owner, group and mode, then is renamed over `path`. A reader
/// never sees a half-written file, and a failed write leaves the old one.
pub fn default_write_file<H: Host + ?Sized>(
    host: &mut H,
    path: &str,
    content: &[u8],
    attrs: &FileAttrs,
) -> Result<(), HostError> {
    let p = quote(path);
    // The temp file goes on any exit, a stopped command's too: a shell
    // killed by a signal it does not trap skips its EXIT trap. The size
    // check: a run cut short (herd stopped mid-write, the channel closed)
    // can end stdin early instead of signalling the shell; `cat` then ends
    // normally, and without the check the partial temp file would replace
    // the old one.
    let mut script = format!(
        "set -e; d=$(dirname -- {p}); t=$(mktemp \"$d/.herd.XXXXXX\"); \
         trap 'rm -f \"$t\"' EXIT; trap 'exit 143' HUP INT TERM; cat > \"$t\"; \
         test \"$(wc -c < \"$t\")\" -eq {len} || {{ echo 'the file arrived incomplete' >&2; exit 74; }}; ",
        len = content.len()
    );
    // A replaced file keeps its owner and group unless others are given,
    // as an in-place edit would (failing quietly when not root).
    script.push_str(&format!(
        "if [ -e {p} ]; then chown --reference={p} \"$t\" 2>/dev/null || true; fi; "
    ));
    match (&attrs.owner, &attrs.group) {
        (Some(o), Some(g)) => {
            script.push_str(&format!("chown -- {}:{} \"$t\"; ", quote(o), quote(g)));
        }
        (Some(o), None) => script.push_str(&format!("chown -- {} \"$t\"; ", quote(o))),
        (None, Some(g)) => script.push_str(&format!("chgrp -- {} \"$t\"; ", quote(g))),
        (None, None) => {}
    }
    // Mode last: chown clears setuid/setgid bits. Keep the mode of a file
    // being replaced unless a mode is given, as cp does.
    match &attrs.mode {
        Some(mode) => script.push_str(&format!("chmod -- {} \"$t\"; ", quote(mode))),
        None => script.push_str(&format!(
            "if [ -e {p} ]; then chmod --reference={p} \"$t\"; else chmod 0644 \"$t\"; fi; "
        )),
    }
    script.push_str(&format!("mv -f \"$t\" {p}; trap - EXIT"));
    let out = host.run(&script, Some(content))?;
    if out.success() {
        Ok(())
    } else {
        Err(HostError::Command {
            action: "write file",
            rc: out.rc,
            stderr: out.stderr_str(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalHost;

    /// Runs the write's script, and stops it with SIGTERM (as `herd` stops
    /// commands on an interrupt) while it is copying stdin to the temp file.
    struct StoppedMidWrite {
        dir: std::path::PathBuf,
    }

    impl Host for StoppedMidWrite {
        fn name(&self) -> &str {
            "stopped"
        }
        fn run(&mut self, script: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, HostError> {
            use std::os::unix::process::CommandExt;
            let mut child = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(script)
                .stdin(std::process::Stdio::piped())
                .process_group(0)
                .spawn()?;
            let mut pipe = child.stdin.take().expect("stdin");
            // Half the content, and the pipe kept open: cat is mid-copy.
            let data = stdin.unwrap_or_default();
            pipe.write_all(&data[..data.len() / 2])?;
            let temp_exists = || {
                std::fs::read_dir(&self.dir)
                    .map(|d| {
                        d.flatten()
                            .any(|e| e.file_name().to_string_lossy().starts_with(".herd."))
                    })
                    .unwrap_or(false)
            };
            for _ in 0..200 {
                if temp_exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            assert!(temp_exists(), "the write never made its temp file");
            let pgid = libc::pid_t::try_from(child.id()).expect("pid");
            // SAFETY: the process group of the shell started above.
            unsafe {
                libc::killpg(pgid, libc::SIGTERM);
            }
            let status = child.wait()?;
            drop(pipe);
            Ok(ExecOutput {
                rc: status.code().unwrap_or(143),
                stdout: Vec::new(),
                stderr: Vec::new(),
            })
        }
    }

    #[test]
    fn a_write_stopped_by_sigterm_leaves_the_old_file_and_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data");
        std::fs::write(&path, "old\n").expect("write");
        let mut host = StoppedMidWrite {
            dir: dir.path().to_path_buf(),
        };
        let content = vec![b'n'; 1 << 20];
        let err = default_write_file(
            &mut host,
            &path.display().to_string(),
            &content,
            &FileAttrs::default(),
        )
        .expect_err("stopped");
        assert!(matches!(err, HostError::Command { rc: 143, .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "old\n");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["data"]);
    }

    /// Runs the write's script with stdin that ends early (a closed
    /// channel, not a signal): `cat` ends normally.
    struct CutShort;

    impl Host for CutShort {
        fn name(&self) -> &str {
            "cut"
        }
        fn run(&mut self, script: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, HostError> {
            let data = stdin.unwrap_or_default();
            LocalHost::new("cut").run(script, Some(&data[..data.len() / 2]))
        }
    }

    #[test]
    fn a_write_whose_input_ends_early_leaves_the_old_file_and_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data");
        std::fs::write(&path, "old\n").expect("write");
        let content = vec![b'n'; 1 << 16];
        let err = default_write_file(
            &mut CutShort,
            &path.display().to_string(),
            &content,
            &FileAttrs::default(),
        )
        .expect_err("cut short");
        assert!(matches!(err, HostError::Command { rc: 74, .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "old\n");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["data"]);
    }

    #[test]
    fn fetch_file_copies_every_piece_and_the_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("archive.bin");
        // Two whole pieces and a partial one, every byte value present.
        let len = 2 * FETCH_PIECE as usize + 4099;
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
        std::fs::write(&path, &data).expect("write");
        let mut host = LocalHost::new("local");
        let mut copy = Vec::new();
        let n = host
            .fetch_file(&path.display().to_string(), &mut copy)
            .expect("fetch");
        assert_eq!(n, Some(len as u64));
        assert!(copy == data, "the copy differs from the file");
    }

    #[test]
    fn fetch_file_of_an_empty_or_missing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").expect("write");
        let mut host = LocalHost::new("local");
        let mut copy = Vec::new();
        assert_eq!(
            host.fetch_file(&empty.display().to_string(), &mut copy)
                .expect("fetch"),
            Some(0)
        );
        let missing = dir.path().join("missing");
        assert_eq!(
            host.fetch_file(&missing.display().to_string(), &mut copy)
                .expect("fetch"),
            None
        );
        assert!(copy.is_empty());
    }

    /// An owner, group or mode starting with `-` is an operand, not an
    /// option: `chown --help` used to print its help, exit 0 and leave the
    /// file with the wrong owner, reported as a success.
    #[test]
    fn attrs_starting_with_a_dash_are_not_options() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f").display().to_string();
        let mut host = LocalHost::new("local");
        for attrs in [
            FileAttrs {
                owner: Some("--help".into()),
                ..FileAttrs::default()
            },
            FileAttrs {
                group: Some("--help".into()),
                ..FileAttrs::default()
            },
            FileAttrs {
                owner: Some("--reference=/etc/passwd".into()),
                group: Some("x".into()),
                ..FileAttrs::default()
            },
        ] {
            let res = host.write_file(&path, b"x", &attrs);
            assert!(res.is_err(), "{attrs:?} was taken as an option");
        }
        // A symbolic mode that starts with a dash still works.
        let attrs = FileAttrs {
            mode: Some("-w".into()),
            ..FileAttrs::default()
        };
        host.write_file(&path, b"y", &attrs).expect("chmod -- -w");
    }
}
