//! The `Module` trait (typed, plan then apply) and `DynModule`, its
//! object-safe face that the engine drives with JSON parameters.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::capability::{AsyncSupport, ControllerInput};
use crate::host::{Host, HostError};

/// A unified diff of one file, shown with `--diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileDiff {
    /// The file's path on the host.
    pub path: String,
    /// Its content before the change.
    pub before: String,
    /// Its content after the change.
    pub after: String,
}

impl FileDiff {
    /// Render as a unified diff with `--- before` / `+++ after` headers.
    pub fn unified(&self) -> String {
        similar::TextDiff::from_lines(&self.before, &self.after)
            .unified_diff()
            .context_radius(3)
            .header(
                &format!("{} (before)", self.path),
                &format!("{} (after)", self.path),
            )
            .to_string()
    }
}

/// What a module would change on a host. An empty plan means "nothing to do".
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// One short line per change, e.g. "create /etc/app.conf", "mode 0644 -> 0600".
    pub changes: Vec<String>,
    /// File contents before and after, for `--diff`.
    pub diffs: Vec<FileDiff>,
    /// Module-private state that `apply` needs (what plan found on the host).
    pub state: Value,
    /// Values reported whether or not anything changes (e.g. `stat`'s result).
    pub result: Map<String, Value>,
    /// The module cannot know what would change without running (command,
    /// shell): check mode reports the task as skipped instead of guessing.
    pub unknowable: bool,
    /// `apply` must run (outside check mode) but changes nothing Ansible
    /// counts as a change, e.g. `systemd: daemon_reload: true` alone: check
    /// mode reports the task ok, as Ansible does.
    pub not_a_change: bool,
    /// The module decided the task does not run here (`script`'s
    /// `creates`/`removes`): reported as skipped with this message, as
    /// Ansible's action plugins skip.
    pub skip: Option<String>,
    /// What check mode registers in place of `result`, where Ansible's
    /// module returns less (or other values) in check mode than in a run
    /// that changes nothing (`pip`, `unarchive`, `known_hosts`, `apt`).
    pub check_result: Option<Map<String, Value>>,
    /// Check mode skips the task with this message, where Ansible's module
    /// has no check mode for what this task asks (`unarchive` of a tar
    /// archive: "does not support check mode when using gtar").
    pub check_skip: Option<String>,
}

impl Plan {
    /// A plan with nothing to do.
    pub fn empty() -> Self {
        Plan::default()
    }
    /// Whether the plan has nothing to do.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
    /// The plan with one more change line.
    pub fn change(mut self, what: impl Into<String>) -> Self {
        self.changes.push(what.into());
        self
    }

    /// Keep what `apply` needs from this plan, as [`Plan::state`].
    pub fn keep_state<T: Serialize>(&mut self, state: &T) -> Result<(), ModuleError> {
        self.state = serde_json::to_value(state).map_err(|e| {
            ModuleError::failed(format!("internal: cannot keep the plan's state: {e}"))
        })?;
        Ok(())
    }

    /// What [`Plan::keep_state`] kept; an error when `apply` is given a
    /// plan this module did not make.
    pub fn state_as<T: DeserializeOwned>(&self) -> Result<T, ModuleError> {
        T::deserialize(&self.state).map_err(|e| {
            ModuleError::failed(format!(
                "internal: the plan's state is not this module's: {e}"
            ))
        })
    }
}

/// What applying a plan did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Whether the host changed.
    pub changed: bool,
    /// Registered with `register:` (e.g. `rc`, `stdout`, `stdout_lines`).
    pub result: Map<String, Value>,
    /// A short message for the human output.
    pub msg: Option<String>,
    /// The module ran but reports failure (e.g. a command's non-zero rc);
    /// `failed_when`/`ignore_errors` still get to judge it.
    pub failed: bool,
}

impl Outcome {
    /// A change with its registered result and nothing else to say: the
    /// usual end of an `apply` that only runs when the plan found work.
    /// A module with a message or a failure of its own builds the struct.
    pub fn changed(result: Map<String, Value>) -> Self {
        Self::changed_if(true, result)
    }

