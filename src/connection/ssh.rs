//! The SSH transport: one persistent libssh2 session per host.
//!
//! Owns connecting (bounded TCP connect, `TCP_NODELAY`, session timeout,
//! handshake; or the same over a stream a [`Dial`] hands out, which is how
//! `jump` routes a session through a bastion), host-key checking (via [`super::known_hosts`]), client
//! authentication, running commands (via [`super::exec`]), SFTP file reads
//! and atomic writes, one reconnect when a session has dropped, and per-host
//! round-trip counters for profiling.
//!
//! Become: the engine's `TaskHost` wraps `run` in `sudo`, but it does not
//! forward `read_file`/`write_file`, so those go through `run` (the trait's
//! default implementations) whenever a task is wrapped. The SFTP path here is
//! used only when the engine calls `SshHost` directly, i.e. without become;
//! an SFTP write lands as the login user, never as the become user.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herdsman_modules::{quote, ExecOutput, FileAttrs, Host, HostError};
use ssh2::{ErrorCode, FileStat, MethodType, OpenFlags, OpenType, RenameFlags, Session, Sftp};

use super::exec::{self, DrainError, Limits};
pub use super::known_hosts::HostKeyChecking;
use super::known_hosts::{self, HostKeyVerdict};
use super::shell;

/// How long stopping a session's commands may take (see [`STOP_SESSION_COMMANDS`]).
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Run on a new channel of a session to stop the commands its other
/// channels run: sshd starts each channel's command as a child of the sshd
/// process serving the connection, so the script finds that process (its
/// own nearest `sshd*` ancestor) and sends every other child of it and
/// all their descendants SIGTERM, then SIGKILL to what is left after a
/// second. Processes of other connections (another `herd` on the same
/// host) are never touched, nor are processes earlier commands left in
/// the background (their parent `sh -c` is gone, so they are no longer
/// below the session's shell, even if they are still in its process
/// group). A login user who may `sudo -n` signals through sudo, so
/// commands run with `become` stop too (with a sudo password they stop
/// only if they die with their parent). The SFTP server is left alone: it
/// runs no command, and the session keeps using it. Written for a plain
/// POSIX sh with /proc; only builtins in the loops.
pub const STOP_SESSION_COMMANDS: &str = r#"p=$$ sshd=
for _ in 1 2 3 4 5 6 7 8; do
  read -r s </proc/$p/stat || exit 1
  s=${s##*) }; set -- $s
  read -r c </proc/$2/comm || exit 1
  case $c in sshd*) sshd=$2; break ;; esac
  p=$2
done
[ -n "$sshd" ] || exit 1
table=
for d in /proc/[0-9]*; do
  read -r s <$d/stat 2>/dev/null || continue
  s=${s##*) }; set -- $s
  table="$table ${d#/proc/}:$2"
done
stop=" "
for e in $table; do
  pid=${e%%:*}
  [ "${e#*:}" = "$sshd" ] && [ "$pid" != "$p" ] || continue
  read -r c </proc/$pid/comm 2>/dev/null
  [ "$c" = sftp-server ] || stop="$stop$pid "
done
[ "$stop" != " " ] || exit 0
more=1
while [ -n "$more" ]; do
  more=
  for e in $table; do
    case $stop in
      *" ${e#*:} "*) case $stop in *" ${e%%:*} "*) ;; *) stop="$stop${e%%:*} "; more=1 ;; esac ;;
    esac
  done
done
K=kill
[ "$(id -u)" = 0 ] || { sudo -n true 2>/dev/null && K="sudo -n kill"; }
$K -s TERM $stop 2>/dev/null
for _ in 1 2 3 4 5 6 7 8 9 10; do
  left=
  for pid in $stop; do
    read -r s </proc/$pid/stat 2>/dev/null || continue
    case ${s##*) } in Z*) ;; *) left="$left $pid" ;; esac
  done
  [ -n "$left" ] || exit 0
  sleep 0.1
done
$K -s KILL $left 2>/dev/null
exit 0
"#;

/// Where to connect and as whom.
#[derive(Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// Inventory name, used in messages and as a second known_hosts name.
    pub name: String,
    /// `ansible_host`, or the inventory name.
    pub address: String,
    pub port: u16,
    pub user: String,
    /// An explicit key (`ansible_ssh_private_key_file`, `--private-key`).
    pub private_key: Option<PathBuf>,
    /// Tried last, and only if the server offers password or
    /// keyboard-interactive authentication. Never printed.
    pub password: Option<String>,
}

/// Written by hand so a password never reaches a log through `{:?}`.
impl std::fmt::Debug for SshTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTarget")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("private_key", &self.private_key)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl SshTarget {
    /// A target on port 22 as the current user, addressed by its name.
    pub fn new(name: &str) -> Self {
        SshTarget {
            name: name.to_string(),
            address: name.to_string(),
            port: 22,
            user: current_user(),
            private_key: None,
            password: None,
        }
    }
}

/// How to connect; the same for every host of a run.
#[derive(Clone)]
pub struct SshOptions {
    /// Bounds the TCP connect per address and every blocking libssh2 call
    /// (handshake, auth, channel open, each SFTP request).
    pub connect_timeout: Duration,
    /// Bounds each command; `None` lets commands run as long as they like.
    pub command_timeout: Option<Duration>,
    /// Bytes a command may print on each stream before it is stopped.
    pub max_output: u64,
    /// Keepalive period during quiet commands; zero disables keepalives.
    pub keepalive_interval: Duration,
    /// Unanswered keepalives in a row after which the peer is taken for
    /// gone (`ServerAliveCountMax`): a silent connection is given up after
    /// `keepalive_interval * keepalive_count_max` (15 s x 3 by default).
    pub keepalive_count_max: u32,
    pub host_key_checking: HostKeyChecking,
    /// Read in order; new keys go to the first.
    pub known_hosts_files: Vec<PathBuf>,
    /// Passphrase for the explicit key and the default key files.
    pub key_passphrase: Option<String>,
    /// Try the identities of `ssh-agent` (`SSH_AUTH_SOCK`).
    pub use_agent: bool,
    /// Keys tried after the agent's, when they exist.
    pub default_key_files: Vec<PathBuf>,
    /// `ProxyJump` as written (`[user@]host[:port]`). `SshHost` does not read
    /// it: `open.rs` turns it into the [`Dial`] the session runs over.
    pub proxy_jump: Option<String>,
    /// Run commands without stdin through one `/bin/sh` kept open on the
    /// session (see `shell`) instead of an exec channel each.
    pub persistent_shell: bool,
}

/// Written by hand so the key passphrase never reaches a log.
impl std::fmt::Debug for SshOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("max_output", &self.max_output)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("keepalive_count_max", &self.keepalive_count_max)
            .field("host_key_checking", &self.host_key_checking)
            .field("known_hosts_files", &self.known_hosts_files)
            .field(
                "key_passphrase",
                &self.key_passphrase.as_ref().map(|_| "<redacted>"),
            )
            .field("use_agent", &self.use_agent)
            .field("default_key_files", &self.default_key_files)
            .field("proxy_jump", &self.proxy_jump)
            .field("persistent_shell", &self.persistent_shell)
            .finish()
    }
}

impl Default for SshOptions {
    fn default() -> Self {
        let ssh_dir = home_dir().map(|h| h.join(".ssh"));
        SshOptions {
            connect_timeout: Duration::from_secs(10),
            command_timeout: None,
            max_output: herdsman_modules::DEFAULT_MAX_OUTPUT,
            keepalive_interval: Duration::from_secs(15),
            keepalive_count_max: 3,
            host_key_checking: HostKeyChecking::AcceptNew,
            known_hosts_files: ssh_dir
                .iter()
                .map(|d| d.join("known_hosts"))
                .chain([PathBuf::from("/etc/ssh/ssh_known_hosts")])
                .collect(),
            key_passphrase: None,
            use_agent: true,
            default_key_files: ssh_dir
                .iter()
                .flat_map(|d| ["id_ed25519", "id_ecdsa", "id_rsa"].map(|k| d.join(k)))
                .collect(),
            proxy_jump: None,
            persistent_shell: true,
        }
    }
}

/// Why a connection could not be made. Every variant leaves the host
/// unusable for this run; [`HostError`] carries them as `Unreachable`.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("{host}: cannot resolve {address}: {source}")]
    Resolve {
        host: String,
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{host}: cannot connect to {address}: {source}")]
    Connect {
        host: String,
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{host}: SSH handshake failed: {source}")]
    Handshake {
        host: String,
        #[source]
        source: ssh2::Error,
    },
    #[error("{host}: the server sent no host key")]
    NoHostKey { host: String },
    #[error(
        "{host}: host key {fingerprint} is not in any known_hosts file and host key checking is strict"
    )]
    HostKeyUnknown { host: String, fingerprint: String },
    #[error(
        "{host}: HOST KEY CHANGED: {}:{line} records {expected_fingerprint}, but the host now \
         offers {actual_fingerprint}. This may be an attack; if the change is expected, remove \
         the old entry (ssh-keygen -R)",
        file.display()
    )]
    HostKeyChanged {
        host: String,
        file: PathBuf,
        line: usize,
        expected_fingerprint: String,
        actual_fingerprint: String,
    },
    #[error(
        "{host}: host key {fingerprint} is marked @revoked in {}:{line}",
        file.display()
    )]
    HostKeyRevoked {
        host: String,
        fingerprint: String,
        file: PathBuf,
        line: usize,
    },
    #[error("{host}: cannot record the host key in {}: {source}", file.display())]
    KnownHostsWrite {
        host: String,
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{host}: authentication as {user} failed; tried: {}; the server accepts: {server_methods}",
        if tried.is_empty() { "nothing".to_string() } else { tried.join(", ") }
    )]
    Auth {
        host: String,
        user: String,
        tried: Vec<String>,
        server_methods: String,
    },
    /// The jump host failed, or could not open a channel to the target.
    /// `reason` is the jump host's own error, which names it.
    #[error("{host}: through jump host {jump}: {reason}")]
    Jump {
        host: String,
        jump: String,
        reason: String,
    },
    #[error("{host}: {context}: {source}")]
    Session {
        host: String,
        context: &'static str,
        #[source]
        source: ssh2::Error,
    },
}

