//! The `Host` trait: the only way a module touches a machine.
//!
//! A transport (local, SSH) implements [`Host::run`]; file reads and atomic
//! writes have default implementations on top of it so every transport gets
//! them, and a transport with a faster path (SFTP) may override them.
//! Become and task `environment` are applied by the engine's wrapper around
//! the transport, so modules never think about them.

use crate::shell_quote::quote;

/// What a command printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub rc: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.rc == 0
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Why a host could not do what was asked. `Unreachable` marks the host
/// unreachable for the rest of the run; the others fail only the task.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("host unreachable: {0}")]
    Unreachable(String),
    #[error("command timed out after {seconds}s")]
    Timeout { seconds: u64 },
    #[error("{action} failed on the host (rc={rc}): {stderr}")]
    Command {
        action: &'static str,
        rc: i32,
        stderr: String,
    },
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Ownership and permissions applied to a file before it is renamed into place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileAttrs {
    pub owner: Option<String>,
    pub group: Option<String>,
    /// Numeric (`0644`) or symbolic (`u=rw,g=r`) mode, as chmod takes it.
    pub mode: Option<String>,
}

pub trait Host: Send {
    /// The inventory name of the host, for messages.
    fn name(&self) -> &str;

    /// Run `script` with `/bin/sh -c` on the host, feeding `stdin` when given.
    fn run(&mut self, script: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, HostError>;

    /// Read a whole file. `Ok(None)` when it does not exist.
    fn read_file(&mut self, path: &str) -> Result<Option<Vec<u8>>, HostError> {
        let p = quote(path);
        let out = self.run(
            &format!("if [ -e {p} ]; then cat -- {p}; else exit 66; fi"),
            None,
        )?;
        match out.rc {
            0 => Ok(Some(out.stdout)),
            66 => Ok(None),
            rc => Err(HostError::Command {
                action: "read file",
                rc,
                stderr: out.stderr_str(),
            }),
        }
    }

    /// Write a file atomically: a temp file in the same directory gets the
    /// content, owner, group and mode, then is renamed over `path`. A reader
    /// never sees a half-written file, and a failed write leaves the old one.
    fn write_file(
        &mut self,
        path: &str,
        content: &[u8],
        attrs: &FileAttrs,
    ) -> Result<(), HostError> {
        let p = quote(path);
        let mut script = format!(
            "set -e; d=$(dirname -- {p}); t=$(mktemp \"$d/.herd.XXXXXX\"); \
             trap 'rm -f \"$t\"' EXIT; cat > \"$t\"; "
        );
        // A replaced file keeps its owner and group unless others are given,
        // as an in-place edit would (failing quietly when not root).
        script.push_str(&format!(
            "if [ -e {p} ]; then chown --reference={p} \"$t\" 2>/dev/null || true; fi; "
        ));
        match (&attrs.owner, &attrs.group) {
            (Some(o), Some(g)) => {
                script.push_str(&format!("chown {}:{} \"$t\"; ", quote(o), quote(g)))
            }
            (Some(o), None) => script.push_str(&format!("chown {} \"$t\"; ", quote(o))),
            (None, Some(g)) => script.push_str(&format!("chgrp {} \"$t\"; ", quote(g))),
            (None, None) => {}
        }
        // Mode last: chown clears setuid/setgid bits. Keep the mode of a file
        // being replaced unless a mode is given, as cp does.
        match &attrs.mode {
            Some(mode) => script.push_str(&format!("chmod {} \"$t\"; ", quote(mode))),
            None => script.push_str(&format!(
                "if [ -e {p} ]; then chmod --reference={p} \"$t\"; else chmod 0644 \"$t\"; fi; "
            )),
        }
        script.push_str(&format!("mv -f \"$t\" {p}; trap - EXIT"));
        let out = self.run(&script, Some(content))?;
        if out.success() {
            Ok(())
        } else {
            Err(HostError::Command {
                action: "write file",
                rc: out.rc,
                stderr: out.stderr_str(),
            })
        }
    }
}
