//! Every action a task can name: the modules of `herdsman-modules`, plus the
//! engine's own actions that need templates, variables or control flow
//! (`debug`, `set_fact`, `assert`, `fail`, `meta`, `template`, includes).
//! Long Ansible names (`ansible.builtin.copy`) map to the short ones here.

use herdsman_modules::module::parse_params;
use herdsman_modules::{DynModule, ParamError, Registry};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Clone, Copy)]
pub enum Action {
    Module(&'static dyn DynModule),
    Engine(EngineAction),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineAction {
    Debug,
    SetFact,
    Assert,
    Fail,
    Meta,
    Template,
    IncludeTasks,
    ImportTasks,
    /// `setup` / `gather_facts`: gather facts as a task.
    Setup,
    /// `include_vars`: variables from files, for the host.
    IncludeVars,
    /// `add_host`: a host added to the run's inventory.
    AddHost,
    /// `group_by`: the host joins a group made on the fly.
    GroupBy,
    /// A role's `argument_specs`, checked before its first task.
    ValidateArgumentSpec,
}

impl EngineAction {
    pub const ALL: &'static [(&'static str, EngineAction)] = &[
        ("debug", EngineAction::Debug),
        ("set_fact", EngineAction::SetFact),
        ("assert", EngineAction::Assert),
        ("fail", EngineAction::Fail),
        ("meta", EngineAction::Meta),
        ("template", EngineAction::Template),
        ("include_tasks", EngineAction::IncludeTasks),
        ("import_tasks", EngineAction::ImportTasks),
        ("setup", EngineAction::Setup),
        ("gather_facts", EngineAction::Setup),
        ("include_vars", EngineAction::IncludeVars),
        ("add_host", EngineAction::AddHost),
        ("group_by", EngineAction::GroupBy),
        ("validate_argument_spec", EngineAction::ValidateArgumentSpec),
    ];

    /// Actions that run once for the whole host list, on its first host
    /// (Ansible's `BYPASS_HOST_LOOP`), looped or not.
    pub fn bypasses_host_loop(self) -> bool {
        self == EngineAction::AddHost
    }

    /// Runs on one host after the other, in the play's host order: it
    /// changes the inventory, and the order hosts join a group (and groups
    /// are made) is what later `groups[...]` lists show, as Ansible
    /// processes results in host order.
    pub fn runs_in_host_order(self) -> bool {
        self == EngineAction::GroupBy
    }

    pub fn name(self) -> &'static str {
        EngineAction::ALL
            .iter()
            .find(|(_, a)| *a == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

/// Collections whose modules we implement under their short names.
const COLLECTION_PREFIXES: &[&str] = &[
    "ansible.builtin.",
    "ansible.legacy.",
    "ansible.posix.",
    "community.docker.",
];

/// Modules of other collections we implement, by FQCN: only these, as
/// the rest of those collections share no names with ours.
const COLLECTION_MODULES: &[(&str, &str)] = &[
    ("community.general.ufw", "ufw"),
    ("community.general.ini_file", "ini_file"),
    ("community.general.timezone", "timezone"),
    ("community.general.locale_gen", "locale_gen"),
    ("community.general.sudoers", "sudoers"),
    ("community.general.pam_limits", "pam_limits"),
    ("community.general.modprobe", "modprobe"),
    ("community.general.archive", "archive"),
    ("community.general.alternatives", "alternatives"),
];

/// The short name for `name` (`ansible.builtin.copy` -> `copy`).
pub fn short_name(name: &str) -> &str {
    if let Some((_, short)) = COLLECTION_MODULES.iter().find(|(fqcn, _)| *fqcn == name) {
        return short;
    }
    COLLECTION_PREFIXES
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name)
}

/// Find an action by short or long name among the engine's actions and
/// `modules`.
pub fn lookup(modules: &Registry, name: &str) -> Option<Action> {
    let short = short_name(name);
    if let Some((_, a)) = EngineAction::ALL.iter().find(|(n, _)| *n == short) {
        return Some(Action::Engine(*a));
    }
    modules.find(short).map(Action::Module)
}

/// Every known short name (for "did you mean").
pub fn all_names(modules: &Registry) -> Vec<&'static str> {
    EngineAction::ALL
        .iter()
        .map(|(n, _)| *n)
        .chain(modules.iter().map(herdsman_modules::DynModule::name))
        .collect()
}

