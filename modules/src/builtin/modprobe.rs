//! `modprobe` (community.general): a kernel module loaded or not, and,
//! with `persistent`, loaded at boot with its parameters.
//!
//! One probe reads `/proc/modules` (and, for a module not listed there,
//! the kernel's `modules.builtin`), and every file of
//! `/etc/modules-load.d` and `/etc/modprobe.d`. As in the collection: a
//! module to load is first tried with `modprobe -n` (check mode too), then
//! loaded with `modprobe NAME PARAMS`; one to unload is removed with
//! `modprobe -r`. `persistent: present` writes
//! `/etc/modules-load.d/NAME.conf` (the name) unless a modules-load file
//! already lists it, and, unless the `options NAME k=v` lines of
//! `/etc/modprobe.d` hold exactly `params`, comments those lines out and
//! writes `/etc/modprobe.d/NAME.conf` (one `options NAME k=v` line per
//! parameter). `persistent: absent` comments out the module's lines in
//! modules-load files and its option lines. A rewritten file's lines are
//! joined with an extra newline, as the collection's `'\n'.join` of lines
//! that keep their own does. The result has `name`, `params`, `state`.
//!
//! A host without `/proc/modules` (a kernel without loadable modules, as
//! the test fleet's containers have) fails every task with the
//! collection's message, `persistent` included, as the collection does.