impl From<SshError> for HostError {
    fn from(e: SshError) -> Self {
        HostError::Unreachable(e.to_string())
    }
}

/// Round trips and time spent, per host, for `--profile`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshStats {
    /// Sessions opened, the first one included.
    pub connects: u32,
    /// Of those, reopened after the session dropped or a command could not be
    /// abandoned cleanly.
    pub reconnects: u32,
    pub execs: u64,
    /// Of those, run on the persistent shell rather than their own channel.
    pub shell_execs: u64,
    /// Persistent shells started (one per session, again after a timeout).
    pub shells: u32,
    /// SFTP file reads and writes.
    pub transfers: u64,
    /// Payload bytes: stdin and uploads out, stdout, stderr and downloads in.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub connect_time: Duration,
    pub exec_time: Duration,
    pub transfer_time: Duration,
}

/// Another way to reach a target than a direct TCP connection: a stream
/// whose other end carries the target's SSH bytes (a jump host's
/// direct-tcpip channel). Asked again on every reconnect.
pub trait Dial: Send + Sync {
    fn dial(&self, target: &SshTarget, timeout: Duration) -> Result<UnixStream, SshError>;
}

/// The byte stream under a session: TCP to the host, or a local socket
/// pumped through a jump host.
enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Sock {
    fn try_clone(&self) -> std::io::Result<Sock> {
        Ok(match self {
            Sock::Tcp(s) => Sock::Tcp(s.try_clone()?),
            Sock::Unix(s) => Sock::Unix(s.try_clone()?),
        })
    }

    fn shutdown(&self) -> std::io::Result<()> {
        match self {
            Sock::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
            Sock::Unix(s) => s.shutdown(std::net::Shutdown::Both),
        }
    }
}

impl AsRawFd for Sock {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Sock::Tcp(s) => s.as_raw_fd(),
            Sock::Unix(s) => s.as_raw_fd(),
        }
    }
}

/// One open session. The socket clone is what `poll` waits on.
struct Conn {
    session: Session,
    sock: Sock,
    sftp: Option<Sftp>,
    /// The persistent `/bin/sh` (see `shell`), started on first use.
    shell: Option<ssh2::Channel>,
    /// Channels of timed-out commands. sshd closes a session channel only
    /// when its command exits, and libssh2 blocks freeing a channel until
    /// then; so they wait here and are freed once the server has closed them.
    abandoned: Vec<ssh2::Channel>,
}

impl Conn {
    /// Drop a session that may be broken. With the socket shut down,
    /// libssh2 frees its channels at once instead of waiting on a dead peer.
    fn discard(self) {
        let _ = self.sock.shutdown();
    }

    fn channel_session(&self, timeout: Duration) -> Result<ssh2::Channel, ssh2::Error> {
        let deadline = exec::after(Instant::now(), timeout);
        exec::complete(&self.session, self.sock.as_raw_fd(), deadline, || {
            self.session.channel_session()
        })
    }

