//! `TaskHost`: a transport seen through one task's `become` and `environment`.
//! Every command and file transfer of a module passes through here, whatever
//! the transport, so this is also where `--profile` counts round trips.

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use herdsman_modules::host::{default_read_file, default_write_file};
use herdsman_modules::shell_quote::{export, QuoteError};
use herdsman_modules::{quote, ExecOutput, FileAttrs, Host, HostError};

pub struct Become {
    pub user: String,
    /// Fed to `sudo -S` on stdin, ahead of the command's own input; never
    /// put on a command line.
    pub password: Option<String>,
}

/// How to become: `become_method` and `become_flags`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BecomeHow {
    pub method: BecomeMethod,
    /// Replaces the method's default flags (sudo: `-H`), as in Ansible.
    pub flags: Option<String>,
    /// `become_exe`: the program to run instead of `sudo` or `su`.
    pub exe: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BecomeMethod {
    #[default]
    Sudo,
    /// `su USER -c CMD`: works without a prompt when the connecting user is
    /// root; a password would be asked on a terminal, which herd does not
    /// drive.
    Su,
}

pub struct TaskHost<'a> {
    inner: &'a mut dyn Host,
    become_: Option<Become>,
    become_how: BecomeHow,
    /// `export` lines for the task's environment.
    env_prefix: String,
    counters: RoundTrips,
}

/// What one task cost on one host, for `--profile`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundTrips {
    /// Commands sent to the host, one round trip each (file transfers made
    /// with a command under become included).
    pub execs: u64,
    pub exec_time: Duration,
    /// Whole-file reads and writes the transport made itself (SFTP).
    pub transfers: u64,
    pub transfer_time: Duration,
}

impl<'a> TaskHost<'a> {
    /// Fails when an environment name is not a shell variable name (it
    /// would be pasted into the script: `A=1; touch /x; B` runs `touch`) or
    /// a value holds a NUL. The engine checks names earlier, with the
    /// task's location; this is the last line.
    pub fn new(
        inner: &'a mut dyn Host,
        become_: Option<Become>,
        env: &[(String, String)],
    ) -> Result<Self, QuoteError> {
        let env_prefix = env
            .iter()
            .map(|(k, v)| export(k, v))
            .collect::<Result<String, _>>()?;
        Ok(TaskHost {
            inner,
            become_,
            become_how: BecomeHow::default(),
            env_prefix,
            counters: RoundTrips::default(),
        })
    }

    /// Use `become_method`/`become_flags` other than plain sudo.
    pub fn set_become_how(&mut self, how: BecomeHow) {
        self.become_how = how;
    }

    /// Round trips made through this wrapper so far.
    pub fn counters(&self) -> RoundTrips {
        self.counters
    }

    fn note_transfer(&mut self, started: Instant) {
        self.counters.transfers += 1;
        self.counters.transfer_time += started.elapsed();
    }
}

/// su's words when it wanted a password it could not read.
fn su_wants_password(stderr: &[u8]) -> bool {
    let text = String::from_utf8_lossy(stderr);
    text.contains("Authentication failure") || text.contains("must be run from a terminal")
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
        // A NUL would cut the script short on its way to `sh -c` (or fail
        // the exec), so whatever came after it would silently not run.
        if script.contains('\0') {
            return Err(HostError::Quote(QuoteError::Nul));
        }
        let started = Instant::now();
        let out = self.run_uncounted(script, stdin);
        self.counters.execs += 1;
        self.counters.exec_time += started.elapsed();
        // -vvvv: each round trip, by size and outcome; never the script's
        // text, which can hold secrets.
        tracing::debug!(
            host = self.inner.name(),
            bytes = script.len(),
            rc = out.as_ref().map_or(-1, |o| o.rc),
            ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "command"
        );
        out
    }

    /// Without become the transport's own file path is used (SFTP over SSH:
    /// no shell, no stdin copy); with become, writes must run as the become
    /// user, so they go through `run` like any other command.
    fn read_file(&mut self, path: &str) -> Result<Option<Vec<u8>>, HostError> {
        if self.become_.is_none() {
            let started = Instant::now();
            let out = self.inner.read_file(path);
            self.note_transfer(started);
            out
        } else {
            default_read_file(self, path)
        }
    }

    fn write_file(
        &mut self,
        path: &str,
        content: &[u8],
        attrs: &FileAttrs,
    ) -> Result<(), HostError> {
        if self.become_.is_none() {
            let started = Instant::now();
            let out = self.inner.write_file(path, content, attrs);
            self.note_transfer(started);
            out
        } else {
            default_write_file(self, path, content, attrs)
        }
    }

    /// The program on the host is the controller program's own command
    /// (`rsync --server ...`): become and the environment are not put
    /// around it, as Ansible's ssh would not (become goes in the command,
    /// `rsync_path: sudo rsync`).
    fn stream(&mut self, command: &str, peer: UnixStream) -> Result<ExecOutput, HostError> {
        let started = Instant::now();
        let out = self.inner.stream(command, peer);
        self.counters.execs += 1;
        self.counters.exec_time += started.elapsed();
        out
    }
}

