//! The local transport: runs scripts on the controller itself with `/bin/sh`.
//! Used for `connection: local` and `localhost`, and by the modules' own tests.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use crate::host::{ExecOutput, Host, HostError, DEFAULT_MAX_OUTPUT};

pub struct LocalHost {
    name: String,
    /// Bytes a command may print on each stream (see [`DEFAULT_MAX_OUTPUT`]).
    max_output: u64,
}

impl LocalHost {
    pub fn new(name: impl Into<String>) -> Self {
        LocalHost {
            name: name.into(),
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }

    /// The same host with another per-stream output limit.
    pub fn with_max_output(mut self, max_output: u64) -> Self {
        self.max_output = max_output;
        self
    }
}

/// Read `pipe` to its end, keeping at most `limit` bytes. `true` when the
/// stream went past the limit: reading stops and the pipe is dropped, so a
/// writer still at it gets SIGPIPE instead of filling our memory.
fn read_bounded(pipe: impl Read, limit: u64, into: &mut Vec<u8>) -> std::io::Result<bool> {
    pipe.take(limit.saturating_add(1)).read_to_end(into)?;
    if into.len() as u64 > limit {
        into.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        return Ok(true);
    }
    Ok(false)
}

impl Host for LocalHost {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&mut self, script: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, HostError> {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // Feed stdin from its own thread and drain stderr from another, so a
        // child that fills one pipe while we wait on the other cannot deadlock.
        let writer = match (stdin, child.stdin.take()) {
            (Some(data), Some(mut pipe)) => {
                let data = data.to_vec();
                Some(std::thread::spawn(move || {
                    // A child that exits without reading stdin is not an error here.
                    let _ = pipe.write_all(&data);
                }))
            }
            _ => None,
        };
        let limit = self.max_output;
        let stderr_pipe = child.stderr.take();
        let err_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let over = match stderr_pipe {
                Some(p) => read_bounded(p, limit, &mut buf).unwrap_or(false),
                None => false,
            };
            (buf, over)
        });
        let mut stdout = Vec::new();
        let stdout_over = match child.stdout.take() {
            Some(p) => read_bounded(p, limit, &mut stdout)?,
            None => false,
        };
        if stdout_over {
            // Stop it rather than wait for it: the shell dies here, and a
            // command it started dies of SIGPIPE at its next write.
            let _ = child.kill();
        }
        let status = child.wait()?;
        if let Some(w) = writer {
            let _ = w.join();
        }
        let (stderr, stderr_over) = err_reader.join().unwrap_or_default();
        if stdout_over || stderr_over {
            return Err(HostError::OutputLimit {
                stream: if stdout_over { "stdout" } else { "stderr" },
                limit,
            });
        }
        Ok(ExecOutput {
            rc: status.code().unwrap_or(-1),
            stdout,
            stderr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether process `pid` still exists (a zombie counts as gone).
    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
    }

    /// `cat /dev/zero` used to fill the controller's memory; it is now
    /// stopped at the limit, on either stream, and not left running.
    #[test]
    fn output_past_the_limit_stops_the_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut host = LocalHost::new("t").with_max_output(1024 * 1024);
        for (script, stream) in [
            ("echo $$ > {pid}; exec cat /dev/zero", "stdout"),
            ("echo $$ > {pid}; exec cat /dev/zero >&2", "stderr"),
            // A child of the shell, not the shell itself.
            ("sh -c 'echo $$ > {pid}; exec yes'; echo after", "stdout"),
        ] {
            let pid_file = dir.path().join("pid");
            let script = script.replace("{pid}", &pid_file.display().to_string());
            let started = std::time::Instant::now();
            let err = host.run(&script, None).expect_err("over the limit");
            assert!(
                matches!(err, HostError::OutputLimit { stream: s, limit: 1_048_576 } if s == stream),
                "{script}: {err}"
            );
            assert!(started.elapsed() < std::time::Duration::from_secs(30));
            let pid = std::fs::read_to_string(&pid_file).expect("pid");
            let pid = pid.trim();
            // SIGPIPE or the kill ends it; give the kernel a moment.
            let gone = (0..100).any(|_| {
                std::thread::sleep(std::time::Duration::from_millis(20));
                !alive(pid)
            });
            assert!(gone, "{script}: process {pid} still runs");
        }
        // Exactly at the limit is fine.
        let out = host
            .run("head -c 1048576 /dev/zero", None)
            .expect("at the limit");
        assert_eq!(out.stdout.len(), 1_048_576);
    }
}
