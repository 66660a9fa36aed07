//! Jump hosts (`ProxyJump`): one SSH session to each bastion, shared by
//! every target behind it.
//!
//! Owns parsing a `ProxyJump` value, the registry of open bastions for a
//! run, and the pump thread of each bastion. A target's own session runs
//! over one end of a local socket pair; the pump moves the bytes of the
//! other end to and from a `direct-tcpip` channel on the bastion's session.
//!
//! Why one thread per bastion: libssh2 sessions are not safe for concurrent
//! use, so exactly one thread owns the bastion session, in non-blocking
//! mode, and multiplexes all its channels with `poll(2)` on the bastion's
//! TCP socket, every local socket and a wake-up socket. New channels are
//! asked for over a queue. If the bastion dies, the pump ends and every
//! local socket closes, so every target behind it becomes unreachable; the
//! next connect opens a new bastion session.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ssh2::{Channel, Session};

use super::exec;
use super::known_hosts::HostKeyChecking;
use super::ssh::{open_session, Dial, SshError, SshOptions, SshTarget};

/// One hop of a `ProxyJump` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpSpec {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// Why a `ProxyJump` value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JumpSpecError {
    #[error("ProxyJump `{0}`: more than one jump host is not supported")]
    MultipleHops(String),
    #[error("ProxyJump `{0}`: expected [user@]host[:port]")]
    Malformed(String),
}

impl JumpSpec {
    /// `[user@]host[:port]` or `ssh://[user@]host[:port]`; `None` for
    /// `none` (OpenSSH's way to switch a jump off).
    pub fn parse(value: &str) -> Result<Option<JumpSpec>, JumpSpecError> {
        let v = value.trim();
        if v.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        if v.contains(',') {
            return Err(JumpSpecError::MultipleHops(v.to_string()));
        }
        let bad = || JumpSpecError::Malformed(v.to_string());
        let rest = v.strip_prefix("ssh://").unwrap_or(v);
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
            Some(_) => return Err(bad()),
            None => (None, rest),
        };
        let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
            // [v6addr]:port
            let (h, after) = inner.split_once(']').ok_or_else(bad)?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p.parse::<u16>().map_err(|_| bad())?)),
                None if after.is_empty() => (h, None),
                None => return Err(bad()),
            }
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| bad())?)),
                None => (hostport, None),
            }
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(bad());
        }
        Ok(Some(JumpSpec {
            user,
            host: host.to_string(),
            port,
        }))
    }
}

/// What makes two targets' bastions the same connection: where it goes
/// and as whom, and how its host key was checked. Targets with different
/// host-key policies or known_hosts files get sessions of their own, so a
/// target that asked for strict checking never rides on a session a
/// lenient target opened (the first connect checks the key, later users
/// of the session do not).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BastionKey {
    user: String,
    address: String,
    port: u16,
    host_key_checking: HostKeyChecking,
    known_hosts_files: Vec<PathBuf>,
}

impl BastionKey {
    fn new(target: &SshTarget, options: &SshOptions) -> Self {
        BastionKey {
            user: target.user.clone(),
            address: target.address.clone(),
            port: target.port,
            host_key_checking: options.host_key_checking,
            known_hosts_files: options.known_hosts_files.clone(),
        }
    }
}

/// A bastion's place in the registry; its lock serialises connects to it.
type BastionSlot = Arc<Mutex<Slot>>;

#[derive(Default)]
struct Slot {
    bastion: Option<Arc<Bastion>>,
    /// The last failed connect, so targets queued behind it fail at once
    /// instead of each waiting out its own connect timeout.
    failed: Option<(Instant, Arc<SshError>)>,
}

/// How long a failed bastion connect is the answer for every target.
const FAILURE_MEMORY: Duration = Duration::from_secs(5);

/// The bastions of one run, opened on first use and shared by every target
/// behind them. Lives in `ConnectSettings`, so as long as the run.
#[derive(Default)]
pub struct JumpRegistry {
    slots: Mutex<HashMap<BastionKey, BastionSlot>>,
}

impl std::fmt::Debug for JumpRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.slots.lock().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("JumpRegistry")
            .field("bastions", &n)
            .finish()
    }
}

