//! The `Module` trait (typed, plan then apply) and `DynModule`, its
//! object-safe face that the engine drives with JSON parameters.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::host::{Host, HostError};

/// A unified diff of one file, shown with `--diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileDiff {
    pub path: String,
    pub before: String,
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
}

impl Plan {
    pub fn empty() -> Self {
        Plan::default()
    }
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
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
    Unknown {
        module: &'static str,
        field: String,
        expected: Vec<String>,
    },
    #[error("missing required parameter `{field}` for module `{module}`")]
    Missing { module: &'static str, field: String },
    #[error("invalid value for `{path}` in module `{module}`: {reason}")]
    Invalid {
        module: &'static str,
        /// Dotted path to the parameter, e.g. `dest` or `lines[2]`.
        path: String,
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
pub enum ModuleError {
    #[error(transparent)]
    Params(#[from] ParamError),
    #[error(transparent)]
    Host(#[from] HostError),
    /// The module ran and decided the task failed; `result` is still registered.
    #[error("{msg}")]
    Failed {
        msg: String,
        result: Map<String, Value>,
    },
}

impl ModuleError {
    pub fn failed(msg: impl Into<String>) -> Self {
        ModuleError::Failed {
            msg: msg.into(),
            result: Map::new(),
        }
    }
}

pub trait Module: Sync + Send {
    const NAME: &'static str;
    /// Parameters, `#[serde(deny_unknown_fields)]`, aliases as Ansible has them.
    type Params: DeserializeOwned;
    /// The module reads the inventory's groups and addresses: the engine
    /// passes an [`crate::inventory::InventoryView`] as `_inventory`.
    const NEEDS_INVENTORY: bool = false;

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
    fn name(&self) -> &'static str;
    fn check_params(&self, params: &Value) -> Result<(), ParamError>;
    /// See [`Module::NEEDS_INVENTORY`].
    fn needs_inventory(&self) -> bool;
    fn plan(&self, params: &Value, host: &mut dyn Host) -> Result<Plan, ModuleError>;
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
