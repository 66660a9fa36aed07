//! `dpkg_selections`: set a package's dpkg selection (`install`, `hold`,
//! `deinstall`, `purge`), most often to hold it at its version.
//!
//! The plan is one `dpkg --get-selections NAME`; apply is one
//! `dpkg --set-selections` fed the new line on stdin.

use serde::Deserialize;
use serde_json::{json, Map};

use crate::shell_quote::quote;
use crate::{Host, Module, ModuleError, Outcome, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `selection` parameter's values.
pub enum Selection {
    /// Installed and upgraded as usual.
    Install,
    /// Kept at its version.
    Hold,
    /// Marked for removal.
    Deinstall,
    /// Marked for removal with its configuration.
    Purge,
}

impl Selection {
    fn word(self) -> &'static str {
        match self {
            Selection::Install => "install",
            Selection::Hold => "hold",
            Selection::Deinstall => "deinstall",
            Selection::Purge => "purge",
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `dpkg_selections`: what `herd doc` shows, and what the parser takes.
pub struct DpkgSelectionsParams {
    /// The package.
    pub name: String,
    /// The selection it should have.
    pub selection: Selection,
}

/// The `dpkg_selections` module.
pub struct DpkgSelections;

const ENV: &str = "LANG=C LC_ALL=C LC_MESSAGES=C LC_CTYPE=C LANGUAGE=C";

impl Module for DpkgSelections {
    const NAME: &'static str = "dpkg_selections";
    const DOC_SHORT: &'static str =
        "Set a package's dpkg selection (install, hold, deinstall, purge).";
    const DOC_LONG: &'static str = r##"Reads the package's selection with `dpkg --get-selections` and changes it with `dpkg --set-selections` only when it differs. A package dpkg has never heard of fails the task. `before` and `after` are returned, in check mode too."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Keep docker at its version
  dpkg_selections:
    name: docker.io
    selection: hold
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        (
            "before",
            "the selection before (`not present` when the package has none)",
        ),
        ("after", "the selection asked for"),
    ];
    type Params = DpkgSelectionsParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let out = host.run(
            &format!("{ENV} dpkg --get-selections {}", quote(&p.name)),
            None,
        )?;
        if !out.success() {
            return Err(ModuleError::failed(format!(
                "dpkg --get-selections failed (rc={}): {}",
                out.rc,
                out.stderr_str().trim_end()
            )));
        }
        if out.stderr_str().contains("no packages found matching") {
            return Err(ModuleError::failed(format!(
                "Failed to find package '{}' to perform selection '{}'.",
                p.name,
                p.selection.word()
            )));
        }
        let stdout = out.stdout_str();
        let current = stdout
            .split_whitespace()
            .nth(1)
            .unwrap_or("not present")
            .to_string();
        let mut plan = Plan::default();
        plan.result.insert("before".into(), json!(current));
        plan.result
            .insert("after".into(), json!(p.selection.word()));
        if current != p.selection.word() {
            plan.changes.push(format!(
                "{}: selection {current} -> {}",
                p.name,
                p.selection.word()
            ));
        }
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let line = format!("{} {}", p.name, p.selection.word());
        let out = host.run(
            &format!("{ENV} dpkg --set-selections"),
            Some(line.as_bytes()),
        )?;
        if !out.success() {
            return Err(ModuleError::failed(format!(
                "dpkg --set-selections failed (rc={}): {}",
                out.rc,
                out.stderr_str().trim_end()
            )));
        }
        let result: Map<String, serde_json::Value> = plan.result;
        Ok(Outcome::changed(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{get, ok, FakeHost, Match};
    use crate::DynModule;

    /// A dpkg with one package whose selection the fake keeps.
    fn dpkg(selection: &str) -> FakeHost<String> {
        FakeHost::with_state(selection.to_string())
            .handle(Match::contains("--get-selections"), |h, cmd, _| {
                if cmd.contains("nope") {
                    return Ok(crate::testing::exec(
                        0,
                        "",
                        "dpkg: no packages found matching nope\n",
                    ));
                }
                let sel = h.state.clone();
                ok(if sel.is_empty() {
                    String::new()
                } else {
                    format!("docker.io\t\t\t\t\t{sel}\n")
                })
            })
            .handle(Match::contains("--set-selections"), |h, _, stdin| {
                let line = String::from_utf8_lossy(stdin.unwrap_or_default()).into_owned();
                h.state = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                ok("")
            })
    }

    #[test]
    fn holds_then_converges() {
        let mut h = dpkg("install");
        let params = json!({"name": "docker.io", "selection": "hold"});
        let pl = DynModule::plan(&DpkgSelections, &params, &mut h).expect("plan");
        // Check mode is this plan: it names the change and touches nothing.
        assert_eq!(pl.changes, ["docker.io: selection install -> hold"]);
        assert_eq!(h.state, "install");
        assert_eq!(get(&pl.result, "before"), "install");
        let out = DynModule::apply(&DpkgSelections, &params, pl, &mut h).expect("apply");
        assert!(out.changed);
        assert_eq!(get(&out.result, "after"), "hold");
        assert_eq!(h.state, "hold");
        let again = DynModule::plan(&DpkgSelections, &params, &mut h).expect("plan");
        assert!(again.is_empty());
        assert_eq!(h.inputs[1].as_deref(), Some(&b"docker.io hold"[..]));
    }

    #[test]
    fn not_present_and_unknown_packages() {
        let mut h = dpkg("");
        let pl = DynModule::plan(
            &DpkgSelections,
            &json!({"name": "docker.io", "selection": "purge"}),
            &mut h,
        )
        .expect("plan");
        assert_eq!(get(&pl.result, "before"), "not present");
        let err = DynModule::plan(
            &DpkgSelections,
            &json!({"name": "nope", "selection": "hold"}),
            &mut h,
        )
        .expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "Failed to find package 'nope' to perform selection 'hold'."
        );
        let bad = DpkgSelections.check_params(&json!({"name": "x", "selection": "keep"}));
        assert!(matches!(bad, Err(ref e) if e.field() == Some("selection")));
    }
}