/// Actions whose free-form argument (`command: ls -l`, `meta: noop`,
/// `include_tasks: x.yml`) is kept whole rather than read as `k=v` words:
/// the engine's own that take one, and modules declaring
/// [`herdsman_modules::Module::FREE_FORM`].
pub fn takes_free_form(modules: &Registry, short: &str) -> bool {
    match lookup(modules, short) {
        Some(Action::Module(m)) => m.free_form(),
        Some(Action::Engine(e)) => matches!(
            e,
            EngineAction::Meta
                | EngineAction::IncludeTasks
                | EngineAction::ImportTasks
                | EngineAction::IncludeVars
        ),
        None => false,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebugParams {
    pub msg: Option<Value>,
    pub var: Option<String>,
    #[serde(default)]
    pub verbosity: u8,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertParams {
    pub that: OneOrMany,
    #[serde(alias = "msg")]
    pub fail_msg: Option<Value>,
    pub success_msg: Option<Value>,
    #[serde(default)]
    pub quiet: bool,
}

/// `setup`: `gather_subset` picks the fact groups kept (all are gathered
/// in the one round trip), `filter` narrows what is set, `fact_path` is
/// where local facts (`*.fact`) are read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupParams {
    #[serde(default)]
    pub filter: Option<OneOrMany>,
    #[serde(default)]
    pub gather_subset: Option<OneOrMany>,
    #[serde(default)]
    pub gather_timeout: Option<u64>,
    #[serde(default)]
    pub fact_path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailParams {
    pub msg: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateParams {
    pub src: String,
    #[serde(alias = "path", alias = "name")]
    pub dest: String,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<Value>,
    #[serde(default)]
    pub backup: bool,
    #[serde(default = "default_true")]
    pub force: bool,
    /// A command with `%s` (the rendered file) that must exit 0 before the
    /// file replaces the destination; handed to `copy`.
    pub validate: Option<String>,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncludeParams {
    #[serde(alias = "_raw_params")]
    pub file: String,
}

/// `that:` and similar take one expression or a list.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaAction {
    FlushHandlers,
    Noop,
    EndPlay,
    EndHost,
    ClearHostErrors,
    /// Close the host's connection; the next task opens a new one.
    ResetConnection,
    /// Re-read the inventory (herd's is read once per run: a no-op).
    RefreshInventory,
    /// End the current `serial` batch (the whole play without `serial`).
    EndBatch,
    /// End the current role's tasks for the host.
    EndRole,
}

impl MetaAction {
    pub const ALL: &'static [(&'static str, MetaAction)] = &[
        ("flush_handlers", MetaAction::FlushHandlers),
        ("noop", MetaAction::Noop),
        ("end_play", MetaAction::EndPlay),
        ("end_host", MetaAction::EndHost),
        ("clear_host_errors", MetaAction::ClearHostErrors),
        ("reset_connection", MetaAction::ResetConnection),
        ("refresh_inventory", MetaAction::RefreshInventory),
        ("end_batch", MetaAction::EndBatch),
        ("end_role", MetaAction::EndRole),
    ];
    pub fn parse(s: &str) -> Option<MetaAction> {
        MetaAction::ALL
            .iter()
            .find(|(n, _)| *n == s.trim())
            .map(|(_, a)| *a)
    }
}

/// `meta`'s argument: its free form, or `_raw_params` after normalisation.
pub fn meta_argument(args: &Value) -> Option<&str> {
    match args {
        Value::String(s) => Some(s),
        Value::Object(m) => m.get("_raw_params").and_then(Value::as_str),
        _ => None,
    }
}

/// Check an action's (unrendered) parameters.
pub fn check_params(action: Action, args: &Value) -> Result<(), ParamError> {
    match action {
        Action::Module(m) => m.check_params(args),
        Action::Engine(e) => match e {
            EngineAction::Debug => parse_params::<DebugParams>("debug", args).map(|_| ()),
            EngineAction::Assert => parse_params::<AssertParams>("assert", args).map(|_| ()),
            EngineAction::Fail => parse_params::<FailParams>("fail", args).map(|_| ()),
            EngineAction::Setup => parse_params::<SetupParams>("setup", args).map(|_| ()),
            EngineAction::Template => parse_params::<TemplateParams>("template", args).map(|_| ()),
            EngineAction::IncludeTasks | EngineAction::ImportTasks => {
                parse_params::<IncludeParams>(e.name(), args).map(|_| ())
            }
            EngineAction::IncludeVars => {
                parse_params::<IncludeVarsParams>("include_vars", args).map(|_| ())
            }
            EngineAction::AddHost => needs_one_of(args, "add_host", &["name", "hostname", "host"]),
            EngineAction::GroupBy => needs_one_of(args, "group_by", &["key"]),
            EngineAction::ValidateArgumentSpec => match args.get("argument_spec") {
                Some(Value::Object(_)) => Ok(()),
                _ => Err(ParamError::Invalid {
                    module: "validate_argument_spec",
                    path: "argument_spec".into(),
                    reason: "expected a mapping of options".into(),
                }),
            },
            EngineAction::SetFact => match args {
                Value::Object(m) if !m.is_empty() => Ok(()),
                _ => Err(ParamError::Invalid {
                    module: "set_fact",
                    path: "?".into(),
                    reason: "set_fact needs at least one name: value".into(),
                }),
            },
            EngineAction::Meta => match meta_argument(args).and_then(MetaAction::parse) {
                Some(_) => Ok(()),
                None => Err(ParamError::Invalid {
                    module: "meta",
                    path: "?".into(),
                    reason: format!(
                        "expected one of: {}",
                        MetaAction::ALL
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }),
            },
        },
    }
}

/// An action whose parameters must name one of `keys`.
fn needs_one_of(args: &Value, module: &'static str, keys: &[&str]) -> Result<(), ParamError> {
    match args {
        Value::Object(m) if keys.iter().any(|k| m.contains_key(*k)) => Ok(()),
        _ => Err(ParamError::Invalid {
            module,
            path: "?".into(),
            reason: format!("{module} needs one of: {}", keys.join(", ")),
        }),
    }
}

/// `set_fact`'s facts, without its own `cacheable` option.
pub fn set_fact_values(args: &Value) -> Map<String, Value> {
    match args {
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| k.as_str() != "cacheable")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        _ => Map::new(),
    }
}

/// `include_vars`: one file (`file` or the free form) or a directory
/// (`dir` with its filters). `hash_behaviour` is accepted; herd replaces
/// values, Ansible's default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncludeVarsParams {
    pub file: Option<String>,
    #[serde(rename = "_raw_params")]
    pub raw: Option<String>,
    pub dir: Option<String>,
    pub name: Option<String>,
    pub depth: Option<u64>,
    pub files_matching: Option<String>,
    pub ignore_files: Option<OneOrMany>,
    pub extensions: Option<Vec<String>>,
    #[serde(default)]
    pub ignore_unknown_extensions: bool,
    pub hash_behaviour: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_map_to_the_modules_we_implement() {
        assert_eq!(short_name("ansible.builtin.copy"), "copy");
        assert_eq!(short_name("ansible.posix.authorized_key"), "authorized_key");
        assert_eq!(short_name("community.general.ufw"), "ufw");
        for m in [
            "ini_file",
            "timezone",
            "locale_gen",
            "sudoers",
            "pam_limits",
            "modprobe",
        ] {
            let fqcn = format!("community.general.{m}");
            assert_eq!(short_name(&fqcn), m);
            assert!(lookup(&Registry::builtin(), &fqcn).is_some(), "{fqcn}");
        }
        assert_eq!(short_name("community.general.npm"), "community.general.npm");
        let modules = Registry::builtin();
        assert!(matches!(
            lookup(&modules, "community.general.ufw"),
            Some(Action::Module(m)) if m.name() == "ufw"
        ));
        assert!(lookup(&modules, "community.general.npm").is_none());
    }
}
