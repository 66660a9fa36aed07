//! `pip`: Python packages on the host, system-wide or in a virtualenv
//! (created when missing), by name or from a requirements file.
//!
//! The plan is one probe: whether the virtualenv exists and what pip has
//! installed (`pip list --format=freeze`). Named packages with `state:
//! present`/`absent` are compared with it (names normalized as PEP 503
//! does, version specifiers `==`, `!=`, `<`, `<=`, `>`, `>=`, `~=`, `===`
//! and `==X.*` checked), so the plan knows whether anything changes. A
//! requirements file, `latest`, `forcereinstall`, `extra_args`, `editable`
//! or a VCS URL cannot be judged without running pip: the plan always has
//! the change (check mode reports changed, as Ansible does), and apply
//! reports changed only when the installed set differs afterwards. Apply
//! is one script: create the virtualenv, list, run pip, list again.
//!
//! Python is needed on the host only because this module is about Python.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::account::de_opt_list;
use crate::params::de_bool;
use crate::shell_quote::{quote, quote_path, split};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `state` parameter's values.
pub enum PipState {
    #[default]
    /// Installed (any version satisfying the specifier).
    Present,
    /// Not installed.
    Absent,
    /// Upgraded to the newest version.
    Latest,
    /// Installed again, even if present.
    Forcereinstall,
}

fn default_virtualenv_command() -> String {
    "virtualenv".into()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `pip`: what `herd doc` shows, and what the parser takes.
pub struct PipParams {
    /// Packages, each with an optional version specifier (`flask>=2,<3`), or URLs.
    #[serde(default, deserialize_with = "de_opt_list")]
    #[schemars(with = "Option<crate::doc::shapes::StringOrList>")]
    pub name: Option<Vec<String>>,
    /// The version of the one package in `name` (`name==version`).
    #[serde(default, deserialize_with = "crate::params::de_opt_string")]
    pub version: Option<String>,
    /// A requirements file on the host (relative to `chdir`).
    pub requirements: Option<String>,
    /// A virtualenv to install into; created when it does not exist.
    pub virtualenv: Option<String>,
    /// The new virtualenv sees the system's packages.
    #[serde(default, deserialize_with = "de_bool")]
    pub virtualenv_site_packages: bool,
    /// The command that creates the virtualenv (`python3 -m venv` works without the virtualenv
    /// package).
    #[serde(default = "default_virtualenv_command")]
    pub virtualenv_command: String,
    /// The Python the virtualenv is made for (`-p`); not with `python3 -m venv`.
    pub virtualenv_python: Option<String>,
    /// What the packages should be.
    #[serde(default)]
    pub state: PipState,
    /// More arguments for pip (`--no-index --find-links /srv/wheels`).
    pub extra_args: Option<String>,
    /// Install in editable mode (`-e`).
    #[serde(default, deserialize_with = "de_bool")]
    pub editable: bool,
    /// The directory pip runs in (and the virtualenv and requirements are relative to).
    pub chdir: Option<String>,
    /// The pip to run (`pip3`, `/opt/py/bin/pip`); unset is `python3 -m pip`. Not with
    /// `virtualenv`.
    pub executable: Option<String>,
    /// The umask while installing, an octal string (`"0022"`).
    pub umask: Option<String>,
    /// Let pip install into a Python the distribution manages (`PIP_BREAK_SYSTEM_PACKAGES`).
    #[serde(default, deserialize_with = "de_bool")]
    pub break_system_packages: bool,
}

/// The `pip` module.
pub struct Pip;

fn invalid(path: &str, reason: impl Into<String>) -> ModuleError {
    ModuleError::Params(ParamError::Invalid {
        module: Pip::NAME,
        path: path.into(),
        reason: reason.into(),
    })
}

/// PEP 503 normalization: lowercase, runs of `-_.` become `-`.
fn normalize(name: &str) -> String {
    let mut out = String::new();
    let mut sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// One requested package: its name and version specifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    text: String,
    name: String,
    clauses: Vec<(String, String)>,
}

const OPS: [&str; 8] = ["===", "~=", "==", "!=", "<=", ">=", "<", ">"];

fn parse_spec(text: &str) -> Spec {
    let t = text.trim();
    // Extras (`pkg[extra]`) and markers (`; python_version...`) are not part of the name.
    let t_main = t.split(';').next().unwrap_or(t).trim();
    let end = t_main
        .find(|c: char| "=<>!~ [(".contains(c))
        .unwrap_or(t_main.len());
    let name = &t_main[..end];
    let rest = t_main[end..].trim_start();
    let rest = match rest.strip_prefix('[') {
        Some(r) => r.split_once(']').map_or("", |(_, after)| after),
        None => rest,
    };
    let rest = rest.trim().trim_start_matches('(').trim_end_matches(')');
    let clauses = rest
        .split(',')
        .filter_map(|c| {
            let c = c.trim();
            OPS.iter()
                .find(|op| c.starts_with(*op))
                .map(|op| ((*op).to_string(), c[op.len()..].trim().to_string()))
        })
        .collect();
    Spec {
        text: t.to_string(),
        name: normalize(name),
        clauses,
    }
}

/// Ansible's `_recover_package_name`: `name` was split at commas, which
/// also splits `pkg>=1,<2`; a piece that starts with an operator belongs
/// to the one before.
fn recover(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let t = n.trim();
        let continues = OPS.iter().any(|op| t.starts_with(op));
        match out.last_mut() {
            Some(prev) if continues => {
                prev.push(',');
                prev.push_str(t);
            }
            _ => out.push(t.to_string()),
        }
    }
    out
}

