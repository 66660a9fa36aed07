//! Driving one exec channel to completion: feed stdin, drain stdout and
//! stderr together, honour the command timeout, keep the session alive, and
//! collect the exit status. The same for one command framed on the
//! persistent shell's channel ([`drain_frame`], format in `shell`).
//!
//! Everything here runs with the session in non-blocking mode and waits on
//! the socket with `poll`, because a blocking read of stdout while the remote
//! command fills the stderr window (or the other way round) deadlocks, and a
//! blocking read cannot be given up on when the command takes too long.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use herdsman_modules::cancel::{self, Cancel};
use herdsman_modules::ExecOutput;
use ssh2::{BlockDirections, Channel, Session};

use super::shell::FrameReader;

/// Limits for one command.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Give up on the command after this long.
    pub timeout: Option<Duration>,
    /// Send a keepalive after this long without traffic; zero disables.
    pub keepalive: Duration,
    /// Give the peer up after this many keepalives without an answer.
    pub keepalive_count: u32,
    /// How long to wait for the server's close after the command's output
    /// ended (its exit status travels with it).
    pub close_wait: Duration,
    /// Bytes the command may print on each stream; past it the command is
    /// given up on like a timed-out one (its channel closed).
    pub max_output: u64,
    /// Give up when [`cancel::check`] says so (an interrupted run, a task
    /// past its `timeout:`); off for the command that stops the others.
    pub cancellable: bool,
}

