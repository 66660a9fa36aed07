//! `TaskHost`: a transport seen through one task's `become` and `environment`.

use herdsman_modules::{quote, ExecOutput, Host, HostError};

pub struct Become {
    pub user: String,
    /// Fed to `sudo -S` on stdin, ahead of the command's own input; never
    /// put on a command line.
    pub password: Option<String>,
}

pub struct TaskHost<'a> {
    inner: &'a mut dyn Host,
    become_: Option<Become>,
    /// `export` lines for the task's environment.
    env_prefix: String,
}

impl<'a> TaskHost<'a> {
    pub fn new(inner: &'a mut dyn Host, become_: Option<Become>, env: &[(String, String)]) -> Self {
        let env_prefix = env
            .iter()
            .map(|(k, v)| format!("export {}={}; ", k, quote(v)))
            .collect();
        TaskHost {
            inner,
            become_,
            env_prefix,
        }
    }
}

/// sudo's words when it would have to prompt.
fn sudo_wants_password(stderr: &[u8]) -> bool {
    let text = String::from_utf8_lossy(stderr);
    text.contains("a password is required") || text.contains("a terminal is required")
}

impl Host for TaskHost<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn run(&mut self, script: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, HostError> {
        let script = format!("{}{}", self.env_prefix, script);
        match &self.become_ {
            None => self.inner.run(&script, stdin),
            Some(b) => {
                // The environment goes inside the sudo'd shell so sudo's
                // env_reset cannot drop it. Without a password, `sudo -n`
                // fails at once instead of waiting for a prompt nobody sees.
                // With one, `-k` makes sudo always read it (a cached
                // credential would leave the password line for the command),
                // and sudo reads it one byte at a time up to the newline, so
                // the rest of stdin reaches the command untouched.
                // When the connection already is that user, sudo is skipped
                // and `read` (one byte at a time on a pipe) drops the
                // password line instead.
                let (same_user, sudo, input) = match &b.password {
                    None => ("", "sudo -n -H", stdin.map(<[u8]>::to_vec)),
                    Some(pw) => {
                        let mut input = Vec::with_capacity(pw.len() + 1);
                        input.extend_from_slice(pw.as_bytes());
                        input.push(b'\n');
                        input.extend_from_slice(stdin.unwrap_or_default());
                        ("IFS= read -r _; ", "sudo -S -k -p '' -H", Some(input))
                    }
                };
                let wrapped = format!(
                    "if [ \"$(id -un)\" = {user} ]; then {same_user}/bin/sh -c {s}; else {sudo} -u {user} -- /bin/sh -c {s}; fi",
                    user = quote(&b.user),
                    s = quote(&script)
                );
                let out = self.inner.run(&wrapped, input.as_deref())?;
                if out.rc != 0 && b.password.is_none() && sudo_wants_password(&out.stderr) {
                    return Err(HostError::Command {
                        action: "become",
                        rc: out.rc,
                        stderr: format!(
                            "sudo needs a password to become `{}`: give -K or ansible_become_password",
                            b.user
                        ),
                    });
                }
                Ok(out)
            }
        }
    }
}
