//! `getent`: read a name-service database (`passwd`, `group`, `hosts`,
//! `services`, ...) with the host's `getent` and return it as the fact
//! `getent_<database>`: each record's first field is the key, the rest a
//! list (a key seen twice holds a list of such lists, as in Ansible).
//!
//! It never changes anything: one `getent` run is the plan, whose result
//! carries `ansible_facts`; the engine makes a module's `ansible_facts`
//! the host's facts.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::params::{de_bool, de_opt_string, yes};
use crate::shell_quote::join;
use crate::{Host, Module, ModuleError, Outcome, Plan};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `getent`: what `herd doc` shows, and what the parser takes.
pub struct GetentParams {
    /// The database: `passwd`, `group`, `shadow`, `hosts`, `services`, ... (what `getent`
    /// takes).
    pub database: String,
    /// One record to look up; unset lists the whole database.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub key: Option<String>,
    /// The NSS service to ask (`getent -s`).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub service: Option<String>,
    /// The field separator; `passwd`, `shadow`, `group` and `gshadow` default to `:`, others
    /// to runs of white space.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub split: Option<String>,
    /// A `key` that is not found fails the task; otherwise it is returned as null.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub fail_key: bool,
}

/// The `getent` module.
pub struct Getent;

/// The records of `getent`'s output by first field.
fn parse(out: &str, split: Option<&str>) -> Map<String, Value> {
    let mut tree: IndexMap<String, Value> = IndexMap::new();
    let mut seen: IndexMap<String, usize> = IndexMap::new();
    for line in out.lines() {
        let record: Vec<&str> = match split {
            Some(s) if !s.is_empty() => line.split(s).collect(),
            _ => line.split_whitespace().collect(),
        };
        let Some((key, rest)) = record.split_first() else {
            continue;
        };
        let rest = json!(rest);
        let key = (*key).to_string();
        match seen.get_mut(&key) {
            None => {
                seen.insert(key.clone(), 1);
                tree.insert(key, rest);
            }
            Some(n) => {
                let slot = tree.entry(key).or_insert(Value::Null);
                if *n == 1 {
                    *slot = Value::Array(vec![slot.take()]);
                }
                if let Value::Array(list) = slot {
                    list.push(rest);
                }
                *n += 1;
            }
        }
    }
    tree.into_iter().collect()
}

impl Getent {
    fn result(p: &GetentParams, host: &mut dyn Host) -> Result<Map<String, Value>, ModuleError> {
        let mut argv = vec!["getent", p.database.as_str()];
        if let Some(k) = &p.key {
            argv.push(k.as_str());
        }
        if let Some(s) = &p.service {
            argv.extend(["-s", s.as_str()]);
        }
        let out = host.run(&join(&argv), None)?;
        let split = match (&p.split, p.database.as_str()) {
            (Some(s), _) => Some(s.as_str()),
            (None, "passwd" | "shadow" | "group" | "gshadow") => Some(":"),
            (None, _) => None,
        };
        let facts = |tree: Map<String, Value>| {
            let mut f = Map::new();
            f.insert(format!("getent_{}", p.database), Value::Object(tree));
            let mut r = Map::new();
            r.insert("ansible_facts".into(), Value::Object(f));
            r
        };
        let msg = match out.rc {
            0 => return Ok(facts(parse(&out.stdout_str(), split))),
            1 => "Missing arguments, or database unknown.",
            2 => {
                let msg = "One or more supplied key could not be found in the database.";
                if !p.fail_key {
                    let mut tree = Map::new();
                    tree.insert(p.key.clone().unwrap_or_default(), Value::Null);
                    let mut r = facts(tree);
                    r.insert("msg".into(), json!(msg));
                    return Ok(r);
                }
                msg
            }
            3 => "Enumeration not supported on this database.",
            127 => "Failed to find required executable \"getent\"",
            _ => "Unexpected failure!",
        };
        Err(ModuleError::failed(msg))
    }
}