/// Never sleep in `poll` longer than this, so deadlines and keepalives are
/// looked at even if the socket stays quiet.
const MAX_POLL: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub enum DrainError {
    /// The command ran past `Limits::timeout`; the channel is still open.
    Timeout,
    /// The command printed more than `Limits::max_output` on `stream`; the
    /// channel is still open.
    OutputLimit { stream: &'static str },
    /// The transport failed; the session should be considered dead.
    Io(std::io::Error),
    /// The run was interrupted or the task's deadline passed; the channel
    /// is still open and its command still running.
    Cancelled(Cancel),
}

/// What a finished command produced, with transport byte counts.
#[derive(Debug)]
pub struct Finished {
    pub output: ExecOutput,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// Run the exec'd `channel` to completion. The session is switched to
/// non-blocking mode for the duration and switched back before returning.
pub fn drain(
    session: &Session,
    sock: RawFd,
    channel: &mut Channel,
    stdin: &[u8],
    limits: &Limits,
) -> Result<Finished, DrainError> {
    session.set_blocking(false);
    let result = drain_nonblocking(session, sock, channel, stdin, limits);
    session.set_blocking(true);
    result
}

fn drain_nonblocking(
    session: &Session,
    sock: RawFd,
    channel: &mut Channel,
    stdin: &[u8],
    limits: &Limits,
) -> Result<Finished, DrainError> {
    let start = Instant::now();
    let deadline = limits.timeout.map(|t| after(start, t));
    let mut alive = Keepalive::new(session, limits.keepalive, limits.keepalive_count, start);
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut written = 0usize;
    let mut eof_sent = false;
    let mut buf = vec![0u8; 64 * 1024];

    loop {
        let mut progress = false;
        if written < stdin.len() {
            match channel.write(&stdin[written..]) {
                Ok(n) => {
                    written += n;
                    progress |= n > 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                // The command exited or closed its stdin without reading it
                // all; that is its business, and its output still counts.
                Err(_) => written = stdin.len(),
            }
        }
        if written == stdin.len() && !eof_sent {
            match channel.send_eof() {
                Ok(()) => {
                    eof_sent = true;
                    progress = true;
                }
                Err(e) if is_would_block(&e) => {}
                Err(_) => eof_sent = true,
            }
        }
        let (out_n, out_done) = read_some(channel.stream(0), &mut buf, &mut stdout)?;
        let (err_n, err_done) = read_some(channel.stderr(), &mut buf, &mut stderr)?;
        // Each read adds at most one buffer, so memory stays near the limit.
        if let Some(stream) = over_limit(stdout.len(), stderr.len(), limits.max_output) {
            return Err(DrainError::OutputLimit { stream });
        }
        progress |= out_n + err_n > 0;
        if out_n + err_n > 0 {
            alive.heard(Instant::now());
        }
        if out_done && err_done && channel.eof() {
            break;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Err(DrainError::Timeout);
        }
        if limits.cancellable {
            if let Some(c) = cancel::check() {
                return Err(DrainError::Cancelled(c));
            }
        }
        alive.tick(now)?;
        if !progress {
            let wait = next_wait(now, deadline, alive.next);
            if wait_socket(session, sock, wait)? {
                alive.heard(Instant::now());
            }
        }
    }

    let close_deadline = after(Instant::now(), limits.close_wait);
    let closed = wait_closed(session, sock, channel, close_deadline)?;
    let rc = if closed { exit_code(channel) } else { -1 };
    Ok(Finished {
        bytes_sent: written as u64,
        bytes_received: (stdout.len() + stderr.len()) as u64,
        output: ExecOutput { rc, stdout, stderr },
    })
}

/// Run the exec'd `channel` to completion with its stdin read from `peer`
/// and its stdout written to `peer` as they flow (a controller program
/// speaking to its counterpart on the host); standard error is collected.
/// `peer`'s write side is shut down once the command's stdout ends. Same
/// keepalives, cancellation and stderr limit as [`drain`]; `limits.timeout`
/// is a limit on silence in both directions, not on the whole run, since
/// a transfer may rightly take long.
pub fn pump(
    session: &Session,
    sock: RawFd,
    channel: &mut Channel,
    peer: &std::os::unix::net::UnixStream,
    limits: &Limits,
) -> Result<Finished, DrainError> {
    session.set_blocking(false);
    let result = peer
        .set_nonblocking(true)
        .map_err(DrainError::Io)
        .and_then(|()| pump_nonblocking(session, sock, channel, peer, limits));
    session.set_blocking(true);
    result
}

/// Bytes held in each direction before reading more of it.
const PUMP_BUF: usize = 256 * 1024;

fn pump_nonblocking(
    session: &Session,
    sock: RawFd,
    channel: &mut Channel,
    mut peer: &std::os::unix::net::UnixStream,
    limits: &Limits,
) -> Result<Finished, DrainError> {
    use std::os::fd::AsRawFd;
    let start = Instant::now();
    let mut alive = Keepalive::new(session, limits.keepalive, limits.keepalive_count, start);
    let mut last_moved = start;
    let mut to_channel: Vec<u8> = Vec::new();
    let mut to_peer: Vec<u8> = Vec::new();
    let mut stderr = Vec::new();
    let (mut sent, mut received) = (0u64, 0u64);
    let (mut peer_eof, mut eof_sent, mut out_eof, mut peer_shut) = (false, false, false, false);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut progress = false;
        // Peer -> the command's stdin.
        if !peer_eof && to_channel.len() < PUMP_BUF {
            match peer.read(&mut buf) {
                Ok(0) => {
                    peer_eof = true;
                    progress = true;
                }
                Ok(n) => {
                    to_channel.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                // The peer went away: nothing more to send.
                Err(_) => peer_eof = true,
            }
        }
        if !to_channel.is_empty() {
            match channel.write(&to_channel) {
                Ok(n) => {
                    to_channel.drain(..n);
                    sent += n as u64;
                    progress |= n > 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                // The command closed its stdin: what it did not read is
                // its business.
                Err(_) => to_channel.clear(),
            }
        }
        if peer_eof && to_channel.is_empty() && !eof_sent {
            match channel.send_eof() {
                Ok(()) => {
                    eof_sent = true;
                    progress = true;
                }
                Err(e) if is_would_block(&e) => {}
                Err(_) => eof_sent = true,
            }
        }
        // The command's stdout -> peer.
        if !out_eof && to_peer.len() < PUMP_BUF {
            let before = to_peer.len();
            let (_, done) = read_some(channel.stream(0), &mut buf, &mut to_peer)?;
            received += (to_peer.len() - before) as u64;
            progress |= to_peer.len() > before || done;
            out_eof = done;
        }
        if !to_peer.is_empty() {
            match peer.write(&to_peer) {
                Ok(n) => {
                    to_peer.drain(..n);
                    progress |= n > 0;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                // The peer is gone: drop what it would have read.
                Err(_) => to_peer.clear(),
            }
        }
        if out_eof && to_peer.is_empty() && !peer_shut {
            let _ = peer.shutdown(std::net::Shutdown::Write);
            peer_shut = true;
        }
        let before = stderr.len();
        let (_, err_done) = read_some(channel.stderr(), &mut buf, &mut stderr)?;
        received += (stderr.len() - before) as u64;
        progress |= stderr.len() > before;
        if over_limit(0, stderr.len(), limits.max_output).is_some() {
            return Err(DrainError::OutputLimit { stream: "stderr" });
        }
        if out_eof && err_done && peer_shut && channel.eof() {
            break;
        }
        let now = Instant::now();
        if progress {
            alive.heard(now);
            last_moved = now;
        }
        if limits
            .timeout
            .is_some_and(|t| now.duration_since(last_moved) >= t)
        {
            return Err(DrainError::Timeout);
        }
        if limits.cancellable {
            if let Some(c) = cancel::check() {
                return Err(DrainError::Cancelled(c));
            }
        }
        alive.tick(now)?;
        if !progress {
            let wait = next_wait(now, None, alive.next);
            let mut events = libc::POLLIN;
            if !to_peer.is_empty() {
                events |= libc::POLLOUT;
            }
            if peer_eof || to_channel.len() >= PUMP_BUF {
                events &= !libc::POLLIN;
            }
            let session_events = match session.block_directions() {
                BlockDirections::Outbound => libc::POLLOUT,
                BlockDirections::Both => libc::POLLIN | libc::POLLOUT,
                BlockDirections::Inbound | BlockDirections::None => libc::POLLIN,
            };
            quickack(sock);
            let mut fds = [
                libc::pollfd {
                    fd: sock,
                    events: session_events,
                    revents: 0,
                },
                libc::pollfd {
                    fd: peer.as_raw_fd(),
                    events,
                    revents: 0,
                },
            ];
            let ms = wait.as_millis().clamp(0, i32::MAX as u128) as libc::c_int;
            // SAFETY: `fds` is a valid array of two pollfds for the whole call.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
            if rc < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() != ErrorKind::Interrupted {
                    return Err(DrainError::Io(err));
                }
            } else if fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                alive.heard(Instant::now());
            }
        }
    }
    let close_deadline = after(Instant::now(), limits.close_wait);
    let closed = wait_closed(session, sock, channel, close_deadline)?;
    let rc = if closed { exit_code(channel) } else { -1 };
    Ok(Finished {
        bytes_sent: sent,
        bytes_received: received,
        output: ExecOutput {
            rc,
            stdout: Vec::new(),
            stderr,
        },
    })
}

/// Run one framed command on the persistent shell's `channel`: write
/// `input` (no EOF: the shell reads the next command after it), read both
/// streams into `reader` until it has seen both markers. Same timeout and
/// keepalives as [`drain`]. `Ok(false)`: the shell's streams ended before
/// the frame did (the shell is gone); the reader holds what came.
pub fn drain_frame(
    session: &Session,
    sock: RawFd,
    channel: &mut Channel,
    input: &[u8],
    reader: &mut FrameReader,
    limits: &Limits,
) -> Result<bool, DrainError> {
    session.set_blocking(false);
    let result = drain_frame_nonblocking(session, sock, channel, input, reader, limits);
    session.set_blocking(true);
    result
}

fn drain_frame_nonblocking(
    session: &Session,
    sock: RawFd,
    channel: &mut Channel,
    input: &[u8],
    reader: &mut FrameReader,
    limits: &Limits,
) -> Result<bool, DrainError> {
    let start = Instant::now();
    let deadline = limits.timeout.map(|t| after(start, t));
    let mut alive = Keepalive::new(session, limits.keepalive, limits.keepalive_count, start);
    let mut written = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let mut chunk = Vec::new();
    let (mut out_eof, mut err_eof) = (false, false);

    loop {
        let mut progress = false;
        if written < input.len() {
            match channel.write(&input[written..]) {
                Ok(n) => {
                    written += n;
                    progress |= n > 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                // The shell closed its stdin: it is gone, which the reads
                // below will see as the end of its streams.
                Err(_) => written = input.len(),
            }
        }
        let mut got = 0;
        if !reader.stdout_done() && !out_eof {
            chunk.clear();
            let (n, eof) = read_some(channel.stream(0), &mut buf, &mut chunk)?;
            reader.push_stdout(&chunk).map_err(|e| {
                DrainError::Io(std::io::Error::new(ErrorKind::InvalidData, e.to_string()))
            })?;
            got += n;
            out_eof = eof;
        }
        if !reader.stderr_done() && !err_eof {
            chunk.clear();
            let (n, eof) = read_some(channel.stderr(), &mut buf, &mut chunk)?;
            reader.push_stderr(&chunk);
            got += n;
            err_eof = eof;
        }
        // The frame's trailer (marker and status) is not the command's
        // output: allow for it here, and check exactly once it is cut off.
        let slack = reader.trailer_room();
        let (out_len, err_len) = reader.stream_lens();
        if let Some(stream) = over_limit(
            out_len.saturating_sub(slack),
            err_len.saturating_sub(slack),
            limits.max_output,
        ) {
            return Err(DrainError::OutputLimit { stream });
        }
        if reader.done() {
            return Ok(true);
        }
        if (out_eof || reader.stdout_done()) && (err_eof || reader.stderr_done()) {
            return Ok(false);
        }
        progress |= got > 0;
        if got > 0 {
            alive.heard(Instant::now());
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Err(DrainError::Timeout);
        }
        if limits.cancellable {
            if let Some(c) = cancel::check() {
                return Err(DrainError::Cancelled(c));
            }
        }
        alive.tick(now)?;
        if !progress {
            let wait = next_wait(now, deadline, alive.next);
            if wait_socket(session, sock, wait)? {
                alive.heard(Instant::now());
            }
        }
    }
}

/// `now + d`, or a century from now when `d` is beyond what an `Instant`
/// can hold: timeouts come from users (`--command-timeout`, ssh config)
/// and `Instant + Duration` panics on overflow.
pub fn after(now: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 86_400);
    now.checked_add(d)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}

/// Which stream, if any, printed more than `limit` bytes.
pub fn over_limit(stdout: usize, stderr: usize, limit: u64) -> Option<&'static str> {
    if stdout as u64 > limit {
        Some("stdout")
    } else if stderr as u64 > limit {
        Some("stderr")
    } else {
        None
    }
}

/// The exit code of a channel whose streams have ended, once the server
/// has closed it (bounded by `within`); `-1` when it did not say.
pub fn close_and_exit_code(
    session: &Session,
    sock: RawFd,
    channel: &mut Channel,
    within: Duration,
) -> i32 {
    session.set_blocking(false);
    let closed =
        wait_closed(session, sock, channel, after(Instant::now(), within)).unwrap_or(false);
    session.set_blocking(true);
    if closed {
        exit_code(channel)
    } else {
        -1
    }
}

/// Give up on a command: close our side and wait briefly for the server to
/// agree, so the session can carry the next command. `false` when the
/// channel could not be closed in `within`; the session is then suspect.
pub fn abandon(session: &Session, sock: RawFd, channel: &mut Channel, within: Duration) -> bool {
    session.set_blocking(false);
    let deadline = after(Instant::now(), within);
    let closed = wait_closed(session, sock, channel, deadline).unwrap_or(false);
    session.set_blocking(true);
    closed
}

/// Send our close and wait for the server's, bounded by `deadline`.
/// libssh2's close returns only once the server's close has arrived, and
/// the exit status travels before it.
fn wait_closed(
    session: &Session,
    sock: RawFd,
    channel: &mut Channel,
    deadline: Instant,
) -> Result<bool, DrainError> {
    let mut buf = [0u8; 16 * 1024];
    // Bounded by the deadline; each turn either makes progress or polls.
    loop {
        match channel.close() {
            Ok(()) => return Ok(true),
            Err(e) if is_would_block(&e) => {}
            Err(_) => return Ok(false),
        }
        // Unread output of an abandoned command would hold the close up
        // behind a full window; throw it away.
        let mut sink = Vec::new();
        read_some(channel.stream(0), &mut buf, &mut sink)?;
        read_some(channel.stderr(), &mut buf, &mut sink)?;
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        if sink.is_empty() {
            wait_socket(session, sock, (deadline - now).min(MAX_POLL))?;
        }
    }
}

/// Run one libssh2 call to completion in non-blocking mode, waiting on the
/// socket between tries, until `deadline`. Used for channel open and exec so
/// every wait is ours: see [`quickack`] for why that matters.
pub fn complete<T>(
    session: &Session,
    sock: RawFd,
    deadline: Instant,
    mut call: impl FnMut() -> Result<T, ssh2::Error>,
) -> Result<T, ssh2::Error> {
    session.set_blocking(false);
    let result = loop {
        match call() {
            Err(e) if is_would_block(&e) => {}
            done => break done,
        }
        let now = Instant::now();
        if now >= deadline {
            break Err(ssh2::Error::new(
                ssh2::ErrorCode::Session(libssh2_sys::LIBSSH2_ERROR_TIMEOUT),
                "timed out waiting for the server",
            ));
        }
        if let Err(DrainError::Io(e)) = wait_socket(session, sock, (deadline - now).min(MAX_POLL)) {
            break Err(ssh2::Error::new(
                ssh2::ErrorCode::Session(libssh2_sys::LIBSSH2_ERROR_SOCKET_RECV),
                if e.kind() == ErrorKind::TimedOut {
                    "socket timed out"
                } else {
                    "socket error"
                },
            ));
        }
    };
    session.set_blocking(true);
    result
}

/// One non-blocking look at the persistent shell between commands: throw
/// away whatever it printed since the last command ended, and say whether
/// it is still there (its streams not at EOF).
pub fn idle_shell_alive(session: &Session, channel: &mut Channel) -> bool {
    session.set_blocking(false);
    let mut buf = [0u8; 16 * 1024];
    let mut sink = Vec::new();
    let out = read_some(channel.stream(0), &mut buf, &mut sink);
    let err = read_some(channel.stderr(), &mut buf, &mut sink);
    session.set_blocking(true);
    matches!((out, err), (Ok((_, false)), Ok((_, false)))) && !channel.eof()
}

/// One non-blocking look at an abandoned channel: `true` once the server
/// has closed it too, so freeing it will not block.
pub fn try_reap(channel: &mut Channel) -> bool {
    let mut buf = [0u8; 16 * 1024];
    let mut sink = Vec::new();
    let _ = read_some(channel.stream(0), &mut buf, &mut sink);
    let _ = read_some(channel.stderr(), &mut buf, &mut sink);
    match channel.close() {
        Ok(()) => true,
        Err(e) => !is_would_block(&e),
    }
}

/// Read what is available from one stream into `into`. Returns the bytes
/// read and whether the stream is at its end (a read returned 0 bytes).
fn read_some(
    mut stream: ssh2::Stream,
    buf: &mut [u8],
    into: &mut Vec<u8>,
) -> Result<(usize, bool), DrainError> {
    let mut total = 0;
    // A few reads per turn keep a fast producer from starving the other
    // stream while still moving whole windows at a time.
    for _ in 0..16 {
        match stream.read(buf) {
            Ok(0) => return Ok((total, true)),
            Ok(n) => {
                into.extend_from_slice(&buf[..n]);
                total += n;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok((total, false)),
            Err(e) => return Err(DrainError::Io(e)),
        }
    }
    Ok((total, false))
}

fn is_would_block(e: &ssh2::Error) -> bool {
    e.code() == ssh2::ErrorCode::Session(libssh2_sys::LIBSSH2_ERROR_EAGAIN)
}

/// The command's exit code; a command killed by a signal gets 128+N as a
/// shell would report it.
fn exit_code(channel: &Channel) -> i32 {
    if let Ok(sig) = channel.exit_signal() {
        if let Some(name) = sig.exit_signal {
            return 128 + signal_number(&name);
        }
    }
    channel.exit_status().unwrap_or(-1)
}

fn signal_number(name: &str) -> i32 {
    match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "ABRT" => 6,
        "FPE" => 8,
        "KILL" => 9,
        "SEGV" => 11,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "USR1" => 10,
        "USR2" => 12,
        _ => 127,
    }
}

fn next_wait(now: Instant, deadline: Option<Instant>, keepalive: Option<Instant>) -> Duration {
    let mut wait = MAX_POLL;
    for t in [deadline, keepalive].into_iter().flatten() {
        wait = wait.min(t.saturating_duration_since(now));
    }
    wait
}

/// Wait until the socket is ready in the direction libssh2 is blocked on,
/// or `wait` passes. Returns whether it became readable.
fn wait_socket(session: &Session, sock: RawFd, wait: Duration) -> Result<bool, DrainError> {
    let events = match session.block_directions() {
        BlockDirections::Outbound => libc::POLLOUT,
        BlockDirections::Both => libc::POLLIN | libc::POLLOUT,
        BlockDirections::Inbound | BlockDirections::None => libc::POLLIN,
    };
    quickack(sock);
    let mut fds = [libc::pollfd {
        fd: sock,
        events,
        revents: 0,
    }];
    let ms = wait.as_millis().clamp(0, i32::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a valid array of one pollfd for the whole call.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        if err.kind() == ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(DrainError::Io(err));
    }
    Ok(rc > 0 && fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
}

/// Keepalives during a long, quiet command, and the verdict that the peer
/// is gone when nothing at all comes back for several intervals.
struct Keepalive<'a> {
    session: &'a Session,
    interval: Duration,
    /// Intervals without a word from the peer that mean it is gone, like
    /// OpenSSH's `ServerAliveCountMax`.
    count_max: u32,
    next: Option<Instant>,
    last_heard: Instant,
}

impl<'a> Keepalive<'a> {
    fn new(session: &'a Session, interval: Duration, count_max: u32, now: Instant) -> Self {
        let next = (!interval.is_zero()).then(|| after(now, interval));
        Keepalive {
            session,
            interval,
            count_max: count_max.max(1),
            next,
            last_heard: now,
        }
    }

    fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    fn tick(&mut self, now: Instant) -> Result<(), DrainError> {
        let Some(next) = self.next else {
            return Ok(());
        };
        if now < next {
            return Ok(());
        }
        if now.duration_since(self.last_heard) > self.interval * self.count_max {
            return Err(DrainError::Io(std::io::Error::new(
                ErrorKind::TimedOut,
                format!(
                    "no answer to {} keepalives in {}s",
                    self.count_max,
                    (self.interval * self.count_max).as_secs()
                ),
            )));
        }
        match self.session.keepalive_send() {
            Ok(_) => {}
            Err(e) if is_would_block(&e) => {}
            Err(e) => return Err(DrainError::Io(e.into())),
        }
        self.next = Some(after(now, self.interval));
        Ok(())
    }
}

/// Ask the kernel to acknowledge the next segments at once. sshd does not set
/// TCP_NODELAY on non-interactive sessions, so each of its small replies
/// (exec reply, output, EOF, exit status, close) waits under Nagle for our
/// ACK, which Linux delays by 40 ms. Quick-ack mode does not stick, so this is
/// set again before every wait.
pub fn quickack(sock: RawFd) {
    #[cfg(target_os = "linux")]
    {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads `one` for the given length; a failure
        // only costs latency.
        unsafe {
            libc::setsockopt(
                sock,
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = sock;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--command-timeout 18446744073709551615` used to panic adding the
    /// timeout to the clock.
    #[test]
    fn deadlines_from_huge_timeouts_do_not_overflow() {
        let now = Instant::now();
        assert!(after(now, Duration::MAX) > now + Duration::from_secs(86_400 * 365));
        assert_eq!(
            after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
    }

    #[test]
    fn over_limit_names_the_stream() {
        assert_eq!(over_limit(10, 10, 10), None);
        assert_eq!(over_limit(11, 0, 10), Some("stdout"));
        assert_eq!(over_limit(0, 11, 10), Some("stderr"));
    }
}