/// A version's release numbers, then the rest (`1.2rc1` -> [1, 2], "rc1").
fn release(v: &str) -> (Vec<u64>, String) {
    let v = v.trim().trim_start_matches(['v', 'V']);
    let mut nums = Vec::new();
    let mut rest = String::new();
    for (i, part) in v.split('.').enumerate() {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() || !rest.is_empty() {
            rest.push_str(&v.split('.').skip(i).collect::<Vec<_>>().join("."));
            break;
        }
        nums.push(digits.parse().unwrap_or(0));
        if digits.len() < part.len() {
            rest.push_str(&part[digits.len()..]);
            let tail: Vec<&str> = v.split('.').skip(i + 1).collect();
            if !tail.is_empty() {
                rest.push('.');
                rest.push_str(&tail.join("."));
            }
            break;
        }
    }
    (nums, rest)
}

fn cmp_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, xr) = release(a);
    let (mut y, yr) = release(b);
    let n = x.len().max(y.len());
    x.resize(n, 0);
    y.resize(n, 0);
    // A pre-release (`1.0rc1`) sorts before its release (`1.0`).
    x.cmp(&y)
        .then_with(|| match (xr.is_empty(), yr.is_empty()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            (false, false) => xr.cmp(&yr),
        })
}

fn satisfies(version: &str, op: &str, want: &str) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    if let Some(prefix) = want.strip_suffix(".*") {
        let hit = version == prefix || version.starts_with(&format!("{prefix}."));
        return (op == "==") == hit;
    }
    let o = cmp_versions(version, want);
    match op {
        "===" => version == want,
        "==" => o == Equal,
        "!=" => o != Equal,
        "<" => o == Less,
        "<=" => o != Greater,
        ">" => o == Greater,
        ">=" => o != Less,
        "~=" => {
            let (w, _) = release(want);
            let keep = w.len().saturating_sub(1).max(1);
            let prefix: Vec<String> = w[..keep.min(w.len())].iter().map(u64::to_string).collect();
            let (v, _) = release(version);
            o != Less && v.iter().take(keep).map(u64::to_string).collect::<Vec<_>>() == prefix
        }
        _ => false,
    }
}

/// `pip list --format=freeze` lines by normalized name.
fn installed(freeze: &str) -> Vec<(String, String)> {
    freeze
        .lines()
        .filter_map(|l| l.split_once("=="))
        .map(|(n, v)| (normalize(n), v.trim().to_string()))
        .collect()
}

fn is_present(spec: &Spec, have: &[(String, String)]) -> bool {
    have.iter().any(|(n, v)| {
        *n == spec.name && spec.clauses.iter().all(|(op, want)| satisfies(v, op, want))
    })
}

fn is_vcs_or_url(s: &str) -> bool {
    s.contains("://") || s.starts_with("git+") || s.starts_with('/') || s.starts_with('.')
}

/// What the task asks, worked out from the parameters.
struct Request {
    specs: Vec<Spec>,
    /// pip's arguments after the state's.
    args: Vec<String>,
    /// The plan cannot know whether pip will change anything.
    opaque: bool,
    /// The virtualenv, relative to `chdir` when given.
    env: Option<String>,
}

