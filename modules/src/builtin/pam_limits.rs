//! `pam_limits` (community.general): one limit line of
//! `/etc/security/limits.conf` (or `dest`).
//!
//! The plan reads the file in its one probe and rewrites it line by line
//! with the collection's rules: lines starting with `#`, blank lines and
//! lines without four fields are kept as they are; a line of the same
//! domain, type and item gets the new value (with `use_max`/`use_min` only
//! when the new one is larger/smaller, `unlimited`, `infinity` and `-1`
//! counting as no limit), and the limit is appended when there was none.
//! A comment is written after the value as `\t#comment`; without
//! `comment`, the comment of the last limit line read before is reused, as
//! the collection does. Every four-field line's value is checked as the
//! collection checks it, so a file with an invalid limit fails the task.
//! Apply writes the new text atomically (a new file gets mode 0644).
//!
//! Differences from the collection: `backup` copies the file only when it
//! changes (the collection copies it on every run, check mode included).
//! The registered result has no `diff` (`--diff` shows the planned change).

use serde::Deserialize;
use serde_json::json;

use crate::params::{de_bool, de_opt_string};
use crate::probe::WantedAttrs;
use crate::shell_quote::quote_path;
use crate::textfile::{self, Edit, Read};
use crate::{Host, Module, ModuleError, Outcome, Plan};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
/// The `limit_type` parameter's values.
pub enum LimitType {
    /// A soft limit.
    #[serde(rename = "soft")]
    Soft,
    /// A hard limit.
    #[serde(rename = "hard")]
    Hard,
    /// Both.
    #[serde(rename = "-")]
    Both,
}

