//! Module documentation, generated from the definitions the parser uses.
//!
//! A module's `Params` struct is the one source: its `///` field docs, the
//! field types, `#[serde(default)]`s, enum choices and renames come from
//! the `schemars::JsonSchema` derive (which reads the serde attributes),
//! the aliases from serde's own derive ([`introspect`]). The module's
//! description, example and return values are the `DOC_*` consts of its
//! [`crate::Module`] impl. `herd doc` and the pages under `docs/modules/`
//! are rendered from the [`ModuleDoc`] built here ([`render`]).

pub mod compat;
pub mod introspect;
pub mod render;
pub mod shapes;

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::Module;

/// Everything `herd doc MODULE` shows about one module.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleDoc {
    /// The module's short name, as tasks use it.
    pub name: &'static str,
    /// One line: what the module does.
    pub short: &'static str,
    /// Paragraphs on how it behaves; may be empty.
    pub long: &'static str,
    /// The parameters, in the order the `Params` struct declares them.
    pub params: Vec<ParamDoc>,
    /// Values the module registers, by key.
    pub returns: Vec<ReturnDoc>,
    /// A YAML task (or a few) using the module.
    pub example: &'static str,
    /// Its row of `modules/COMPATIBILITY.md` (empty when it has none).
    pub differences: &'static str,
}

/// One parameter (or a sub-option of a mapping parameter).
#[derive(Debug, Clone, Serialize)]
pub struct ParamDoc {
    /// The name the task writes.
    pub name: String,
    /// Other names the parser takes for it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// `string`, `boolean`, `list of string`, `mapping`, `any`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The task fails to load without it.
    pub required: bool,
    /// The value used when the task leaves it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// The only values it takes, when it is an enumeration.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<Value>,
    /// Other spellings the parser takes for those values (serde aliases
    /// of the enum's variants).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choice_aliases: Vec<String>,
    /// The field's `///` doc.
    pub description: String,
    /// The fields of a mapping parameter.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suboptions: Vec<ParamDoc>,
    /// The parameter takes `null` (an `Option` field): leaving it out
    /// means "not set" rather than a default value.
    #[serde(skip)]
    pub nullable: bool,
}

/// One key of a module's registered result.
#[derive(Debug, Clone, Serialize)]
pub struct ReturnDoc {
    /// The key under the registered variable.
    pub name: &'static str,
    /// What it holds.
    pub description: &'static str,
}

/// The free-form argument (`command: ls -l`) reaches the module as
/// `_raw_params`; the docs call it what Ansible's do.
const FREE_FORM: &str = "free_form";

/// The documentation of module `M`.
pub fn module_doc<M: Module>() -> ModuleDoc {
    let schema = params_schema::<M::Params>();
    let names = introspect::accepted_names::<M::Params>();
    let mut params = params_of(schema.as_value(), &names);
    let values = introspect::accepted_values::<M::Params>();
    for p in &mut params {
        let own = if p.name == FREE_FORM {
            "_raw_params"
        } else {
            p.name.as_str()
        };
        if let Some(accepted) = values.get(own) {
            p.choice_aliases = accepted
                .iter()
                .filter(|v| !p.choices.iter().any(|c| c == **v))
                .map(std::string::ToString::to_string)
                .collect();
        }
    }
    ModuleDoc {
        name: M::NAME,
        short: M::DOC_SHORT,
        long: M::DOC_LONG,
        params,
        returns: M::DOC_RETURNS
            .iter()
            .map(|&(name, description)| ReturnDoc { name, description })
            .collect(),
        example: M::DOC_EXAMPLE,
        differences: compat::row(M::NAME).unwrap_or(""),
    }
}

/// The JSON schema of a parameter struct, sub-schemas inlined so each
/// parameter's schema is read in place.
pub fn params_schema<P: JsonSchema>() -> Schema {
    schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<P>()
}

/// The parameters an object schema declares. `names` maps every accepted
/// name to its field's own name (aliases); engine-provided fields
/// (`_src_path`, `_inventory`, ...) are left out, `_raw_params` shows as
/// `free_form`.
fn params_of(schema: &Value, names: &IndexMap<String, String>) -> Vec<ParamDoc> {
    let schema = non_null(schema);
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    props
        .iter()
        .filter(|(name, _)| !name.starts_with('_') || *name == "_raw_params")
        .map(|(name, sub)| param_of(name, sub, required.contains(&name.as_str()), names))
        .collect()
}

fn param_of(name: &str, sub: &Value, required: bool, names: &IndexMap<String, String>) -> ParamDoc {
    let aliases = names
        .iter()
        .filter(|(alias, own)| *own == name && *alias != name)
        .map(|(alias, _)| alias.clone())
        .collect();
    let inner = non_null(sub);
    ParamDoc {
        name: if name == "_raw_params" {
            FREE_FORM.to_string()
        } else {
            name.to_string()
        },
        aliases,
        kind: type_of(sub),
        required,
        default: sub.get("default").filter(|d| !d.is_null()).cloned(),
        choices: choices_of(sub),
        choice_aliases: Vec::new(),
        description: description_of(sub),
        suboptions: params_of(inner, &IndexMap::new()),
        nullable: admits_null(sub),
    }
}

