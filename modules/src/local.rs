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
        let mut stderr_pipe = child.stderr.take();
        let err_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(p) = stderr_pipe.as_mut() {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        });
        let mut stdout = Vec::new();
        if let Some(mut p) = child.stdout.take() {
            p.read_to_end(&mut stdout)?;
        }
        let status = child.wait()?;
        if let Some(w) = writer {
            let _ = w.join();
        }
        let stderr = err_reader.join().unwrap_or_default();
        Ok(ExecOutput {
            rc: status.code().unwrap_or(-1),
            stdout,
            stderr,
        })
    }
}