    /// Free the abandoned channels the server has closed meanwhile.
    fn reap(&mut self) {
        if self.abandoned.is_empty() {
            return;
        }
        self.session.set_blocking(false);
        self.abandoned.retain_mut(|ch| !exec::try_reap(ch));
        self.session.set_blocking(true);
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Teardown is bounded: a short timeout for the goodbyes, and no
        // waiting at all on channels whose commands still run.
        self.session.set_timeout(1000);
        if !self.abandoned.is_empty() {
            let _ = self.sock.shutdown();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SftpSupport {
    Unknown,
    Yes,
    No,
}

/// A host reached over SSH: implements [`Host`] on one persistent session.
pub struct SshHost {
    target: SshTarget,
    options: SshOptions,
    conn: Option<Conn>,
    sftp_support: SftpSupport,
    stats: SshStats,
    last_verdict: HostKeyVerdict,
    /// `None`: TCP straight to the target.
    via: Option<Arc<dyn Dial>>,
}

impl std::fmt::Debug for SshHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshHost")
            .field("name", &self.target.name)
            .field("address", &self.target.address)
            .field("port", &self.target.port)
            .field("user", &self.target.user)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl SshHost {
    /// Open, verify and authenticate a session.
    pub fn connect(target: &SshTarget, options: &SshOptions) -> Result<SshHost, SshError> {
        SshHost::connect_via(target, options, None)
    }

    /// Like [`SshHost::connect`], over the streams `via` hands out (now and
    /// on every reconnect) instead of TCP.
    pub fn connect_via(
        target: &SshTarget,
        options: &SshOptions,
        via: Option<Arc<dyn Dial>>,
    ) -> Result<SshHost, SshError> {
        let mut stats = SshStats::default();
        let (conn, verdict) = open(target, options, via.as_deref(), &mut stats)?;
        Ok(SshHost {
            target: target.clone(),
            options: options.clone(),
            conn: Some(conn),
            sftp_support: SftpSupport::Unknown,
            stats,
            last_verdict: verdict,
            via,
        })
    }

    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    pub fn stats(&self) -> SshStats {
        self.stats.clone()
    }

    /// How the host key was accepted on the latest connect.
    pub fn host_key_verdict(&self) -> &HostKeyVerdict {
        &self.last_verdict
    }

    /// Whether the server runs an SFTP subsystem (opened on first use).
    pub fn supports_sftp(&mut self) -> bool {
        self.sftp().is_some()
    }

    fn reconnect(&mut self) -> Result<(), SshError> {
        if let Some(old) = self.conn.take() {
            old.discard();
        }
        let (conn, verdict) = open(
            &self.target,
            &self.options,
            self.via.as_deref(),
            &mut self.stats,
        )?;
        self.stats.reconnects += 1;
        self.conn = Some(conn);
        self.last_verdict = verdict;
        Ok(())
    }

    fn drop_conn(&mut self) {
        if let Some(old) = self.conn.take() {
            old.discard();
        }
    }

    fn unreachable(&self, what: &str, detail: impl std::fmt::Display) -> HostError {
        HostError::Unreachable(format!("{}: {what}: {detail}", self.target.name))
    }

    /// The session's SFTP channel, opened once. `None` when the server has
    /// no SFTP subsystem; that answer is remembered.
    fn sftp(&mut self) -> Option<&Sftp> {
        if self.sftp_support == SftpSupport::No {
            return None;
        }
        let conn = self.conn.as_mut()?;
        if conn.sftp.is_none() {
            match conn.session.sftp() {
                Ok(s) => conn.sftp = Some(s),
                Err(_) => {
                    self.sftp_support = SftpSupport::No;
                    return None;
                }
            }
        }
        self.sftp_support = SftpSupport::Yes;
        conn.sftp.as_ref()
    }

    /// The SFTP session after making sure the connection is up (reconnecting
    /// once if it had been dropped).
    fn sftp_ready(&mut self) -> Result<Option<&Sftp>, HostError> {
        if self.conn.is_none() {
            self.reconnect()?;
        }
        Ok(self.sftp())
    }

    fn sftp_write(
        &mut self,
        path: &str,
        content: &[u8],
        attrs: &FileAttrs,
    ) -> Result<SftpWrite, HostError> {
        let Some(sftp) = self.sftp_ready()? else {
            return Ok(SftpWrite::Unavailable);
        };
        let dest = Path::new(path);
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = dir.join(temp_name());
        let existing = match sftp.stat(dest) {
            Ok(st) => Some(st),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(sftp_error("write file", &e)),
        };
        // Keep the mode of a file being replaced unless one is given, as cp
        // and the exec fallback do; a symbolic mode needs chmod.
        let numeric_mode = match &attrs.mode {
            None => Some(
                existing
                    .as_ref()
                    .and_then(|s| s.perm)
                    .map_or(0o644, |p| p & 0o7777),
            ),
            Some(m) => parse_octal_mode(m),
        };
        let upload = (|| -> Result<(), ssh2::Error> {
            let mut file = sftp.open_mode(
                &tmp,
                OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUSIVE | OpenFlags::TRUNCATE,
                0o600,
                OpenType::File,
            )?;
            file.write_all(content).map_err(io_to_ssh)?;
            if let Some(mode) = numeric_mode {
                file.setstat(FileStat {
                    size: None,
                    uid: None,
                    gid: None,
                    perm: Some(mode),
                    atime: None,
                    mtime: None,
                })?;
            }
            file.close()
        })();
        if let Err(e) = upload {
            let cleaned = sftp.unlink(&tmp).is_ok();
            // The server refused the data (disk full, quota) but still
            // answers: SFTP v3 says only "failure", so the write is made
            // again through a command, which fails with the host's own
            // words ("No space left on device") and cleans up after itself.
            if cleaned && e.code() == ErrorCode::Session(libssh2_sys::LIBSSH2_ERROR_SOCKET_SEND) {
                return Ok(SftpWrite::Unavailable);
            }
            return Err(sftp_error("write file", &e));
        }
        // OpenSSH speaks SFTP v3, whose rename refuses to replace a file; so
        // replacing, chown and symbolic modes go through one shell command
        // that also renames, instead of paying for a rename that will fail.
        let needs_shell = attrs.owner.is_some()
            || attrs.group.is_some()
            || numeric_mode.is_none()
            || existing.is_some();
        if !needs_shell
            && sftp
                .rename(
                    &tmp,
                    dest,
                    Some(RenameFlags::OVERWRITE | RenameFlags::ATOMIC | RenameFlags::NATIVE),
                )
                .is_ok()
        {
            return Ok(SftpWrite::Done);
        }
        let tmp_str = tmp.to_string_lossy().into_owned();
        let t = quote(&tmp_str);
        // Chained with && rather than `set -e`, which the shell ignores in
        // the left-hand side of `||`.
        let mut steps = Vec::new();
        // A replaced file keeps its owner and group unless others are
        // given, as the exec-based write does (quietly, when not root).
        if existing.is_some() {
            steps.push(format!(
                "{{ chown --reference={} {t} 2>/dev/null || true; }}",
                quote(path)
            ));
        }
        let chowns = attrs.owner.is_some() || attrs.group.is_some();
        match (&attrs.owner, &attrs.group) {
            (Some(o), Some(g)) => steps.push(format!("chown -- {}:{} {t}", quote(o), quote(g))),
            (Some(o), None) => steps.push(format!("chown -- {} {t}", quote(o))),
            (None, Some(g)) => steps.push(format!("chgrp -- {} {t}", quote(g))),
            (None, None) => {}
        }
        // Mode last: chown clears setuid/setgid bits, so a numeric mode set
        // at upload time is set again after it.
        if let Some(mode) = &attrs.mode {
            if numeric_mode.is_none() || chowns || existing.is_some() {
                steps.push(format!("chmod -- {} {t}", quote(mode)));
            }
        }
        steps.push(format!("mv -f {t} {}", quote(path)));
        let wrapped = format!(
            "{} || {{ rc=$?; rm -f {t}; exit $rc; }}",
            steps.join(" && ")
        );
        let out = match self.run(&wrapped, None) {
            Ok(out) => out,
            Err(e) => {
                // Not renamed (stopped, or the command never ran): the temp
                // file must not stay behind.
                if let Some(sftp) = self.sftp() {
                    let _ = sftp.unlink(&tmp);
                }
                return Err(e);
            }
        };
        if out.success() {
            Ok(SftpWrite::Done)
        } else {
            Err(HostError::Command {
                action: "write file",
                rc: out.rc,
                stderr: out.stderr_str(),
            })
        }
    }

    fn sftp_read(&mut self, path: &str) -> Result<SftpRead, HostError> {
        let Some(sftp) = self.sftp_ready()? else {
            return Ok(SftpRead::Unavailable);
        };
        let mut file = match sftp.open(Path::new(path)) {
            Ok(f) => f,
            Err(e) if is_not_found(&e) => return Ok(SftpRead::Missing),
            Err(e) => return Err(sftp_error("read file", &e)),
        };
        let mut content = Vec::new();
        let limit = self.options.max_output;
        (&mut file)
            .take(limit.saturating_add(1))
            .read_to_end(&mut content)
            .map_err(|e| HostError::Command {
                action: "read file",
                rc: 1,
                stderr: e.to_string(),
            })?;
        // A file read is the host's output too (`/dev/zero`, a huge log).
        if content.len() as u64 > limit {
            return Err(HostError::OutputLimit {
                stream: "file read",
                limit,
            });
        }
        Ok(SftpRead::Content(content))
    }

    fn note_transfer(&mut self, started: Instant, sent: u64, received: u64) {
        self.stats.transfers += 1;
        self.stats.transfer_time += started.elapsed();
        self.stats.bytes_sent += sent;
        self.stats.bytes_received += received;
    }

    /// Open an exec channel, reconnecting once if the session is gone.
    /// Nothing of the command has been sent when this fails, so a retry
    /// cannot run it twice.
    fn open_channel(&mut self) -> Result<ssh2::Channel, HostError> {
        if let Some(conn) = &mut self.conn {
            conn.reap();
            match conn.channel_session(self.options.connect_timeout) {
                Ok(ch) => return Ok(ch),
                Err(first) => {
                    let first = first.to_string();
                    self.reconnect().map_err(|e| {
                        self.unreachable("session lost", format!("{first}; reconnect failed: {e}"))
                    })?;
                }
            }
        } else {
            self.reconnect()?;
        }
        let Some(conn) = &self.conn else {
            return Err(self.unreachable("session lost", "not connected"));
        };
        let opened = conn.channel_session(self.options.connect_timeout);
        opened.map_err(|e| {
            self.drop_conn();
            self.unreachable("cannot open a channel", e)
        })
    }

    /// A command on its own exec channel: commands with stdin, and all of
    /// them when the persistent shell is off.
    fn run_exec(&mut self, script: &str, stdin: &[u8]) -> Result<ExecOutput, HostError> {
        let command = format!("/bin/sh -c {}", quote(script));
        self.exec_channel(&command, |session, fd, channel, limits| {
            exec::drain(session, fd, channel, stdin, limits)
        })
    }

    /// [`Host::stream`]: `command` on its own exec channel, pumped to and
    /// from `peer`. The command timeout bounds silence, not the transfer.
    fn stream_exec(&mut self, command: &str, peer: &UnixStream) -> Result<ExecOutput, HostError> {
        self.exec_channel(command, |session, fd, channel, limits| {
            exec::pump(session, fd, channel, peer, limits)
        })
    }

    /// `command` on a new exec channel, its bytes moved by `transfer`
    /// (drained with stdin, or pumped to a peer), counted in the stats.
    fn exec_channel(
        &mut self,
        command: &str,
        transfer: impl FnOnce(
            &Session,
            RawFd,
            &mut ssh2::Channel,
            &Limits,
        ) -> Result<exec::Finished, exec::DrainError>,
    ) -> Result<ExecOutput, HostError> {
        let started = Instant::now();
        let mut channel = self.open_channel()?;
        let Some(conn) = &self.conn else {
            return Err(self.unreachable("session lost", "not connected"));
        };
        let fd = conn.sock.as_raw_fd();
        let deadline = exec::after(Instant::now(), self.options.connect_timeout);
        if let Err(e) = exec::complete(&conn.session, fd, deadline, || channel.exec(command)) {
            // The request may have reached the host: do not run it again.
            // Socket first: freeing an unclosed channel on a live socket
            // would wait for the server's close.
            self.drop_conn();
            drop(channel);
            return Err(self.unreachable("exec failed", e));
        }
        let limits = self.command_limits();
        let result = transfer(&conn.session, fd, &mut channel, &limits);
        self.stats.execs += 1;
        match result {
            Ok(done) => {
                self.stats.exec_time += started.elapsed();
                self.stats.bytes_sent += done.bytes_sent;
                self.stats.bytes_received += done.bytes_received;
                Ok(done.output)
            }
            Err(e) => Err(self.command_failed(channel, e, started)),
        }
    }

    /// The limits of a task's command: the command timeout, keepalives, the
    /// output cap, and cancellable by an interrupt.
    fn command_limits(&self) -> Limits {
        Limits {
            timeout: self.options.command_timeout,
            keepalive: self.options.keepalive_interval,
            keepalive_count: self.options.keepalive_count_max,
            close_wait: self.options.connect_timeout,
            max_output: self.options.max_output,
            cancellable: true,
        }
    }

    /// A command's channel (its own exec channel or the persistent shell)
    /// failed while the command ran.
    ///
    /// Timeout: the channel is closed. A command that dies when its channel
    /// closes is gone at once; one that does not keeps running on the host
    /// (a shell busy with it exits after it, at the EOF on its stdin), and
    /// its channel waits to be freed while the session carries on. The next
    /// command on the shell starts a new one.
    ///
    /// I/O error: the session is dead; the host is unreachable.
    fn command_failed(
        &mut self,
        mut channel: ssh2::Channel,
        error: DrainError,
        started: Instant,
    ) -> HostError {
        match error {
            DrainError::Timeout | DrainError::OutputLimit { .. } => {
                // Closing the channel closes the command's output pipes on
                // the host: one still printing dies of SIGPIPE at once.
                if let Some(conn) = self.conn.as_mut() {
                    let fd = conn.sock.as_raw_fd();
                    let closed =
                        exec::abandon(&conn.session, fd, &mut channel, Duration::from_millis(300));
                    if !closed {
                        conn.abandoned.push(channel);
                    }
                }
                self.stats.exec_time += started.elapsed();
                if let DrainError::OutputLimit { stream } = error {
                    return HostError::OutputLimit {
                        stream,
                        limit: self.options.max_output,
                    };
                }
                let seconds = self.options.command_timeout.map_or(0, |t| t.as_secs());
                HostError::Timeout { seconds }
            }
            DrainError::Io(e) => {
                self.drop_conn();
                drop(channel);
                self.stats.exec_time += started.elapsed();
                self.unreachable("connection lost during a command", e)
            }
            DrainError::Cancelled(cancel) => {
                // Closing the channel alone would leave the command running
                // (sshd does not signal a command without a terminal).
                self.stop_remote();
                if let Some(conn) = self.conn.as_mut() {
                    let fd = conn.sock.as_raw_fd();
                    let closed =
                        exec::abandon(&conn.session, fd, &mut channel, Duration::from_millis(500));
                    if !closed {
                        conn.abandoned.push(channel);
                    }
                }
                self.stats.exec_time += started.elapsed();
                cancel.into_error()
            }
        }
    }

    /// Stop every command this session runs on the host (see
    /// [`STOP_SESSION_COMMANDS`]), on a channel of its own, bounded by a
    /// few seconds. If that cannot be done the session is dropped: a
    /// session that cannot open a channel carries nothing more anyway.
    fn stop_remote(&mut self) {
        let Some(conn) = &self.conn else {
            return;
        };
        let fd = conn.sock.as_raw_fd();
        let within = self.options.connect_timeout.min(STOP_WAIT);
        let stopped = (|| {
            let mut channel = conn.channel_session(within).ok()?;
            let deadline = Instant::now() + within;
            exec::complete(&conn.session, fd, deadline, || {
                channel.exec(STOP_SESSION_COMMANDS)
            })
            .ok()?;
            let limits = Limits {
                timeout: Some(within),
                keepalive: Duration::ZERO,
                keepalive_count: 0,
                close_wait: within,
                max_output: self.options.max_output,
                cancellable: false,
            };
            let done = exec::drain(&conn.session, fd, &mut channel, &[], &limits).ok()?;
            (done.output.rc == 0).then_some(())
        })();
        if stopped.is_none() {
            tracing::warn!(host = %self.target.name, "could not stop the commands in flight");
            self.drop_conn();
        }
    }

    /// The persistent shell, started if there is none (reconnecting once
    /// if the session is gone). A shell that ended since the last command
    /// (its streams are at EOF) is replaced first, so a command is never
    /// written to a dead shell; output that arrived after the last
    /// command's end (a background process of it still writing) is
    /// dropped here rather than counted to the next command.
    fn shell_channel(&mut self) -> Result<ssh2::Channel, HostError> {
        if let Some(conn) = &mut self.conn {
            if let Some(mut shell) = conn.shell.take() {
                if exec::idle_shell_alive(&conn.session, &mut shell) {
                    return Ok(shell);
                }
                conn.abandoned.push(shell);
            }
        }
        let mut channel = self.open_channel()?;
        let Some(conn) = &self.conn else {
            return Err(self.unreachable("session lost", "not connected"));
        };
        let deadline = exec::after(Instant::now(), self.options.connect_timeout);
        let fd = conn.sock.as_raw_fd();
        if let Err(e) = exec::complete(&conn.session, fd, deadline, || {
            channel.exec(shell::SHELL_COMMAND)
        }) {
            self.drop_conn();
            drop(channel);
            return Err(self.unreachable("cannot start a shell", e));
        }
        self.stats.shells += 1;
        Ok(channel)
    }

    /// A command framed on the persistent shell (see `shell`): no channel
    /// and no login shell per command.
    fn run_in_shell(&mut self, script: &str) -> Result<ExecOutput, HostError> {
        let started = Instant::now();
        let mut channel = self.shell_channel()?;
        let Some(conn) = &self.conn else {
            return Err(self.unreachable("session lost", "not connected"));
        };
        let fd = conn.sock.as_raw_fd();
        let frame = shell::frame(script);
        let mut reader = shell::FrameReader::new(&frame.marker);
        let limits = self.command_limits();
        let result = exec::drain_frame(
            &conn.session,
            fd,
            &mut channel,
            &frame.input,
            &mut reader,
            &limits,
        );
        self.stats.execs += 1;
        self.stats.shell_execs += 1;
        self.stats.bytes_sent += frame.input.len() as u64;
        self.stats.bytes_received += reader.bytes();
        match result {
            Ok(true) => {
                if let Some(conn) = self.conn.as_mut() {
                    conn.shell = Some(channel);
                }
                self.stats.exec_time += started.elapsed();
                let out = reader.finish().0;
                // Exact now that the trailers are cut off; the command is
                // over and the shell is fine.
                match exec::over_limit(out.stdout.len(), out.stderr.len(), self.options.max_output)
                {
                    Some(stream) => Err(HostError::OutputLimit {
                        stream,
                        limit: self.options.max_output,
                    }),
                    None => Ok(out),
                }
            }
            Ok(false) => {
                // The shell itself ended (killed, or the host is going
                // down) before the command's end: as with an exec channel
                // that closed, what came is the output and the shell's end
                // is the status. The next command starts a new shell.
                let rc = exec::close_and_exit_code(
                    &conn.session,
                    fd,
                    &mut channel,
                    Duration::from_millis(300),
                );
                if rc == -1 {
                    if let Some(conn) = self.conn.as_mut() {
                        conn.abandoned.push(channel);
                    }
                }
                self.stats.exec_time += started.elapsed();
                let (mut out, _) = reader.finish();
                out.rc = rc;
                Ok(out)
            }
            Err(e) => Err(self.command_failed(channel, e, started)),
        }
    }
}

enum SftpWrite {
    Done,
    Unavailable,
}

enum SftpRead {
    Content(Vec<u8>),
    Missing,
    Unavailable,
}

impl Host for SshHost {
    fn name(&self) -> &str {
        &self.target.name
    }

    fn run(&mut self, script: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, HostError> {
        if let Some(cancel) = herdsman_modules::cancel::check() {
            return Err(cancel.into_error());
        }
        match stdin {
            Some(data) if !data.is_empty() => self.run_exec(script, data),
            _ if self.options.persistent_shell => self.run_in_shell(script),
            _ => self.run_exec(script, &[]),
        }
    }

    fn read_file(&mut self, path: &str) -> Result<Option<Vec<u8>>, HostError> {
        let started = Instant::now();
        match self.sftp_read(path)? {
            SftpRead::Content(c) => {
                self.note_transfer(started, 0, c.len() as u64);
                Ok(Some(c))
            }
            SftpRead::Missing => {
                self.note_transfer(started, 0, 0);
                Ok(None)
            }
            SftpRead::Unavailable => ExecOnly(self).read_file(path),
        }
    }

    fn write_file(
        &mut self,
        path: &str,
        content: &[u8],
        attrs: &FileAttrs,
    ) -> Result<(), HostError> {
        let started = Instant::now();
        match self.sftp_write(path, content, attrs)? {
            SftpWrite::Done => {
                self.note_transfer(started, content.len() as u64, 0);
                Ok(())
            }
            SftpWrite::Unavailable => ExecOnly(self).write_file(path, content, attrs),
        }
    }

    fn stream(&mut self, command: &str, peer: UnixStream) -> Result<ExecOutput, HostError> {
        if let Some(cancel) = herdsman_modules::cancel::check() {
            return Err(cancel.into_error());
        }
        self.stream_exec(command, &peer)
    }
}

/// `SshHost` seen only through `run`, to reach the trait's exec-based
/// `read_file`/`write_file` when SFTP is unavailable.
struct ExecOnly<'a>(&'a mut SshHost);

impl Host for ExecOnly<'_> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn run(&mut self, script: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, HostError> {
        self.0.run(script, stdin)
    }
}

/// A session to `target`, connected, verified and authenticated, and a
/// clone of its TCP socket to poll; for a jump host's pump, which drives
/// the session itself.
pub fn open_session(
    target: &SshTarget,
    options: &SshOptions,
) -> Result<(Session, TcpStream), SshError> {
    let (session, sock, _) = open_raw(target, options, None, &mut SshStats::default())?;
    match sock {
        Sock::Tcp(s) => Ok((session, s)),
        Sock::Unix(_) => Err(SshError::Session {
            host: target.name.clone(),
            context: "opening a jump host session",
            source: ssh2::Error::new(
                ErrorCode::Session(libssh2_sys::LIBSSH2_ERROR_BAD_USE),
                "not a TCP connection",
            ),
        }),
    }
}

/// Connect (directly, or over `via`), check the host key, authenticate.
fn open(
    target: &SshTarget,
    options: &SshOptions,
    via: Option<&dyn Dial>,
    stats: &mut SshStats,
) -> Result<(Conn, HostKeyVerdict), SshError> {
    let (session, sock, verdict) = open_raw(target, options, via, stats)?;
    Ok((
        Conn {
            session,
            sock,
            sftp: None,
            shell: None,
            abandoned: Vec::new(),
        },
        verdict,
    ))
}

/// The session, a clone of its socket to poll, and the host-key verdict.
fn open_raw(
    target: &SshTarget,
    options: &SshOptions,
    via: Option<&dyn Dial>,
    stats: &mut SshStats,
) -> Result<(Session, Sock, HostKeyVerdict), SshError> {
    let started = Instant::now();
    let host = target.name.as_str();
    let sock = match via {
        Some(d) => Sock::Unix(d.dial(target, options.connect_timeout)?),
        None => Sock::Tcp(connect_tcp(target, options.connect_timeout)?),
    };
    let session_err = |context: &'static str| {
        move |source: ssh2::Error| SshError::Session {
            host: host.to_string(),
            context,
            source,
        }
    };
    // Without TCP_NODELAY every exec waits on Nagle and delayed ACKs: ~44 ms
    // instead of ~2 ms. (A jump host's pump sets it on its own socket.)
    if let Sock::Tcp(tcp) = &sock {
        tcp.set_nodelay(true).map_err(|source| SshError::Connect {
            host: host.to_string(),
            address: target.address.clone(),
            source,
        })?;
    }
    let poll_sock = sock.try_clone().map_err(|source| SshError::Connect {
        host: host.to_string(),
        address: target.address.clone(),
        source,
    })?;
    let mut session = Session::new().map_err(session_err("creating a session"))?;
    session.set_timeout(duration_ms(options.connect_timeout));
    let names = known_host_names(target);
    if options.host_key_checking != HostKeyChecking::Off {
        let recorded =
            known_hosts::recorded_key_types(&options.known_hosts_files, &names, target.port);
        let supported = session
            .supported_algs(MethodType::HostKey)
            .unwrap_or_default();
        if let Some(pref) = known_hosts::host_key_preference(&recorded, &supported) {
            session
                .method_pref(MethodType::HostKey, &pref)
                .map_err(session_err("setting host key preferences"))?;
        }
    }
    session.set_tcp_stream(sock);
    session.handshake().map_err(|source| SshError::Handshake {
        host: host.to_string(),
        source,
    })?;
    let verdict = known_hosts::verify(
        &session,
        host,
        &names,
        target.port,
        options.host_key_checking,
        &options.known_hosts_files,
    )?;
    authenticate(&session, target, options)?;
    if !options.keepalive_interval.is_zero() {
        // want_reply, so a live server answers and a dead one is noticed.
        let secs = options
            .keepalive_interval
            .as_secs()
            .clamp(1, u32::MAX as u64) as u32;
        session.set_keepalive(true, secs);
    }
    stats.connects += 1;
    stats.connect_time += started.elapsed();
    Ok((session, poll_sock, verdict))
}