/// The field's doc; schemars puts a doc's first paragraph in `title`
/// when the doc has more than one.
fn description_of(sub: &Value) -> String {
    let text = |k: &str| sub.get(k).and_then(Value::as_str).unwrap_or("");
    let doc = match (text("title"), text("description")) {
        ("", d) => d.trim().to_string(),
        (t, "") => t.trim().to_string(),
        (t, d) => format!("{}\n\n{}", t.trim(), d.trim()),
    };
    unwrap_lines(&doc)
}

/// A doc comment's lines joined into paragraphs (the line breaks of the
/// source are not the reader's); list items and indented lines keep theirs.
fn unwrap_lines(doc: &str) -> String {
    let mut out = String::new();
    let mut after_blank = true;
    for line in doc.lines() {
        if line.trim().is_empty() {
            if !after_blank {
                out.push_str("\n\n");
            }
            after_blank = true;
            continue;
        }
        if !after_blank {
            let breaks = line.starts_with("- ") || line.starts_with(' ');
            out.push(if breaks { '\n' } else { ' ' });
        }
        out.push_str(line);
        after_blank = false;
    }
    out
}

/// The schema without its `null` alternative (an `Option` field).
fn non_null(s: &Value) -> &Value {
    let alts = s.get("anyOf").or_else(|| s.get("oneOf"));
    if let Some(Value::Array(alts)) = alts {
        let real: Vec<&Value> = alts.iter().filter(|a| !is_null(a)).collect();
        if real.len() == 1 && real.len() < alts.len() {
            return real[0];
        }
    }
    s
}

/// Whether a schema takes `null`: `"type": [.., "null"]` or a null alternative.
fn admits_null(s: &Value) -> bool {
    let by_type = match s.get("type") {
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "null"),
        Some(Value::String(t)) => t == "null",
        _ => false,
    };
    by_type
        || s.get("anyOf")
            .or_else(|| s.get("oneOf"))
            .and_then(Value::as_array)
            .is_some_and(|alts| alts.iter().any(is_null))
}

fn is_null(s: &Value) -> bool {
    s.get("type").and_then(Value::as_str) == Some("null")
        || s.get("const").is_some_and(Value::is_null)
}

/// A short name for a schema's type: `string`, `list of string`,
/// `string or integer`, `mapping`, `any`.
pub fn type_of(s: &Value) -> String {
    let s = non_null(s);
    if let Some(alts) = s
        .get("anyOf")
        .or_else(|| s.get("oneOf"))
        .and_then(Value::as_array)
    {
        let mut kinds: Vec<String> = Vec::new();
        for k in alts.iter().filter(|a| !is_null(a)).map(type_of) {
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
        return kinds.join(" or ");
    }
    if let Some(Value::String(_)) = s.get("const") {
        return "string".into();
    }
    let kinds: Vec<&str> = match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ if s.get("enum").is_some() => vec!["string"],
        _ => vec![],
    };
    let kinds: Vec<String> = kinds
        .into_iter()
        .filter(|k| *k != "null")
        .map(|k| match k {
            "array" => format!("list of {}", s.get("items").map_or("any".into(), type_of)),
            "object" => "mapping".into(),
            other => other.to_string(),
        })
        .collect();
    if kinds.is_empty() {
        "any".into()
    } else {
        kinds.join(" or ")
    }
}

/// The values an enumeration takes (also for a list of them), without null.
pub fn choices_of(s: &Value) -> Vec<Value> {
    let s = non_null(s);
    if let Some(items) = s.get("items") {
        return choices_of(items);
    }
    if let Some(Value::Array(values)) = s.get("enum") {
        return values.iter().filter(|v| !v.is_null()).cloned().collect();
    }
    let Some(alts) = s
        .get("oneOf")
        .or_else(|| s.get("anyOf"))
        .and_then(Value::as_array)
    else {
        return s
            .get("const")
            .filter(|c| !c.is_null())
            .cloned()
            .into_iter()
            .collect();
    };
    let mut out = Vec::new();
    for a in alts.iter().filter(|a| !is_null(a)) {
        let one = choices_of(a);
        if one.is_empty() {
            // A free-form alternative: the value is not an enumeration.
            return Vec::new();
        }
        out.extend(one);
    }
    out
}

/// A module's documentation as JSON (`herd doc MODULE --format json`).
pub fn to_json(doc: &ModuleDoc) -> Value {
    serde_json::to_value(doc).unwrap_or_else(|_| Value::Object(Map::new()))
}

#[cfg(test)]
mod tests;
