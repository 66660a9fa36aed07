//! Helpers for the modules' unit tests: drive a module through its JSON
//! face, as the engine does, on the local host; and [`FakeHost`], a
//! scripted host for modules whose real targets (Docker, Elasticsearch,
//! the kernel, a reboot) a unit test cannot touch.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::host::{default_fetch_file, default_read_file, default_write_file};
use crate::local::LocalHost;
use crate::{DynModule, ExecOutput, FetchFileError, FileAttrs, Host, HostError, Outcome, Plan};

pub(crate) fn host() -> LocalHost {
    LocalHost::new("local")
}

pub(crate) fn plan(m: &dyn DynModule, params: &Value) -> Plan {
    m.plan(params, &mut host())
        .unwrap_or_else(|e| panic!("{} plan failed: {e}", m.name()))
}

pub(crate) fn apply(m: &dyn DynModule, params: &Value, plan: Plan) -> Outcome {
    m.apply(params, plan, &mut host())
        .unwrap_or_else(|e| panic!("{} apply failed: {e}", m.name()))
}

/// The invariant every module keeps: a plan with changes, applied, leaves
/// nothing to do. Returns the first plan and the outcome.
pub(crate) fn converge(m: &dyn DynModule, params: &Value) -> (Plan, Outcome) {
    let first = plan(m, params);
    assert!(!first.is_empty(), "{}: expected changes", m.name());
    let out = apply(m, params, first.clone());
    let again = plan(m, params);
    assert!(
        again.is_empty(),
        "{}: plan after apply is not empty: {:?}",
        m.name(),
        again.changes
    );
    (first, out)
}

/// A result value by key, `Null` when missing.
pub(crate) fn get<'a>(result: &'a serde_json::Map<String, Value>, k: &str) -> &'a Value {
    result.get(k).unwrap_or(&Value::Null)
}

/// A path inside a temp dir, as a string.
pub(crate) fn path_in(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).to_string_lossy().into_owned()
}

/// A host for unit tests, scripted as facts in, commands out: each rule
/// says which commands it answers (the exact text, a prefix, a piece of
/// text or any predicate) and how (a fixed `(rc, stdout, stderr)`, or a
/// handler that may look at and change the host). It holds files in
/// memory, and records every command and every upload so a test can
/// assert on what the module sent.
///
/// A rule's handler gets the whole host, so a fake with a model of its
/// own (packages installed, a service running) keeps that model in the
/// state `S`; the host derefs to it, so a test reads and sets it as
/// `h.active = true`. Rules are tried in the order they were added; the
/// first that matches answers. A command no rule matches answers rc 0 with
/// no output, unless the host is [`strict`](FakeHost::strict) (the test
/// fails, naming the command) or runs [`over`](FakeHost::over) a real host
/// (the command goes there).
pub(crate) struct FakeHost<S = ()> {
    name: String,
    /// The model a fake keeps beyond files; what the host derefs to.
    pub state: S,
    /// The files the host holds: `read_file` and `write_file` use them
    /// (unless the host runs over a real one). Text, as the modules
    /// tested this way write only text.
    pub files: BTreeMap<String, String>,
    /// Every command run, in order, as the module sent it.
    pub scripts: Vec<String>,
    /// The stdin of each command in `scripts`, at the same index.
    pub inputs: Vec<Option<Vec<u8>>>,
    /// Every `write_file`, in order.
    pub uploads: Vec<Upload>,
    rules: Vec<Rule<S>>,
    on_write: Option<WriteHook<S>>,
    strict: bool,
    over: Option<(Box<dyn Host>, String)>,
}

/// Which commands a rule answers.
pub(crate) enum Match {
    Exact(String),
    Prefix(String),
    Contains(String),
    Any,
    When(Box<dyn Fn(&str) -> bool + Send>),
}

impl Match {
    pub(crate) fn exact(s: impl Into<String>) -> Match {
        Match::Exact(s.into())
    }
    pub(crate) fn prefix(s: impl Into<String>) -> Match {
        Match::Prefix(s.into())
    }
    pub(crate) fn contains(s: impl Into<String>) -> Match {
        Match::Contains(s.into())
    }
    pub(crate) fn when(f: impl Fn(&str) -> bool + Send + 'static) -> Match {
        Match::When(Box::new(f))
    }