use regex::Regex;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::params::de_opt_string;
use crate::shell_quote::{join, quote, split};
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `state` parameter's values.
pub enum ModprobeState {
    #[default]
    /// Loaded.
    Present,
    /// Not loaded.
    Absent,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `persistent` parameter's values.
pub enum Persistent {
    #[default]
    /// The boot configuration is left alone.
    Disabled,
    /// Loaded at boot, with `params`.
    Present,
    /// Not loaded at boot (its lines commented out).
    Absent,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `modprobe`: what `herd doc` shows, and what the parser takes.
pub struct ModprobeParams {
    /// The kernel module.
    pub name: String,
    /// Loaded or not.
    #[serde(default)]
    pub state: ModprobeState,
    /// The module's parameters, `k=v` words.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub params: Option<String>,
    /// Whether it is loaded at boot (files in `/etc/modules-load.d` and `/etc/modprobe.d`).
    #[serde(default)]
    pub persistent: Persistent,
}

/// The `modprobe` module.
pub struct Modprobe;

const LOAD_DIR: &str = "/etc/modules-load.d";
const OPTIONS_DIR: &str = "/etc/modprobe.d";

/// A config file read by the probe.
#[derive(Debug, Clone)]
struct ConfFile {
    path: String,
    text: String,
}

/// What the probe found.
struct Found {
    loaded: bool,
    load_files: Vec<ConfFile>,
    option_files: Vec<ConfFile>,
}

struct Patterns {
    module: Regex,
    option: Regex,
}

impl Patterns {
    fn new(name: &str) -> Result<Patterns, ModuleError> {
        let n = regex::escape(name);
        let re = |p: String| {
            Regex::new(&p).map_err(|e| {
                ModuleError::Params(ParamError::Invalid {
                    module: Modprobe::NAME,
                    path: "name".into(),
                    reason: e.to_string(),
                })
            })
        };
        Ok(Patterns {
            module: re(format!(r"^ *{n} *(?:[#;].*)?$"))?,
            option: re(format!(r"^options {n} (\w+=\S+) *(?:[#;].*)?$"))?,
        })
    }
}

fn body(line: &str) -> &str {
    line.strip_suffix('\n').unwrap_or(line)
}

/// The text with each line matching `re` commented out, joined as the
/// collection joins it; `None` when no line matched.
fn comment_out(text: &str, re: &Regex) -> Option<String> {
    let mut changed = false;
    let lines: Vec<String> = text
        .split_inclusive('\n')
        .map(|l| {
            if re.is_match(body(l)) {
                changed = true;
                format!("#{l}")
            } else {
                l.to_string()
            }
        })
        .collect();
    changed.then(|| lines.join("\n"))
}

fn failed_with(msg: String, p: &ModprobeParams, extra: &[(&str, Value)]) -> ModuleError {
    let mut result = base_result(p, false);
    for (k, v) in extra {
        result.insert((*k).into(), v.clone());
    }
    ModuleError::Failed { msg, result }
}

fn base_result(p: &ModprobeParams, changed: bool) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("changed".into(), json!(changed));
    m.insert("name".into(), json!(p.name));
    m.insert("params".into(), json!(p.params.clone().unwrap_or_default()));
    m.insert(
        "state".into(),
        json!(match p.state {
            ModprobeState::Present => "present",
            ModprobeState::Absent => "absent",
        }),
    );
    m
}

fn probe(host: &mut dyn Host, p: &ModprobeParams) -> Result<Found, ModuleError> {
    let script = format!(
        "command -v modprobe >/dev/null || {{ echo NOBIN; exit 0; }}\n\
         if [ -r /proc/modules ]; then echo PROC; sed 's/ .*//;s/^/M /' /proc/modules; fi\n\
         r=$(uname -r); printf 'REL %s\\n' \"$r\"\n\
         if [ -r \"/lib/modules/$r/modules.builtin\" ]; then echo BUILTINS; sed 's/^/B /' \"/lib/modules/$r/modules.builtin\"; fi\n\
         for d in {LOAD_DIR} {OPTIONS_DIR}; do for f in \"$d\"/* \"$d\"/.[!.]* \"$d\"/..?*; do\n\
         [ -f \"$f\" ] || continue; printf 'FILE %s\\n' \"$f\"; base64 -w0 < \"$f\"; echo; done; done\n"
    );
    let out = host.run(&script, None)?;
    let text = out.stdout_str();
    if text.lines().any(|l| l == "NOBIN") {
        return Err(failed_with(
            "Failed to find required executable \"modprobe\" in paths: $PATH".into(),
            p,
            &[],
        ));
    }
    let lines: Vec<&str> = text.lines().collect();
    if !lines.contains(&"PROC") {
        return Err(failed_with(
            "[Errno 2] No such file or directory: '/proc/modules'".into(),
            p,
            &[],
        ));
    }
    let proc_name = p.name.replace('-', "_");
    let mut loaded = lines
        .iter()
        .any(|l| l.strip_prefix("M ") == Some(proc_name.as_str()));
    if !loaded {
        if !lines.contains(&"BUILTINS") {
            let rel = lines
                .iter()
                .find_map(|l| l.strip_prefix("REL "))
                .unwrap_or_default();
            return Err(failed_with(
                format!(
                    "[Errno 2] No such file or directory: '/lib/modules/{rel}/modules.builtin'"
                ),
                p,
                &[],
            ));
        }
        let ko = format!("/{}.ko", p.name);
        loaded = lines
            .iter()
            .filter_map(|l| l.strip_prefix("B "))
            .any(|l| l.trim_end().ends_with(&ko));
    }
    let mut load_files = Vec::new();
    let mut option_files = Vec::new();
    let mut it = lines.iter();
    while let Some(l) = it.next() {
        let Some(path) = l.strip_prefix("FILE ") else {
            continue;
        };
        use base64::Engine as _;
        let b64 = it.next().copied().unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| ModuleError::failed(format!("cannot read {path}")))?;
        let f = ConfFile {
            path: path.to_string(),
            text: String::from_utf8_lossy(&bytes).into_owned(),
        };
        if path.starts_with(&format!("{LOAD_DIR}/")) {
            load_files.push(f);
        } else {
            option_files.push(f);
        }
    }
    Ok(Found {
        loaded,
        load_files,
        option_files,
    })
}

/// The command line `modprobe [FLAGS] NAME PARAMS...`.
fn modprobe_cmd(
    p: &ModprobeParams,
    flags: &[&str],
    with_params: bool,
) -> Result<String, ModuleError> {
    let mut argv: Vec<String> = vec!["modprobe".into()];
    argv.extend(flags.iter().map(|f| (*f).to_string()));
    argv.push(p.name.clone());
    if with_params {
        let words = split(p.params.as_deref().unwrap_or_default()).map_err(|e| {
            ModuleError::Params(ParamError::Invalid {
                module: Modprobe::NAME,
                path: "params".into(),
                reason: e.to_string(),
            })
        })?;
        argv.extend(words);
    }
    Ok(join(&argv))
}

