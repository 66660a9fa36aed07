//! The persistent remote shell's wire format: how a command is framed on
//! the shell's stdin and how its end is found in the shell's output.
//!
//! Opening an exec channel costs the target a fork of sshd, a login shell
//! and `/bin/sh` (about 4 ms of CPU on a small host); running the same
//! command from a `/bin/sh` that stays open for the whole run costs one
//! fork and exec of `/bin/sh` (about 0.6 ms). So the SSH transport keeps one
//! `/bin/sh` per session on its own channel and writes each command to it:
//!
//! ```text
//! /bin/sh -c '<script>' </dev/null; printf '%s %d\n' MARKER "$?"; printf '%s\n' MARKER >&2
//! ```
//!
//! The command runs in its own `sh -c` (its own `$$`, `exit`, `set -e`,
//! traps and syntax errors stay its own), with stdin from `/dev/null` so it
//! can never read the frames that follow. Its stdout and stderr reach the
//! channel's two streams unchanged; after it exits the shell prints the
//! marker and the exit status on stdout, and the marker on stderr. The
//! marker is fresh for every command and made of 128 random bits, and it
//! never appears in anything the command can read (not in its argv, its
//! environment or its stdin), so output cannot end a frame early: binary
//! output, output without a final newline and output that mimics the frame
//! format all arrive intact. [`FrameReader`] finds the two markers, however
//! the streams are cut into reads.
//!
//! What this changes against one exec channel per command: a process the
//! command leaves running in the background that keeps writing to the
//! inherited stdout would have its later output counted to a later
//! command (an exec channel would instead wait until it exits); and the
//! command's parent (`$PPID`) is the persistent shell, not sshd. Commands
//! that need stdin keep their own exec channel.

use std::sync::atomic::{AtomicU64, Ordering};

use herdsman_modules::{quote, ExecOutput};

/// The persistent shell; the login shell runs it (`$SHELL -c /bin/sh`).
pub const SHELL_COMMAND: &str = "/bin/sh";

/// One command's frame and the marker that ends it.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Bytes to write to the shell's stdin.
    pub input: Vec<u8>,
    pub marker: Vec<u8>,
}

/// Frame `script` for the persistent shell under a fresh marker.
pub fn frame(script: &str) -> Frame {
    frame_with_marker(script, &fresh_marker())
}

fn frame_with_marker(script: &str, marker: &str) -> Frame {
    let input = format!(
        "/bin/sh -c {} </dev/null; printf '%s %d\\n' {marker} \"$?\"; printf '%s\\n' {marker} >&2\n",
        quote(script)
    );
    Frame {
        input: input.into_bytes(),
        marker: marker.as_bytes().to_vec(),
    }
}

/// `herd-` and 32 hex digits: 64 bits from the process's random seed and 64
/// from a keyed hash of a counter and the clock, so two markers never repeat
/// and a command cannot guess the next one.
fn fresh_marker() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // RandomState's keys come from the operating system's random source.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.write_u64(nanos);
    format!("herd-{:016x}{:016x}", seed(), h.finish())
}

/// 64 random bits, read once per process.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    })
}

/// Why a frame's output could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("the remote shell printed a malformed end of command: {0:?}")]
    BadTrailer(String),
}

/// Collects one command's stdout and stderr from the shell's streams until
/// both markers have been seen.
#[derive(Debug)]
pub struct FrameReader {
    marker: Vec<u8>,
    stdout: Stream,
    stderr: Stream,
    rc: Option<i32>,
}

#[derive(Debug, Default)]
struct Stream {
    data: Vec<u8>,
    /// Where the marker starts, once seen.
    end: Option<usize>,
}