    fn matches(&self, script: &str) -> bool {
        match self {
            Match::Exact(s) => script == s,
            Match::Prefix(s) => script.starts_with(s.as_str()),
            Match::Contains(s) => script.contains(s.as_str()),
            Match::Any => true,
            Match::When(f) => f(script),
        }
    }
}

/// What a handler answers: the command's output, or the host failing
/// (`HostError::Unreachable` for a host that went away).
pub(crate) type Reply = Result<ExecOutput, HostError>;

/// A computed answer: sees the whole host (its state and files), the
/// command and its stdin.
pub(crate) type Handler<S> = Box<dyn FnMut(&mut FakeHost<S>, &str, Option<&[u8]>) -> Reply + Send>;

/// What a fake does when a file is written (besides keeping it): a
/// model that reacts to a file, a log of writes among the commands.
pub(crate) type WriteHook<S> = Box<dyn FnMut(&mut FakeHost<S>, &str, &[u8]) + Send>;

enum Answer<S> {
    Fixed(ExecOutput),
    Handler(Handler<S>),
}

struct Rule<S> {
    when: Match,
    answer: Answer<S>,
    /// How many more commands it answers; `None` for any number.
    left: Option<usize>,
}

/// One `write_file` as the module made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upload {
    pub path: String,
    pub content: String,
    pub attrs: FileAttrs,
}

/// A command's output with rc 0.
pub(crate) fn ok(stdout: impl Into<Vec<u8>>) -> Reply {
    Ok(exec(0, stdout, ""))
}

/// A command's output.
pub(crate) fn exec(rc: i32, stdout: impl Into<Vec<u8>>, stderr: impl Into<Vec<u8>>) -> ExecOutput {
    ExecOutput {
        rc,
        stdout: stdout.into(),
        stderr: stderr.into(),
    }
}

impl FakeHost<()> {
    /// A host with no model of its own: rules and files only.
    pub(crate) fn new() -> FakeHost<()> {
        FakeHost::with_state(())
    }
}

impl<S: Send> FakeHost<S> {
    /// A host named `fake` keeping `state` as its model.
    pub(crate) fn with_state(state: S) -> FakeHost<S> {
        FakeHost {
            name: "fake".into(),
            state,
            files: BTreeMap::new(),
            scripts: Vec::new(),
            inputs: Vec::new(),
            uploads: Vec::new(),
            rules: Vec::new(),
            on_write: None,
            strict: false,
            over: None,
        }
    }

    /// Another inventory name.
    pub(crate) fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Answer commands matching `when` with a fixed output.
    pub(crate) fn answer(
        mut self,
        when: Match,
        rc: i32,
        stdout: impl Into<Vec<u8>>,
        stderr: impl Into<Vec<u8>>,
    ) -> Self {
        self.rules.push(Rule {
            when,
            answer: Answer::Fixed(exec(rc, stdout, stderr)),
            left: None,
        });
        self
    }

    /// Answer commands matching `when` with what `f` computes.
    pub(crate) fn handle(
        mut self,
        when: Match,
        f: impl FnMut(&mut FakeHost<S>, &str, Option<&[u8]>) -> Reply + Send + 'static,
    ) -> Self {
        self.rules.push(Rule {
            when,
            answer: Answer::Handler(Box::new(f)),
            left: None,
        });
        self
    }

    /// The rule added last answers only the next `n` commands it matches;
    /// after that the rules after it answer (a fact that changes).
    pub(crate) fn times(mut self, n: usize) -> Self {
        if let Some(rule) = self.rules.last_mut() {
            rule.left = Some(n);
        }
        self
    }

    /// Call `f` with the path and content of every `write_file`, after
    /// it is recorded.
    pub(crate) fn on_write(
        mut self,
        f: impl FnMut(&mut FakeHost<S>, &str, &[u8]) + Send + 'static,
    ) -> Self {
        self.on_write = Some(Box::new(f));
        self
    }