fn request(p: &PipParams) -> Result<Request, ModuleError> {
    let names = p.name.as_ref().filter(|n| !n.is_empty());
    match (names, &p.requirements) {
        (None, None) => return Err(invalid("name", "one of name or requirements is required")),
        (Some(_), Some(_)) => return Err(invalid("requirements", "mutually exclusive with name")),
        _ => {}
    }
    if p.executable.is_some() && p.virtualenv.is_some() {
        return Err(invalid("executable", "mutually exclusive with virtualenv"));
    }
    if p.state == PipState::Latest && p.version.is_some() {
        return Err(ModuleError::failed(
            "version is incompatible with state=latest",
        ));
    }
    if let Some(u) = &p.umask {
        if u32::from_str_radix(u, 8).is_err() {
            return Err(ModuleError::failed("umask must be an octal integer"));
        }
    }
    let mut specs: Vec<Spec> = names
        .map(|n| recover(n).iter().map(|s| parse_spec(s)).collect())
        .unwrap_or_default();
    if let Some(v) = &p.version {
        if specs.len() > 1 {
            return Err(ModuleError::failed("'version' argument is ambiguous when installing multiple package distributions. Please specify version restrictions next to each package in 'name' argument."));
        }
        if let Some(s) = specs.first_mut() {
            if !s.clauses.is_empty() {
                return Err(ModuleError::failed("The 'version' argument conflicts with any version specifier provided along with a package name. Please keep the version specifier, but remove the 'version' argument."));
            }
            *s = parse_spec(&format!("{}=={v}", s.text));
        }
    }
    let mut extra = match &p.extra_args {
        Some(e) => split(e).map_err(|e| invalid("extra_args", e.to_string()))?,
        None => Vec::new(),
    };
    if p.editable && !extra.iter().any(|a| a == "-e") {
        extra.push("-e".into());
    }
    let mut args = extra.clone();
    match &p.requirements {
        Some(r) => args.extend(["-r".to_string(), r.clone()]),
        None => args.extend(specs.iter().map(|s| s.text.clone())),
    }
    let opaque = p.requirements.is_some()
        || !extra.is_empty()
        || matches!(p.state, PipState::Latest | PipState::Forcereinstall)
        || specs.iter().any(|s| is_vcs_or_url(&s.text));
    let env = p.virtualenv.as_ref().map(|e| match &p.chdir {
        Some(c) if !e.starts_with('/') && !e.starts_with('~') => format!("{c}/{e}"),
        _ => e.clone(),
    });
    Ok(Request {
        specs,
        args,
        opaque,
        env,
    })
}

/// The pip to run, as shell text.
fn pip_command(p: &PipParams, env: Option<&str>) -> String {
    match (env, &p.executable) {
        (Some(e), _) => format!("{}/bin/pip", quote_path(e)),
        (None, Some(x)) => quote_path(x),
        (None, None) => "python3 -m pip".into(),
    }
}

fn state_args(s: PipState) -> &'static str {
    match s {
        PipState::Present => "install",
        PipState::Absent => "uninstall -y",
        PipState::Latest => "install -U",
        PipState::Forcereinstall => "install -U --force-reinstall",
    }
}

/// Shell lines every script starts with: locale, umask, pip's settings.
fn prelude(p: &PipParams) -> String {
    let mut s = String::from("export LC_ALL=C PIP_DISABLE_PIP_VERSION_CHECK=1\n");
    if p.break_system_packages {
        s.push_str("export PIP_BREAK_SYSTEM_PACKAGES=1\n");
    }
    if let Some(u) = &p.umask {
        s.push_str(&format!("umask {}\n", quote(u)));
    }
    let dir = p
        .chdir
        .as_deref()
        .map_or_else(|| "\"${TMPDIR:-/tmp}\"".to_string(), quote_path);
    s.push_str(&format!("cd {dir} || exit 90\n"));
    s
}

/// The freeze listing, between markers, or nothing when pip is missing.
fn freeze(pip: &str, tag: &str) -> String {
    format!("echo @@{tag}; {pip} list --format=freeze 2>/dev/null; echo @@end{tag}\n")
}

fn between<'a>(out: &'a str, tag: &str) -> &'a str {
    let start = format!("@@{tag}\n");
    let end = format!("@@end{tag}\n");
    out.find(&start)
        .map(|i| &out[i + start.len()..])
        .and_then(|rest| rest.find(&end).map(|j| &rest[..j]))
        .unwrap_or("")
}