    /// No change, with the result `apply` read (a module that only looks,
    /// or one that waited for something). When that result is the plan's
    /// own, [`Outcome::read_in_plan`] says so.
    pub fn unchanged(result: Map<String, Value>) -> Self {
        Self::changed_if(false, result)
    }

    /// A result whose `changed` is only known once `apply` has run (an
    /// `apply` that found the host already right, or whose command said
    /// whether it did anything). No message, not failed.
    pub fn changed_if(changed: bool, result: Map<String, Value>) -> Self {
        Outcome {
            changed,
            result,
            msg: None,
            failed: false,
        }
    }

    /// What a read-only module reports: no change, and the result its
    /// `plan` already read (so `apply` makes no second round trip).
    pub fn read_in_plan(plan: Plan) -> Self {
        Self::unchanged(plan.result)
    }

    /// A change, reported with the result's own `msg` (the text-file
    /// modules put their Ansible message there).
    pub fn changed_with_result_msg(mut result: Map<String, Value>) -> Self {
        result.insert("changed".into(), Value::Bool(true));
        let msg = result
            .get("msg")
            .and_then(Value::as_str)
            .map(str::to_string);
        Outcome {
            changed: true,
            result,
            msg,
            failed: false,
        }
    }
}

/// A parameter problem, found by deserializing the rendered parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown parameter `{field}` for module `{module}`")]
    /// A parameter the module does not take.
    Unknown {
        /// The module.
        module: &'static str,
        /// The parameter given.
        field: String,
        /// The parameters the module takes.
        expected: Vec<String>,
    },
    #[error("missing required parameter `{field}` for module `{module}`")]
    /// A required parameter is missing.
    Missing {
        /// The module.
        module: &'static str,
        /// The parameter.
        field: String,
    },
    #[error("invalid value for `{path}` in module `{module}`: {reason}")]
    /// A parameter's value is refused.
    Invalid {
        /// The module.
        module: &'static str,
        /// Dotted path to the parameter, e.g. `dest` or `lines[2]`.
        path: String,
        /// Why the value is refused.
        reason: String,
    },
}