    /// A file the host holds.
    pub(crate) fn file(mut self, path: impl Into<String>, content: impl Into<String>) -> Self {
        self.files.insert(path.into(), content.into());
        self
    }

    /// A command no rule matches fails the test, naming it.
    pub(crate) fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    /// Commands no rule matches run on `host`, after `prelude` (a `PATH`
    /// with fake tools first, say); files are read and written through
    /// those commands too, so the module's real scripts run on real files.
    pub(crate) fn over(mut self, host: impl Host + 'static, prelude: impl Into<String>) -> Self {
        self.over = Some((Box::new(host), prelude.into()));
        self
    }

    /// The uploads as (path, content) pairs.
    pub(crate) fn writes(&self) -> Vec<(String, String)> {
        self.uploads
            .iter()
            .map(|u| (u.path.clone(), u.content.clone()))
            .collect()
    }

    /// The first recorded command starting with `prefix`.
    pub(crate) fn script_starting(&self, prefix: &str) -> Option<&str> {
        self.scripts
            .iter()
            .map(String::as_str)
            .find(|s| s.starts_with(prefix))
    }

    fn answer_for(&mut self, script: &str, stdin: Option<&[u8]>) -> Option<Reply> {
        let i = self
            .rules
            .iter()
            .position(|r| r.left != Some(0) && r.when.matches(script))?;
        let rule = &mut self.rules[i];
        if let Some(n) = rule.left.as_mut() {
            *n -= 1;
        }
        if let Answer::Fixed(out) = &rule.answer {
            return Some(Ok(out.clone()));
        }
        // The handler gets the whole host: the rules step aside meanwhile
        // (a rule added by a handler is dropped).
        let mut rules = std::mem::take(&mut self.rules);
        let reply = match &mut rules[i].answer {
            Answer::Handler(f) => f(self, script, stdin),
            Answer::Fixed(_) => unreachable!("answered above"),
        };
        self.rules = rules;
        Some(reply)
    }
}

impl Default for FakeHost<()> {
    fn default() -> Self {
        FakeHost::new()
    }
}

impl<S> std::ops::Deref for FakeHost<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.state
    }
}

impl<S> std::ops::DerefMut for FakeHost<S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.state
    }
}

impl<S: Send> Host for FakeHost<S> {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&mut self, script: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, HostError> {
        self.scripts.push(script.to_string());
        self.inputs.push(stdin.map(<[u8]>::to_vec));
        if let Some(reply) = self.answer_for(script, stdin) {
            return reply;
        }
        if let Some((host, prelude)) = self.over.as_mut() {
            return host.run(&format!("{prelude}\n{script}"), stdin);
        }
        assert!(!self.strict, "no rule answers the command:\n{script}");
        ok("")
    }

    fn read_file(&mut self, path: &str) -> Result<Option<Vec<u8>>, HostError> {
        match self.files.get(path) {
            Some(c) => Ok(Some(c.clone().into_bytes())),
            None if self.over.is_some() => default_read_file(self, path),
            None => Ok(None),
        }
    }

    fn write_file(
        &mut self,
        path: &str,
        content: &[u8],
        attrs: &FileAttrs,
    ) -> Result<(), HostError> {
        self.uploads.push(Upload {
            path: path.into(),
            content: String::from_utf8_lossy(content).into_owned(),
            attrs: attrs.clone(),
        });
        if let Some(mut f) = self.on_write.take() {
            f(self, path, content);
            self.on_write = Some(f);
        }
        if self.over.is_some() {
            return default_write_file(self, path, content, attrs);
        }
        self.files
            .insert(path.into(), String::from_utf8_lossy(content).into_owned());
        Ok(())
    }

