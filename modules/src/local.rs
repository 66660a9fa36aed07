//! The local transport: runs scripts on the controller itself with `/bin/sh`.
//! Used for `connection: local` and `localhost`, and by the modules' own tests.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use crate::host::{ExecOutput, Host, HostError, DEFAULT_MAX_OUTPUT};

/// The controller itself as a host (`ansible_connection=local`): commands run through `/bin/sh`
/// here.
pub struct LocalHost {
    name: String,
    /// Bytes a command may print on each stream (see [`DEFAULT_MAX_OUTPUT`]).
    max_output: u64,
}

impl LocalHost {
    /// A local host called `name` (its inventory name).
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
        use std::os::unix::process::CommandExt;
        // Its own process group, so a stopped command takes its children
        // with it (see `stop`).
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
            .process_group(0)
            .spawn()?;
        // Feed stdin and drain both pipes from threads of their own, so a
        // child that fills one pipe while we wait on the other cannot
        // deadlock, and the wait below can give up on the command.
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
        // Both pipes drain in threads of their own, each keeping at most
        // `limit` bytes; the wait below can then give up on the command when
        // the run is interrupted, its deadline passes or a stream runs over.
        let limit = self.max_output;
        let over: std::sync::Arc<std::sync::Mutex<Option<&'static str>>> = Default::default();
        let drain = |pipe: Option<Box<dyn Read + Send>>, stream: &'static str| {
            let over = std::sync::Arc::clone(&over);
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(p) = pipe {
                    if read_bounded(p, limit, &mut buf).unwrap_or(false) {
                        if let Ok(mut o) = over.lock() {
                            o.get_or_insert(stream);
                        }
                    }
                }
                buf
            })
        };
        let out_reader = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            "stdout",
        );
        let err_reader = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            "stderr",
        );
        let over_stream = || over.lock().ok().and_then(|o| *o);
        // Short commands (most of a play) end within a millisecond or two:
        // look often at first, then every 20 ms, so a quick command is not
        // held up by the polling that lets a long one be stopped.
        let mut nap = std::time::Duration::from_millis(1);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if let Some(cancel) = crate::cancel::check() {
                stop(&mut child);
                // The pipe threads end when the group's last writer is gone.
                return Err(cancel.into_error());
            }
            if let Some(stream) = over_stream() {
                // Stop it rather than wait for it: a command still writing
                // would otherwise only die of SIGPIPE at its next write.
                stop(&mut child);
                return Err(HostError::OutputLimit { stream, limit });
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(std::time::Duration::from_millis(20));
        };
        if let Some(w) = writer {
            let _ = w.join();
        }
        let stdout = out_reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        if let Some(stream) = over_stream() {
            return Err(HostError::OutputLimit { stream, limit });
        }
        Ok(ExecOutput {
            rc: status.code().unwrap_or(-1),
            stdout,
            stderr,
        })
    }

    fn stream(
        &mut self,
        command: &str,
        peer: std::os::unix::net::UnixStream,
    ) -> Result<ExecOutput, HostError> {
        self.stream_local(command, peer)
    }
}

impl LocalHost {
    /// [`Host::stream`] here: the command's stdin and stdout are `peer`
    /// itself, so nothing is copied.
    fn stream_local(
        &mut self,
        command: &str,
        peer: std::os::unix::net::UnixStream,
    ) -> Result<ExecOutput, HostError> {
        use std::os::unix::process::CommandExt;
        let input = std::os::fd::OwnedFd::from(peer.try_clone()?);
        let output = std::os::fd::OwnedFd::from(peer);
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::from(input))
            .stdout(Stdio::from(output))
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()?;
        let mut stderr = Vec::new();
        if let Some(pipe) = child.stderr.take() {
            if read_bounded(pipe, self.max_output, &mut stderr)? {
                stop(&mut child);
                return Err(HostError::OutputLimit {
                    stream: "stderr",
                    limit: self.max_output,
                });
            }
        }
        let status = child.wait()?;
        Ok(ExecOutput {
            rc: status.code().unwrap_or(-1),
            stdout: Vec::new(),
            stderr,
        })
    }
}

/// Stop a command and everything it started: SIGTERM to its process
/// group, SIGKILL to what is left after a second.
fn stop(child: &mut std::process::Child) {
    let Ok(pgid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: plain system calls on a process group we created.
    unsafe {
        libc::killpg(pgid, libc::SIGTERM);
    }
    for _ in 0..50 {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: as above; children of the command may outlive it.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_command_past_the_task_deadline_is_stopped_with_its_children() {
        let mut host = LocalHost::new("local");
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pid");
        let started = Instant::now();
        let err = {
            let _deadline = crate::cancel::TaskDeadline::start(1);
            host.run(
                &format!("sleep 46 & echo $! > {}; wait", pidfile.display()),
                None,
            )
            .expect_err("runs out of time")
        };
        assert!(
            matches!(err, HostError::TaskTimeout { seconds: 1 }),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        let pid = std::fs::read_to_string(&pidfile).expect("pid");
        // The background child went with the command (its process group):
        // gone, or a zombie waiting for whoever reaps orphans here, once
        // the kernel has delivered the signal (bounded wait).
        let alive = || {
            std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).is_ok_and(|stat| {
                !stat
                    .rsplit_once(") ")
                    .is_some_and(|(_, r)| r.starts_with('Z'))
            })
        };
        for _ in 0..100 {
            if !alive() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(), "the command's child {pid} still runs");
        let out = host.run("echo next", None).expect("run after");
        assert_eq!(out.stdout, b"next\n");
    }

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