impl TaskHost<'_> {
    fn run_uncounted(
        &mut self,
        script: &str,
        stdin: Option<&[u8]>,
    ) -> Result<ExecOutput, HostError> {
        let script = format!("{}{}", self.env_prefix, script);
        match &self.become_ {
            None => self.inner.run(&script, stdin),
            Some(b) if self.become_how.method == BecomeMethod::Su => {
                let flags = self.become_how.flags.as_deref().unwrap_or("");
                let su = self.become_how.exe.as_deref().map_or("su".into(), quote);
                let wrapped = format!(
                    "if [ \"$(id -un)\" = {user} ]; then /bin/sh -c {s}; else {su} {flags} {user} -c {inner}; fi",
                    user = quote(&b.user),
                    s = quote(&script),
                    inner = quote(&format!("/bin/sh -c {}", quote(&script))),
                );
                let out = self.inner.run(&wrapped, stdin)?;
                if out.rc != 0 && su_wants_password(&out.stderr) {
                    return Err(HostError::Command {
                        action: "become",
                        rc: out.rc,
                        stderr: format!(
                            "su needs a password typed on a terminal to become `{}`, which herd cannot give it: connect as root, or use become_method sudo",
                            b.user
                        ),
                    });
                }
                Ok(out)
            }
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
                // `become_flags` replace sudo's default `-H`.
                let flags = self.become_how.flags.as_deref().unwrap_or("-H");
                let exe = self.become_how.exe.as_deref().map_or("sudo".into(), quote);
                let (same_user, sudo, input) = match &b.password {
                    None => ("", format!("{exe} -n"), stdin.map(<[u8]>::to_vec)),
                    // sudo reads the password up to the first newline:
                    // the rest would become the command's input.
                    Some(pw) if pw.contains(['\n', '\0']) => return Err(HostError::Command {
                        action: "become",
                        rc: -1,
                        stderr:
                            "the become password contains a newline or NUL, which sudo cannot read"
                                .into(),
                    }),
                    Some(pw) => {
                        let mut input = Vec::with_capacity(pw.len() + 1);
                        input.extend_from_slice(pw.as_bytes());
                        input.push(b'\n');
                        input.extend_from_slice(stdin.unwrap_or_default());
                        (
                            "IFS= read -r _; ",
                            format!("{exe} -S -k -p ''"),
                            Some(input),
                        )
                    }
                };
                let wrapped = format!(
                    "if [ \"$(id -un)\" = {user} ]; then {same_user}/bin/sh -c {s}; else {sudo} {flags} -u {user} -- /bin/sh -c {s}; fi",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every command with success and counts them.
    struct Fake {
        runs: usize,
    }

    impl Host for Fake {
        fn name(&self) -> &str {
            "fake"
        }
        fn run(&mut self, _script: &str, _stdin: Option<&[u8]>) -> Result<ExecOutput, HostError> {
            self.runs += 1;
            Ok(ExecOutput::default())
        }
    }

    #[test]
    fn profile_counts_commands_and_transport_transfers_apart() {
        let mut fake = Fake { runs: 0 };
        let mut host = TaskHost::new(&mut fake, None, &[]).expect("no environment");
        host.run("true", None).expect("run");
        host.write_file("/tmp/x", b"x", &FileAttrs::default())
            .expect("write");
        let c = host.counters();
        // The transport's own write is a transfer, not one of our commands.
        assert_eq!((c.execs, c.transfers), (1, 1));
    }

    #[test]
    fn under_become_file_writes_are_commands() {
        let mut fake = Fake { runs: 0 };
        let become_ = Some(Become {
            user: "root".into(),
            password: None,
        });
        let mut host = TaskHost::new(&mut fake, become_, &[]).expect("no environment");
        host.write_file("/tmp/x", b"x", &FileAttrs::default())
            .expect("write");
        let c = host.counters();
        assert_eq!((c.execs, c.transfers), (1, 0));
        assert_eq!(fake.runs, 1);
    }

    /// Nothing reaches the transport when a name would be pasted into the
    /// script or a NUL would cut it short.
    #[test]
    fn bad_env_names_and_nul_scripts_never_reach_the_host() {
        let mut fake = Fake { runs: 0 };
        let bad = [("A=1; touch /tmp/x; B".to_string(), "v".to_string())];
        assert!(matches!(
            TaskHost::new(&mut fake, None, &bad),
            Err(QuoteError::EnvName)
        ));
        let nul = [("A".to_string(), "a\0b".to_string())];
        assert!(matches!(
            TaskHost::new(&mut fake, None, &nul),
            Err(QuoteError::Nul)
        ));
        let mut host = TaskHost::new(&mut fake, None, &[]).expect("no environment");
        let err = host.run("echo a\0; rm -rf /", None).expect_err("refused");
        assert!(matches!(err, HostError::Quote(QuoteError::Nul)), "{err}");
        assert_eq!(fake.runs, 0);
    }

    /// A newline would end the password early and feed the rest of it to
    /// the command as input.
    #[test]
    fn a_become_password_with_a_newline_is_refused() {
        let mut fake = Fake { runs: 0 };
        let become_ = Some(Become {
            user: "root".into(),
            password: Some("pw\nrm -rf /".into()),
        });
        let mut host = TaskHost::new(&mut fake, become_, &[]).expect("no environment");
        let err = host.run("true", None).expect_err("refused");
        assert!(err.to_string().contains("newline"), "{err}");
        assert_eq!(fake.runs, 0);
    }
}
