//! The SSH transport: one persistent libssh2 session per host.
//!
//! Owns connecting (bounded TCP connect, `TCP_NODELAY`, session timeout,
//! handshake), host-key checking (via [`super::known_hosts`]), client
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
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use herdsman_modules::{quote, ExecOutput, FileAttrs, Host, HostError};
use ssh2::{ErrorCode, FileStat, MethodType, OpenFlags, OpenType, RenameFlags, Session, Sftp};

use super::exec::{self, DrainError, Limits};
pub use super::known_hosts::HostKeyChecking;
use super::known_hosts::{self, HostKeyVerdict};

/// Where to connect and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// Bounds the TCP connect per address and every blocking libssh2 call
    /// (handshake, auth, channel open, each SFTP request).
    pub connect_timeout: Duration,
    /// Bounds each command; `None` lets commands run as long as they like.
    pub command_timeout: Option<Duration>,
    /// Keepalive period during quiet commands; zero disables keepalives.
    pub keepalive_interval: Duration,
    pub host_key_checking: HostKeyChecking,
    /// Read in order; new keys go to the first.
    pub known_hosts_files: Vec<PathBuf>,
    /// Passphrase for the explicit key and the default key files.
    pub key_passphrase: Option<String>,
    /// Try the identities of `ssh-agent` (`SSH_AUTH_SOCK`).
    pub use_agent: bool,
    /// Keys tried after the agent's, when they exist.
    pub default_key_files: Vec<PathBuf>,
}

impl Default for SshOptions {
    fn default() -> Self {
        let ssh_dir = home_dir().map(|h| h.join(".ssh"));
        SshOptions {
            connect_timeout: Duration::from_secs(10),
            command_timeout: None,
            keepalive_interval: Duration::from_secs(15),
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
    /// SFTP file reads and writes.
    pub transfers: u64,
    /// Payload bytes: stdin and uploads out, stdout, stderr and downloads in.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub connect_time: Duration,
    pub exec_time: Duration,
    pub transfer_time: Duration,
}

/// One open session. The socket clone is what `poll` waits on.
struct Conn {
    session: Session,
    sock: TcpStream,
    sftp: Option<Sftp>,
}

impl Conn {
    /// Drop a session that may be broken without blocking on it: libssh2
    /// would otherwise try to close channels over a dead socket.
    fn discard(self) {
        self.session.set_blocking(false);
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
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
        let mut stats = SshStats::default();
        let (conn, verdict) = open(target, options, &mut stats)?;
        Ok(SshHost {
            target: target.clone(),
            options: options.clone(),
            conn: Some(conn),
            sftp_support: SftpSupport::Unknown,
            stats,
            last_verdict: verdict,
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
        let (conn, verdict) = open(&self.target, &self.options, &mut self.stats)?;
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
            let _ = sftp.unlink(&tmp);
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
        let mut script = String::from("set -e; ");
        if numeric_mode.is_none() {
            if let Some(mode) = &attrs.mode {
                script.push_str(&format!("chmod {} {}; ", quote(mode), quote(&tmp_str)));
            }
        }
        match (&attrs.owner, &attrs.group) {
            (Some(o), Some(g)) => script.push_str(&format!(
                "chown {}:{} {}; ",
                quote(o),
                quote(g),
                quote(&tmp_str)
            )),
            (Some(o), None) => {
                script.push_str(&format!("chown {} {}; ", quote(o), quote(&tmp_str)))
            }
            (None, Some(g)) => {
                script.push_str(&format!("chgrp {} {}; ", quote(g), quote(&tmp_str)))
            }
            (None, None) => {}
        }
        script.push_str(&format!("mv -f {} {}", quote(&tmp_str), quote(path)));
        let wrapped = format!(
            "( {script} ) || {{ rc=$?; rm -f {}; exit $rc; }}",
            quote(&tmp_str)
        );
        let out = self.run(&wrapped, None)?;
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
        file.read_to_end(&mut content)
            .map_err(|e| HostError::Command {
                action: "read file",
                rc: 1,
                stderr: e.to_string(),
            })?;
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
        if let Some(conn) = &self.conn {
            match conn.session.channel_session() {
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
        let opened = conn.session.channel_session();
        opened.map_err(|e| {
            self.drop_conn();
            self.unreachable("cannot open a channel", e)
        })
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
        let started = Instant::now();
        let command = format!("/bin/sh -c {}", quote(script));
        let mut channel = self.open_channel()?;
        let Some(conn) = &self.conn else {
            return Err(self.unreachable("session lost", "not connected"));
        };
        if let Err(e) = channel.exec(&command) {
            // The request may have reached the host: do not run it again.
            drop(channel);
            self.drop_conn();
            return Err(self.unreachable("exec failed", e));
        }
        let limits = Limits {
            timeout: self.options.command_timeout,
            keepalive: self.options.keepalive_interval,
            close_wait: self.options.connect_timeout,
        };
        let fd = conn.sock.as_raw_fd();
        let result = exec::drain(
            &conn.session,
            fd,
            &mut channel,
            stdin.unwrap_or(&[]),
            &limits,
        );
        self.stats.execs += 1;
        match result {
            Ok(done) => {
                self.stats.exec_time += started.elapsed();
                self.stats.bytes_sent += done.bytes_sent;
                self.stats.bytes_received += done.bytes_received;
                Ok(done.output)
            }
            Err(DrainError::Timeout) => {
                let closed = exec::abandon(&conn.session, fd, &mut channel, Duration::from_secs(2));
                drop(channel);
                if !closed {
                    // The next command gets a fresh session rather than
                    // one stuck behind this channel.
                    self.drop_conn();
                }
                self.stats.exec_time += started.elapsed();
                let seconds = self.options.command_timeout.map_or(0, |t| t.as_secs());
                Err(HostError::Timeout { seconds })
            }
            Err(DrainError::Io(e)) => {
                drop(channel);
                self.drop_conn();
                self.stats.exec_time += started.elapsed();
                Err(self.unreachable("connection lost during a command", e))
            }
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

/// Connect, check the host key, authenticate.
fn open(
    target: &SshTarget,
    options: &SshOptions,
    stats: &mut SshStats,
) -> Result<(Conn, HostKeyVerdict), SshError> {
    let started = Instant::now();
    let host = target.name.as_str();
    let sock = connect_tcp(target, options.connect_timeout)?;
    let session_err = |context: &'static str| {
        move |source: ssh2::Error| SshError::Session {
            host: host.to_string(),
            context,
            source,
        }
    };
    // Without TCP_NODELAY every exec waits on Nagle and delayed ACKs: ~44 ms
    // instead of ~2 ms.
    sock.set_nodelay(true).map_err(|source| SshError::Connect {
        host: host.to_string(),
        address: target.address.clone(),
        source,
    })?;
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
    Ok((
        Conn {
            session,
            sock: poll_sock,
            sftp: None,
        },
        verdict,
    ))
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
