//! `TaskHost`: a transport seen through one task's `become` and `environment`.

use herdsman_modules::{quote, ExecOutput, Host, HostError};

pub struct Become {
    pub user: String,
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

impl Host for TaskHost<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn run(&mut self, script: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, HostError> {
        let script = format!("{}{}", self.env_prefix, script);
        match &self.become_ {
            None => self.inner.run(&script, stdin),
            Some(b) => {
                // sudo -n never prompts; the environment goes inside so sudo's
                // env_reset cannot drop it.
                let wrapped = format!(
                    "if [ \"$(id -un)\" = {user} ]; then /bin/sh -c {s}; else sudo -n -H -u {user} -- /bin/sh -c {s}; fi",
                    user = quote(&b.user),
                    s = quote(&script)
                );
                self.inner.run(&wrapped, stdin)
            }
        }
    }
}
