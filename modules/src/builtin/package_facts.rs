//! `package_facts`: the host's installed Debian packages as the fact
//! `packages`, keyed by name, each a list of `{name, version, arch,
//! category, source: apt}` (a list because other package managers can
//! hold several versions, as in Ansible).
//!
//! One `dpkg-query` is the whole probe (Ansible reads the same database
//! through python3-apt, which herd does not need). It never changes
//! anything: the plan is empty and carries `ansible_facts`, which the
//! engine makes the host's facts.
//!
//! Differences from Ansible: only apt/dpkg is read (the other managers are
//! refused by name); `origin` (the archive a package came from, which
//! python3-apt reads from the apt lists) is not returned.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::account::de_opt_list;
use crate::{Host, Module, ModuleError, Outcome, ParamError, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `strategy` parameter's values.
pub enum Strategy {
    #[default]
    /// Stop at the first manager found.
    First,
    /// Read every manager found.
    All,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `package_facts`: what `herd doc` shows, and what the parser takes.
pub struct PackageFactsParams {
    /// The package managers to read: `auto` (the default) or `apt`.
    #[serde(default, deserialize_with = "de_opt_list")]
    #[schemars(with = "Option<crate::doc::shapes::StringOrList>")]
    pub manager: Option<Vec<String>>,
    /// With several managers, read the first found or all of them (only apt is read).
    #[serde(default)]
    pub strategy: Strategy,
}

/// The `package_facts` module.
pub struct PackageFacts;

/// Installed packages, one line each, tab-separated.
const QUERY: &str = "LC_ALL=C dpkg-query -W -f='${binary:Package}\\t${Version}\\t${Architecture}\\t${Section}\\t${db:Status-Abbrev}\\n'";

/// The managers Ansible knows (and their aliases): asking for one of them
/// is refused as unsupported here, a name Ansible does not know as unknown.
const OTHER_MANAGERS: &[&str] = &[
    "rpm",
    "dnf",
    "dnf5",
    "yum",
    "zypper",
    "portage",
    "pkg",
    "pkg5",
    "pkgng",
    "pacman",
    "apk",
    "pkg_info",
    "openbsd_pkg",
];

fn check_managers(p: &PackageFactsParams) -> Result<(), ModuleError> {
    let invalid = |reason: String| {
        ModuleError::Params(ParamError::Invalid {
            module: PackageFacts::NAME,
            path: "manager".into(),
            reason,
        })
    };
    for m in p.manager.iter().flatten() {
        let m = m.to_ascii_lowercase();
        if m == "auto" || m == "apt" {
            continue;
        }
        if OTHER_MANAGERS.contains(&m.as_str()) {
            return Err(invalid(format!(
                "package manager {m} is not supported: herd reads apt (dpkg) packages only"
            )));
        }
        return Err(invalid(format!(
            "Unsupported package managers requested: {m}"
        )));
    }
    Ok(())
}

/// `dpkg-query` lines to Ansible's `packages`.
fn parse(out: &str) -> Map<String, Value> {
    let mut packages = Map::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 5 {
            continue;
        }
        // Installed means a version is on disk: not `n` (not installed)
        // nor `c` (only config files left).
        let installed = f[4].chars().nth(1).is_some_and(|c| !matches!(c, 'n' | 'c'));
        if !installed || f[0].is_empty() {
            continue;
        }
        let entry = json!({
            "name": f[0],
            "version": f[1],
            "arch": f[2],
            "category": f[3],
            "source": "apt",
        });
        match packages.get_mut(f[0]) {
            Some(Value::Array(list)) => list.push(entry),
            _ => {
                packages.insert(f[0].to_string(), json!([entry]));
            }
        }
    }
    packages
}

impl PackageFacts {
    fn result(
        p: &PackageFactsParams,
        host: &mut dyn Host,
    ) -> Result<Map<String, Value>, ModuleError> {
        check_managers(p)?;
        let out = host.run(QUERY, None)?;
        if out.rc == 127 {
            return Err(ModuleError::failed(
                "Could not detect a supported package manager from the following list: ['apt'], or the required Python library is not installed. Check warnings for details.",
            ));
        }
        if !out.success() {
            return Err(ModuleError::failed(format!(
                "Failed to retrieve packages with apt: {}",
                out.stderr_str().trim_end()
            )));
        }
        let mut facts = Map::new();
        facts.insert("packages".into(), Value::Object(parse(&out.stdout_str())));
        let mut result = Map::new();
        result.insert("ansible_facts".into(), Value::Object(facts));
        Ok(result)
    }
}

impl Module for PackageFacts {
    const NAME: &'static str = "package_facts";
    const DOC_SHORT: &'static str =
        "Read the host's installed packages (apt/dpkg) into the fact `packages`.";
    const DOC_LONG: &'static str = r##"Never changes the host. One `dpkg-query` reads every installed package; `packages` is keyed by name (`name:arch` for a foreign architecture), each a list of `{name, version, arch, category, source}` as in Ansible."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Read the packages
  package_facts:
- name: Warn about an old openssl
  debug:
    msg: "openssl {{ packages['openssl'][0].version }}"
  when: "'openssl' in packages"
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[(
        "ansible_facts",
        "`packages`: by name, a list of `{name, version, arch, category, source}` (also set as a fact of the host)",
    )];
    type Params = PackageFactsParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        Ok(Plan {
            result: Self::result(p, host)?,
            ..Plan::default()
        })
    }

    fn apply(
        &self,
        _p: &Self::Params,
        plan: Plan,
        _host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        Ok(Outcome::read_in_plan(plan))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{get, host, FakeHost, Match};
    use crate::DynModule;

    #[test]
    fn parses_installed_packages_only() {
        let mut h = FakeHost::new().answer(
            Match::contains("dpkg-query"),
            0,
            "bash\t5.2.15-2+b2\tamd64\tshells\tii \n\
             libc6:i386\t2.36-9\ti386\tlibs\tii \n\
             oldpkg\t1.0\tall\tmisc\trc \n\
             gone\t\tamd64\t\tun \n\
             half\t2\tall\tmisc\tiU \n",
            "",
        );
        let pl = DynModule::plan(&PackageFacts, &json!({"manager": "auto"}), &mut h).expect("plan");
        assert!(pl.is_empty());
        assert_eq!(h.scripts.len(), 1);
        let p = &get(&pl.result, "ansible_facts")["packages"];
        assert_eq!(
            p["bash"],
            json!([{"name": "bash", "version": "5.2.15-2+b2", "arch": "amd64", "category": "shells", "source": "apt"}])
        );
        assert_eq!(p["libc6:i386"][0]["arch"], "i386");
        assert_eq!(p["half"][0]["version"], "2");
        assert!(p.get("oldpkg").is_none() && p.get("gone").is_none());
    }

    #[test]
    fn managers_other_than_apt_are_refused() {
        for (m, ok) in [("apt", true), ("rpm", false), ("nope", false)] {
            let r = DynModule::plan(
                &PackageFacts,
                &json!({"manager": [m], "strategy": "all"}),
                &mut FakeHost::new(),
            );
            assert_eq!(r.is_ok(), ok, "{m}");
            if let Err(ModuleError::Params(e)) = r {
                assert_eq!(e.field(), Some("manager"));
            }
        }
    }

    /// On the test machine itself, when it is a Debian system.
    #[test]
    fn reads_the_local_dpkg_database_when_there_is_one() {
        if !std::path::Path::new("/var/lib/dpkg/status").exists() {
            return;
        }
        let pl = DynModule::plan(&PackageFacts, &json!({}), &mut host()).expect("plan");
        let p = &get(&pl.result, "ansible_facts")["packages"];
        assert!(p.get("dpkg").is_some(), "dpkg itself is installed");
    }
}