/// Run a modprobe command line; a failure fails the task with its stderr
/// as `msg`, and `rc`, `stdout`, `stderr`, as the collection does.
fn run_modprobe(host: &mut dyn Host, p: &ModprobeParams, cmd: String) -> Result<(), ModuleError> {
    let out = host.run(&cmd, None)?;
    if out.success() {
        return Ok(());
    }
    let err = out.stderr_str();
    Err(failed_with(
        err.clone(),
        p,
        &[
            ("rc", json!(out.rc)),
            ("stdout", json!(out.stdout_str())),
            ("stderr", json!(err)),
        ],
    ))
}

/// What apply does: load or unload, and the files to write.
#[derive(Debug, Default, serde::Serialize, Deserialize)]
struct Planned {
    load: bool,
    unload: bool,
    writes: Vec<(String, String)>,
}

impl Module for Modprobe {
    const NAME: &'static str = "modprobe";
    const DOC_SHORT: &'static str = "Load or unload a kernel module, now and at boot.";
    const DOC_LONG: &'static str = r##"community.general's `modprobe`: `modprobe NAME PARAMS` / `modprobe -r NAME`, and with `persistent` the files `/etc/modules-load.d/NAME.conf` and `/etc/modprobe.d/NAME.conf` (systemd hosts). The host must have `/proc/modules` (a kernel with loadable modules)."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Bridge netfilter, now and at boot
  community.general.modprobe:
    name: br_netfilter
    persistent: present
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("name", "The module."),
        ("params", "Its parameters, as given."),
        ("state", "`present` or `absent`, as given."),
    ];
    type Params = ModprobeParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let found = probe(host, p)?;
        let pats = Patterns::new(&p.name)?;
        let mut plan = Plan::default();
        let mut planned = Planned::default();
        match p.state {
            ModprobeState::Present if !found.loaded => {
                run_modprobe(host, p, modprobe_cmd(p, &["-n"], true)?)?;
                plan.changes.push(format!("load {}", p.name));
                planned.load = true;
            }
            ModprobeState::Absent if found.loaded => {
                run_modprobe(host, p, modprobe_cmd(p, &["-r", "-n"], false)?)?;
                plan.changes.push(format!("unload {}", p.name));
                planned.unload = true;
            }
            _ => {}
        }
        let params = p.params.clone().unwrap_or_default();
        let persisted = found.load_files.iter().any(|f| {
            f.text
                .split_inclusive('\n')
                .any(|l| pats.module.is_match(body(l)))
        });
        let permanent: std::collections::BTreeSet<String> = found
            .option_files
            .iter()
            .flat_map(|f| {
                f.text
                    .split_inclusive('\n')
                    .filter_map(|l| {
                        pats.option
                            .captures(body(l))?
                            .get(1)
                            .map(|m| m.as_str().to_string())
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let wanted: std::collections::BTreeSet<String> =
            params.split_whitespace().map(str::to_string).collect();
        let params_set = wanted == permanent;
        let disable_options = |writes: &mut Vec<(String, String)>| {
            for f in &found.option_files {
                if let Some(t) = comment_out(&f.text, &pats.option) {
                    writes.push((f.path.clone(), t));
                }
            }
        };
        match p.persistent {
            Persistent::Present if !(persisted && params_set) => {
                if !persisted {
                    planned.writes.push((
                        format!("{LOAD_DIR}/{}.conf", p.name),
                        format!("{}\n", p.name),
                    ));
                }
                if !params_set {
                    disable_options(&mut planned.writes);
                    let content = params
                        .split_whitespace()
                        .map(|w| format!("options {} {w}", p.name))
                        .collect::<Vec<_>>()
                        .join("\n")
                        + "\n";
                    planned
                        .writes
                        .push((format!("{OPTIONS_DIR}/{}.conf", p.name), content));
                }
                plan.changes
                    .push(format!("load {} at boot with its parameters", p.name));
            }
            Persistent::Absent if persisted || !permanent.is_empty() => {
                if persisted {
                    for f in &found.load_files {
                        if let Some(t) = comment_out(&f.text, &pats.module) {
                            planned.writes.push((f.path.clone(), t));
                        }
                    }
                }
                if !permanent.is_empty() {
                    disable_options(&mut planned.writes);
                }
                plan.changes.push(format!("do not load {} at boot", p.name));
            }
            _ => {}
        }
        for (path, after) in &planned.writes {
            let before = found
                .load_files
                .iter()
                .chain(&found.option_files)
                .find(|f| f.path == *path)
                .map(|f| f.text.clone())
                .unwrap_or_default();
            if let Some(d) = crate::textfile::diff(path, before.as_bytes(), after.as_bytes()) {
                plan.diffs.push(d);
            }
        }
        plan.result = base_result(p, false);
        plan.result.remove("changed");
        plan.keep_state(&planned)?;
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let planned: Planned = plan.state_as()?;
        let mut warnings = Vec::new();
        let mut changed = false;
        if planned.load {
            run_modprobe(host, p, modprobe_cmd(p, &[], true)?)?;
            let check = format!(
                "sed 's/ .*//' /proc/modules | grep -qx -- {} && echo LOADED",
                quote(&p.name.replace('-', "_"))
            );
            if host.run(&check, None)?.stdout_str().contains("LOADED") {
                changed = true;
            } else {
                let out = host.run(&modprobe_cmd(p, &["-n", "--first-time"], true)?, None)?;
                if !out.success() {
                    warnings.push(out.stderr_str());
                }
            }
        }
        if planned.unload {
            run_modprobe(host, p, modprobe_cmd(p, &["-r"], false)?)?;
            changed = true;
        }
        for (path, content) in &planned.writes {
            host.write_file(path, content.as_bytes(), &Default::default())?;
            changed = true;
        }
        let mut result = base_result(p, changed);
        if !warnings.is_empty() {
            result.insert("warnings".into(), json!(warnings));
        }
        Ok(Outcome::changed_if(changed, result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{get, FakeHost, Match};
    use crate::DynModule;

    /// A host whose kernel has `overlay` and `br_netfilter` loaded, and
    /// whose config files are the FakeHost's files, listed by the probe.
    fn host_with(files: &[(&str, &str)]) -> FakeHost {
        let mut h = FakeHost::new()
            .handle(Match::contains("command -v modprobe"), |h, _, _| {
                use base64::Engine as _;
                let mut out = String::from("PROC\nM overlay\nM br_netfilter\nREL 6.1.0\nBUILTINS\nB kernel/fs/ext4/ext4.ko\n");
                for (path, text) in &h.files {
                    out.push_str(&format!(
                        "FILE {path}\n{}\n",
                        base64::engine::general_purpose::STANDARD.encode(text)
                    ));
                }
                crate::testing::ok(out)
            })
            .answer(Match::prefix("modprobe -n"), 0, "", "")
            .answer(Match::prefix("modprobe -r -n"), 0, "", "")
            .strict();
        for (p, t) in files {
            h = h.file(*p, *t);
        }
        h
    }

    #[test]
    fn a_loaded_module_is_made_persistent_then_plan_is_empty() {
        let mut h = host_with(&[("/etc/modules-load.d/modules.conf", "# /etc/modules\n")]);
        let p = json!({"name": "br_netfilter", "persistent": "present", "params": "a=1 b=2"});
        let pl = DynModule::plan(&Modprobe, &p, &mut h).expect("plan");
        assert_eq!(
            pl.changes,
            ["load br_netfilter at boot with its parameters"]
        );
        // Check mode: nothing written.
        assert!(h.uploads.is_empty());
        let out = DynModule::apply(&Modprobe, &p, pl, &mut h).expect("apply");
        assert!(out.changed);
        assert_eq!(get(&out.result, "params"), "a=1 b=2");
        assert_eq!(
            h.files
                .get("/etc/modules-load.d/br_netfilter.conf")
                .map(String::as_str),
            Some("br_netfilter\n")
        );
        assert_eq!(
            h.files
                .get("/etc/modprobe.d/br_netfilter.conf")
                .map(String::as_str),
            Some("options br_netfilter a=1\noptions br_netfilter b=2\n")
        );
        assert!(DynModule::plan(&Modprobe, &p, &mut h)
            .expect("plan")
            .is_empty());
        // New parameters: the old option lines are commented out, the file rewritten.
        let p2 = json!({"name": "br_netfilter", "persistent": "present", "params": "a=3"});
        let pl = DynModule::plan(&Modprobe, &p2, &mut h).expect("plan");
        DynModule::apply(&Modprobe, &p2, pl, &mut h).expect("apply");
        assert_eq!(
            h.files
                .get("/etc/modprobe.d/br_netfilter.conf")
                .map(String::as_str),
            Some("options br_netfilter a=3\n")
        );
        assert!(DynModule::plan(&Modprobe, &p2, &mut h)
            .expect("plan")
            .is_empty());
        let absent = json!({"name": "br_netfilter", "persistent": "absent"});
        let pl = DynModule::plan(&Modprobe, &absent, &mut h).expect("plan");
        DynModule::apply(&Modprobe, &absent, pl, &mut h).expect("apply");
        assert_eq!(
            h.files
                .get("/etc/modules-load.d/br_netfilter.conf")
                .map(String::as_str),
            Some("#br_netfilter\n")
        );
        assert_eq!(
            h.files
                .get("/etc/modprobe.d/br_netfilter.conf")
                .map(String::as_str),
            Some("#options br_netfilter a=3\n")
        );
        assert!(DynModule::plan(&Modprobe, &absent, &mut h)
            .expect("plan")
            .is_empty());
    }

    #[test]
    fn loading_and_unloading_run_modprobe() {
        let mut h = host_with(&[])
            .answer(Match::exact("modprobe dummy numdummies=2"), 0, "", "")
            .answer(Match::contains("grep -qx"), 0, "LOADED\n", "");
        let p = json!({"name": "dummy", "params": "numdummies=2"});
        let pl = DynModule::plan(&Modprobe, &p, &mut h).expect("plan");
        assert_eq!(pl.changes, ["load dummy"]);
        assert_eq!(
            h.scripts.last().map(String::as_str),
            Some("modprobe -n dummy numdummies=2")
        );
        let out = DynModule::apply(&Modprobe, &p, pl, &mut h).expect("apply");
        assert!(out.changed);
        // Loaded already: nothing to do. Builtin: loaded too.
        assert!(
            DynModule::plan(&Modprobe, &json!({"name": "overlay"}), &mut h)
                .expect("plan")
                .is_empty()
        );
        assert!(DynModule::plan(&Modprobe, &json!({"name": "ext4"}), &mut h)
            .expect("plan")
            .is_empty());
        let mut h = h.answer(Match::exact("modprobe -r overlay"), 0, "", "");
        let un = json!({"name": "overlay", "state": "absent"});
        let pl = DynModule::plan(&Modprobe, &un, &mut h).expect("plan");
        assert_eq!(pl.changes, ["unload overlay"]);
        assert!(
            DynModule::apply(&Modprobe, &un, pl, &mut h)
                .expect("apply")
                .changed
        );
    }

    #[test]
    fn a_kernel_without_modules_fails_as_the_collection_does() {
        let mut h =
            FakeHost::new().answer(Match::contains("command -v modprobe"), 0, "REL 6.18\n", "");
        let e = DynModule::plan(
            &Modprobe,
            &json!({"name": "overlay", "persistent": "present"}),
            &mut h,
        )
        .expect_err("no /proc/modules");
        assert_eq!(
            e.to_string(),
            "[Errno 2] No such file or directory: '/proc/modules'"
        );
        let mut h = FakeHost::new().answer(
            Match::contains("command -v modprobe"),
            0,
            "PROC\nM x\nREL 6.18\n",
            "",
        );
        let e = DynModule::plan(&Modprobe, &json!({"name": "overlay"}), &mut h)
            .expect_err("no modules.builtin");
        assert!(
            e.to_string().contains("/lib/modules/6.18/modules.builtin"),
            "{e}"
        );
    }
}