    fn fetch_file(
        &mut self,
        path: &str,
        dest: &mut dyn std::io::Write,
    ) -> Result<Option<u64>, FetchFileError> {
        match self.files.get(path) {
            Some(c) => {
                dest.write_all(c.as_bytes())
                    .map_err(FetchFileError::Write)?;
                Ok(Some(c.len() as u64))
            }
            None if self.over.is_some() => default_fetch_file(self, path, dest),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_answer_in_order_and_every_command_is_recorded() {
        let mut h = FakeHost::new()
            .answer(Match::exact("id -u"), 0, "0\n", "")
            .answer(Match::prefix("cat "), 1, "", "no such file")
            .times(1)
            .answer(Match::prefix("cat "), 0, "text", "")
            .answer(Match::contains("boom"), 3, "", "bad")
            .strict();
        assert_eq!(h.run("id -u", None).expect("run").stdout, b"0\n");
        assert_eq!(h.run("cat /x", None).expect("run").rc, 1);
        assert_eq!(h.run("cat /x", Some(b"in")).expect("run").stdout, b"text");
        assert_eq!(h.run("a boom b", None).expect("run").stderr, b"bad");
        assert_eq!(h.scripts, ["id -u", "cat /x", "cat /x", "a boom b"]);
        assert_eq!(h.inputs[2].as_deref(), Some(&b"in"[..]));
        let unknown =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.run("rm -rf /", None)));
        assert!(unknown.is_err(), "a strict host refuses unknown commands");
        let mut anything = FakeHost::new().answer(Match::Any, 7, "", "");
        assert_eq!(anything.run("whatever", None).expect("run").rc, 7);
    }

    #[derive(Default)]
    struct Service {
        active: bool,
    }

    #[test]
    fn handlers_change_the_state_and_files_and_uploads_are_kept() {
        let mut h = FakeHost::with_state(Service::default())
            .named("web1")
            .on_write(|h, path, _| {
                if path == "/etc/start" {
                    h.active = true;
                }
            })
            .file("/etc/app.conf", "a=1\n")
            .handle(Match::prefix("systemctl start"), |h, _, _| {
                h.active = true;
                ok("")
            })
            .handle(Match::when(|s| s.starts_with("probe")), |h, _, _| {
                ok(format!("{} {}", h.active, h.files.len()))
            })
            .handle(Match::exact("reboot"), |_, _, _| {
                Err(HostError::Unreachable("gone".into()))
            });
        assert_eq!(h.name(), "web1");
        assert_eq!(h.run("probe", None).expect("run").stdout, b"false 1");
        h.run("systemctl start app", None).expect("run");
        assert!(h.active);
        assert!(h.run("reboot", None).is_err());
        // Unmatched commands are quietly successful by default.
        assert_eq!(h.run("true", None).expect("run"), exec(0, "", ""));
        assert_eq!(
            h.read_file("/etc/app.conf").expect("read"),
            Some(b"a=1\n".to_vec())
        );
        h.write_file("/etc/new", b"n\n", &FileAttrs::default())
            .expect("write");
        assert_eq!(h.files["/etc/new"], "n\n");
        assert_eq!(h.writes(), [("/etc/new".to_string(), "n\n".to_string())]);
        h.active = false;
        h.write_file("/etc/start", b"", &FileAttrs::default())
            .expect("write");
        assert!(h.active, "the write hook ran");
        let mut copy = Vec::new();
        assert_eq!(h.fetch_file("/etc/new", &mut copy).expect("fetch"), Some(2));
        assert_eq!(h.read_file("/nope").expect("read"), None);
        assert_eq!(h.script_starting("systemctl"), Some("systemctl start app"));
    }

    #[test]
    fn over_a_real_host_unmatched_commands_and_files_go_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = path_in(&dir, "f");
        let mut h = FakeHost::new()
            .answer(Match::exact("docker version"), 0, "20.10\n", "")
            .over(host(), "X=from-prelude");
        assert_eq!(
            h.run("docker version", None).expect("run").stdout,
            b"20.10\n"
        );
        assert_eq!(
            h.run("echo $X", None).expect("run").stdout,
            b"from-prelude\n"
        );
        h.write_file(&path, b"real\n", &FileAttrs::default())
            .expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "real\n");
        assert_eq!(h.read_file(&path).expect("read"), Some(b"real\n".to_vec()));
        assert!(h.files.is_empty());
        assert_eq!(h.uploads.len(), 1);
    }
}