impl Module for Pip {
    const NAME: &'static str = "pip";
    const DOC_SHORT: &'static str =
        "Install or remove Python packages with pip, system-wide or in a virtualenv.";
    const DOC_LONG: &'static str = r##"Named packages with `state: present` or `absent` are compared with what pip lists, so a second run plans nothing. A `requirements` file, `latest`, `forcereinstall`, `extra_args`, `editable` or a URL needs pip itself to tell: the task runs pip and reports changed only if the installed packages differ afterwards (check mode reports changed, as Ansible does). A missing `virtualenv` is created with `virtualenv_command` first. Without `executable` or `virtualenv`, `python3 -m pip` is run."##;
    const DOC_EXAMPLE: &'static str = r##"- name: The app's dependencies in its virtualenv
  pip:
    requirements: /srv/app/requirements.txt
    virtualenv: /srv/app/.venv
    virtualenv_command: python3 -m venv
- name: One tool, pinned
  pip:
    name: httpie==3.2.2
    virtualenv: /opt/tools
    virtualenv_command: python3 -m venv
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("cmd", "the pip command run"),
        ("name", "the packages asked for"),
        ("version", "the `version` asked for"),
        ("requirements", "the requirements file"),
        ("virtualenv", "the virtualenv"),
        ("state", "the state asked for"),
        ("stdout", "pip's output"),
        ("stderr", "pip's error output"),
    ];
    type Params = PipParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let req = request(p)?;
        let pip = pip_command(p, req.env.as_deref());
        let mut s = prelude(p);
        if let Some(e) = &req.env {
            s.push_str(&format!(
                "[ -f {}/bin/activate ] && echo VENV\n",
                quote_path(e)
            ));
        }
        s.push_str(&freeze(&pip, "have"));
        let out = host.run(&s, None)?;
        if out.rc == 90 {
            return Err(ModuleError::failed(format!(
                "Unable to change directory: {}",
                p.chdir.as_deref().unwrap_or("")
            )));
        }
        let text = out.stdout_str();
        let venv_missing = req.env.is_some() && !text.lines().any(|l| l == "VENV");
        let have = installed(between(&text, "have"));
        let cmd = format!("{pip} {} {}", state_args(p.state), req.args.join(" "));
        let mut plan = Plan::default();
        plan.result.insert("cmd".into(), json!(cmd));
        // What was asked for, in every result (one with nothing to do
        // too), as Ansible's.
        plan.result.insert("name".into(), json!(p.name));
        plan.result.insert("version".into(), json!(p.version));
        plan.result.insert("state".into(), json!(p.state));
        plan.result
            .insert("requirements".into(), json!(p.requirements));
        plan.result.insert("virtualenv".into(), json!(req.env));
        // Ansible's check mode returns `changed` and the listing command
        // only (`changed` alone when it cannot tell without running pip).
        let mut check_result = Map::new();
        if !req.opaque {
            check_result.insert("cmd".into(), json!(cmd));
        }
        plan.check_result = Some(check_result);
        if venv_missing {
            plan.changes.push(format!(
                "create virtualenv {}",
                req.env.as_deref().unwrap_or("")
            ));
        }
        if req.opaque {
            plan.changes.push(format!("run {cmd}"));
        } else {
            for spec in &req.specs {
                let present = is_present(spec, &have);
                match p.state {
                    PipState::Absent if present => {
                        plan.changes.push(format!("uninstall {}", spec.text));
                    }
                    PipState::Present if !present => {
                        plan.changes.push(format!("install {}", spec.text));
                    }
                    _ => {}
                }
            }
        }
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let req = request(p)?;
        let pip = pip_command(p, req.env.as_deref());
        let mut s = prelude(p);
        if let Some(e) = &req.env {
            let mut create = p.virtualenv_command.clone();
            if let Some(py) = &p.virtualenv_python {
                create.push_str(&format!(" -p{}", quote(py)));
            }
            if p.virtualenv_site_packages {
                create.push_str(" --system-site-packages");
            }
            s.push_str(&format!(
                "if [ ! -f {e}/bin/activate ]; then echo VENV_CREATED; {create} {e} || exit 91; fi\n",
                e = quote_path(e)
            ));
        }
        s.push_str(&freeze(&pip, "before"));
        let args: Vec<String> = req.args.iter().map(|a| quote(a)).collect();
        s.push_str(&format!(
            "echo @@pip; {pip} {} {}; rc=$?; echo; echo @@endpip\n",
            state_args(p.state),
            args.join(" ")
        ));
        s.push_str(&freeze(&pip, "after"));
        s.push_str("exit $rc\n");
        let out = host.run(&s, None)?;
        let text = out.stdout_str();
        let stderr = out.stderr_str();
        let mut result: Map<String, Value> = plan.result;
        result.insert("name".into(), json!(p.name));
        result.insert("version".into(), json!(p.version));
        result.insert("state".into(), json!(p.state));
        result.insert("requirements".into(), json!(p.requirements));
        result.insert("virtualenv".into(), json!(req.env));
        let pip_out = between(&text, "pip").trim_end_matches('\n').to_string();
        result.insert("stdout".into(), json!(pip_out));
        result.insert("stderr".into(), json!(stderr));
        if out.rc == 91 {
            return Err(ModuleError::Failed {
                msg: format!(
                    "Failed to create the virtualenv with `{}`",
                    p.virtualenv_command
                ),
                result,
            });
        }
        let not_installed = p.state == PipState::Absent
            && out.rc == 1
            && (pip_out.contains("not installed") || stderr.contains("not installed"));
        if out.rc != 0 && !not_installed {
            return Err(ModuleError::Failed {
                msg: format!(
                    "Error installing with pip: stdout: {pip_out}\n\n:stderr: {}",
                    stderr.trim_end()
                ),
                result,
            });
        }
        let created = text.lines().any(|l| l == "VENV_CREATED");
        let changed = created || between(&text, "before") != between(&text, "after");
        Ok(Outcome::changed_if(changed, result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{get, FakeHost, Match};
    use crate::DynModule;

    /// What the fake pip holds: installed packages (name, version) and
    /// whether the virtualenv exists.
    type Pkgs = (Vec<(String, String)>, bool);

    /// A pip whose installed packages the fake keeps; `install NAME==V`
    /// and `uninstall -y NAME` change them, `-r` changes nothing.
    fn pip_host(have: &[(&str, &str)]) -> FakeHost<Pkgs> {
        let have: Vec<(String, String)> = have
            .iter()
            .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
            .collect();
        FakeHost::with_state((have, false)).handle(
            Match::contains("list --format=freeze"),
            |h, cmd, _| {
                let list = |pkgs: &[(String, String)]| {
                    pkgs.iter()
                        .map(|(n, v)| format!("{n}=={v}\n"))
                        .collect::<String>()
                };
                let mut out = String::new();
                if !cmd.contains("@@pip") {
                    if h.state.1 {
                        out.push_str("VENV\n");
                    }
                    out.push_str(&format!("@@have\n{}@@endhave\n", list(&h.state.0)));
                    return Ok(crate::testing::exec(0, out, ""));
                }
                if cmd.contains("VENV_CREATED") && !h.state.1 {
                    h.state.1 = true;
                    out.push_str("VENV_CREATED\n");
                }
                out.push_str(&format!(
                    "@@before\n{}@@endbefore\n@@pip\n",
                    list(&h.state.0)
                ));
                let arg = |sep: &str| {
                    cmd.split(sep).nth(1).map(|r| {
                        r.split(';')
                            .next()
                            .unwrap_or_default()
                            .trim()
                            .trim_matches('\'')
                            .to_string()
                    })
                };
                if let Some(spec) = arg(" install ").filter(|s| !s.starts_with("-")) {
                    let (n, v) = spec.split_once("==").unwrap_or((&spec, "9.9"));
                    let (n, v) = (n.to_string(), v.to_string());
                    h.state.0.retain(|(x, _)| *x != n);
                    h.state.0.push((n, v));
                    out.push_str("Successfully installed\n");
                }
                if let Some(n) = arg(" uninstall -y ") {
                    h.state.0.retain(|(x, _)| *x != n);
                }
                out.push_str(&format!(
                    "\n@@endpip\n@@after\n{}@@endafter\n",
                    list(&h.state.0)
                ));
                Ok(crate::testing::exec(0, out, ""))
            },
        )
    }

    #[test]
    fn installs_a_pinned_package_then_converges() {
        let mut h = pip_host(&[("requests", "2.0.0")]);
        let params = json!({"name": "Requests>=2.28", "virtualenv": "/srv/venv", "virtualenv_command": "python3 -m venv"});
        let pl = DynModule::plan(&Pip, &params, &mut h).expect("plan");
        // Check mode: the plan names the changes, the fake is untouched.
        assert_eq!(
            pl.changes,
            ["create virtualenv /srv/venv", "install Requests>=2.28"]
        );
        assert_eq!(h.state.0, [("requests".to_string(), "2.0.0".to_string())]);
        assert!(!h.state.1);
        let p2 = json!({"name": "requests", "version": "2.31.0", "virtualenv": "/srv/venv"});
        let pl = DynModule::plan(&Pip, &p2, &mut h).expect("plan");
        let out = DynModule::apply(&Pip, &p2, pl, &mut h).expect("apply");
        assert!(out.changed);
        assert_eq!(get(&out.result, "virtualenv"), "/srv/venv");
        assert!(h
            .scripts
            .last()
            .is_some_and(|s| s.contains("/srv/venv/bin/pip install requests==2.31.0")));
        let again = DynModule::plan(&Pip, &p2, &mut h).expect("plan");
        assert!(again.is_empty(), "{:?}", again.changes);
        let absent = json!({"name": ["requests"], "state": "absent", "virtualenv": "/srv/venv"});
        let pl = DynModule::plan(&Pip, &absent, &mut h).expect("plan");
        assert_eq!(pl.changes, ["uninstall requests"]);
        DynModule::apply(&Pip, &absent, pl, &mut h).expect("apply");
        assert!(DynModule::plan(&Pip, &absent, &mut h)
            .expect("plan")
            .is_empty());
    }

    #[test]
    fn requirements_and_latest_always_run() {
        let mut h = pip_host(&[]);
        let params = json!({"requirements": "req.txt", "chdir": "/srv/app", "executable": "pip3"});
        let pl = DynModule::plan(&Pip, &params, &mut h).expect("plan");
        assert_eq!(pl.changes, ["run pip3 install -r req.txt"]);
        assert!(
            !pl.unknowable,
            "check mode reports changed, as Ansible does"
        );
        let out = DynModule::apply(&Pip, &params, pl, &mut h).expect("apply");
        assert!(!out.changed, "nothing new was installed");
        let latest = json!({"name": "x", "state": "latest"});
        assert_eq!(
            DynModule::plan(&Pip, &latest, &mut h)
                .expect("plan")
                .changes,
            ["run python3 -m pip install -U x"]
        );
    }

    #[test]
    fn specifiers_and_names() {
        assert_eq!(normalize("Foo.Bar__baz"), "foo-bar-baz");
        let s = parse_spec("Django[argon2] >=4.2, <5 ; python_version > '3'");
        assert_eq!(s.name, "django");
        assert_eq!(
            s.clauses,
            [(">=".into(), "4.2".into()), ("<".into(), "5".into())]
        );
        assert_eq!(
            recover(&["a>=1".into(), "<2".into(), "b".into()]),
            ["a>=1,<2", "b"]
        );
        for (v, op, w, ok) in [
            ("1.10", ">", "1.9", true),
            ("1.0rc1", "<", "1.0", true),
            ("2.2.1", "~=", "2.2", true),
            ("3.0", "~=", "2.2", false),
            ("1.4.7", "~=", "1.4.5", true),
            ("1.5.0", "~=", "1.4.5", false),
            ("1.2.3", "==", "1.2.*", true),
            ("1.3", "!=", "1.2.*", true),
            ("1.0", "==", "1.0.0", true),
        ] {
            assert_eq!(satisfies(v, op, w), ok, "{v} {op} {w}");
        }
    }

    #[test]
    fn refusals() {
        let mut h = FakeHost::new();
        for (params, field) in [
            (json!({}), "name"),
            (json!({"name": "a", "requirements": "r"}), "requirements"),
            (
                json!({"name": "a", "virtualenv": "/v", "executable": "pip3"}),
                "executable",
            ),
        ] {
            let err = DynModule::plan(&Pip, &params, &mut h).expect_err(field);
            assert!(
                matches!(err, ModuleError::Params(ref e) if e.field() == Some(field)),
                "{err}"
            );
        }
        let err = DynModule::plan(&Pip, &json!({"name": ["a", "b"], "version": "1"}), &mut h)
            .expect_err("ambiguous");
        assert!(err
            .to_string()
            .starts_with("'version' argument is ambiguous"));
        let err = DynModule::plan(
            &Pip,
            &json!({"name": "a", "version": "1", "state": "latest"}),
            &mut h,
        )
        .expect_err("latest");
        assert_eq!(err.to_string(), "version is incompatible with state=latest");
        let e = Pip.check_params(&json!({"name": "a", "virtualenv_pyhton": "3"}));
        assert!(matches!(e, Err(ParamError::Unknown { .. })));
    }
}
