//! `script`: copy a script from the controller to the host and run it
//! there with its arguments (`script: files/setup.sh --fast`).
//!
//! The engine finds the script (the command line's first word) in the
//! playbook's file search paths and passes it in
//! ([`ControllerInput::CommandFile`]). The plan checks `creates`/`removes`
//! in one probe (the task is skipped when they say so, as Ansible's action
//! skips it) and otherwise cannot know the outcome: check mode skips the
//! task, unless `creates` or `removes` is given, when it reports changed,
//! as Ansible does. Apply is one round trip: the script arrives on stdin
//! into a private temp directory, runs (under `executable` when given,
//! from `chdir`), and the directory is removed whatever the outcome.
//!
//! The arguments after the script's name are shell text, as in Ansible:
//! quoting, variables and globs in them are the shell's.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::capability::ControllerInput;
use crate::params::de_opt_bool;
use crate::probe::tagged;
use crate::shell_quote::{quote, quote_path, split};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `script`: what `herd doc` shows, and what the parser takes.
pub struct ScriptParams {
    /// The free-form form: the script's path on the controller, then its arguments.
    #[serde(rename = "_raw_params", default)]
    pub raw_params: Option<String>,
    /// The script's path on the controller and its arguments, as a parameter.
    pub cmd: Option<String>,
    /// A path on the host: when it exists the task is skipped.
    pub creates: Option<String>,
    /// A path on the host: when it does not exist the task is skipped.
    pub removes: Option<String>,
    /// The directory on the host to run the script from (absolute).
    pub chdir: Option<String>,
    /// The program that runs the script (`/bin/bash`, `python3`), shell text; unset runs the
    /// script itself (its `#!` line decides).
    pub executable: Option<String>,
    /// Decrypt a vault-encrypted script; accepted, but an encrypted script is refused.
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub decrypt: Option<bool>,
    /// The script's content, base64; passed in by the engine.
    #[serde(rename = "_script_b64", default)]
    pub script_b64: Option<String>,
    /// Where the engine found the script on the controller.
    #[serde(rename = "_src_path", default)]
    pub src_path: Option<String>,
}

/// The `script` module.
pub struct Script;

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: Script::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// The script's command line, its first word, and the field it came from.
fn command_line(p: &ScriptParams) -> Result<(String, String, &'static str), ModuleError> {
    let (line, field) = match (&p.raw_params, &p.cmd) {
        (Some(r), _) if !r.trim().is_empty() => (r.trim().to_string(), "_raw_params"),
        (_, Some(c)) if !c.trim().is_empty() => (c.trim().to_string(), "cmd"),
        _ => {
            return Err(ModuleError::Params(ParamError::Missing {
                module: Script::NAME,
                field: "cmd".into(),
            }))
        }
    };
    let words = split(&line).map_err(|e| invalid(field, e.to_string()))?;
    let first = words
        .into_iter()
        .next()
        .ok_or_else(|| invalid(field, "no script named"))?;
    Ok((line, first, field))
}

impl Script {
    /// The shell text that ships the script (stdin) and runs it.
    fn run_script(p: &ScriptParams) -> Result<String, ModuleError> {
        let (line, first, _) = command_line(p)?;
        let base = first.rsplit('/').next().unwrap_or(&first).to_string();
        let base = if base.is_empty() {
            "script".to_string()
        } else {
            base
        };
        let target = format!("\"$t\"/{}", quote(&base));
        // As Ansible does: the script's name in the line becomes the copy's.
        let command = line.replacen(&first, &target, 1);
        let command = match &p.executable {
            Some(e) => format!("{e} {command}"),
            None => command,
        };
        let cd = match &p.chdir {
            Some(d) => format!("cd -- {} || exit 1\n", quote_path(d)),
            None => String::new(),
        };
        Ok(format!(
            "t=$(mktemp -d) || exit 125\n\
             cat > {target} && chmod 700 {target} || {{ rm -rf \"$t\"; exit 125; }}\n\
             (\n{cd}{command}\n) </dev/null\nrc=$?\nrm -rf \"$t\"\nexit $rc\n"
        ))
    }

    fn content(p: &ScriptParams) -> Result<Vec<u8>, ModuleError> {
        use base64::Engine as _;
        let b64 = p.script_b64.as_deref().ok_or_else(|| {
            let (_, first, _) = command_line(p).unwrap_or_default();
            ModuleError::failed(format!(
                "Could not find or access '{first}' on the controller"
            ))
        })?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| invalid("_script_b64", e.to_string()))?;
        if bytes.starts_with(b"$ANSIBLE_VAULT;") {
            return Err(ModuleError::failed(
                "the script is vault-encrypted; decrypting scripts is not supported",
            ));
        }
        Ok(bytes)
    }
}

