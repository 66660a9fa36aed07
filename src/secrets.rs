//! Values that must never be printed: ssh and sudo passwords (from the
//! inventory, `-k`, `-K`), key passphrases, and whatever else is marked
//! secret later (decrypted vault values: `crate::yaml` marks them as it
//! decrypts). Whoever learns such a value marks it here;
//! everything that writes where a user or a log can read it (the event
//! printer for human and JSON lines output, errors and warnings on stderr,
//! tracing) passes its text through [`Secrets::redact`], so a marked value
//! shows as [`MASK`] wherever it would have been printed, whichever code
//! path put it into a message.
//!
//! This is apart from `no_log`, which hides a task's whole result however
//! harmless; marking hides one value everywhere.

use std::borrow::Cow;
use std::sync::{OnceLock, RwLock};

use serde_json::Value;

/// What a secret value is printed as.
pub const MASK: &str = "********";

/// Variables whose value is a password: marked secret when the inventory,
/// `-e` or a rendered `become` setting gives them.
pub const PASSWORD_VARS: &[&str] = &[
    "ansible_password",
    "ansible_ssh_pass",
    "ansible_ssh_password",
    "ansible_become_password",
    "ansible_become_pass",
    "ansible_sudo_pass",
    "ansible_sudo_password",
];

/// Lines of a multi-line secret shorter than this are not masked on their
/// own (a `}` or an empty line would mask half of every diff); the whole
/// value always is.
const MIN_LINE: usize = 6;

/// The set of marked values. Cheap to consult while it is empty, which is
/// the common case of key-only runs.
#[derive(Default)]
pub struct Secrets {
    /// Longest first, so a secret that contains another is masked whole.
    values: RwLock<Vec<String>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The values themselves never reach a log through `{:?}`.
        f.debug_struct("Secrets")
            .field("count", &self.read().len())
            .finish()
    }
}

impl Secrets {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<String>> {
        self.values
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Mark `value` secret from now on. Its JSON-escaped form is marked
    /// too (a value with a quote or a newline shows escaped in printed
    /// JSON, as in `debug` output), and so is each longer line of a multi-line value (diffs and
    /// command output are printed line by line).
    pub fn mark(&self, value: &str) {
        if value.is_empty() {
            return;
        }
        let mut forms = vec![value.to_string()];
        if let Ok(quoted) = serde_json::to_string(value) {
            let escaped = &quoted[1..quoted.len() - 1];
            if escaped != value {
                forms.push(escaped.to_string());
            }
        }
        if value.contains('\n') {
            forms.extend(
                value
                    .lines()
                    .map(str::trim)
                    .filter(|l| l.chars().count() >= MIN_LINE)
                    .map(str::to_string),
            );
        }
        let mut values = self
            .values
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for f in forms {
            if !values.contains(&f) {
                values.push(f);
            }
        }
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }

    /// Mark every password variable of `vars` that is plain text (a
    /// template is marked when it is rendered, by whoever renders it).
    pub fn mark_password_vars(&self, vars: &serde_json::Map<String, Value>) {
        for name in PASSWORD_VARS {
            match vars.get(*name) {
                Some(Value::String(s)) if !crate::template::is_template(s) => self.mark(s),
                Some(Value::Number(n)) => self.mark(&n.to_string()),
                _ => {}
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// `text` with every marked value replaced by [`MASK`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let values = self.read();
        let mut out = Cow::Borrowed(text);
        for v in values.iter() {
            if out.contains(v.as_str()) {
                out = Cow::Owned(out.replace(v.as_str(), MASK));
            }
        }
        out
    }

    pub fn redact_string(&self, s: &mut String) {
        if let Cow::Owned(r) = self.redact(s) {
            *s = r;
        }
    }

    /// Every string in `v` (keys included) redacted in place.
    pub fn redact_value(&self, v: &mut Value) {
        match v {
            Value::String(s) => self.redact_string(s),
            Value::Array(a) => a.iter_mut().for_each(|x| self.redact_value(x)),
            Value::Object(m) => {
                let entries = std::mem::take(m);
                for (mut k, mut x) in entries {
                    self.redact_string(&mut k);
                    self.redact_value(&mut x);
                    m.insert(k, x);
                }
            }
            _ => {}
        }
    }
}

/// The run's secrets: one set per process, so a value marked anywhere
/// (connection code, the executor, later vault) is hidden by every printer.
pub fn global() -> &'static Secrets {
    static GLOBAL: OnceLock<Secrets> = OnceLock::new();
    GLOBAL.get_or_init(Secrets::new)
}

/// Shorthand for `global().mark(value)`.
pub fn mark(value: &str) {
    global().mark(value);
}

/// Shorthand for `global().redact(text)`.
pub fn redact(text: &str) -> Cow<'_, str> {
    global().redact(text)
}

/// stderr, with marked values masked: tracing writes through this.
pub struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn marked_values_are_masked_wherever_they_appear() {
        let s = Secrets::new();
        assert_eq!(s.redact("nothing marked"), "nothing marked");
        s.mark("hunter2");
        assert_eq!(
            s.redact("pw=hunter2; again hunter2"),
            "pw=********; again ********"
        );
        assert!(matches!(s.redact("clean"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_longer_secret_is_masked_whole() {
        let s = Secrets::new();
        s.mark("abc123");
        s.mark("abc123-and-more");
        assert_eq!(s.redact("x abc123-and-more y"), "x ******** y");
    }

    #[test]
    fn json_escaped_and_multi_line_forms_are_masked() {
        let s = Secrets::new();
        s.mark("line one \"quoted\"\nsecond line here\n}");
        let json = serde_json::to_string(&json!({"a": "line one \"quoted\"\nsecond line here\n}"}))
            .expect("json");
        let shown = s.redact(&json);
        assert!(!shown.contains("second line here"), "{shown}");
        assert!(!shown.contains("quoted"), "{shown}");
        // A diff prints the secret line by line.
        assert_eq!(s.redact("+second line here"), "+********");
        // Short lines are not masked on their own.
        assert_eq!(s.redact("{ }"), "{ }");
    }

    #[test]
    fn values_and_keys_of_json_are_redacted() {
        let s = Secrets::new();
        s.mark("s3cret");
        let mut v = json!({"s3cret": ["a s3cret", 1, {"k": "s3cret"}]});
        s.redact_value(&mut v);
        assert_eq!(v, json!({"********": ["a ********", 1, {"k": "********"}]}));
    }

    #[test]
    fn password_variables_are_marked_unless_templates() {
        let s = Secrets::new();
        let vars = json!({
            "ansible_password": "login-pw",
            "ansible_become_password": "{{ vault_pw }}",
            "ansible_become_pass": 123456,
            "other": "not-secret",
        });
        s.mark_password_vars(vars.as_object().expect("map"));
        assert_eq!(
            s.redact("login-pw {{ vault_pw }} 123456 not-secret"),
            "******** {{ vault_pw }} ******** not-secret"
        );
    }

    #[test]
    fn debug_does_not_show_values() {
        let s = Secrets::new();
        s.mark("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
