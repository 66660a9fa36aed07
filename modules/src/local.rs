//! The local transport: runs scripts on the controller itself with `/bin/sh`.
//! Used for `connection: local` and `localhost`, and by the modules' own tests.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use crate::host::{ExecOutput, Host, HostError};

pub struct LocalHost {
    name: String,
}

impl LocalHost {
    pub fn new(name: impl Into<String>) -> Self {
        LocalHost { name: name.into() }
    }
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
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out_reader = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let err_reader = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if let Some(cancel) = crate::cancel::check() {
                stop(&mut child);
                // The pipe threads end when the group's last writer is gone.
                return Err(cancel.into_error());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        if let Some(w) = writer {
            let _ = w.join();
        }
        let stdout = out_reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        Ok(ExecOutput {
            rc: status.code().unwrap_or(-1),
            stdout,
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
}