fn lines(s: &str) -> Value {
    json!(s.lines().collect::<Vec<_>>())
}

impl Module for Script {
    const NAME: &'static str = "script";
    const FREE_FORM: bool = true;
    const CONTROLLER_INPUTS: &'static [ControllerInput] = &[ControllerInput::CommandFile {
        params: &["_raw_params", "cmd"],
        into: "_script_b64",
    }];
    const DOC_SHORT: &'static str = "Copy a script from the controller to the host and run it.";
    const DOC_LONG: &'static str = r##"The script is looked for as `copy` looks for `src` (the role's `files/`, the playbook's `files/` and directory), shipped to a private temp directory on the host, run there with its arguments and removed. The arguments are shell text. `creates`/`removes` skip the task; in check mode the task is skipped unless one of them is given (then it reports changed without running), as in Ansible. A non-zero exit fails the task with `non-zero return code`."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Prepare the data directory once
  script: files/prepare-data.sh /srv/data --owner app
  args:
    creates: /srv/data/.prepared
- name: With another interpreter
  script:
    cmd: files/report.py --json
    executable: python3
    chdir: /var/tmp
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("rc", "the script's exit status"),
        ("stdout", "what it printed"),
        ("stdout_lines", "`stdout` split into lines"),
        ("stderr", "its error output"),
        ("stderr_lines", "`stderr` split into lines"),
    ];
    type Params = ScriptParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let (line, _, _) = command_line(p)?;
        if let Some(d) = &p.chdir {
            if !d.starts_with('/') {
                return Err(ModuleError::failed(format!(
                    "chdir {d} must be an absolute path for a Unix-aware remote node"
                )));
            }
        }
        Self::content(p)?;
        let mut plan = Plan::empty().change(format!("run script {line}"));
        if p.creates.is_none() && p.removes.is_none() {
            plan.unknowable = true;
            return Ok(plan);
        }
        let mut probe = String::new();
        for (tag, path) in [("C", &p.creates), ("R", &p.removes)] {
            if let Some(path) = path {
                probe.push_str(&format!(
                    "if [ -e {} ]; then echo {tag} yes; else echo {tag} no; fi\n",
                    quote_path(path)
                ));
            }
        }
        let out = host.run(&probe, None)?;
        let text = out.stdout_str();
        if let Some(c) = p
            .creates
            .as_ref()
            .filter(|_| tagged(&text, "C") == Some("yes"))
        {
            plan.changes.clear();
            plan.skip = Some(format!("{c} exists, matching creates option"));
        } else if let Some(r) = p
            .removes
            .as_ref()
            .filter(|_| tagged(&text, "R") == Some("no"))
        {
            plan.changes.clear();
            plan.skip = Some(format!("{r} does not exist, matching removes option"));
        }
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        _plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let content = Self::content(p)?;
        let out = host.run(&Self::run_script(p)?, Some(&content))?;
        if out.rc == 125 && out.stdout.is_empty() {
            return Err(ModuleError::failed(format!(
                "could not copy the script to the host: {}",
                out.stderr_str().trim_end()
            )));
        }
        let (stdout, stderr) = (out.stdout_str(), out.stderr_str());
        let mut result = Map::new();
        result.insert("rc".into(), json!(out.rc));
        result.insert("stdout".into(), json!(stdout));
        result.insert("stdout_lines".into(), lines(&stdout));
        result.insert("stderr".into(), json!(stderr));
        result.insert("stderr_lines".into(), lines(&stderr));
        let failed = out.rc != 0;
        if failed {
            result.insert("msg".into(), json!("non-zero return code"));
        }
        Ok(Outcome {
            changed: true,
            result,
            msg: failed.then(|| "non-zero return code".to_string()),
            failed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{get, host, path_in, plan, FakeHost, Match};
    use crate::DynModule;

    fn shipped(raw: &str, script: &str) -> Value {
        use base64::Engine as _;
        json!({
            "_raw_params": raw,
            "_script_b64": base64::engine::general_purpose::STANDARD.encode(script),
            "_src_path": "/play/files/x.sh",
        })
    }

    fn run(params: &Value) -> Outcome {
        let pl = plan(&Script, params);
        DynModule::apply(&Script, params, pl, &mut host()).expect("apply")
    }

    #[test]
    fn runs_the_script_with_shell_arguments_and_cleans_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut params = shipped(
            "files/x.sh 'a b' c",
            "#!/bin/sh\necho \"$# $1\"; pwd; echo err >&2; printf %s \"$0\" > \"$OUT\"\n",
        );
        let out_file = path_in(&dir, "self");
        params["chdir"] = json!(dir.path());
        params["executable"] = json!(format!("OUT={} /bin/sh", quote(&out_file)));
        let pl = plan(&Script, &params);
        assert!(
            pl.unknowable,
            "check mode skips a script without creates/removes"
        );
        let out = run(&params);
        assert!(out.changed && !out.failed);
        let canon = dir.path().canonicalize().map(|p| p.display().to_string());
        assert_eq!(
            get(&out.result, "stdout_lines"),
            &json!(["2 a b", canon.unwrap_or_default()])
        );
        assert_eq!(get(&out.result, "stderr"), "err\n");
        assert_eq!(get(&out.result, "rc"), 0);
        // The copy was named after the script and is gone.
        let ran = std::fs::read_to_string(&out_file).unwrap_or_default();
        assert!(ran.ends_with("/x.sh"), "{ran}");
        assert!(!std::path::Path::new(&ran).exists());
    }

    #[test]
    fn creates_and_removes_skip_and_make_check_mode_report_changed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = path_in(&dir, "done");
        let mut params = shipped("x.sh", &format!("#!/bin/sh\ntouch {}\n", quote(&marker)));
        params["creates"] = json!(marker);
        let pl = plan(&Script, &params);
        assert!(!pl.unknowable && !pl.is_empty() && pl.skip.is_none());
        assert!(
            !std::path::Path::new(&marker).exists(),
            "the plan runs nothing"
        );
        run(&params);
        assert!(std::path::Path::new(&marker).exists());
        // Apply, then plan: the task is skipped now.
        let again = plan(&Script, &params);
        assert!(again.is_empty());
        assert_eq!(
            again.skip.as_deref(),
            Some(format!("{marker} exists, matching creates option").as_str())
        );
        let mut params = shipped("x.sh", "#!/bin/sh\n");
        params["removes"] = json!(path_in(&dir, "none"));
        assert!(plan(&Script, &params).skip.is_some());
    }

    #[test]
    fn failures() {
        let out = run(&shipped("x.sh", "#!/bin/sh\necho no >&2\nexit 3\n"));
        assert!(out.failed);
        assert_eq!(out.msg.as_deref(), Some("non-zero return code"));
        assert_eq!(get(&out.result, "rc"), 3);
        let mut rel = shipped("x.sh", "#!/bin/sh\n");
        rel["chdir"] = json!("tmp");
        let err = DynModule::plan(&Script, &rel, &mut host()).expect_err("relative chdir");
        assert!(err.to_string().contains("must be an absolute path"));
        let err = DynModule::plan(&Script, &json!({"_raw_params": "nope.sh"}), &mut host())
            .expect_err("not shipped");
        assert_eq!(
            err.to_string(),
            "Could not find or access 'nope.sh' on the controller"
        );
        let vault = shipped("x.sh", "$ANSIBLE_VAULT;1.1;AES256\n3132\n");
        assert!(DynModule::plan(&Script, &vault, &mut host()).is_err());
        let e = Script.check_params(&json!({"_raw_params": "x.sh", "stdin": "y"}));
        assert!(matches!(e, Err(ParamError::Unknown { ref field, .. }) if field == "stdin"));
        assert!(DynModule::plan(&Script, &json!({}), &mut host()).is_err());
    }

    /// One round trip to run: the script goes on stdin.
    #[test]
    fn ships_on_stdin_in_one_round_trip() {
        let mut h = FakeHost::new().answer(Match::contains("mktemp -d"), 0, "hi\n", "");
        let mut params = shipped("files/x.sh --fast", "#!/bin/sh\necho hi\n");
        params["cmd"] = json!("ignored.sh");
        let pl = DynModule::plan(&Script, &params, &mut h).expect("plan");
        assert!(h.scripts.is_empty(), "no probe without creates/removes");
        let out = DynModule::apply(&Script, &params, pl, &mut h).expect("apply");
        assert_eq!(get(&out.result, "stdout"), "hi\n");
        assert_eq!(h.scripts.len(), 1);
        assert!(
            h.scripts[0].contains("\"$t\"/x.sh --fast"),
            "{}",
            h.scripts[0]
        );
        assert_eq!(h.inputs[0].as_deref(), Some(&b"#!/bin/sh\necho hi\n"[..]));
    }
}
