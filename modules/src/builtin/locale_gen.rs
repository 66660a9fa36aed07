//! `locale_gen` (community.general): locales generated, or not, on Debian
//! and Ubuntu, through `/etc/locale.gen` and `locale-gen` (the collection's
//! `glibc` mechanism).
//!
//! One probe reads `/etc/locale.gen`, `/usr/share/i18n/SUPPORTED` and
//! `locale -a`. A name must be listed in SUPPORTED (commented or not) or
//! already be generated, else the task fails naming it. The locales count
//! as present when every name is in `locale -a` (compared as the collection
//! compares them, `.utf8` as `.UTF-8` and the like); a task whose state
//! already holds changes nothing. Otherwise apply uncomments (`present`)
//! or comments out (`absent`) each name's line in `/etc/locale.gen`, runs
//! `locale-gen`, and reports a change when the state read again from
//! `locale -a` differs from before. The result has `name`, `mechanism`
//! and `ubuntu_mode`.
//!
//! Differences from the collection: check mode reports the change the run
//! would make (the collection's check mode always reports no change). The
//! deprecated `ubuntu_legacy` mechanism (`/var/lib/locales/supported.d`
//! without `/etc/locale.gen`) is not supported: such a host fails the task.

use regex::Regex;
use serde::Deserialize;
use serde_json::json;

use crate::account::de_opt_list;
use crate::{Host, Module, ModuleError, Outcome, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `state` parameter's values.
pub enum LocaleState {
    #[default]
    /// The locales are generated.
    Present,
    /// The locales are not generated.
    Absent,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `locale_gen`: what `herd doc` shows, and what the parser takes.
pub struct LocaleGenParams {
    /// The locales with their encoding (`en_GB.UTF-8`).
    #[serde(deserialize_with = "de_list")]
    #[schemars(with = "crate::doc::shapes::StringOrList")]
    pub name: Vec<String>,
    /// Whether the locales are generated.
    #[serde(default)]
    pub state: LocaleState,
}

fn de_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    de_opt_list(d)?.ok_or_else(|| serde::de::Error::custom("expected a list of locales"))
}

/// The `locale_gen` module.
pub struct LocaleGen;

/// `locale -a` spells some encodings in lower case without dashes.
const NORMALIZATION: [(&str, &str); 10] = [
    (".utf8", ".UTF-8"),
    (".eucjp", ".EUC-JP"),
    (".iso885915", ".ISO-8859-15"),
    (".cp1251", ".CP1251"),
    (".koi8r", ".KOI8-R"),
    (".armscii8", ".ARMSCII-8"),
    (".euckr", ".EUC-KR"),
    (".gbk", ".GBK"),
    (".gb18030", ".GB18030"),
    (".euctw", ".EUC-TW"),
];

fn fix_case(name: &str) -> String {
    NORMALIZATION
        .iter()
        .fold(name.to_string(), |n, (s, r)| n.replace(s, r))
}

/// The names not in `locale -a`'s output.
fn not_present<'a>(names: &'a [String], generated: &str) -> Vec<&'a str> {
    let have: Vec<String> = generated.lines().map(fix_case).collect();
    names
        .iter()
        .filter(|n| !have.contains(&fix_case(n)))
        .map(String::as_str)
        .collect()
}