/// The address connected to first (that is what a new key is recorded
/// under, as ssh does), then the inventory name if it differs.
fn known_host_names(target: &SshTarget) -> Vec<&str> {
    let mut names = vec![target.address.as_str()];
    if target.name != target.address && !target.name.is_empty() {
        names.push(target.name.as_str());
    }
    names
}

fn connect_tcp(target: &SshTarget, timeout: Duration) -> Result<TcpStream, SshError> {
    let addrs: Vec<SocketAddr> = (target.address.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|source| SshError::Resolve {
            host: target.name.clone(),
            address: target.address.clone(),
            source,
        })?
        .collect();
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses");
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(SshError::Connect {
        host: target.name.clone(),
        address: format!("{}:{}", target.address, target.port),
        source: last,
    })
}

/// Explicit key, agent identities, default key files, then password.
fn authenticate(
    session: &Session,
    target: &SshTarget,
    options: &SshOptions,
) -> Result<(), SshError> {
    let user = target.user.as_str();
    let host = target.name.as_str();
    // Asking for the methods also tries "none", which some servers accept.
    let methods = match session.auth_methods(user) {
        Ok(m) => m.to_string(),
        Err(_) if session.authenticated() => return Ok(()),
        Err(source) => {
            return Err(SshError::Session {
                host: host.to_string(),
                context: "asking for authentication methods",
                source,
            })
        }
    };
    let offers = |m: &str| methods.split(',').any(|x| x == m);
    let mut tried = Vec::new();
    let failed = |e: &ssh2::Error| match e.code() {
        ErrorCode::Session(libssh2_sys::LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED)
        | ErrorCode::Session(libssh2_sys::LIBSSH2_ERROR_AUTHENTICATION_FAILED) => {
            "rejected".to_string()
        }
        ErrorCode::Session(libssh2_sys::LIBSSH2_ERROR_FILE) => {
            "unreadable, or wrong passphrase".to_string()
        }
        _ => e.message().to_string(),
    };

    if offers("publickey") {
        if let Some(key) = &target.private_key {
            match session.userauth_pubkey_file(user, None, key, options.key_passphrase.as_deref()) {
                Ok(()) if session.authenticated() => return Ok(()),
                Ok(()) => tried.push(format!("key {} (partial)", key.display())),
                Err(e) => tried.push(format!("key {} ({})", key.display(), failed(&e))),
            }
        }
        if options.use_agent {
            match agent_auth(session, user) {
                AgentAuth::Accepted => return Ok(()),
                AgentAuth::Tried(note) => tried.push(note),
            }
        }
        for key in &options.default_key_files {
            if Some(key) == target.private_key.as_ref() || !key.exists() {
                continue;
            }
            match session.userauth_pubkey_file(user, None, key, options.key_passphrase.as_deref()) {
                Ok(()) if session.authenticated() => return Ok(()),
                Ok(()) => tried.push(format!("key {} (partial)", key.display())),
                Err(e) => tried.push(format!("key {} ({})", key.display(), failed(&e))),
            }
        }
    } else if target.private_key.is_some() {
        tried.push("public keys (not offered by the server)".to_string());
    }

    if let Some(password) = &target.password {
        if offers("password") {
            match session.userauth_password(user, password) {
                Ok(()) if session.authenticated() => return Ok(()),
                _ => tried.push("password (rejected)".to_string()),
            }
        } else if offers("keyboard-interactive") {
            let mut prompt = PasswordPrompt(password);
            match session.userauth_keyboard_interactive(user, &mut prompt) {
                Ok(()) if session.authenticated() => return Ok(()),
                _ => tried.push("keyboard-interactive password (rejected)".to_string()),
            }
        } else {
            tried.push("password (not offered by the server)".to_string());
        }
    }
    Err(SshError::Auth {
        host: host.to_string(),
        user: user.to_string(),
        tried,
        server_methods: methods,
    })
}