impl JumpRegistry {
    /// The live bastion for `target`, connected now if there is none (or
    /// the last one died). Connects to one bastion are serialised so
    /// parallel targets share the first session instead of racing.
    pub fn bastion(
        &self,
        target: &SshTarget,
        options: &SshOptions,
    ) -> Result<Arc<Bastion>, Arc<SshError>> {
        let key = BastionKey::new(target, options);
        let slot = {
            let mut slots = self.slots.lock().map_err(|_| Arc::new(poisoned(target)))?;
            slots.entry(key).or_default().clone()
        };
        let mut slot = slot.lock().map_err(|_| Arc::new(poisoned(target)))?;
        if let Some(b) = slot.bastion.as_ref().filter(|b| b.is_alive()) {
            return Ok(b.clone());
        }
        if let Some((at, e)) = &slot.failed {
            if at.elapsed() < FAILURE_MEMORY {
                return Err(e.clone());
            }
        }
        match Bastion::connect(target, options) {
            Ok(b) => {
                let b = Arc::new(b);
                slot.bastion = Some(b.clone());
                slot.failed = None;
                Ok(b)
            }
            Err(e) => {
                let e = Arc::new(e);
                slot.bastion = None;
                slot.failed = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    /// How many bastion sessions are alive (for tests and `--profile`).
    pub fn live_bastions(&self) -> usize {
        let Ok(slots) = self.slots.lock() else {
            return 0;
        };
        slots
            .values()
            .filter(|s| {
                s.lock()
                    .map(|s| s.bastion.as_ref().is_some_and(|b| b.is_alive()))
                    .unwrap_or(false)
            })
            .count()
    }
}

fn poisoned(target: &SshTarget) -> SshError {
    SshError::Jump {
        host: target.name.clone(),
        jump: target.name.clone(),
        reason: "the jump host registry is poisoned".into(),
    }
}

/// The route of one target: through this bastion, found (or reopened) in
/// the registry on every dial, so a reconnect after the bastion died works.
pub struct JumpRoute {
    pub registry: Arc<JumpRegistry>,
    pub bastion: SshTarget,
    pub options: SshOptions,
}

impl Dial for JumpRoute {
    fn dial(&self, target: &SshTarget, timeout: Duration) -> Result<UnixStream, SshError> {
        // Name the target too: the bastion's own error names only it.
        let via = |e: Arc<SshError>| SshError::Jump {
            host: target.name.clone(),
            jump: self.bastion.name.clone(),
            reason: e.to_string(),
        };
        let bastion = self
            .registry
            .bastion(&self.bastion, &self.options)
            .map_err(via)?;
        match bastion.open(target, timeout) {
            // The bastion died under the request (the target is
            // reconnecting because of that): once more, on a new one.
            Err(_) if !bastion.is_alive() => {
                let bastion = self
                    .registry
                    .bastion(&self.bastion, &self.options)
                    .map_err(via)?;
                bastion.open(target, timeout)
            }
            done => done,
        }
    }
}

/// A request to the pump: open a channel to `host:port` and connect it to
/// `sock`; the answer goes back on `reply`.
struct OpenRequest {
    host: String,
    port: u16,
    sock: UnixStream,
    deadline: Instant,
    reply: Sender<Result<(), String>>,
}

/// One bastion session, driven by its pump thread.
pub struct Bastion {
    name: String,
    requests: Mutex<Sender<OpenRequest>>,
    wake: UnixStream,
    alive: Arc<AtomicBool>,
    /// The bastion's TCP socket, for tests that cut it.
    #[cfg(test)]
    sever: TcpStream,
}

impl Bastion {
    fn connect(target: &SshTarget, options: &SshOptions) -> Result<Bastion, SshError> {
        let (session, sock) = open_session(target, options)?;
        let io = |e: std::io::Error| SshError::Connect {
            host: target.name.clone(),
            address: format!("{}:{}", target.address, target.port),
            source: e,
        };
        let (wake, wake_rx) = UnixStream::pair().map_err(io)?;
        wake_rx.set_nonblocking(true).map_err(io)?;
        wake.set_nonblocking(true).map_err(io)?;
        let (tx, rx) = mpsc::channel();
        let alive = Arc::new(AtomicBool::new(true));
        #[cfg(test)]
        let sever = sock.try_clone().map_err(io)?;
        let pump = Pump {
            alive: alive.clone(),
            session,
            sock,
            wake: wake_rx,
            requests: rx,
            links: Vec::new(),
            closing: Vec::new(),
            opening: None,
            keepalive: options.keepalive_interval,
            last_heard: Instant::now(),
        };
        std::thread::Builder::new()
            .name(format!("jump {}", target.name))
            .spawn(move || pump.run())
            .map_err(io)?;
        Ok(Bastion {
            name: target.name.clone(),
            requests: Mutex::new(tx),
            wake,
            alive,
            #[cfg(test)]
            sever,
        })
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// A local stream connected to `target` through the bastion, opened
    /// within `timeout`.
    pub fn open(&self, target: &SshTarget, timeout: Duration) -> Result<UnixStream, SshError> {
        let fail = |reason: String| SshError::Jump {
            host: target.name.clone(),
            jump: self.name.clone(),
            reason,
        };
        let (ours, theirs) = UnixStream::pair().map_err(|e| fail(e.to_string()))?;
        let (reply, answer) = mpsc::channel();
        let request = OpenRequest {
            host: target.address.clone(),
            port: target.port,
            sock: theirs,
            deadline: super::exec::after(Instant::now(), timeout),
            reply,
        };
        {
            let tx = self
                .requests
                .lock()
                .map_err(|_| fail("request queue poisoned".into()))?;
            tx.send(request)
                .map_err(|_| fail("the jump host connection is closed".into()))?;
        }
        // A full wake socket already means "look at the queue".
        let _ = (&self.wake).write(&[1]);
        // The pump answers by the deadline; the margin covers one turn.
        match answer.recv_timeout(timeout + Duration::from_millis(500)) {
            Ok(Ok(())) => Ok(ours),
            Ok(Err(msg)) => Err(fail(msg)),
            Err(RecvTimeoutError::Timeout) => Err(fail("timed out opening a channel".into())),
            Err(RecvTimeoutError::Disconnected) => {
                Err(fail("the jump host connection is closed".into()))
            }
        }
    }
}

/// Bytes buffered per direction before we stop reading that side.
const BUF_LIMIT: usize = 256 * 1024;
/// The longest the pump sleeps, so deadlines and keepalives are looked at.
const MAX_WAIT: Duration = Duration::from_millis(100);
#[cfg(target_os = "linux")]
const PEER_CLOSED: libc::c_short = libc::POLLRDHUP;
#[cfg(not(target_os = "linux"))]
const PEER_CLOSED: libc::c_short = 0;
/// How many unanswered keepalive intervals mean the bastion is gone.
const KEEPALIVE_COUNT_MAX: u32 = 3;

/// One target's channel and the local socket it is pumped to.
struct Link {
    channel: Channel,
    sock: UnixStream,
    /// From the local socket, not yet written to the channel.
    to_channel: Vec<u8>,
    /// From the channel, not yet written to the local socket.
    to_sock: Vec<u8>,
    sock_eof: bool,
    channel_eof: bool,
    eof_sent: bool,
    sock_shut: bool,
}

enum Step {
    /// Something moved.
    Progress,
    Idle,
    /// This link is finished (or broken): close its channel.
    Done,
}

impl Link {
    fn step(&mut self, buf: &mut [u8]) -> Step {
        let mut progress = false;
        // Local socket -> channel.
        if !self.sock_eof && self.to_channel.len() < BUF_LIMIT {
            match self.sock.read(buf) {
                Ok(0) => {
                    self.sock_eof = true;
                    progress = true;
                }
                Ok(n) => {
                    self.to_channel.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Step::Done,
            }
        }
        if !self.to_channel.is_empty() {
            match self.channel.write(&self.to_channel) {
                Ok(n) => {
                    self.to_channel.drain(..n);
                    progress |= n > 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return Step::Done,
            }
        }
        if self.sock_eof && self.to_channel.is_empty() && !self.eof_sent {
            match self.channel.send_eof() {
                Ok(()) => {
                    self.eof_sent = true;
                    progress = true;
                }
                Err(e) if is_would_block(&e) => {}
                Err(_) => return Step::Done,
            }
        }
        // Channel -> local socket.
        if !self.channel_eof && self.to_sock.len() < BUF_LIMIT {
            match self.channel.read(buf) {
                Ok(0) => {
                    if self.channel.eof() {
                        self.channel_eof = true;
                        progress = true;
                    }
                }
                Ok(n) => {
                    self.to_sock.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return Step::Done,
            }
        }
        if !self.to_sock.is_empty() {
            match self.sock.write(&self.to_sock) {
                Ok(n) => {
                    self.to_sock.drain(..n);
                    progress |= n > 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Step::Done,
            }
        }
        if self.channel_eof && self.to_sock.is_empty() && !self.sock_shut {
            let _ = self.sock.shutdown(std::net::Shutdown::Write);
            self.sock_shut = true;
            progress = true;
        }
        if self.sock_eof && self.eof_sent && self.channel_eof && self.to_sock.is_empty() {
            return Step::Done;
        }
        if progress {
            Step::Progress
        } else {
            Step::Idle
        }
    }

    fn poll_events(&self) -> libc::c_short {
        let mut events = 0;
        if !self.sock_eof && self.to_channel.len() < BUF_LIMIT {
            events |= libc::POLLIN;
        }
        if !self.to_sock.is_empty() {
            events |= libc::POLLOUT;
        }
        events
    }
}

/// A direct-tcpip open in progress. libssh2 keeps one such open per
/// session and wants the same call repeated until it completes, so opens
/// are done one at a time, in order.
struct Opening {
    request: OpenRequest,
    /// The requester gave up (deadline passed); the channel, if it still
    /// opens, is closed at once.
    answered: bool,
}

/// The thread that owns a bastion session.
struct Pump {
    /// Cleared before anything closes, so a target that sees its socket
    /// close and reconnects finds this bastion dead and opens a new one.
    alive: Arc<AtomicBool>,
    session: Session,
    sock: TcpStream,
    wake: UnixStream,
    requests: Receiver<OpenRequest>,
    links: Vec<Link>,
    /// Channels whose close has been sent, waiting for the server's.
    closing: Vec<Channel>,
    opening: Option<Opening>,
    keepalive: Duration,
    last_heard: Instant,
}

impl Pump {
    fn run(mut self) {
        self.session.set_blocking(false);
        let mut queue: std::collections::VecDeque<OpenRequest> = Default::default();
        let mut buf = vec![0u8; 32 * 1024];
        let mut next_keepalive = super::exec::after(Instant::now(), self.keepalive);
        let mut requests_open = true;
        loop {
            let mut progress = false;
            // New requests.
            let mut drain = [0u8; 64];
            while matches!((&self.wake).read(&mut drain), Ok(n) if n > 0) {}
            while requests_open {
                match self.requests.try_recv() {
                    Ok(r) => queue.push_back(r),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => requests_open = false,
                }
            }
            if self.opening.is_none() {
                if let Some(request) = queue.pop_front() {
                    self.opening = Some(Opening {
                        request,
                        answered: false,
                    });
                }
            }
            match self.step_opening() {
                Ok(p) => progress |= p,
                Err(()) => break,
            }
            // Move bytes.
            let mut i = 0;
            while i < self.links.len() {
                match self.links[i].step(&mut buf) {
                    Step::Progress => {
                        progress = true;
                        i += 1;
                    }
                    Step::Idle => i += 1,
                    Step::Done => {
                        let link = self.links.swap_remove(i);
                        self.closing.push(link.channel);
                        progress = true;
                    }
                }
            }
            self.closing.retain_mut(|ch| match ch.close() {
                Ok(()) => false,
                Err(e) => is_would_block(&e),
            });
            // Keepalives, and the verdict that the bastion is gone.
            let now = Instant::now();
            if !self.keepalive.is_zero() && now >= next_keepalive {
                if now.duration_since(self.last_heard) > self.keepalive * KEEPALIVE_COUNT_MAX {
                    break;
                }
                match self.session.keepalive_send() {
                    Ok(_) => {}
                    Err(e) if is_would_block(&e) => {}
                    Err(_) => break,
                }
                next_keepalive = super::exec::after(now, self.keepalive);
            }
            if !requests_open && self.links.is_empty() && self.opening.is_none() && queue.is_empty()
            {
                // The registry is gone and nothing is left to carry.
                break;
            }
            if progress {
                // Traffic is as good an answer as a keepalive reply.
                self.last_heard = Instant::now();
                continue;
            }
            match self.wait(next_keepalive) {
                Ok(()) => {}
                Err(()) => break,
            }
        }
        self.shut_down(queue);
    }

    /// Drive the open in progress. `Err` when the bastion session is dead.
    fn step_opening(&mut self) -> Result<bool, ()> {
        let Some(op) = self.opening.as_mut() else {
            return Ok(false);
        };
        let r = &op.request;
        let result = self.session.channel_direct_tcpip(&r.host, r.port, None);
        match result {
            Err(e) if is_would_block(&e) => {
                if !op.answered && Instant::now() >= r.deadline {
                    let _ = r.reply.send(Err(format!(
                        "timed out opening a channel to {}:{}",
                        r.host, r.port
                    )));
                    op.answered = true;
                }
                Ok(false)
            }
            Err(e) => {
                let Some(op) = self.opening.take() else {
                    return Ok(false);
                };
                let _ = op.request.reply.send(Err(format!(
                    "cannot open a channel to {}:{}: {e}",
                    op.request.host, op.request.port
                )));
                // A refused channel is the target's problem; a dead socket
                // is everyone's.
                if is_session_dead(&e) {
                    return Err(());
                }
                Ok(true)
            }
            Ok(channel) => {
                let Some(op) = self.opening.take() else {
                    return Ok(false);
                };
                if op.answered || op.request.sock.set_nonblocking(true).is_err() {
                    self.closing.push(channel);
                    return Ok(true);
                }
                if op.request.reply.send(Ok(())).is_err() {
                    self.closing.push(channel);
                    return Ok(true);
                }
                self.links.push(Link {
                    channel,
                    sock: op.request.sock,
                    to_channel: Vec::new(),
                    to_sock: Vec::new(),
                    sock_eof: false,
                    channel_eof: false,
                    eof_sent: false,
                    sock_shut: false,
                });
                Ok(true)
            }
        }
    }

    /// Sleep until a socket is ready or `MAX_WAIT` (or the next keepalive)
    /// passes. `Err` when the bastion's socket has failed.
    fn wait(&mut self, next_keepalive: Instant) -> Result<(), ()> {
        // An SSH server never half-closes: its end of the stream (RDHUP)
        // means the bastion is gone.
        // With no channel open nothing reads the session, so a keepalive
        // reply would leave the socket readable and this loop spinning:
        // then only the peer's close is waited for.
        let readable = if self.links.is_empty() && self.opening.is_none() {
            self.last_heard = Instant::now();
            0
        } else {
            libc::POLLIN
        };
        let tcp_events = PEER_CLOSED
            | readable
            | match self.session.block_directions() {
                ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both => libc::POLLOUT,
                _ => 0,
            };
        let mut fds = vec![
            libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: tcp_events,
                revents: 0,
            },
            libc::pollfd {
                fd: self.wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        for link in &self.links {
            fds.push(libc::pollfd {
                fd: link.sock.as_raw_fd(),
                events: link.poll_events(),
                revents: 0,
            });
        }
        let mut wait = MAX_WAIT;
        if !self.keepalive.is_zero() {
            wait = wait.min(next_keepalive.saturating_duration_since(Instant::now()));
        }
        if let Some(op) = &self.opening {
            if !op.answered {
                wait = wait.min(
                    op.request
                        .deadline
                        .saturating_duration_since(Instant::now()),
                );
            }
        }
        exec::quickack(self.sock.as_raw_fd());
        let ms = wait.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: `fds` is a valid, initialised array of `fds.len()` pollfds
        // for the whole call.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            return if err.kind() == ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(())
            };
        }
        let tcp = fds[0].revents;
        if tcp & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL | PEER_CLOSED) != 0 {
            return Err(());
        }
        if tcp & libc::POLLIN != 0 {
            self.last_heard = Instant::now();
        }
        Ok(())
    }

    /// Close everything: every local socket closes, so every target behind
    /// this bastion sees its connection end.
    fn shut_down(mut self, mut queue: std::collections::VecDeque<OpenRequest>) {
        self.alive.store(false, Ordering::SeqCst);
        while let Ok(r) = self.requests.try_recv() {
            queue.push_back(r);
        }
        for r in queue {
            let _ = r
                .reply
                .send(Err("the jump host connection is closed".into()));
        }
        if let Some(op) = self.opening.take() {
            if !op.answered {
                let _ = op
                    .request
                    .reply
                    .send(Err("the jump host connection is closed".into()));
            }
        }
        for link in &self.links {
            let _ = link.sock.shutdown(std::net::Shutdown::Both);
        }
        // With the socket shut down, libssh2 frees channels at once instead
        // of waiting on a peer that may be gone.
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        self.links.clear();
        self.closing.clear();
    }
}

fn is_would_block(e: &ssh2::Error) -> bool {
    matches!(
        e.code(),
        ssh2::ErrorCode::Session(libssh2_sys::LIBSSH2_ERROR_EAGAIN)
    )
}

fn is_session_dead(e: &ssh2::Error) -> bool {
    matches!(
        e.code(),
        ssh2::ErrorCode::Session(
            libssh2_sys::LIBSSH2_ERROR_SOCKET_SEND
                | libssh2_sys::LIBSSH2_ERROR_SOCKET_RECV
                | libssh2_sys::LIBSSH2_ERROR_SOCKET_DISCONNECT
                | libssh2_sys::LIBSSH2_ERROR_TIMEOUT
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::ssh::test_sshd::{skip, Sshd};
    use crate::connection::ssh::SshHost;
    use herdsman_modules::Host;

    /// One local sshd is both the bastion and, through it, three targets.
    #[test]
    fn targets_share_one_bastion_session_and_move_bulk_data() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let registry = Arc::new(JumpRegistry::default());
        let route: Arc<dyn Dial> = Arc::new(JumpRoute {
            registry: registry.clone(),
            bastion: SshTarget {
                name: "bastion".into(),
                ..sshd.target()
            },
            options: sshd.options(),
        });
        let mut hosts: Vec<SshHost> = (0..3)
            .map(|i| {
                let target = SshTarget {
                    name: format!("behind-{i}"),
                    ..sshd.target()
                };
                SshHost::connect_via(&target, &sshd.options(), Some(route.clone()))
                    .unwrap_or_else(|e| panic!("connect through the bastion: {e}"))
            })
            .collect();
        assert_eq!(registry.live_bastions(), 1);
        std::thread::scope(|s| {
            for host in &mut hosts {
                s.spawn(move || {
                    let out = host
                        .run(
                            "head -c 3000000 /dev/zero | od -An -v | wc -c; cat | wc -c",
                            Some(&[7u8; 500_000]),
                        )
                        .expect("run through the bastion");
                    let text = String::from_utf8_lossy(&out.stdout).into_owned();
                    let counts: Vec<&str> = text.split_whitespace().collect();
                    assert_eq!(counts, vec!["10687500", "500000"], "{text}");
                    let out = host
                        .run("head -c 4000000 /dev/zero", None)
                        .expect("bulk read through the bastion");
                    assert_eq!(out.stdout.len(), 4_000_000);
                });
            }
        });
        // A target that drops its session frees its channel; the others
        // carry on over the same bastion.
        drop(hosts.pop());
        let out = hosts[0].run("echo still", None).expect("run");
        assert_eq!(out.stdout, b"still\n");
        assert_eq!(registry.live_bastions(), 1);

        // The bastion connection dies: its targets lose their sessions,
        // and their next command reconnects through a new bastion session.
        let old = registry
            .bastion(
                &SshTarget {
                    name: "bastion".into(),
                    ..sshd.target()
                },
                &sshd.options(),
            )
            .expect("bastion");
        let _ = old.sever.shutdown(std::net::Shutdown::Both);
        let deadline = Instant::now() + Duration::from_secs(5);
        while old.is_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!old.is_alive(), "the pump noticed the bastion is gone");
        for host in &mut hosts {
            let out = host.run("echo again", None).expect("run after reconnect");
            assert_eq!(out.stdout, b"again\n");
            assert_eq!(host.stats().reconnects, 1);
        }
        assert_eq!(registry.live_bastions(), 1);
    }

    /// Each target's host-key policy applies to its bastion: a lenient
    /// target that connects first must not open the way for a strict one
    /// whose known_hosts does not know the bastion.
    #[test]
    fn a_bastion_is_shared_only_under_the_same_host_key_policy() {
        if skip() {
            return;
        }
        let sshd = Sshd::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let bastion = SshTarget {
            name: "bastion".into(),
            ..sshd.target()
        };
        let with = |policy: HostKeyChecking, file: &str| SshOptions {
            host_key_checking: policy,
            known_hosts_files: vec![dir.path().join(file)],
            ..sshd.options()
        };
        let registry = JumpRegistry::default();
        let off = registry
            .bastion(&bastion, &with(HostKeyChecking::Off, "off"))
            .expect("no checking: connects");
        let strict = registry.bastion(&bastion, &with(HostKeyChecking::Strict, "strict"));
        assert!(
            strict.is_err(),
            "a strict target reused the session of a target that checks nothing"
        );
        // The same policy and files share one session.
        let again = registry
            .bastion(&bastion, &with(HostKeyChecking::Off, "off"))
            .expect("shared");
        assert!(Arc::ptr_eq(&off, &again));
        // Accept-new records the key in its own file, then strict with that
        // file knows it: two policies, two sessions.
        registry
            .bastion(&bastion, &with(HostKeyChecking::AcceptNew, "learned"))
            .expect("accept-new connects");
        registry
            .bastion(&bastion, &with(HostKeyChecking::Strict, "learned"))
            .expect("strict with the learned key connects");
        assert_eq!(registry.live_bastions(), 3);
    }

    #[test]
    fn a_failed_bastion_connect_is_the_answer_for_a_while() {
        let registry = JumpRegistry::default();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = closed.local_addr().expect("addr").port();
        drop(closed);
        let bastion = SshTarget {
            name: "gone".into(),
            address: "127.0.0.1".into(),
            port,
            ..SshTarget::new("gone")
        };
        let options = SshOptions {
            connect_timeout: Duration::from_secs(2),
            ..SshOptions::default()
        };
        let first = registry.bastion(&bastion, &options).err().expect("refused");
        let again = registry.bastion(&bastion, &options).err().expect("refused");
        assert!(Arc::ptr_eq(&first, &again), "{again}");
        assert_eq!(registry.live_bastions(), 0);
    }

    #[test]
    fn parses_jump_specs() {
        let spec = |u: Option<&str>, h: &str, p: Option<u16>| {
            Ok(Some(JumpSpec {
                user: u.map(str::to_string),
                host: h.to_string(),
                port: p,
            }))
        };
        assert_eq!(JumpSpec::parse("bastion"), spec(None, "bastion", None));
        assert_eq!(
            JumpSpec::parse("root@10.77.0.11:2222"),
            spec(Some("root"), "10.77.0.11", Some(2222))
        );
        assert_eq!(
            JumpSpec::parse("ssh://ops@jump.example"),
            spec(Some("ops"), "jump.example", None)
        );
        assert_eq!(
            JumpSpec::parse("u@[fe80::1]:22"),
            spec(Some("u"), "fe80::1", Some(22))
        );
        assert_eq!(JumpSpec::parse("none"), Ok(None));
        assert!(matches!(
            JumpSpec::parse("a,b"),
            Err(JumpSpecError::MultipleHops(_))
        ));
        assert!(matches!(
            JumpSpec::parse("h:port"),
            Err(JumpSpecError::Malformed(_))
        ));
        assert!(matches!(
            JumpSpec::parse("@h"),
            Err(JumpSpecError::Malformed(_))
        ));
    }
}