impl LimitType {
    fn word(self) -> &'static str {
        match self {
            LimitType::Soft => "soft",
            LimitType::Hard => "hard",
            LimitType::Both => "-",
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
/// The `limit_item` parameter's values (see `limits.conf(5)`).
pub enum LimitItem {
    /// Core file size.
    Core,
    /// Data size.
    Data,
    /// File size.
    Fsize,
    /// Locked memory.
    Memlock,
    /// Open files.
    Nofile,
    /// Resident set size.
    Rss,
    /// Stack size.
    Stack,
    /// CPU time.
    Cpu,
    /// Processes.
    Nproc,
    /// Address space.
    As,
    /// Logins of the user.
    Maxlogins,
    /// Logins on the system.
    Maxsyslogins,
    /// Priority.
    Priority,
    /// File locks.
    Locks,
    /// Pending signals.
    Sigpending,
    /// POSIX message queues.
    Msgqueue,
    /// Nice priority.
    Nice,
    /// Real-time priority.
    Rtprio,
    /// Chroot directory.
    Chroot,
}

impl LimitItem {
    fn word(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

fn default_dest() -> String {
    "/etc/security/limits.conf".into()
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The parameters of `pam_limits`: what `herd doc` shows, and what the parser takes.
pub struct PamLimitsParams {
    /// A user name, `@group`, wildcard or uid/gid range.
    pub domain: String,
    /// `soft`, `hard` or `-` (both).
    pub limit_type: LimitType,
    /// The limit.
    pub limit_item: LimitItem,
    /// The limit's value: `unlimited`, `infinity`, `-1` or a number (`-20` to `19` for `nice`
    /// and `priority`).
    #[serde(deserialize_with = "crate::params::de_string")]
    pub value: String,
    /// Keep the larger of the file's value and `value`.
    #[serde(default, deserialize_with = "de_bool")]
    pub use_max: bool,
    /// Keep the smaller of the file's value and `value`.
    #[serde(default, deserialize_with = "de_bool")]
    pub use_min: bool,
    /// Keep a timestamped copy of the file before changing it (`backup_file`).
    #[serde(default, deserialize_with = "de_bool")]
    pub backup: bool,
    /// The limits file.
    #[serde(default = "default_dest")]
    pub dest: String,
    /// A comment written after the limit.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub comment: Option<String>,
}

/// The `pam_limits` module.
pub struct PamLimits;

const UNLIMITED: [&str; 3] = ["unlimited", "infinity", "-1"];

/// The collection's value check; the message names the value and item.
fn check_value(item: &str, value: &str, prefix: &str) -> Result<(), ModuleError> {
    if item == "nice" || item == "priority" {
        let valid = value
            .trim()
            .parse::<i64>()
            .is_ok_and(|v| (-20..=19).contains(&v));
        if !valid {
            return Err(ModuleError::failed(format!(
                "{prefix} Value of '{value}' for item '{item}' is invalid. Value must be a number in the range -20 to 19 inclusive. \
                 Refer to the limits.conf(5) manual pages for more details."
            )));
        }
    } else if !(UNLIMITED.contains(&value)
        || (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())))
    {
        return Err(ModuleError::failed(format!(
            "{prefix} Value of '{value}' for item '{item}' is invalid. Value must either be 'unlimited', 'infinity' or -1, all of \
             which indicate no limit, or a limit of 0 or larger. Refer to the limits.conf(5) manual pages for \
             more details."
        )));
    }
    Ok(())
}

fn int(v: &str) -> Result<i128, ModuleError> {
    v.trim()
        .parse::<i128>()
        .map_err(|_| ModuleError::failed(format!("invalid literal for int() with base 10: '{v}'")))
}

/// The new text and the collection's `msg` (the limit's line), and whether
/// it changed.
fn edit(
    p: &PamLimitsParams,
    text: &str,
    exists: bool,
) -> Result<(String, String, bool), ModuleError> {
    let domain = p.domain.as_str();
    let limit_type = p.limit_type.word();
    let item = p.limit_item.word();
    let value = p.value.as_str();
    let mut comment = p.comment.clone().unwrap_or_default();
    let mut changed = !exists;
    let mut found = false;
    let mut new_value = value.to_string();
    let mut message = String::new();
    let mut out = String::new();
    let prefix = format!("Invalid configuration found in '{}'.", p.dest);
    for line in text.split_inclusive('\n') {
        if line.starts_with('#') {
            out.push_str(line);
            continue;
        }
        let collapsed = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if collapsed.is_empty() {
            out.push_str(line);
            continue;
        }
        let fields_text = collapsed.split('#').next().unwrap_or_default().trim_end();
        let old_comment = line.split_once('#').map_or("", |(_, c)| c);
        if comment.is_empty() {
            comment = old_comment.to_string();
        }
        let fields: Vec<&str> = fields_text.split(' ').collect();
        let [line_domain, line_type, line_item, actual] = fields[..] else {
            out.push_str(line);
            continue;
        };
        check_value(line_item, actual, &prefix)?;
        if !(line_domain == domain && line_type == limit_type && line_item == item) {
            out.push_str(line);
            continue;
        }
        found = true;
        if value == actual {
            message = line.to_string();
            out.push_str(line);
            continue;
        }
        let actual_unlimited = UNLIMITED.contains(&actual);
        let value_unlimited = UNLIMITED.contains(&value);
        if p.use_max {
            new_value = if actual_unlimited {
                actual.to_string()
            } else if value_unlimited {
                value.to_string()
            } else {
                int(value)?.max(int(actual)?).to_string()
            };
        }
        if p.use_min {
            new_value = match (actual_unlimited, value_unlimited) {
                (true, true) => actual.to_string(),
                (true, false) => value.to_string(),
                (false, true) => actual.to_string(),
                (false, false) => int(value)?.min(int(actual)?).to_string(),
            };
        }
        if new_value != actual {
            changed = true;
            if !comment.is_empty() {
                comment = format!("\t#{comment}");
            }
            let limit = format!("{domain}\t{limit_type}\t{item}\t{new_value}{comment}\n");
            out.push_str(&limit);
            message = limit;
        } else {
            message = line.to_string();
            out.push_str(line);
        }
    }
    if !found {
        changed = true;
        if !comment.is_empty() {
            comment = format!("\t#{comment}");
        }
        let limit = format!("{domain}\t{limit_type}\t{item}\t{new_value}{comment}\n");
        out.push_str(&limit);
        message = limit;
    }
    Ok((out, message, changed))
}

impl Module for PamLimits {
    const NAME: &'static str = "pam_limits";
    const DOC_SHORT: &'static str = "Set a PAM limit in limits.conf.";
    const DOC_LONG: &'static str = r##"community.general's `pam_limits`: the line of `domain`, `limit_type` and `limit_item` gets `value` (or the larger/smaller one with `use_max`/`use_min`), or is appended. Other lines are kept as they are. The file is created when missing (its directory must exist)."##;
    const DOC_EXAMPLE: &'static str = r##"- name: More open files for elastic
  community.general.pam_limits:
    domain: elastic
    limit_type: "-"
    limit_item: nofile
    value: "65535"
"##;
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[
        ("msg", "The limit's line as it is in the file now."),
        ("backup_file", "The backup's path, when one was made."),
    ];
    type Params = PamLimitsParams;

    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let want = WantedAttrs::default();
        let setup = format!("p={}", quote_path(&p.dest));
        let dest = textfile::probe(host, &setup, true, &want, Read::All, "")?;
        let is_file = dest.exists() && !dest.is_dir();
        if !is_file && !dest.parent_exists {
            let dir = match p.dest.rfind('/') {
                Some(0) => "/",
                Some(i) => &p.dest[..i],
                None => "",
            };
            return Err(ModuleError::failed(format!(
                "directory {dir} is not writable (check presence, access rights, use sudo)"
            )));
        }
        if dest.is_dir() {
            return Err(ModuleError::failed(format!("{} is a directory", p.dest)));
        }
        if p.use_max && p.use_min {
            return Err(ModuleError::failed(
                "Cannot use use_min and use_max at the same time.",
            ));
        }
        check_value(&p.limit_item.word(), &p.value, "")?;
        let before = String::from_utf8(dest.content.clone().unwrap_or_default())
            .map_err(|_| ModuleError::failed(format!("{} is not UTF-8 text", p.dest)))?;
        let (after, message, changed) = edit(p, &before, is_file)?;
        let mut plan = Plan::default();
        plan.result.insert("msg".into(), json!(message));
        if changed {
            plan.changes
                .push(format!("{} in {}", message.trim_end(), dest.path));
            if let Some(d) = textfile::diff(&dest.path, before.as_bytes(), after.as_bytes()) {
                plan.diffs.push(d);
            }
            plan.state = Edit::new(&dest, Some(after.as_bytes()), None).to_state();
        }
        Ok(plan)
    }

    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        Edit::apply_planned(
            Self::NAME,
            &plan,
            host,
            &WantedAttrs::default(),
            p.backup,
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{converge, get, host, path_in, plan};
    use crate::DynModule;
    use serde_json::Value;

    fn params(v: Value) -> PamLimitsParams {
        crate::module::parse_params("pam_limits", &v).expect("params")
    }

    fn run(text: &str, v: Value) -> (String, String, bool) {
        edit(&params(v), text, true).expect("edit")
    }

    const DEB: &str = "# /etc/security/limits.conf\n#\n#*               soft    core            0\n\n# End of file\n";

    #[test]
    fn appends_then_replaces_with_the_collections_spelling() {
        let (t, msg, ch) = run(
            DEB,
            json!({"domain": "joe", "limit_type": "soft", "limit_item": "nofile", "value": 64000}),
        );
        assert!(ch);
        assert_eq!(msg, "joe\tsoft\tnofile\t64000\n");
        assert_eq!(t, format!("{DEB}joe\tsoft\tnofile\t64000\n"));
        let (t2, msg, ch) = run(
            &t,
            json!({"domain": "joe", "limit_type": "soft", "limit_item": "nofile", "value": "64000"}),
        );
        assert!(!ch);
        assert_eq!(
            (t2.as_str(), msg.as_str()),
            (t.as_str(), "joe\tsoft\tnofile\t64000\n")
        );
        let (t3, _, ch) = run(
            "joe  soft  nofile  100\n",
            json!({"domain": "joe", "limit_type": "soft", "limit_item": "nofile", "value": "200", "comment": "more"}),
        );
        assert!(ch);
        assert_eq!(t3, "joe\tsoft\tnofile\t200\t#more\n");
    }

    #[test]
    fn use_max_use_min_and_comments_of_earlier_lines() {
        let base = json!({"domain": "a", "limit_type": "-", "limit_item": "nproc", "value": "50"});
        let mut max = base.clone();
        max["use_max"] = json!(true);
        assert!(!run("a - nproc 100\n", max.clone()).2);
        assert_eq!(run("a - nproc 10\n", max.clone()).0, "a\t-\tnproc\t50\n");
        assert!(!run("a - nproc unlimited\n", max).2);
        let mut min = base.clone();
        min["use_min"] = json!(true);
        assert_eq!(run("a - nproc 100\n", min.clone()).0, "a\t-\tnproc\t50\n");
        assert_eq!(run("a - nproc -1\n", min).0, "a\t-\tnproc\t50\n");
        // The comment of an earlier limit line is carried over.
        assert_eq!(
            run("b - core 0 # keep\na - nproc 1\n", base).0,
            "b - core 0 # keep\na\t-\tnproc\t50\t# keep\n\n"
        );
    }

    #[test]
    fn refuses_bad_values_and_bad_files() {
        let e = edit(
            &params(
                json!({"domain": "a", "limit_type": "soft", "limit_item": "nice", "value": "30"}),
            ),
            "",
            true,
        );
        assert!(e.is_ok(), "the value is checked in plan, not edit");
        let bad = run_err("a soft nofile lots\n");
        assert!(
            bad.contains("Invalid configuration found in '/x'."),
            "{bad}"
        );
        assert!(PamLimits
            .check_params(&json!({"domain": "a", "limit_type": "medium", "limit_item": "nofile", "value": "1"}))
            .is_err());
    }

    fn run_err(text: &str) -> String {
        edit(
            &params(json!({"domain": "a", "limit_type": "soft", "limit_item": "nofile", "value": "1", "dest": "/x"})),
            text,
            true,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    }

    #[test]
    fn apply_then_plan_is_empty_and_check_mode_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = path_in(&dir, "limits.conf");
        let p = json!({"dest": f, "domain": "@staff", "limit_type": "hard", "limit_item": "nice", "value": -5});
        let first = plan(&PamLimits, &p);
        assert!(!first.is_empty());
        assert!(!std::path::Path::new(&f).exists());
        let (_, out) = converge(&PamLimits, &p);
        assert!(out.changed);
        assert_eq!(get(&out.result, "msg"), "@staff\thard\tnice\t-5\n");
        assert_eq!(
            std::fs::read_to_string(&f).unwrap_or_default(),
            "@staff\thard\tnice\t-5\n"
        );
        let e = DynModule::plan(
            &PamLimits,
            &json!({"dest": f, "domain": "x", "limit_type": "soft", "limit_item": "nice", "value": 20}),
            &mut host(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("range -20 to 19"), "{e}");
        let missing = path_in(&dir, "nodir/limits.conf");
        let e = DynModule::plan(
            &PamLimits,
            &json!({"dest": missing, "domain": "x", "limit_type": "soft", "limit_item": "core", "value": 0}),
            &mut host(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("is not writable"), "{e}");
    }
}