enum AgentAuth {
    Accepted,
    Tried(String),
}

/// Every agent identity in turn: `userauth_agent` would stop at the first.
fn agent_auth(session: &Session, user: &str) -> AgentAuth {
    if std::env::var_os("SSH_AUTH_SOCK").is_none() {
        return AgentAuth::Tried("ssh-agent (SSH_AUTH_SOCK not set)".to_string());
    }
    let Ok(mut agent) = session.agent() else {
        return AgentAuth::Tried("ssh-agent (unavailable)".to_string());
    };
    if agent.connect().is_err() || agent.list_identities().is_err() {
        return AgentAuth::Tried("ssh-agent (cannot connect)".to_string());
    }
    let identities = agent.identities().unwrap_or_default();
    let mut rejected = Vec::new();
    for id in &identities {
        if agent.userauth(user, id).is_ok() && session.authenticated() {
            let _ = agent.disconnect();
            return AgentAuth::Accepted;
        }
        rejected.push(if id.comment().is_empty() {
            "unnamed key".to_string()
        } else {
            id.comment().to_string()
        });
    }
    let _ = agent.disconnect();
    if rejected.is_empty() {
        AgentAuth::Tried("ssh-agent (no identities)".to_string())
    } else {
        AgentAuth::Tried(format!("ssh-agent keys {} (rejected)", rejected.join(", ")))
    }
}

/// Answers every keyboard-interactive prompt with the password, as
/// `sshpass` would; servers with PAM ask for the password this way.
struct PasswordPrompt<'a>(&'a str);

impl ssh2::KeyboardInteractivePrompt for PasswordPrompt<'_> {
    fn prompt<'b>(
        &mut self,
        _username: &str,
        _instructions: &str,
        prompts: &[ssh2::Prompt<'b>],
    ) -> Vec<String> {
        prompts.iter().map(|_| self.0.to_string()).collect()
    }
}

fn duration_ms(d: Duration) -> u32 {
    d.as_millis().clamp(1, u32::MAX as u128) as u32
}

fn is_not_found(e: &ssh2::Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::SFTP(libssh2_sys::LIBSSH2_FX_NO_SUCH_FILE)
            | ErrorCode::SFTP(libssh2_sys::LIBSSH2_FX_NO_SUCH_PATH)
    )
}

fn sftp_error(action: &'static str, e: &ssh2::Error) -> HostError {
    match e.code() {
        // A transport failure, not a file problem: the host is gone.
        ErrorCode::Session(code) if code != libssh2_sys::LIBSSH2_ERROR_SFTP_PROTOCOL => {
            HostError::Unreachable(format!("{action}: {e}"))
        }
        _ => HostError::Command {
            action,
            rc: 1,
            stderr: e.message().to_string(),
        },
    }
}

fn io_to_ssh(e: std::io::Error) -> ssh2::Error {
    ssh2::Error::new(
        ErrorCode::Session(libssh2_sys::LIBSSH2_ERROR_SOCKET_SEND),
        if e.kind() == std::io::ErrorKind::TimedOut {
            "timed out writing the file"
        } else {
            "failed writing the file"
        },
    )
}

/// `0644`, `644`, `0o644` → the bits; anything else (symbolic) → `None`.
fn parse_octal_mode(mode: &str) -> Option<u32> {
    let digits = mode.strip_prefix("0o").unwrap_or(mode);
    if digits.is_empty() || digits.len() > 5 {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o7777)
}

/// A name no other writer will pick: the process, a counter and the clock.
fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(".herd.{}.{n}.{nanos:x}.tmp", std::process::id())
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// The login name of the user running herd (`$USER`, then `$LOGNAME`).
pub fn current_user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "root".to_string())
}

extern "C" {
    fn libssh2_version(required: libc::c_int) -> *const libc::c_char;
}