impl Module for Getent {
    const NAME: &'static str = "getent";
    const DOC_SHORT: &'static str =
        "Read a name-service database (passwd, group, hosts, ...) into the fact `getent_<database>`.";
    const DOC_LONG: &'static str = r##"Runs the host's `getent` once and never changes anything. Each record is keyed by its first field; the value is the list of the other fields (`getent_passwd.root[4]` is root's home directory). A key that appears twice holds a list of such lists, as in Ansible."##;
    const DOC_EXAMPLE: &'static str = r##"- name: Look up the deploy user
  getent:
    database: passwd
    key: deploy
- name: Its home
  debug:
    msg: "{{ getent_passwd.deploy[4] }}"
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        (
            "ansible_facts",
            "`getent_<database>`: the records by key (also set as a fact of the host)",
        ),
        ("msg", "with `fail_key: false`, why the key is null"),
    ];
    type Params = GetentParams;

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
    use crate::testing::{get, plan, FakeHost, Match};
    use crate::DynModule;

    fn facts(r: &Map<String, Value>, db: &str) -> Value {
        get(r, "ansible_facts")[format!("getent_{db}")].clone()
    }

    #[test]
    fn reads_passwd_on_the_local_host() {
        // The plan is the task: nothing to apply, in check mode or not.
        let pl = plan(&Getent, &json!({"database": "passwd", "key": "root"}));
        assert!(pl.is_empty());
        let root = &facts(&pl.result, "passwd")["root"];
        assert_eq!(root[1], "0", "uid");
        assert_eq!(root.as_array().map(Vec::len), Some(6));
    }

    #[test]
    fn splits_and_groups_like_ansible() {
        let mut h = FakeHost::new()
            .answer(
                Match::exact("getent hosts"),
                0,
                "127.0.0.1       localhost\n::1     localhost ip6-localhost\n10.0.0.2 db\n",
                "",
            )
            .answer(
                Match::exact("getent group sudo -s files"),
                0,
                "sudo:x:27:deploy,ci\n",
                "",
            )
            .answer(Match::exact("getent passwd nobody2"), 2, "", "");
        let r = DynModule::plan(&Getent, &json!({"database": "hosts"}), &mut h).expect("plan");
        let hosts = facts(&r.result, "hosts");
        assert_eq!(hosts["127.0.0.1"], json!(["localhost"]));
        assert_eq!(hosts["::1"], json!(["localhost", "ip6-localhost"]));
        let r = DynModule::plan(
            &Getent,
            &json!({"database": "group", "key": "sudo", "service": "files"}),
            &mut h,
        )
        .expect("plan");
        assert_eq!(
            facts(&r.result, "group")["sudo"],
            json!(["x", "27", "deploy,ci"])
        );
        let err = DynModule::plan(
            &Getent,
            &json!({"database": "passwd", "key": "nobody2"}),
            &mut h,
        )
        .expect_err("missing key");
        assert_eq!(
            err.to_string(),
            "One or more supplied key could not be found in the database."
        );
        let r = DynModule::plan(
            &Getent,
            &json!({"database": "passwd", "key": "nobody2", "fail_key": "no"}),
            &mut h,
        )
        .expect("plan");
        assert_eq!(facts(&r.result, "passwd"), json!({"nobody2": null}));
        assert_eq!(h.scripts.len(), 4, "one round trip each");
    }

    #[test]
    fn a_key_seen_twice_holds_a_list_of_records() {
        let t = parse("a 1\nb 2\na 3\na 4\n", None);
        assert_eq!(t["a"], json!([["1"], ["3"], ["4"]]));
        assert_eq!(t["b"], json!(["2"]));
        let t = parse("x;y;z\n", Some(";"));
        assert_eq!(t["x"], json!(["y", "z"]));
        let e = Getent.check_params(&json!({"database": "passwd", "keys": "x"}));
        assert!(matches!(e, Err(crate::ParamError::Unknown { ref field, .. }) if field == "keys"));
    }
}