/// `/etc/locale.gen` with each name's line enabled or commented out.
fn set_locales(text: &str, names: &[String], enabled: bool) -> Result<String, ModuleError> {
    let res = names
        .iter()
        .map(|n| {
            Regex::new(&format!(r"^#?\s*{} (.+)", regex::escape(n)))
                .map(|re| (re, n.as_str()))
                .map_err(|e| ModuleError::failed(format!("locale name {n}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let (body, eol) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let mut body = body.to_string();
        for (re, name) in &res {
            if let Some(c) = re.captures(&body) {
                let charset = c.get(1).map_or("", |m| m.as_str());
                let end = c.get(0).map_or(0, |m| m.end());
                let new = if enabled {
                    format!("{name} {charset}")
                } else {
                    format!("# {name} {charset}")
                };
                body = format!("{new}{}", &body[end..]);
            }
        }
        out.push_str(&body);
        out.push_str(eol);
    }
    Ok(out)
}

/// The keys the collection returns, failures included.
fn result_keys(p: &LocaleGenParams) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("name".into(), json!(p.name));
    m.insert("ubuntu_mode".into(), json!(false));
    m.insert("mechanism".into(), json!("glibc"));
    m
}

/// What the probe read, split by its markers.
struct Found {
    mechanism: Option<String>,
    supported: Option<String>,
    generated: String,
    locale_gen: String,
}

const MARKS: [&str; 3] = [
    "--herd-supported--\n",
    "--herd-locales--\n",
    "--herd-gen--\n",
];

fn probe(host: &mut dyn Host) -> Result<Found, ModuleError> {
    let script = format!(
        "if [ -e /etc/locale.gen ]; then echo glibc; elif [ -e /var/lib/locales/supported.d ]; then echo ubuntu_legacy; fi\n\
         printf %s {m0}; if [ -r /usr/share/i18n/SUPPORTED ]; then echo yes; cat /usr/share/i18n/SUPPORTED; fi\n\
         printf %s {m1}; locale -a || exit 3\n\
         printf %s {m2}; cat /etc/locale.gen 2>/dev/null\n",
        m0 = crate::shell_quote::quote(MARKS[0]),
        m1 = crate::shell_quote::quote(MARKS[1]),
        m2 = crate::shell_quote::quote(MARKS[2]),
    );
    let out = host.run(&script, None)?;
    if !out.success() {
        return Err(ModuleError::failed(format!(
            "locale -a failed (rc={}): {}",
            out.rc,
            out.stderr_str().trim_end()
        )));
    }
    let text = out.stdout_str();
    let (mech, rest) = text.split_once(MARKS[0]).unwrap_or((&text, ""));
    let (supported, rest) = rest.split_once(MARKS[1]).unwrap_or((rest, ""));
    let (generated, gen) = rest.split_once(MARKS[2]).unwrap_or((rest, ""));
    Ok(Found {
        mechanism: Some(mech.trim().to_string()).filter(|m| !m.is_empty()),
        supported: supported.strip_prefix("yes\n").map(str::to_string),
        generated: generated.to_string(),
        locale_gen: gen.to_string(),
    })
}

impl Module for LocaleGen {
    const NAME: &'static str = "locale_gen";
    const DOC_SHORT: &'static str = "Generate locales, or remove them, on Debian and Ubuntu.";
    const DOC_LONG: &'static str = r##"community.general's `locale_gen` with its `glibc` mechanism: each locale's line in `/etc/locale.gen` is uncommented (or commented out) and `locale-gen` runs. The `locales` package must be installed."##;
    const DOC_EXAMPLE: &'static str = r##"- name: German and British English
  community.general.locale_gen:
    name:
      - de_DE.UTF-8
      - en_GB.UTF-8
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("name", "The locales, as a list."),
        ("mechanism", "`glibc`."),
        ("ubuntu_mode", "`false`."),
    ];
    type Params = LocaleGenParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let found = probe(host)?;
        match found.mechanism.as_deref() {
            Some("glibc") => {}
            Some(_) => {
                return Err(ModuleError::failed(
                    "/etc/locale.gen is missing: the deprecated ubuntu_legacy mechanism \
                     (/var/lib/locales/supported.d) is not supported",
                ))
            }
            None => {
                return Err(ModuleError::failed(
                    "/var/lib/locales/supported.d and /etc/locale.gen are missing. Is the package \"locales\" installed?",
                ))
            }
        }
        let supported = found.supported.as_deref().ok_or_else(|| {
            ModuleError::failed("[Errno 2] No such file or directory: '/usr/share/i18n/SUPPORTED'")
        })?;
        let avail = Regex::new(r"^\s*#?\s*(\S{2,}) \S+\s*$")
            .map_err(|e| ModuleError::failed(e.to_string()))?;
        let listed: Vec<&str> = supported
            .lines()
            .filter_map(|l| avail.captures(l)?.get(1).map(|m| m.as_str()))
            .collect();
        let unlisted: Vec<String> = p
            .name
            .iter()
            .filter(|n| !listed.contains(&n.as_str()))
            .cloned()
            .collect();
        let missing = not_present(&unlisted, &found.generated);
        if !missing.is_empty() {
            return Err(ModuleError::Failed {
                msg: format!(
                    "The following locales you have entered are not available on your system: {}",
                    missing.join(", ")
                ),
                result: result_keys(p),
            });
        }
        let present = not_present(&p.name, &found.generated).is_empty();
        let mut plan = Plan {
            result: result_keys(p),
            ..Plan::default()
        };
        let want = p.state == LocaleState::Present;
        if present != want {
            let after = set_locales(&found.locale_gen, &p.name, want)?;
            plan.changes.push(format!(
                "{} {} (locale-gen)",
                if want { "generate" } else { "remove" },
                p.name.join(", ")
            ));
            if let Some(d) = crate::textfile::diff(
                "/etc/locale.gen",
                found.locale_gen.as_bytes(),
                after.as_bytes(),
            ) {
                plan.diffs.push(d);
            }
            plan.state = json!({"locale_gen": after, "present": present});
        }
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let text = plan
            .state
            .get("locale_gen")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| ModuleError::failed("locale_gen: apply called without a plan"))?;
        let before = plan
            .state
            .get("present")
            .and_then(serde_json::Value::as_bool);
        host.write_file("/etc/locale.gen", text.as_bytes(), &Default::default())?;
        let out = host.run("locale-gen", None)?;
        if !out.success() {
            return Err(ModuleError::failed(format!(
                "locale-gen failed (rc={}): {}",
                out.rc,
                out.stderr_str().trim_end()
            )));
        }
        let now = host.run("locale -a", None)?;
        let after = not_present(&p.name, &now.stdout_str()).is_empty();
        let mut result = plan.result.clone();
        let changed = before != Some(after);
        result.insert("changed".into(), json!(changed));
        Ok(Outcome::changed_if(changed, result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{get, FakeHost, Match};
    use crate::DynModule;
    use std::sync::{Arc, Mutex};

    const GEN: &str =
        "# This file lists locales\n# de_DE.UTF-8 UTF-8\n# en_US.UTF-8 UTF-8\n# en_US ISO-8859-1\n";
    const SUPPORTED: &str = "de_DE.UTF-8 UTF-8\nen_US.UTF-8 UTF-8\nen_US ISO-8859-1\n";

    /// A Debian host whose `locale-gen` generates what `/etc/locale.gen` enables.
    fn debian() -> (FakeHost, Arc<Mutex<String>>) {
        let gen = Arc::new(Mutex::new(GEN.to_string()));
        let (g1, g2, g3) = (gen.clone(), gen.clone(), gen.clone());
        let generated = move |g: &str| -> String {
            let mut s = String::from("C\nC.utf8\nPOSIX\n");
            for l in g.lines().filter(|l| !l.starts_with('#')) {
                if let Some(n) = l.split(' ').next() {
                    s.push_str(&n.replace(".UTF-8", ".utf8"));
                    s.push('\n');
                }
            }
            s
        };
        let gen_a = generated;
        let h = FakeHost::new()
            .handle(Match::contains("/etc/locale.gen ]"), move |_, _, _| {
                let g = g1.lock().map(|g| g.clone()).unwrap_or_default();
                crate::testing::ok(format!(
                    "glibc\n{}yes\n{SUPPORTED}{}{}{}{g}",
                    MARKS[0],
                    MARKS[1],
                    gen_a(&g),
                    MARKS[2]
                ))
            })
            .handle(Match::exact("locale -a"), move |_, _, _| {
                let g = g2.lock().map(|g| g.clone()).unwrap_or_default();
                crate::testing::ok(generated(&g))
            })
            .answer(Match::exact("locale-gen"), 0, "", "")
            .on_write(move |_, path, content| {
                if path == "/etc/locale.gen" {
                    if let Ok(mut g) = g3.lock() {
                        *g = String::from_utf8_lossy(content).into_owned();
                    }
                }
            })
            .strict();
        (h, gen)
    }

    #[test]
    fn generates_then_plan_is_empty_and_removes() {
        let (mut h, gen) = debian();
        let p = json!({"name": "de_DE.UTF-8,en_US.UTF-8"});
        let pl = DynModule::plan(&LocaleGen, &p, &mut h).expect("plan");
        assert_eq!(pl.changes.len(), 1);
        // Check mode: the plan alone changes nothing.
        assert_eq!(gen.lock().map(|g| g.clone()).ok().as_deref(), Some(GEN));
        let out = DynModule::apply(&LocaleGen, &p, pl, &mut h).expect("apply");
        assert!(out.changed);
        assert_eq!(get(&out.result, "mechanism"), "glibc");
        assert_eq!(
            get(&out.result, "name"),
            &json!(["de_DE.UTF-8", "en_US.UTF-8"])
        );
        assert_eq!(
            gen.lock().map(|g| g.clone()).ok().as_deref(),
            Some("# This file lists locales\nde_DE.UTF-8 UTF-8\nen_US.UTF-8 UTF-8\n# en_US ISO-8859-1\n")
        );
        assert!(DynModule::plan(&LocaleGen, &p, &mut h)
            .expect("plan")
            .is_empty());
        let absent = json!({"name": ["de_DE.UTF-8"], "state": "absent"});
        let pl = DynModule::plan(&LocaleGen, &absent, &mut h).expect("plan");
        DynModule::apply(&LocaleGen, &absent, pl, &mut h).expect("apply");
        assert!(gen
            .lock()
            .map(|g| g.contains("# de_DE.UTF-8 UTF-8\nen_US.UTF-8 UTF-8\n"))
            .unwrap_or(false));
        assert!(DynModule::plan(&LocaleGen, &absent, &mut h)
            .expect("plan")
            .is_empty());
    }

    #[test]
    fn unknown_locales_fail_naming_them() {
        let (mut h, _) = debian();
        let e = DynModule::plan(
            &LocaleGen,
            &json!({"name": ["xx_YY.UTF-8", "en_US.UTF-8"]}),
            &mut h,
        )
        .expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "The following locales you have entered are not available on your system: xx_YY.UTF-8"
        );
        // C.UTF-8 is not in SUPPORTED but is generated: it is available.
        assert!(
            DynModule::plan(&LocaleGen, &json!({"name": "C.UTF-8"}), &mut h)
                .expect("plan")
                .is_empty()
        );
        let mut h = FakeHost::new().answer(
            Match::contains("/etc/locale.gen ]"),
            0,
            format!("{}{}{}", MARKS[0], MARKS[1], MARKS[2]),
            "",
        );
        let e = DynModule::plan(&LocaleGen, &json!({"name": "C.UTF-8"}), &mut h)
            .expect_err("no locales package");
        assert!(
            e.to_string()
                .contains("Is the package \"locales\" installed?"),
            "{e}"
        );
    }
}
