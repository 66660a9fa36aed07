//! `debconf`: set an answer in the debconf database (what a package's
//! install asks: `tzdata/Areas`, `locales/default_environment_locale`,
//! ...), or read a package's answers.
//!
//! The plan is one probe: `debconf-show PKG` (and, for a `password`
//! question, `debconf-get-selections`, which debconf-show hides); the
//! values are compared as Ansible compares them (booleans lowercased,
//! `multiselect` lists sorted). Apply is one `debconf-set-selections` fed
//! the answer on stdin, never on a command line (passwords).

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::params::de_bool;
use crate::shell_quote::quote;
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `vtype` parameter's values: debconf's question types.
pub enum Vtype {
    /// `true` or `false`.
    Boolean,
    /// An error message.
    Error,
    /// Several of a list of choices.
    Multiselect,
    /// A note.
    Note,
    /// A password (hidden from `debconf-show`).
    Password,
    /// Whether the question was shown.
    Seen,
    /// One of a list of choices.
    Select,
    /// A line of text.
    String,
    /// Text.
    Text,
    /// A title.
    Title,
}

impl Vtype {
    fn word(self) -> &'static str {
        match self {
            Vtype::Boolean => "boolean",
            Vtype::Error => "error",
            Vtype::Multiselect => "multiselect",
            Vtype::Note => "note",
            Vtype::Password => "password",
            Vtype::Seen => "seen",
            Vtype::Select => "select",
            Vtype::String => "string",
            Vtype::Text => "text",
            Vtype::Title => "title",
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `debconf`: what `herd doc` shows, and what the parser takes.
pub struct DebconfParams {
    /// The package the question belongs to.
    #[serde(alias = "pkg")]
    pub name: String,
    /// The question (`tzdata/Areas`); without it the task only reads the package's answers.
    #[serde(alias = "selection", alias = "setting")]
    pub question: Option<String>,
    /// The question's type; required with `question`.
    pub vtype: Option<Vtype>,
    /// The answer (a list for `multiselect`); required with `question`.
    #[serde(alias = "answer")]
    pub value: Option<Value>,
    /// Leave the question marked as not seen (`debconf-set-selections -u`).
    #[serde(default, deserialize_with = "de_bool")]
    pub unseen: bool,
}

/// The `debconf` module.
pub struct Debconf;

/// What apply sets.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Answer {
    question: String,
    vtype: String,
    value: String,
}

/// Python's `to_text` of a parameter value.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// `debconf-show` lines (`* pkg/q: value`, `  pkg/q: value`) by question.
fn selections(out: &str) -> Map<String, Value> {
    let mut m = Map::new();
    for line in out.lines() {
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().trim_matches('*').trim();
            m.insert(k.to_string(), json!(v.trim()));
        }
    }
    m
}

/// A `password` answer from `debconf-get-selections` (tab-separated).
fn password(out: &str, pkg: &str, question: &str) -> String {
    for line in out.lines().filter(|l| l.starts_with(pkg)) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() <= 3 {
            return String::new();
        }
        if f[1] == question && f[2] == "password" {
            return f[3].to_string();
        }
    }
    String::new()
}

fn missing(field: &str) -> ModuleError {
    ModuleError::Params(ParamError::Missing {
        module: Debconf::NAME,
        field: field.into(),
    })
}

