//! Controller programs that reach the host through herd's own connection
//! (`synchronize` runs the controller's rsync).
//!
//! Such a program wants a remote shell: a command it starts with the host's
//! name and a remote command line, whose stdin and stdout are the remote
//! command's. herd gives it one without a second SSH client: the program's
//! remote shell is the herd binary again, run as the hidden [`SUBCOMMAND`]
//! (the relay) with one end of a socket pair it inherits. The relay sends
//! the remote command line over the socket, then copies its stdin to the
//! socket and the socket to its stdout. herd, holding the other end, runs
//! the command through [`Host::stream`] on the host's existing session, so
//! passwords, jump hosts and host-key settings are the connection's own.
//!
//! Owns: the relay's side (run by `herd` before its argument parsing) and
//! the controller's side ([`run_through`]), and the context the engine
//! passes a module that declares
//! [`Module::CONTROLLER_PROCESS`](crate::Module::CONTROLLER_PROCESS).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::host::{ExecOutput, Host, HostError};

/// The hidden first argument that makes `herd` a relay.
pub const SUBCOMMAND: &str = "__herd-relay";

/// The parameter the engine passes a controller-process module under.
pub const PARAM: &str = "_controller";

/// The longest remote command line a relay may announce.
const MAX_COMMAND: usize = 1 << 20;

/// What the engine tells a module that runs a controller program.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ControllerContext {
    /// The program and arguments that start a relay (the herd binary and
    /// [`SUBCOMMAND`]); the socket's descriptor is appended.
    pub relay: Vec<String>,
    /// The task runs in check mode.
    #[serde(default)]
    pub check_mode: bool,
    /// The task becomes this user with sudo (Ansible's synchronize then
    /// runs the host's side under `sudo`).
    #[serde(default)]
    pub become_user: Option<String>,
    /// Where a relative controller path is looked for, in order (a role's
    /// `files/`, the playbook's `files/`, the playbook's directory).
    #[serde(default)]
    pub search: Vec<String>,
    /// The connection's user, for the `user@host:` of the command shown.
    #[serde(default)]
    pub remote_user: Option<String>,
    /// The task is delegated (`delegate_to`): the connection is the
    /// delegate's.
    #[serde(default)]
    pub delegated: bool,
}

/// Why a controller program could not be run through the host.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The program could not be started.
    #[error("cannot run `{program}` on the controller: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// Talking to the program or the relay failed.
    #[error("controller program i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The relay announced something that is not a command line.
    #[error("the relay sent a malformed command header")]
    Header,
    /// The host could not run the remote command.
    #[error(transparent)]
    Host(#[from] HostError),
}

/// How a controller program run through the host ended.
#[derive(Debug, Clone, Default)]
pub struct ProgramOutput {
    /// The program's exit status (negative: killed by that signal).
    pub rc: i32,
    /// What it printed on standard output.
    pub stdout: Vec<u8>,
    /// What it printed on standard error.
    pub stderr: Vec<u8>,
    /// The remote command line it asked for, when it asked for one.
    pub remote_command: Option<String>,
    /// The remote command's status and standard error.
    pub remote: Option<ExecOutput>,
}

/// The remote-shell option value naming the relay: the relay argv words,
/// each single-quoted where needed (rsync splits its `--rsh` value as a
/// shell would, honouring quotes), then the socket's descriptor.
pub fn relay_command(relay: &[String], fd: RawFd) -> String {
    let mut words: Vec<String> = relay.iter().map(|w| crate::quote(w)).collect();
    words.push(fd.to_string());
    words.join(" ")
}

/// Run `program` (built with the relay's descriptor already in its
/// arguments, see [`relay_command`]) on the controller; when it starts its
/// remote shell, run the remote command on `host` with
/// [`Host::stream`]. `make` gets the descriptor the relay will hold.
pub fn run_through(
    host: &mut dyn Host,
    make: impl FnOnce(RawFd) -> Command,
) -> Result<ProgramOutput, RelayError> {
    let (ours, theirs) = UnixStream::pair()?;
    let fd = theirs.as_raw_fd();
    let mut command = make(fd);
    let program = command.get_program().to_string_lossy().into_owned();
    // SAFETY: only fcntl on a descriptor we own, between fork and exec.
    unsafe {
        command.pre_exec(move || {
            // Inherited by the program and by the remote shell it starts.
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RelayError::Spawn { program, source })?;
    // Only the program and its relay hold this end now: when both are
    // gone, our reads see the end.
    drop(theirs);
    let out_reader = child.stdout.take().map(read_in_thread);
    let err_reader = child.stderr.take().map(read_in_thread);
    let remote_command = read_header(&mut &ours)?;
    let remote = match &remote_command {
        Some(cmd) => Some(host.stream(cmd, ours)),
        None => {
            drop(ours);
            None
        }
    };
    let status = child.wait()?;
    let stdout = out_reader.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err_reader.and_then(|h| h.join().ok()).unwrap_or_default();
    let remote = match remote {
        Some(Ok(out)) => Some(out),
        // The program failed because its host side did: say why, with
        // what the program said.
        Some(Err(e)) if status.success() => return Err(e.into()),
        Some(Err(e)) => Some(ExecOutput {
            rc: -1,
            stdout: Vec::new(),
            stderr: e.to_string().into_bytes(),
        }),
        None => None,
    };
    use std::os::unix::process::ExitStatusExt;
    Ok(ProgramOutput {
        rc: status
            .code()
            .or_else(|| status.signal().map(|s| -s))
            .unwrap_or(-1),
        stdout,
        stderr,
        remote_command,
        remote,
    })
}

fn read_in_thread(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = pipe.read_to_end(&mut v);
        v
    })
}