/// The version of the libssh2 linked in (the bundled one, 1.11).
pub fn libssh2_version_string() -> String {
    // SAFETY: with 0 libssh2_version returns a pointer to its static,
    // NUL-terminated version string (or NULL, handled).
    unsafe {
        let p = libssh2_version(0);
        if p.is_null() {
            return String::new();
        }
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

#[cfg(test)]
pub(crate) mod test_sshd {
    //! A throwaway `sshd` on 127.0.0.1 for the transport's tests: its own
    //! host key, an authorized client key, and a config in a temp dir.

    use std::net::{TcpListener, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    const SSHD: &str = "/usr/sbin/sshd";

    pub(crate) struct Sshd {
        child: Option<Child>,
        pub dir: tempfile::TempDir,
        pub port: u16,
        pub client_key: PathBuf,
        pub host_key: PathBuf,
        generation: u32,
    }

    /// `true` when sshd is not installed and the developer asked to skip
    /// (`HERD_SKIP_SSHD_TESTS=1`); otherwise a missing sshd fails loudly so a
    /// CI without openssh-server cannot pass by testing nothing.
    pub(crate) fn skip() -> bool {
        if Path::new(SSHD).exists() {
            return false;
        }
        if std::env::var_os("HERD_SKIP_SSHD_TESTS").is_some() {
            eprintln!("skipped: {SSHD} is not installed");
            return true;
        }
        panic!("{SSHD} is not installed (apt-get install openssh-server), or set HERD_SKIP_SSHD_TESTS=1");
    }

    fn keygen(path: &Path, kind: &str) {
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", "", "-C", "herd-test", "-f"])
            .arg(path)
            .stdin(Stdio::null())
            .status()
            .expect("run ssh-keygen");
        assert!(status.success(), "ssh-keygen failed");
    }

    /// `SHA256:...` of a public key file, as ssh-keygen computes it.
    pub(crate) fn keygen_fingerprint(pubkey: &Path) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(pubkey)
            .output()
            .expect("run ssh-keygen -l");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    }

    fn free_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    }

    impl Sshd {
        pub(crate) fn start() -> Sshd {
            Self::start_with(&[])
        }

        /// `extra_host_keys`: more host key types for the server to hold.
        pub(crate) fn start_with(extra_host_keys: &[&str]) -> Sshd {
            let dir = tempfile::tempdir().expect("tempdir");
            let client_key = dir.path().join("client");
            keygen(&client_key, "ed25519");
            std::fs::copy(
                dir.path().join("client.pub"),
                dir.path().join("authorized_keys"),
            )
            .expect("authorized_keys");
            let host_key = dir.path().join("host0");
            keygen(&host_key, "ed25519");
            for kind in extra_host_keys {
                keygen(&dir.path().join(format!("host_{kind}")), kind);
            }
            // sshd insists on its privilege separation directory.
            let _ = std::fs::create_dir_all("/run/sshd");
            let mut sshd = Sshd {
                child: None,
                dir,
                port: 0,
                client_key,
                host_key,
                generation: 0,
            };
            // A port picked free can be taken before sshd binds it: retry.
            for _ in 0..5 {
                sshd.port = free_port();
                if sshd.spawn(extra_host_keys) {
                    return sshd;
                }
            }
            panic!("sshd did not start: {}", sshd.log());
        }

        fn log(&self) -> String {
            std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
        }

        fn spawn(&mut self, extra_host_keys: &[&str]) -> bool {
            let d = self.dir.path();
            let mut config = format!(
                "HostKey {}\nPidFile {}\nAuthorizedKeysFile {}\nPermitRootLogin yes\n\
                 StrictModes no\nUsePAM no\nPasswordAuthentication yes\n\
                 KbdInteractiveAuthentication no\nSubsystem sftp internal-sftp\n\
                 MaxSessions 50\nMaxStartups 100:30:200\nLogLevel ERROR\n\
                 SetEnv HOME={}\n",
                self.host_key.display(),
                d.join("sshd.pid").display(),
                d.join("authorized_keys").display(),
                // The login shell must not read the developer's ~/.bashrc
                // (bash does under sshd): it is not ours, and it can cost
                // more than the command (pyenv init: ~120 ms).
                d.display(),
            );
            for kind in extra_host_keys {
                config.push_str(&format!(
                    "HostKey {}\n",
                    d.join(format!("host_{kind}")).display()
                ));
            }
            std::fs::write(d.join("sshd_config"), config).expect("write sshd_config");
            let log = std::fs::File::create(d.join("sshd.log")).expect("log");
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(d.join("sshd_config"))
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-o",
                    "ListenAddress=127.0.0.1",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn sshd");
            let started = Instant::now();
            // Bounded: 100 tries, 5 s.
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    return false;
                }
                if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    self.child = Some(child);
                    return true;
                }
                if started.elapsed() > Duration::from_secs(5) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            false
        }

        fn stop(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }

        /// Same port, a new host key: what a reinstalled (or spoofed) host
        /// looks like.
        pub(crate) fn restart_with_new_host_key(&mut self) {
            self.stop();
            self.generation += 1;
            self.host_key = self.dir.path().join(format!("host{}", self.generation));
            keygen(&self.host_key, "ed25519");
            // The old listener's port can take a moment to free up.
            for _ in 0..20 {
                if self.spawn(&[]) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            panic!("sshd did not restart: {}", self.log());
        }

        pub(crate) fn target(&self) -> super::SshTarget {
            super::SshTarget {
                name: "test-host".to_string(),
                address: "127.0.0.1".to_string(),
                port: self.port,
                user: super::current_user(),
                private_key: Some(self.client_key.clone()),
                password: None,
            }
        }

        /// Options that touch nothing outside the temp dir.
        pub(crate) fn options(&self) -> super::SshOptions {
            super::SshOptions {
                connect_timeout: Duration::from_secs(5),
                command_timeout: Some(Duration::from_secs(60)),
                max_output: herdsman_modules::DEFAULT_MAX_OUTPUT,
                keepalive_interval: Duration::from_secs(15),
                keepalive_count_max: 3,
                host_key_checking: super::HostKeyChecking::AcceptNew,
                known_hosts_files: vec![self.dir.path().join("dot-ssh/known_hosts")],
                key_passphrase: None,
                use_agent: false,
                default_key_files: Vec::new(),
                proxy_jump: None,
                persistent_shell: true,
            }
        }
    }

    impl Drop for Sshd {
        fn drop(&mut self) {
            self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_sshd::{keygen_fingerprint, skip, Sshd};
    use super::*;

    /// Shell code that sets `$p` to this session's sshd process: the
    /// nearest ancestor named sshd (the command's parent is the persistent
    /// shell, or sshd itself on an exec channel).
    const SSHD_PID: &str = "p=$PPID; for _ in 1 2 3 4 5; do \
        [ \"$(cat /proc/$p/comm)\" = sshd ] && break; p=$(cut -d' ' -f4 /proc/$p/stat); done";

    fn connect(sshd: &Sshd) -> SshHost {
        match SshHost::connect(&sshd.target(), &sshd.options()) {
            Ok(h) => h,
            Err(e) => panic!("connect: {e}"),
        }
    }

    #[test]
    fn links_the_bundled_libssh2() {
        let v = libssh2_version_string();
        assert!(v.starts_with("1.11"), "libssh2 {v}");
    }

    #[test]
    fn connects_and_runs_a_command() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let mut host = connect(&sshd);
        let out = host.run("echo hello; echo oops >&2", None).expect("run");
        assert_eq!(out.stdout, b"hello\n");
        assert_eq!(out.stderr, b"oops\n");
        assert_eq!(out.rc, 0);
        assert_eq!(host.name(), "test-host");
        let quoted = host
            .run("printf '%s' \"it's $((1+1))\"", None)
            .expect("run");
        assert_eq!(quoted.stdout_str(), "it's 2");
        let stats = host.stats();
        assert_eq!((stats.connects, stats.execs), (1, 2));
        assert!(stats.bytes_received >= 11);
    }

    #[test]
    fn large_interleaved_stdout_and_stderr_do_not_deadlock() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        for persistent_shell in [true, false] {
            let mut opts = sshd.options();
            opts.command_timeout = Some(Duration::from_secs(60));
            opts.persistent_shell = persistent_shell;
            let mut host = SshHost::connect(&sshd.target(), &opts).expect("connect");
            interleaved_output(&mut host);
            let stats = host.stats();
            assert_eq!(stats.shell_execs, if persistent_shell { 2 } else { 0 });
        }
    }

    fn interleaved_output(host: &mut SshHost) {
        // 1 MiB on each stream, alternating in 1 KiB pieces.
        let script = "i=0; while [ $i -lt 1024 ]; do printf '%1024s' o; printf '%1024s' e >&2; \
                      i=$((i+1)); done";
        let out = host.run(script, None).expect("run");
        assert_eq!(out.rc, 0);
        assert_eq!(out.stdout.len(), 1 << 20);
        assert_eq!(out.stderr.len(), 1 << 20);
        assert!(out.stdout.ends_with(b"o") && out.stderr.ends_with(b"e"));
        // Both at once from two processes, stderr first to fill its window.
        let out = host
            .run(
                "head -c 1048576 /dev/zero >&2 & head -c 1048576 /dev/zero; wait",
                None,
            )
            .expect("run");
        assert_eq!((out.stdout.len(), out.stderr.len()), (1 << 20, 1 << 20));
    }

    #[test]
    fn feeds_stdin_and_reports_exit_codes() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let mut host = connect(&sshd);
        let out = host.run("cat; exit 3", Some(b"data in")).expect("run");
        assert_eq!((out.rc, out.stdout.as_slice()), (3, &b"data in"[..]));
        let big = vec![b'x'; 3 << 20];
        let out = host.run("wc -c", Some(&big)).expect("run");
        assert_eq!(out.stdout_str().trim(), (3 << 20).to_string());
        // A command that never reads its stdin must not hang the writer.
        let out = host.run("exit 0", Some(&big)).expect("run");
        assert_eq!(out.rc, 0);
        let out = host.run("false", None).expect("run");
        assert_eq!(out.rc, 1);
        let out = host.run("kill -TERM $$", None).expect("run");
        assert_eq!(out.rc, 128 + 15);
        // No stdin at all: cat sees EOF at once.
        let out = host.run("cat", None).expect("run");
        assert_eq!((out.rc, out.stdout.len()), (0, 0));
    }

    #[test]
    fn the_persistent_shell_keeps_each_command_apart() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let mut host = connect(&sshd);
        let mut run = |script: &str| host.run(script, None).expect(script);
        // Binary output, no final newline, NUL bytes.
        let out = run("printf 'a\\000b\\377'; printf 'e\\001' >&2");
        assert_eq!(
            (out.stdout.as_slice(), out.stderr.as_slice()),
            (&b"a\0b\xff"[..], &b"e\x01"[..])
        );
        // Output shaped like a frame's end is output.
        let out = run("echo 'herd-00000000000000000000000000000000 0'; printf 'herd-'");
        assert_eq!(
            out.stdout_str(),
            "herd-00000000000000000000000000000000 0\nherd-"
        );
        // Statuses, and the command's own shell: exit, $$, set -e, traps,
        // syntax errors stay in it.
        assert_eq!(run("exit 7").rc, 7);
        assert_eq!(run("kill -TERM $$").rc, 128 + 15);
        let out = run("set -e; false; echo not reached");
        assert_eq!((out.rc, out.stdout.len()), (1, 0));
        assert_eq!(run("trap 'echo bye' EXIT; true").stdout, b"bye\n");
        let out = run("if then fi");
        assert_eq!(out.rc, 2);
        assert!(!out.stderr.is_empty());
        // It cannot read the frames that follow: stdin is empty.
        let out = run("read x; echo \"[$x] $?\"");
        assert_eq!(out.stdout, b"[] 1\n");
        // Variables and directories do not leak into the next command.
        let home = run("pwd").stdout_str();
        run("cd /tmp; X=1; export Y=2");
        assert_eq!(
            run("echo \"${X:-}${Y:-}\"; pwd").stdout_str(),
            format!("\n{home}")
        );
        // 1000 commands later the shell is still the first one.
        for i in 0..1000 {
            let out = run(&format!("echo {i}"));
            assert_eq!(out.stdout_str(), format!("{i}\n"));
        }
        let stats = host.stats();
        assert_eq!((stats.connects, stats.shells), (1, 1));
        assert_eq!(stats.execs, stats.shell_execs);
    }

    #[test]
    fn a_command_that_hangs_times_out_and_the_shell_is_replaced() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let mut opts = sshd.options();
        opts.command_timeout = Some(Duration::from_secs(1));
        opts.keepalive_interval = Duration::from_secs(1);
        let mut host = SshHost::connect(&sshd.target(), &opts).expect("connect");
        assert_eq!(host.run("echo one", None).expect("run").stdout, b"one\n");
        let started = Instant::now();
        // Output first, so the frame is half read when the time is up.
        let err = host
            .run("echo partial; exec sleep 30", None)
            .expect_err("times out");
        assert!(matches!(err, HostError::Timeout { seconds: 1 }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(4));
        let out = host.run("echo two", None).expect("run after timeout");
        assert_eq!(out.stdout, b"two\n", "nothing of the old command leaks in");
        let stats = host.stats();
        assert_eq!((stats.connects, stats.shells), (1, 2));
    }

    #[test]
    fn a_killed_shell_is_replaced_on_the_same_session() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let mut host = connect(&sshd);
        // Mid-command: the command's parent is the persistent shell.
        let out = host
            .run("echo before; kill -9 $PPID; sleep 1", None)
            .expect("a killed shell is the command's end");
        assert_eq!(out.stdout, b"before\n");
        assert_eq!(out.rc, 128 + 9);
        assert_eq!(
            host.run("echo after", None).expect("run").stdout,
            b"after\n"
        );
        // Between commands: found dead before the next one is written.
        host.run("(sleep 0.2; kill -9 $PPID) >/dev/null 2>&1 &", None)
            .expect("run");
        std::thread::sleep(Duration::from_millis(600));
        let out = host.run("echo again", None).expect("run");
        assert_eq!((out.rc, out.stdout.as_slice()), (0, &b"again\n"[..]));
        let stats = host.stats();
        assert_eq!((stats.connects, stats.reconnects, stats.shells), (1, 0, 3));
    }

    #[test]
    fn late_background_output_is_not_the_next_commands() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let mut host = connect(&sshd);
        let out = host
            .run("(sleep 0.2; echo late) & echo now", None)
            .expect("run");
        assert_eq!(out.stdout, b"now\n");
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(host.run("echo next", None).expect("run").stdout, b"next\n");
    }

    #[test]
    fn commands_with_stdin_use_their_own_channel() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let mut host = connect(&sshd);
        host.run("true", None).expect("run");
        let out = host.run("cat", Some(b"fed")).expect("run");
        assert_eq!(out.stdout, b"fed");
        // An empty stdin is no stdin.
        host.run("cat", Some(b"")).expect("run");
        let stats = host.stats();
        assert_eq!((stats.execs, stats.shell_execs), (3, 2));
    }

    #[test]
    fn a_task_deadline_stops_the_command_on_the_host_and_keeps_the_session() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let mut host = SshHost::connect(&sshd.target(), &sshd.options()).expect("connect");
        let running = |pattern: &str| {
            std::process::Command::new("pgrep")
                .args(["-f", pattern])
                .status()
                .is_ok_and(|s| s.success())
        };
        // On the persistent shell, and on a channel of its own (stdin).
        for (script, stdin, pattern) in [
            ("sleep 47.25", None, "sleep 47[.]25"),
            (
                "cat >/dev/null; sleep 47.5",
                Some(&b"x"[..]),
                "sleep 47[.]5",
            ),
        ] {
            let started = Instant::now();
            let err = {
                let _deadline = herdsman_modules::cancel::TaskDeadline::start(1);
                host.run(script, stdin).expect_err("runs out of time")
            };
            assert!(
                matches!(err, HostError::TaskTimeout { seconds: 1 }),
                "{err}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{:?}",
                started.elapsed()
            );
            assert!(!running(pattern), "`{script}` still runs");
            let out = host.run("echo still here", None).expect("run after");
            assert_eq!(out.stdout, b"still here\n");
        }
        assert_eq!(host.stats().reconnects, 0);
    }

    #[test]
    fn command_timeout_then_session_still_works() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let mut opts = sshd.options();
        opts.command_timeout = Some(Duration::from_secs(1));
        let mut host = SshHost::connect(&sshd.target(), &opts).expect("connect");
        let started = Instant::now();
        let err = host.run("sleep 5", None).expect_err("times out");
        assert!(matches!(err, HostError::Timeout { seconds: 1 }), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        let out = host
            .run("echo still here", None)
            .expect("run after timeout");
        assert_eq!(out.stdout, b"still here\n");
    }

    /// `cat /dev/zero` used to be read without bound. Past the limit the
    /// command is stopped (its channel closed: it dies of SIGPIPE), the
    /// task gets a typed error, and the session carries on, on the
    /// persistent shell and on an exec channel (a command with stdin).
    #[test]
    fn output_past_the_limit_stops_the_command_and_the_session_goes_on() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let mut opts = sshd.options();
        opts.max_output = 1024 * 1024;
        let mut host = SshHost::connect(&sshd.target(), &opts).expect("connect");
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("pid");
        for (script, stdin, stream) in [
            ("echo $$ > {pid}; exec cat /dev/zero", None, "stdout"),
            ("echo $$ > {pid}; exec cat /dev/zero >&2", None, "stderr"),
            (
                "echo $$ > {pid}; exec cat /dev/zero",
                Some(&b"x"[..]),
                "stdout",
            ),
        ] {
            let script = script.replace("{pid}", &pid_file.display().to_string());
            let started = Instant::now();
            let err = host.run(&script, stdin).expect_err("over the limit");
            assert!(
                matches!(err, HostError::OutputLimit { stream: s, limit: 1_048_576 } if s == stream),
                "{script}: {err}"
            );
            assert!(started.elapsed() < Duration::from_secs(20));
            let pid = std::fs::read_to_string(&pid_file).expect("pid");
            let pid = pid.trim().to_string();
            let gone = (0..100).any(|_| {
                std::thread::sleep(Duration::from_millis(20));
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| s.contains(") Z "))
                    .unwrap_or(true)
            });
            assert!(gone, "{script}: process {pid} still runs on the host");
            let out = host.run("echo still here", None).expect("run after");
            assert_eq!(out.stdout, b"still here\n");
        }
        // Exactly at the limit is fine, trailer or not.
        let out = host
            .run("head -c 1048576 /dev/zero", None)
            .expect("at the limit");
        assert_eq!(out.stdout.len(), 1_048_576);
        let err = host
            .run("head -c 1048577 /dev/zero", None)
            .expect_err("one byte over");
        assert!(matches!(err, HostError::OutputLimit { .. }), "{err}");
    }

    #[test]
    fn reconnects_once_when_the_session_dropped() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let mut host = connect(&sshd);
        // Killing this session's sshd process drops the connection under us.
        let _ = host.run(&format!("{SSHD_PID}; kill -9 $p"), None);
        std::thread::sleep(Duration::from_millis(100));
        let out = host.run("echo back", None).expect("run after drop");
        assert_eq!(out.stdout, b"back\n");
        let stats = host.stats();
        assert_eq!((stats.connects, stats.reconnects), (2, 1));
    }

    #[test]
    fn writes_files_atomically_with_mode_and_reads_them() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let mut host = connect(&sshd);
        assert!(host.supports_sftp());
        let dir = sshd.dir.path().join("files");
        std::fs::create_dir(&dir).expect("mkdir");
        let path = dir.join("conf").to_string_lossy().into_owned();
        let attrs = FileAttrs {
            mode: Some("0640".into()),
            ..FileAttrs::default()
        };
        host.write_file(&path, b"one\n", &attrs).expect("write");
        let mode = |host: &mut SshHost| {
            host.run(&format!("stat -c %a {}", quote(&path)), None)
                .expect("stat")
                .stdout_str()
                .trim()
                .to_string()
        };
        assert_eq!(mode(&mut host), "640");
        assert_eq!(
            host.read_file(&path).expect("read"),
            Some(b"one\n".to_vec())
        );
        // Replacing keeps the mode when none is given.
        host.write_file(&path, b"two\n", &FileAttrs::default())
            .expect("rewrite");
        assert_eq!(mode(&mut host), "640");
        assert_eq!(std::fs::read(&path).expect("local read"), b"two\n");
        // Symbolic modes and ownership go through chmod/chown.
        let attrs = FileAttrs {
            owner: Some(current_user()),
            group: None,
            mode: Some("u=rw,g=,o=".into()),
        };
        host.write_file(&path, b"three\n", &attrs)
            .expect("write symbolic");
        assert_eq!(mode(&mut host), "600");
        // A new file without a mode gets 0644.
        let fresh = dir.join("fresh").to_string_lossy().into_owned();
        host.write_file(&fresh, b"", &FileAttrs::default())
            .expect("write fresh");
        assert_eq!(
            host.run(&format!("stat -c %a {}", quote(&fresh)), None)
                .expect("stat")
                .stdout_str()
                .trim(),
            "644"
        );
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .expect("readdir")
            .filter_map(std::result::Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(".herd."))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        // A bad owner fails the write and leaves the old file alone.
        let attrs = FileAttrs {
            owner: Some("no-such-user-herd".into()),
            ..FileAttrs::default()
        };
        let err = host
            .write_file(&path, b"four\n", &attrs)
            .expect_err("bad owner");
        assert!(matches!(err, HostError::Command { .. }), "{err}");
        assert_eq!(std::fs::read(&path).expect("local read"), b"three\n");
        let stats = host.stats();
        assert!(stats.transfers >= 5 && stats.bytes_sent >= 12, "{stats:?}");
    }

    #[test]
    fn reading_a_missing_file_is_none() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let mut host = connect(&sshd);
        let missing = sshd.dir.path().join("nope").to_string_lossy().into_owned();
        assert_eq!(host.read_file(&missing).expect("read"), None);
        let in_missing_dir = sshd.dir.path().join("no/such/file");
        assert_eq!(
            host.read_file(&in_missing_dir.to_string_lossy())
                .expect("read"),
            None
        );
    }

    #[test]
    fn accept_new_records_the_key_then_knows_it() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let opts = sshd.options();
        let file = opts.known_hosts_files[0].clone();
        let host = connect(&sshd);
        assert_eq!(
            host.host_key_verdict(),
            &HostKeyVerdict::Recorded(file.clone())
        );
        let text = std::fs::read_to_string(&file).expect("known_hosts written");
        let host_pub = std::fs::read_to_string(sshd.host_key.with_extension("pub")).expect("pub");
        let key_b64 = host_pub.split_whitespace().nth(1).expect("key field");
        assert_eq!(
            text,
            format!("[127.0.0.1]:{} ssh-ed25519 {key_b64}\n", sshd.port)
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(host);
        let again = connect(&sshd);
        assert_eq!(again.host_key_verdict(), &HostKeyVerdict::Known);
        // Strict accepts it now too.
        let mut strict = sshd.options();
        strict.host_key_checking = HostKeyChecking::Strict;
        let host = SshHost::connect(&sshd.target(), &strict).expect("strict, known");
        assert_eq!(host.host_key_verdict(), &HostKeyVerdict::Known);
    }

    #[test]
    fn parallel_first_connects_record_the_key_once() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let (target, opts) = (sshd.target(), sshd.options());
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (t, o) = (target.clone(), opts.clone());
                std::thread::spawn(move || SshHost::connect(&t, &o).map(|_| ()))
            })
            .collect();
        for h in handles {
            h.join().expect("thread").expect("connect");
        }
        let text = std::fs::read_to_string(&opts.known_hosts_files[0]).expect("read");
        assert_eq!(text.lines().count(), 1, "{text}");
    }

    #[test]
    fn changed_host_key_is_refused_with_both_fingerprints_and_the_line() {
        if skip() {
            return;
        }
        let mut sshd = Sshd::start();
        let opts = sshd.options();
        let file = opts.known_hosts_files[0].clone();
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(
            &file,
            "# managed by hand\nother.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB\n",
        )
        .expect("seed");
        drop(connect(&sshd));
        let old_fp = keygen_fingerprint(&sshd.host_key.with_extension("pub"));
        sshd.restart_with_new_host_key();
        let new_fp = keygen_fingerprint(&sshd.host_key.with_extension("pub"));
        assert_ne!(old_fp, new_fp);

        let check = |expect_line: usize| {
            let err = SshHost::connect(&sshd.target(), &opts).expect_err("must refuse");
            match &err {
                SshError::HostKeyChanged {
                    host,
                    file: f,
                    line,
                    expected_fingerprint,
                    actual_fingerprint,
                } => {
                    assert_eq!(host, "test-host");
                    assert_eq!(f, &file);
                    assert_eq!(*line, expect_line);
                    assert_eq!(expected_fingerprint, &old_fp);
                    assert_eq!(actual_fingerprint, &new_fp);
                }
                other => panic!("expected HostKeyChanged, got {other}"),
            }
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("{}:{expect_line}", file.display())),
                "{msg}"
            );
            assert!(msg.contains(&old_fp) && msg.contains(&new_fp), "{msg}");
            assert!(matches!(HostError::from(err), HostError::Unreachable(_)));
        };
        check(3);
        // Hashed entries (ssh-keygen -H) are found too.
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-H", "-f"])
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("ssh-keygen -H");
        assert!(status.success());
        assert!(std::fs::read_to_string(&file)
            .expect("read")
            .contains("|1|"));
        check(3);
        // The file was not touched by the refused connects.
        let text = std::fs::read_to_string(&file).expect("read");
        assert_eq!(text.lines().count(), 3, "{text}");
    }

    #[test]
    fn a_revoked_key_is_refused() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let opts = sshd.options();
        let file = &opts.known_hosts_files[0];
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        let host_pub = std::fs::read_to_string(sshd.host_key.with_extension("pub")).expect("pub");
        std::fs::write(file, format!("# revoked\n@revoked * {host_pub}")).expect("seed");
        let err = SshHost::connect(&sshd.target(), &opts).expect_err("revoked");
        match &err {
            SshError::HostKeyRevoked { line, .. } => assert_eq!(*line, 2),
            other => panic!("expected HostKeyRevoked, got {other}"),
        }
    }

    #[test]
    fn keepalives_keep_quiet_commands_alive_and_notice_a_dead_peer() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let mut opts = sshd.options();
        opts.keepalive_interval = Duration::from_secs(1);
        opts.command_timeout = Some(Duration::from_secs(30));
        let mut host = SshHost::connect(&sshd.target(), &opts).expect("connect");
        let out = host.run("sleep 5; echo done", None).expect("quiet command");
        assert_eq!(out.stdout, b"done\n");
        // Freeze this session's sshd process: the socket stays open but
        // nothing answers, as with a host that vanished from the network.
        let pid_file = sshd.dir.path().join("frozen.pid");
        let script = format!(
            "{SSHD_PID}; echo $p > {}; kill -STOP $p; sleep 30",
            pid_file.display()
        );
        let started = Instant::now();
        let err = host.run(&script, None).expect_err("dead peer");
        let waited = started.elapsed();
        // Ours to clean up: the stopped sshd process, by its pid.
        if let Ok(pid) = std::fs::read_to_string(&pid_file) {
            let _ = std::process::Command::new("kill")
                .args(["-9", pid.trim()])
                .status();
        }
        assert!(matches!(err, HostError::Unreachable(_)), "{err}");
        assert!(err.to_string().contains("keepalive"), "{err}");
        assert!(waited < Duration::from_secs(10), "{waited:?}");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let mut target = SshTarget::new("web1");
        target.password = Some("s3cret-pw".into());
        let opts = SshOptions {
            key_passphrase: Some("s3cret-pp".into()),
            ..SshOptions::default()
        };
        let text = format!("{target:?} {opts:?}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn strict_refuses_an_unknown_host() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let mut opts = sshd.options();
        opts.host_key_checking = HostKeyChecking::Strict;
        let err = SshHost::connect(&sshd.target(), &opts).expect_err("unknown host");
        let fp = keygen_fingerprint(&sshd.host_key.with_extension("pub"));
        match &err {
            SshError::HostKeyUnknown { fingerprint, .. } => assert_eq!(fingerprint, &fp),
            other => panic!("expected HostKeyUnknown, got {other}"),
        }
        assert!(!opts.known_hosts_files[0].exists());
    }

    #[test]
    fn prefers_the_recorded_key_type() {
        if skip() {
            return;
        }
        // The server holds ECDSA and Ed25519 keys; only ECDSA is recorded.
        let sshd = Sshd::start_with(&["ecdsa"]);
        let opts = sshd.options();
        let file = &opts.known_hosts_files[0];
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        let ecdsa_pub =
            std::fs::read_to_string(sshd.dir.path().join("host_ecdsa.pub")).expect("pub");
        let mut fields = ecdsa_pub.split_whitespace();
        let (kt, key) = (fields.next().expect("type"), fields.next().expect("key"));
        std::fs::write(file, format!("[127.0.0.1]:{} {kt} {key}\n", sshd.port)).expect("seed");
        let host = connect(&sshd);
        assert_eq!(host.host_key_verdict(), &HostKeyVerdict::Known);
    }

    #[test]
    fn closed_port_is_quickly_unreachable() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let target = SshTarget {
            name: "gone".into(),
            address: "127.0.0.1".into(),
            port,
            user: "nobody".into(),
            private_key: None,
            password: None,
        };
        let opts = SshOptions {
            known_hosts_files: Vec::new(),
            use_agent: false,
            default_key_files: Vec::new(),
            ..SshOptions::default()
        };
        let started = Instant::now();
        let err = SshHost::connect(&target, &opts).expect_err("closed port");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(matches!(err, SshError::Connect { .. }), "{err}");
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
        assert!(matches!(HostError::from(err), HostError::Unreachable(_)));
    }

    #[test]
    fn auth_failure_lists_what_was_tried_but_no_password() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let stranger = sshd.dir.path().join("stranger");
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&stranger)
            .status()
            .expect("ssh-keygen");
        assert!(status.success());
        let mut target = sshd.target();
        target.private_key = Some(stranger.clone());
        target.password = Some("hunter2-not-it".into());
        let mut opts = sshd.options();
        opts.default_key_files = vec![sshd.dir.path().join("absent_id_rsa")];
        let err = SshHost::connect(&target, &opts).expect_err("auth fails");
        let msg = err.to_string();
        assert!(matches!(err, SshError::Auth { .. }), "{msg}");
        assert!(msg.contains(&stranger.display().to_string()), "{msg}");
        assert!(msg.contains("password (rejected)"), "{msg}");
        assert!(msg.contains("publickey"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(!format!("{err:?}").contains("hunter2"));
    }

    #[test]
    #[ignore = "benchmark: prints the mean time of a command on one session"]
    fn bench_exec_true() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let mut host = connect(&sshd);
        host.run("true", None).expect("warm up");
        let n = 200;
        let started = Instant::now();
        for _ in 0..n {
            let out = host.run("true", None).expect("run");
            assert_eq!(out.rc, 0);
        }
        let mean = started.elapsed() / n;
        println!(
            "ssh exec: {n} x `true` on one session, mean {:.2} ms",
            mean.as_secs_f64() * 1e3
        );
        // Output on both streams: more small packets from sshd per command.
        let started = Instant::now();
        for _ in 0..n {
            let out = host.run("echo out; echo err >&2", None).expect("run");
            assert_eq!(out.rc, 0);
        }
        let mean = started.elapsed() / n;
        println!(
            "ssh exec: {n} x `echo out; echo err >&2` on one session, mean {:.2} ms",
            mean.as_secs_f64() * 1e3
        );
        let started = Instant::now();
        let connects = 10;
        for _ in 0..connects {
            drop(connect(&sshd));
        }
        println!(
            "ssh connect: mean {:.1} ms over {connects}",
            (started.elapsed() / connects).as_secs_f64() * 1e3
        );
        let mut first = std::time::Duration::ZERO;
        for _ in 0..connects {
            let mut h = connect(&sshd);
            let started = Instant::now();
            h.run("true", None).expect("run");
            first += started.elapsed();
        }
        println!(
            "ssh first exec on a new session: mean {:.1} ms over {connects}",
            (first / connects).as_secs_f64() * 1e3
        );
    }
}
