//! `tempfile`: create a uniquely named temporary file or directory on the
//! host and return its path.
//!
//! Every run creates a new one, so the task always reports changed, as in
//! Ansible; the plan needs no probe (nothing on the host decides it) and
//! says it cannot know the name, so check mode reports the task skipped,
//! as Ansible does for this module. Apply is one `mktemp` (mode 0600 for a
//! file, 0700 for a directory).

use serde::Deserialize;
use serde_json::json;

use crate::shell_quote::{quote, quote_path};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `state` parameter's values.
pub enum TempState {
    #[default]
    /// A file.
    File,
    /// A directory.
    Directory,
}

fn default_prefix() -> String {
    "ansible.".into()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `tempfile`: what `herd doc` shows, and what the parser takes.
pub struct TempfileParams {
    /// Create a file or a directory.
    #[serde(default)]
    pub state: TempState,
    /// The directory to create it in; unset is `$TMPDIR`, else `/tmp`.
    pub path: Option<String>,
    /// The start of its name.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// The end of its name.
    #[serde(default)]
    pub suffix: String,
}

/// The `tempfile` module.
pub struct Tempfile;

impl Tempfile {
    fn command(p: &TempfileParams) -> Result<String, ModuleError> {
        if p.prefix.contains('/') || p.suffix.contains('/') {
            return Err(ModuleError::Params(ParamError::Invalid {
                module: Self::NAME,
                path: if p.prefix.contains('/') {
                    "prefix"
                } else {
                    "suffix"
                }
                .into(),
                reason: "a name part may not contain `/`".into(),
            }));
        }
        let dir = match &p.path {
            Some(d) => quote_path(d),
            None => "\"${TMPDIR:-/tmp}\"".to_string(),
        };
        let flag = match p.state {
            TempState::File => "",
            TempState::Directory => " -d",
        };
        // Eight random characters, as Python's mkstemp uses.
        Ok(format!(
            "mktemp{flag} -p {dir} --suffix={} -- {}",
            quote(&p.suffix),
            quote(&format!("{}XXXXXXXX", p.prefix))
        ))
    }
}

impl Module for Tempfile {
    const NAME: &'static str = "tempfile";
    const DOC_SHORT: &'static str = "Create a temporary file or directory on the host.";
    const DOC_LONG: &'static str = r##"Every run creates a new one and reports changed, as in Ansible; remove it with `file: state=absent` when done. In check mode the task is skipped (the name cannot be known without creating it)."##;
    const DOC_EXAMPLE: &'static str = r##"- name: A scratch directory
  tempfile:
    state: directory
    suffix: build
  register: scratch
- name: Use it
  command: make -C /src/app O={{ scratch.path }}
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] =
        &[("path", "the path of what was created")];
    type Params = TempfileParams;

    fn plan(&self, p: &Self::Params, _host: &mut dyn Host) -> Result<Plan, ModuleError> {
        Self::command(p)?;
        let what = match p.state {
            TempState::File => "file",
            TempState::Directory => "directory",
        };
        let mut plan = Plan::empty().change(format!("create a temporary {what}"));
        plan.unknowable = true;
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        _plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        // The new path, then its attributes: Ansible's result carries the
        // common file keys (`state`, `mode`, `owner`, ...) of what it made.
        let script = format!(
            "p=$({}) || exit 1; printf '%s\\n' \"$p\"; stat -c '%a %u %g %s %U %G' -- \"$p\"",
            Self::command(p)?
        );
        let out = host.run(&script, None)?;
        if !out.success() {
            return Err(ModuleError::failed(out.stderr_str().trim_end().to_string()));
        }
        let text = out.stdout_str();
        let mut lines = text.lines();
        let path = lines.next().unwrap_or_default().to_string();
        let mut result = serde_json::Map::new();
        result.insert("path".into(), json!(path));
        let attrs: Vec<&str> = lines.next().unwrap_or_default().split(' ').collect();
        if let [mode, uid, gid, size, owner, group] = attrs[..] {
            let state = match p.state {
                TempState::File => "file",
                TempState::Directory => "directory",
            };
            let num = |s: &str| s.parse::<u64>().unwrap_or(0);
            result.insert("state".into(), json!(state));
            result.insert(
                "mode".into(),
                json!(crate::params::mode_str(
                    u32::from_str_radix(mode, 8).unwrap_or(0)
                )),
            );
            result.insert("owner".into(), json!(owner));
            result.insert("group".into(), json!(group));
            result.insert("uid".into(), json!(num(uid)));
            result.insert("gid".into(), json!(num(gid)));
            result.insert("size".into(), json!(num(size)));
        }
        Ok(Outcome::changed(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{apply, get, host, path_in, plan, FakeHost, Match};
    use crate::DynModule;

    /// Never converges by design: each apply creates another one, and the
    /// plan (check mode) creates nothing and says the result is unknowable.
    #[test]
    fn creates_files_and_directories_each_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_string_lossy().into_owned();
        let params = json!({"path": d, "prefix": "app.", "suffix": ".conf"});
        let pl = plan(&Tempfile, &params);
        assert!(pl.unknowable && !pl.is_empty());
        assert_eq!(std::fs::read_dir(&d).map(Iterator::count).ok(), Some(0));
        let out = apply(&Tempfile, &params, pl.clone());
        assert!(out.changed);
        let p = get(&out.result, "path")
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = p.rsplit('/').next().unwrap_or_default();
        assert!(
            p.starts_with(&d) && name.starts_with("app.") && name.ends_with(".conf"),
            "{p}"
        );
        assert_eq!(name.len(), "app.".len() + 8 + ".conf".len());
        assert!(std::path::Path::new(&p).is_file());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&p).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
        assert_eq!(get(&out.result, "state"), "file");
        assert_eq!(get(&out.result, "mode"), "0600");
        assert_eq!(get(&out.result, "size"), 0);
        let again = apply(&Tempfile, &params, plan(&Tempfile, &params));
        assert_ne!(get(&again.result, "path"), p.as_str());
        let params = json!({"path": d, "state": "directory"});
        let out = apply(&Tempfile, &params, plan(&Tempfile, &params));
        let p = get(&out.result, "path")
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(std::path::Path::new(&p).is_dir());
        assert!(p
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .starts_with("ansible."));
    }

    #[test]
    fn default_dir_and_errors() {
        let mut h = FakeHost::new().answer(
            Match::contains("mktemp"),
            0,
            "/tmp/ansible.abcdefgh\n600 0 0 0 root root\n",
            "",
        );
        let params = json!({});
        let pl = DynModule::plan(&Tempfile, &params, &mut h).expect("plan");
        assert!(h.scripts.is_empty(), "the plan asks the host nothing");
        let out = DynModule::apply(&Tempfile, &params, pl, &mut h).expect("apply");
        assert_eq!(get(&out.result, "path"), "/tmp/ansible.abcdefgh");
        assert_eq!(get(&out.result, "owner"), "root");
        assert_eq!(h.scripts.len(), 1);
        assert!(
            h.scripts[0]
                .starts_with("p=$(mktemp -p \"${TMPDIR:-/tmp}\" --suffix='' -- ansible.XXXXXXXX)"),
            "{}",
            h.scripts[0]
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let none = json!({"path": path_in(&dir, "none")});
        let pl = plan(&Tempfile, &none);
        assert!(DynModule::apply(&Tempfile, &none, pl, &mut host()).is_err());
        let slash = DynModule::plan(&Tempfile, &json!({"prefix": "a/b"}), &mut host());
        assert!(matches!(slash, Err(ModuleError::Params(ref e)) if e.field() == Some("prefix")));
        let bad = Tempfile.check_params(&json!({"state": "link"}));
        assert!(matches!(bad, Err(ref e) if e.field() == Some("state")));
    }
}