/// `LEN\n` then LEN bytes of command line; `None` when the program ended
/// (or never started a remote shell) before sending one. Read without a
/// buffer: what follows is the stream, and belongs to the host's command.
fn read_header(sock: &mut impl Read) -> Result<Option<String>, RelayError> {
    let mut len_line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if sock.read(&mut byte)? == 0 {
            if len_line.is_empty() {
                return Ok(None);
            }
            return Err(RelayError::Header);
        }
        if byte[0] == b'\n' {
            break;
        }
        // A length is a few digits.
        if len_line.len() >= 20 {
            return Err(RelayError::Header);
        }
        len_line.push(byte[0]);
    }
    let len: usize = std::str::from_utf8(&len_line)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&l| l <= MAX_COMMAND)
        .ok_or(RelayError::Header)?;
    let mut cmd = vec![0u8; len];
    sock.read_exact(&mut cmd)?;
    String::from_utf8(cmd)
        .map(Some)
        .map_err(|_| RelayError::Header)
}

/// When `herd` was started as a relay (`herd __herd-relay FD [-l USER]
/// HOST COMMAND...`), be one and return its exit status; otherwise `None`.
pub fn run_if_asked() -> Option<i32> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_none_or(|a| a != SUBCOMMAND) {
        return None;
    }
    let words: Vec<String> = args[1..]
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    Some(match relay(&words) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("herd relay: {e}");
            255
        }
    })
}

/// The remote command line among a remote shell's arguments (after the
/// descriptor): `[-l USER] [-p PORT] HOST WORD...`, the words joined by
/// spaces as ssh joins them.
pub fn remote_command_of(args: &[String]) -> Option<String> {
    let mut rest = args;
    while let Some(first) = rest.first() {
        match first.as_str() {
            "-l" | "-p" => rest = rest.get(2..)?,
            _ => break,
        }
    }
    let words = rest.get(1..)?;
    if words.is_empty() {
        return None;
    }
    Some(words.join(" "))
}

fn relay(words: &[String]) -> Result<(), std::io::Error> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_string());
    let fd: RawFd = words
        .first()
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| bad("expected a descriptor"))?;
    let command = remote_command_of(&words[1..]).ok_or_else(|| bad("expected HOST COMMAND"))?;
    // The descriptor must be an open socket we inherited; check before
    // taking ownership of it.
    // SAFETY: fcntl on any number is harmless; it only reports.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(bad("the descriptor is not open"));
    }
    // SAFETY: the descriptor is open and nothing else in this process
    // uses it.
    let sock = unsafe { UnixStream::from_raw_fd(fd) };
    let mut header = format!("{}\n", command.len()).into_bytes();
    header.extend_from_slice(command.as_bytes());
    (&sock).write_all(&header)?;
    let upstream = sock.try_clone()?;
    // Raw descriptors, not Rust's stdin/stdout: stdout is line-buffered,
    // and rsync's protocol waits for bytes that no newline would flush.
    // SAFETY: 0 and 1 are this process's standard streams, used by
    // nothing else here.
    let (mut stdin, mut stdout) =
        unsafe { (std::fs::File::from_raw_fd(0), std::fs::File::from_raw_fd(1)) };
    std::thread::spawn(move || {
        let mut up = upstream;
        let _ = std::io::copy(&mut stdin, &mut up);
        let _ = up.shutdown(std::net::Shutdown::Write);
    });
    let mut down = sock;
    std::io::copy(&mut down, &mut stdout)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remote_command_follows_the_host() {
        let w = |v: &[&str]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            remote_command_of(&w(&["web1", "rsync", "--server", "-a", "."])).as_deref(),
            Some("rsync --server -a .")
        );
        assert_eq!(
            remote_command_of(&w(&["-l", "deploy", "web1", "rsync", "--server"])).as_deref(),
            Some("rsync --server")
        );
        assert_eq!(remote_command_of(&w(&["web1"])), None);
        assert_eq!(remote_command_of(&w(&["-l"])), None);
    }

    #[test]
    fn the_relay_command_quotes_its_words() {
        let relay = vec!["/opt/my herd/herd".to_string(), SUBCOMMAND.to_string()];
        assert_eq!(
            relay_command(&relay, 7),
            "'/opt/my herd/herd' __herd-relay 7"
        );
    }

    /// The controller's side with a stand-in relay (`sh` writing to the
    /// descriptor) and the local transport: the announced command runs on
    /// the host with what followed the header as its input.
    #[test]
    fn a_program_reaches_the_host_through_the_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("got");
        let remote = format!("cat > {}", crate::quote(&file.display().to_string()));
        let mut host = crate::local::LocalHost::new("local");
        let out = run_through(&mut host, |fd| {
            let mut c = Command::new("/bin/sh");
            c.arg("-c")
                .arg(format!(
                    "printf '%s\\n%s' \"${{#1}}\" \"$1\" >&{fd}; printf hello >&{fd}; exec {fd}>&-; true"
                ))
                .arg("relay")
                .arg(&remote);
            c
        })
        .expect("ran");
        assert_eq!(out.rc, 0);
        assert_eq!(out.remote_command.as_deref(), Some(remote.as_str()));
        assert_eq!(out.remote.expect("remote ran").rc, 0);
        assert_eq!(std::fs::read_to_string(&file).expect("written"), "hello");
    }

    #[test]
    fn a_program_that_never_starts_a_remote_shell() {
        let mut host = crate::local::LocalHost::new("local");
        let out = run_through(&mut host, |_| {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg("echo nope >&2; exit 3");
            c
        })
        .expect("ran");
        assert_eq!(out.rc, 3);
        assert_eq!(out.stderr, b"nope\n");
        assert!(out.remote_command.is_none() && out.remote.is_none());
    }
}