impl ParamError {
    /// The top-level parameter the error is about, to point a caret at it.
    pub fn field(&self) -> Option<&str> {
        match self {
            ParamError::Unknown { field, .. } | ParamError::Missing { field, .. } => Some(field),
            ParamError::Invalid { path, .. } => path
                .split(['.', '['])
                .next()
                .filter(|s| !s.is_empty() && *s != "?"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
/// Why a module's plan or apply failed.
pub enum ModuleError {
    #[error(transparent)]
    /// The parameters do not parse.
    Params(#[from] ParamError),
    #[error(transparent)]
    /// The host could not do what was asked.
    Host(#[from] HostError),
    /// The module ran and decided the task failed; `result` is still registered.
    #[error("{msg}")]
    Failed {
        /// The task's failure message.
        msg: String,
        /// What the module registers with it.
        result: Map<String, Value>,
    },
}

impl ModuleError {
    /// A task failure with this message and no result.
    pub fn failed(msg: impl Into<String>) -> Self {
        ModuleError::Failed {
            msg: msg.into(),
            result: Map::new(),
        }
    }
}

/// A built-in module: typed parameters, a plan that never changes the host, and an apply that
/// makes the planned change. Registered in `crate::registry`.
pub trait Module: Sync + Send {
    /// The short name tasks use (`copy`); the engine maps `ansible.builtin.copy` and the like
    /// to it.
    const NAME: &'static str;
    /// Parameters, `#[serde(deny_unknown_fields)]`, aliases as Ansible has them.
    /// The `JsonSchema` derive reads the same serde attributes and the
    /// fields' `///` docs: they are what `herd doc` shows.
    type Params: DeserializeOwned + schemars::JsonSchema;
    /// The module reads the inventory's groups and addresses: the engine
    /// passes an [`crate::inventory::InventoryView`] as `_inventory`.
    const NEEDS_INVENTORY: bool = false;
    /// A task's free-form argument (`command: ls -l`) is the module's
    /// command: it is kept whole as `_raw_params` (only its leading
    /// `k=v` words such as `chdir=` are options) and may not be split.
    const FREE_FORM: bool = false;
    /// The module's result lists the archives it wrote (`archives`, with
    /// `removed`, `failures`, `backup_dir`): the engine reports them in the
    /// recap's BACKUPS section and as a `backup` event.
    const REPORTS_ARCHIVES: bool = false;
    /// The task runs once for all the play's hosts, on the first one
    /// (Ansible's `BYPASS_HOST_LOOP`: `pause`).
    const BYPASS_HOST_LOOP: bool = false;
    /// Files on the controller the parameters name, which the engine reads
    /// and passes in (see [`ControllerInput`]).
    const CONTROLLER_INPUTS: &'static [ControllerInput] = &[];
    /// How the module runs under a task's `async:` (see [`AsyncSupport`]).
    const ASYNC: AsyncSupport = AsyncSupport::Foreground;
    /// The module runs a program on the controller that reaches the host
    /// through the task's connection ([`Host::stream`] behind a relay, see
    /// [`crate::relay`]): the engine passes a
    /// [`crate::relay::ControllerContext`] as `_controller`.
    const CONTROLLER_PROCESS: bool = false;
    /// Whether the module runs in check mode. `false` is Ansible's
    /// `check_mode: support: none` (`uri`): check mode skips the task
    /// without touching the host, with Ansible's message.
    const CHECK_MODE: bool = true;

    /// One line for `herd doc`'s list: what the module does. Every
    /// registered module has one (the docs test checks).
    const DOC_SHORT: &'static str = "";
    /// How the module behaves, in paragraphs (Markdown), for `herd doc MODULE`.
    const DOC_LONG: &'static str = "";
    /// A YAML task or two using the module.
    const DOC_EXAMPLE: &'static str = "";
    /// The keys the module registers, with what each holds.
    const DOC_RETURNS: &'static [(&'static str, &'static str)] = &[];

    /// Look at the host and say what would change. Never mutates.
    fn plan(&self, p: &Self::Params, host: &mut dyn Host) -> Result<Plan, ModuleError>;

    /// Make the planned change. Not called in check mode or when the plan is empty.
    fn apply(
        &self,
        p: &Self::Params,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError>;
}

/// The object-safe face of a module: the engine and the validator hold
/// `&'static dyn DynModule` and pass JSON parameters.
pub trait DynModule: Sync + Send {
    /// The module's short name.
    fn name(&self) -> &'static str;
    /// Whether the parameters parse, without running anything (`herd validate`).
    fn check_params(&self, params: &Value) -> Result<(), ParamError>;
    /// See [`Module::NEEDS_INVENTORY`].
    fn needs_inventory(&self) -> bool;
    /// See [`Module::FREE_FORM`].
    fn free_form(&self) -> bool;
    /// See [`Module::REPORTS_ARCHIVES`].
    fn reports_archives(&self) -> bool;
    /// See [`Module::CONTROLLER_INPUTS`].
    fn controller_inputs(&self) -> &'static [ControllerInput];
    /// See [`Module::ASYNC`].
    fn async_support(&self) -> AsyncSupport;
    /// See [`Module::BYPASS_HOST_LOOP`].
    fn bypasses_host_loop(&self) -> bool;
    /// See [`Module::CONTROLLER_PROCESS`].
    fn controller_process(&self) -> bool;
    /// See [`Module::CHECK_MODE`].
    fn check_mode(&self) -> bool;
    /// The module's documentation, built from its `Params` and `DOC_*` consts.
    fn doc(&self) -> crate::doc::ModuleDoc;
    /// See [`Module::plan`]; the parameters are parsed first.
    fn plan(&self, params: &Value, host: &mut dyn Host) -> Result<Plan, ModuleError>;
    /// See [`Module::apply`]; the parameters are parsed first.
    fn apply(
        &self,
        params: &Value,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError>;
}

impl<M: Module> DynModule for M {
    fn name(&self) -> &'static str {
        M::NAME
    }
    fn check_params(&self, params: &Value) -> Result<(), ParamError> {
        parse_params::<M::Params>(M::NAME, params).map(|_| ())
    }
    fn needs_inventory(&self) -> bool {
        M::NEEDS_INVENTORY
    }
    fn free_form(&self) -> bool {
        M::FREE_FORM
    }
    fn reports_archives(&self) -> bool {
        M::REPORTS_ARCHIVES
    }
    fn controller_inputs(&self) -> &'static [ControllerInput] {
        M::CONTROLLER_INPUTS
    }
    fn async_support(&self) -> AsyncSupport {
        M::ASYNC
    }
    fn bypasses_host_loop(&self) -> bool {
        M::BYPASS_HOST_LOOP
    }
    fn controller_process(&self) -> bool {
        M::CONTROLLER_PROCESS
    }
    fn check_mode(&self) -> bool {
        M::CHECK_MODE
    }
    fn doc(&self) -> crate::doc::ModuleDoc {
        crate::doc::module_doc::<M>()
    }
    fn plan(&self, params: &Value, host: &mut dyn Host) -> Result<Plan, ModuleError> {
        let p = parse_params::<M::Params>(M::NAME, params)?;
        Module::plan(self, &p, host)
    }
    fn apply(
        &self,
        params: &Value,
        plan: Plan,
        host: &mut dyn Host,
    ) -> Result<Outcome, ModuleError> {
        let p = parse_params::<M::Params>(M::NAME, params)?;
        Module::apply(self, &p, plan, host)
    }
}

/// Deserialize parameters, turning serde's messages into a typed [`ParamError`].
pub fn parse_params<P: DeserializeOwned>(
    module: &'static str,
    params: &Value,
) -> Result<P, ParamError> {
    let params = match params {
        Value::Null => Value::Object(Map::new()),
        other => other.clone(),
    };
    serde_path_to_error::deserialize::<_, P>(params).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        classify_serde_message(module, &path, &message)
    })
}

/// serde reports unknown and missing fields only as text, in a fixed format
/// ("unknown field `x`, expected one of `a`, `b`" / "missing field `x`"); read
/// the names back out of it so the user gets a caret and a "did you mean".
fn classify_serde_message(module: &'static str, path: &str, message: &str) -> ParamError {
    let backticked: Vec<String> = message
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    if message.starts_with("unknown field") {
        if let Some((field, expected)) = backticked.split_first() {
            return ParamError::Unknown {
                module,
                field: field.clone(),
                expected: expected.to_vec(),
            };
        }
    }
    if message.starts_with("missing field") {
        if let Some(field) = backticked.first() {
            let field = if path == "." || path.is_empty() {
                field.clone()
            } else {
                format!("{path}.{field}")
            };
            return ParamError::Missing { module, field };
        }
    }
    ParamError::Invalid {
        module,
        path: if path == "." { "?".into() } else { path.into() },
        reason: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct P {
        name: String,
        value: Option<i64>,
    }

    #[test]
    fn unknown_field_lists_expected() {
        let e = parse_params::<P>("t", &serde_json::json!({"name": "a", "valu": 1})).unwrap_err();
        assert_eq!(
            e,
            ParamError::Unknown {
                module: "t",
                field: "valu".into(),
                expected: vec!["name".into(), "value".into()]
            }
        );
    }

    #[test]
    fn missing_and_invalid() {
        let e = parse_params::<P>("t", &serde_json::json!({})).unwrap_err();
        assert_eq!(e.field(), Some("name"));
        let e =
            parse_params::<P>("t", &serde_json::json!({"name": "a", "value": "x"})).unwrap_err();
        assert!(
            matches!(e, ParamError::Invalid { ref path, .. } if path == "value"),
            "{e:?}"
        );
    }
}