impl Stream {
    /// Append `chunk` and look for `marker` in what could contain it now.
    fn push(&mut self, chunk: &[u8], marker: &[u8]) {
        let before = self.data.len();
        self.data.extend_from_slice(chunk);
        if self.end.is_none() {
            // A marker may straddle the previous chunk and this one.
            let from = before.saturating_sub(marker.len() - 1);
            self.end = find(&self.data[from..], marker).map(|i| from + i);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let last_start = haystack.len() - needle.len();
    let mut i = 0;
    while i <= last_start {
        match haystack[i..=last_start].iter().position(|&b| b == first) {
            None => return None,
            Some(off) => {
                let at = i + off;
                if &haystack[at..at + needle.len()] == needle {
                    return Some(at);
                }
                i = at + 1;
            }
        }
    }
    None
}

impl FrameReader {
    pub fn new(marker: &[u8]) -> FrameReader {
        assert!(!marker.is_empty(), "a frame marker is never empty");
        FrameReader {
            marker: marker.to_vec(),
            stdout: Stream::default(),
            stderr: Stream::default(),
            rc: None,
        }
    }

    pub fn push_stdout(&mut self, chunk: &[u8]) -> Result<(), FrameError> {
        self.stdout.push(chunk, &self.marker);
        self.parse_rc()
    }

    pub fn push_stderr(&mut self, chunk: &[u8]) {
        self.stderr.push(chunk, &self.marker);
    }

    /// Whether the stdout trailer is complete (so no more stdout belongs to
    /// this command).
    pub fn stdout_done(&self) -> bool {
        self.rc.is_some()
    }

    pub fn stderr_done(&self) -> bool {
        self.stderr.end.is_some()
    }

    /// Both markers seen: the command is over and all its output is here.
    pub fn done(&self) -> bool {
        self.stdout_done() && self.stderr_done()
    }

    /// Bytes collected so far on stdout and on stderr, trailers included.
    pub fn stream_lens(&self) -> (usize, usize) {
        (self.stdout.data.len(), self.stderr.data.len())
    }

    /// The most a stream's trailer adds to the command's own output: the
    /// marker, a space, a status and a newline.
    pub fn trailer_room(&self) -> usize {
        self.marker.len() + 24
    }

    /// Bytes collected so far on both streams.
    pub fn bytes(&self) -> u64 {
        (self.stdout.data.len() + self.stderr.data.len()) as u64
    }

    /// ` <rc>\n` follows the stdout marker.
    fn parse_rc(&mut self) -> Result<(), FrameError> {
        let Some(end) = self.stdout.end else {
            return Ok(());
        };
        if self.rc.is_some() {
            return Ok(());
        }
        let rest = &self.stdout.data[end + self.marker.len()..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            // A status is a few digits; more without a newline is not ours.
            if rest.len() > 16 {
                return Err(FrameError::BadTrailer(
                    String::from_utf8_lossy(rest).into_owned(),
                ));
            }
            return Ok(());
        };
        let text = String::from_utf8_lossy(&rest[..nl]).into_owned();
        match text.strip_prefix(' ').and_then(|t| t.parse::<i32>().ok()) {
            Some(rc) => {
                self.rc = Some(rc);
                Ok(())
            }
            None => Err(FrameError::BadTrailer(text)),
        }
    }

    /// The command's output: each stream up to its marker (all of it when
    /// the marker never came), and the exit status when it was reported.
    pub fn finish(self) -> (ExecOutput, Option<i32>) {
        let cut = |s: Stream| {
            let mut data = s.data;
            if let Some(end) = s.end {
                data.truncate(end);
            }
            data
        };
        let rc = self.rc;
        let output = ExecOutput {
            rc: rc.unwrap_or(-1),
            stdout: cut(self.stdout),
            stderr: cut(self.stderr),
        };
        (output, rc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = "herd-0123456789abcdef0123456789abcdef";

    /// What the shell would print for a command with this output.
    fn shell_output(stdout: &[u8], stderr: &[u8], rc: i32) -> (Vec<u8>, Vec<u8>) {
        let mut out = stdout.to_vec();
        out.extend_from_slice(format!("{M} {rc}\n").as_bytes());
        let mut err = stderr.to_vec();
        err.extend_from_slice(format!("{M}\n").as_bytes());
        (out, err)
    }

    /// Feed both streams in chunks of `size` bytes, alternating.
    fn read_in_chunks(out: &[u8], err: &[u8], size: usize) -> (ExecOutput, Option<i32>) {
        let mut r = FrameReader::new(M.as_bytes());
        let (mut o, mut e) = (out.chunks(size), err.chunks(size));
        loop {
            let a = o.next();
            let b = e.next();
            if let Some(c) = a {
                r.push_stdout(c).expect("well-formed");
            }
            if let Some(c) = b {
                r.push_stderr(c);
            }
            if a.is_none() && b.is_none() {
                break;
            }
        }
        assert!(r.done());
        r.finish()
    }

    #[test]
    fn frames_quote_the_script_and_keep_stdin_away() {
        let f = frame_with_marker("echo 'a b'; exit 3", M);
        let text = String::from_utf8(f.input).expect("utf8");
        assert_eq!(
            text,
            format!(
                "/bin/sh -c 'echo '\\''a b'\\''; exit 3' </dev/null; printf '%s %d\\n' {M} \"$?\"; printf '%s\\n' {M} >&2\n"
            )
        );
        assert_eq!(f.marker, M.as_bytes());
    }

    #[test]
    fn markers_are_fresh_and_long() {
        let a = frame("true").marker;
        let b = frame("true").marker;
        assert_ne!(a, b);
        assert_eq!(a.len(), "herd-".len() + 32);
    }

    #[test]
    fn splits_output_status_and_stderr_at_any_chunk_size() {
        let (out, err) = shell_output(b"hello\nworld", b"warn\n", 0);
        for size in [1, 2, 3, 7, 40, 41, 1 << 16] {
            let (o, rc) = read_in_chunks(&out, &err, size);
            assert_eq!(rc, Some(0), "chunk {size}");
            assert_eq!(o.stdout, b"hello\nworld", "chunk {size}");
            assert_eq!(o.stderr, b"warn\n", "chunk {size}");
        }
    }

    #[test]
    fn non_zero_and_signal_statuses() {
        for rc in [1, 2, 97, 127, 143, 255] {
            let (out, err) = shell_output(b"", b"", rc);
            let (o, got) = read_in_chunks(&out, &err, 5);
            assert_eq!((got, o.rc), (Some(rc), rc));
            assert!(o.stdout.is_empty() && o.stderr.is_empty());
        }
    }

    #[test]
    fn output_that_looks_like_a_frame_stays_output() {
        // Another marker, a marker prefix, and our trailer's shape.
        let fake = b"herd-ffffffffffffffffffffffffffffffff 0\nherd-0123456789ab 1\n herd- 0\n";
        let (out, err) = shell_output(fake, fake, 3);
        for size in [1, 4, 1 << 16] {
            let (o, rc) = read_in_chunks(&out, &err, size);
            assert_eq!(rc, Some(3));
            assert_eq!(o.stdout, fake);
            assert_eq!(o.stderr, fake);
        }
    }

    #[test]
    fn binary_output_passes_untouched() {
        let bin: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let (out, err) = shell_output(&bin, &bin[..77], 0);
        let (o, _) = read_in_chunks(&out, &err, 333);
        assert_eq!(o.stdout, bin);
        assert_eq!(o.stderr, &bin[..77]);
    }

    #[test]
    fn huge_output_on_both_streams() {
        let big: Vec<u8> = b"0123456789abcdef\n".repeat(600_000); // ~10 MB
        let (out, err) = shell_output(&big, &big, 0);
        let (o, rc) = read_in_chunks(&out, &err, 32 * 1024);
        assert_eq!(rc, Some(0));
        assert_eq!(o.stdout.len(), big.len());
        assert!(o.stdout == big && o.stderr == big);
    }

    #[test]
    fn not_done_until_both_markers_and_the_status_line() {
        let mut r = FrameReader::new(M.as_bytes());
        r.push_stdout(format!("x{M} 4").as_bytes()).expect("ok");
        assert!(!r.stdout_done(), "no newline after the status yet");
        r.push_stdout(b"2\n").expect("ok");
        assert!(r.stdout_done() && !r.done());
        r.push_stderr(format!("{M}\n").as_bytes());
        assert!(r.done());
        let (o, rc) = r.finish();
        assert_eq!((o.stdout.as_slice(), rc), (&b"x"[..], Some(42)));
    }

    #[test]
    fn a_stream_that_ends_early_keeps_what_it_had() {
        let mut r = FrameReader::new(M.as_bytes());
        r.push_stdout(b"partial").expect("ok");
        r.push_stderr(b"oops");
        assert!(!r.done());
        let (o, rc) = r.finish();
        assert_eq!(
            (o.stdout.as_slice(), o.stderr.as_slice()),
            (&b"partial"[..], &b"oops"[..])
        );
        assert_eq!((rc, o.rc), (None, -1));
    }

    #[test]
    fn a_garbled_status_is_an_error() {
        let mut r = FrameReader::new(M.as_bytes());
        let err = r
            .push_stdout(format!("{M} x1\n").as_bytes())
            .expect_err("bad");
        assert!(matches!(err, FrameError::BadTrailer(t) if t == " x1"));
        let mut r = FrameReader::new(M.as_bytes());
        let long = format!("{M} 1234567890123456789");
        assert!(r.push_stdout(long.as_bytes()).is_err());
    }
}