impl Module for Debconf {
    const NAME: &'static str = "debconf";
    const DOC_SHORT: &'static str = "Set (or read) answers in the debconf database.";
    const DOC_LONG: &'static str = r##"With `question`, `vtype` and `value` the answer is set with `debconf-set-selections` when it differs from the database's (booleans compare lowercased, `multiselect` lists sorted); without them the package's answers are returned as `current`. A `password` answer is read with `debconf-get-selections` (package `debconf-utils`). `current` and `previous` are returned as Ansible returns them."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Default locale for the system
  debconf:
    name: locales
    question: locales/default_environment_locale
    value: en_US.UTF-8
    vtype: select
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        (
            "current",
            "the new answer by question (all the package's answers when nothing changes)",
        ),
        (
            "previous",
            "the answer before, by question (when it changes)",
        ),
        ("msg", "what debconf-set-selections printed"),
    ];
    type Params = DebconfParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let wanted = match &p.question {
            None => None,
            Some(q) => {
                let vtype = p.vtype.ok_or_else(|| missing("vtype"))?;
                let value = p.value.as_ref().ok_or_else(|| missing("value"))?;
                Some((q, vtype, value))
            }
        };
        let mut script = format!("debconf-show {}", quote(&p.name));
        let is_password = matches!(wanted, Some((_, Vtype::Password, _)));
        if is_password {
            script.push_str("\necho @@password\ndebconf-get-selections");
        }
        let out = host.run(&format!("LC_ALL=C {script}"), None)?;
        if !out.success() {
            return Err(ModuleError::failed(out.stderr_str().trim_end().to_string()));
        }
        let stdout = out.stdout_str();
        let (shown, all) = stdout.split_once("@@password\n").unwrap_or((&stdout, ""));
        let prev = selections(shown);
        let mut plan = Plan::default();
        plan.result.insert("msg".into(), json!(""));
        let Some((question, vtype, value)) = wanted else {
            plan.result.insert("current".into(), Value::Object(prev));
            return Ok(plan);
        };
        // The answer as debconf would hold it, and as Ansible reports it.
        let (cmp_value, reported, set): (Value, Value, String) = match (vtype, value) {
            (Vtype::Multiselect, Value::Array(items)) => {
                let mut v: Vec<String> = items.iter().map(text).collect();
                v.sort();
                (json!(v), json!(v), v.join(", "))
            }
            (Vtype::Boolean, v) => {
                let t = text(v).to_lowercase();
                (json!(t), json!(t), t)
            }
            (_, v) => (json!(text(v)), json!(text(v)), text(v)),
        };
        let changed = match prev.get(question.as_str()) {
            None => true,
            Some(existing) => {
                let existing = existing.as_str().unwrap_or_default();
                let existing: Value = match (vtype, value) {
                    (Vtype::Boolean, _) => json!(existing.to_lowercase()),
                    (Vtype::Password, _) => json!(password(all, &p.name, question)),
                    (Vtype::Multiselect, Value::Array(_)) => {
                        let mut v: Vec<String> =
                            existing.split(',').map(|s| s.trim().to_string()).collect();
                        v.sort();
                        json!(v)
                    }
                    _ => json!(existing),
                };
                existing != cmp_value
            }
        };
        if !changed {
            plan.result.insert("current".into(), Value::Object(prev));
            return Ok(plan);
        }
        let previous = match prev.get(question.as_str()) {
            Some(v) => [(question.clone(), v.clone())].into_iter().collect(),
            None => {
                let mut all = prev.clone();
                all.insert(question.clone(), json!(""));
                all
            }
        };
        let mut current = Map::new();
        current.insert(question.clone(), reported);
        plan.result.insert("current".into(), Value::Object(current));
        plan.result
            .insert("previous".into(), Value::Object(previous));
        let shown_value = if vtype == Vtype::Password {
            "********"
        } else {
            &set
        };
        plan.changes.push(format!(
            "{} {question} ({}) = {shown_value}",
            p.name,
            vtype.word()
        ));
        plan.keep_state(&Answer {
            question: question.clone(),
            vtype: vtype.word().into(),
            value: set,
        })?;
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let a: Answer = plan.state_as()?;
        let data = format!("{} {} {} {}", p.name, a.question, a.vtype, a.value);
        let cmd = if p.unseen {
            "debconf-set-selections -u"
        } else {
            "debconf-set-selections"
        };
        let out = host.run(cmd, Some(data.as_bytes()))?;
        if !out.success() {
            return Err(ModuleError::failed(out.stderr_str().trim_end().to_string()));
        }
        let mut result = plan.result;
        result.insert("msg".into(), json!(out.stdout_str()));
        // Ansible reports the answer as it was set (a list joined).
        if let Some(Value::Object(c)) = result.get_mut("current") {
            c.insert(a.question.clone(), json!(a.value));
        }
        Ok(Outcome::changed(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{get, ok, FakeHost, Match};
    use crate::DynModule;
    use std::collections::BTreeMap;

    /// A debconf database: (question -> (type, value)).
    type Db = BTreeMap<String, (String, String)>;

    fn debconf(db: &[(&str, &str, &str)]) -> FakeHost<Db> {
        let db: Db = db
            .iter()
            .map(|(q, t, v)| ((*q).to_string(), ((*t).to_string(), (*v).to_string())))
            .collect();
        FakeHost::with_state(db)
            .handle(Match::contains("debconf-show"), |h, cmd, _| {
                let mut out = String::new();
                for (q, (t, v)) in &h.state {
                    if t != "password" {
                        out.push_str(&format!("* {q}: {v}\n"));
                    } else {
                        out.push_str(&format!("  {q}:\n"));
                    }
                }
                if cmd.contains("debconf-get-selections") {
                    out.push_str("@@password\n");
                    for (q, (t, v)) in &h.state {
                        out.push_str(&format!("pkg\t{q}\t{t}\t{v}\n"));
                    }
                }
                ok(out)
            })
            .handle(Match::prefix("debconf-set-selections"), |h, _, stdin| {
                let line = String::from_utf8_lossy(stdin.unwrap_or_default()).into_owned();
                let mut w = line.splitn(4, ' ');
                let (_, q, t, v) = (w.next(), w.next(), w.next(), w.next());
                h.state.insert(
                    q.unwrap_or_default().into(),
                    (t.unwrap_or_default().into(), v.unwrap_or_default().into()),
                );
                ok("")
            })
    }

    fn converge(h: &mut FakeHost<Db>, params: &Value) -> (Plan, Outcome) {
        let pl = DynModule::plan(&Debconf, params, h).expect("plan");
        assert!(!pl.is_empty());
        let out = DynModule::apply(&Debconf, params, pl.clone(), h).expect("apply");
        let again = DynModule::plan(&Debconf, params, h).expect("plan");
        assert!(again.is_empty(), "{:?}", again.changes);
        (pl, out)
    }

    #[test]
    fn sets_an_answer_then_converges() {
        let mut h = debconf(&[("pkg/a", "string", "old")]);
        let params = json!({"name": "pkg", "question": "pkg/a", "vtype": "string", "value": "new"});
        let (pl, out) = converge(&mut h, &params);
        assert_eq!(pl.changes, ["pkg pkg/a (string) = new"]);
        assert_eq!(get(&out.result, "previous"), &json!({"pkg/a": "old"}));
        assert_eq!(get(&out.result, "current"), &json!({"pkg/a": "new"}));
        let set = h
            .scripts
            .iter()
            .position(|s| s.starts_with("debconf-set-selections"));
        let input = set.and_then(|i| h.inputs[i].clone());
        assert_eq!(input.as_deref(), Some(&b"pkg pkg/a string new"[..]));
    }

    #[test]
    fn check_mode_names_the_change_and_leaves_the_database() {
        let mut h = debconf(&[]);
        let params = json!({"pkg": "pkg", "setting": "pkg/b", "vtype": "boolean", "answer": true});
        let pl = DynModule::plan(&Debconf, &params, &mut h).expect("plan");
        assert_eq!(pl.changes, ["pkg pkg/b (boolean) = true"]);
        assert!(h.state.is_empty());
        assert_eq!(get(&pl.result, "previous"), &json!({"pkg/b": ""}));
        converge(&mut h, &params);
        assert_eq!(h.state["pkg/b"].1, "true");
    }

    #[test]
    fn multiselect_sorted_and_passwords_hidden() {
        let mut h = debconf(&[("pkg/m", "multiselect", "b, a")]);
        let same = json!({"name": "pkg", "question": "pkg/m", "vtype": "multiselect", "value": ["a", "b"]});
        assert!(DynModule::plan(&Debconf, &same, &mut h)
            .expect("plan")
            .is_empty());
        let params =
            json!({"name": "pkg", "question": "pkg/p", "vtype": "password", "value": "s3cret"});
        let (pl, _) = converge(&mut h, &params);
        assert_eq!(pl.changes, ["pkg pkg/p (password) = ********"]);
        let read = DynModule::plan(&Debconf, &json!({"name": "pkg"}), &mut h).expect("plan");
        assert!(read.is_empty());
        assert_eq!(get(&read.result, "current")["pkg/m"], "b, a");
        let err = DynModule::plan(&Debconf, &json!({"name": "pkg", "question": "q"}), &mut h)
            .expect_err("vtype");
        assert!(matches!(err, ModuleError::Params(ref e) if e.field() == Some("vtype")));
    }
}
