//! Templates: one shared minijinja `Environment` configured the way Ansible's
//! Jinja2 behaves (strict undefined, no auto-escape, trim_blocks, trailing
//! newline kept, Python string/dict methods), with Ansible's filters, tests
//! and lookups registered on it.
//!
//! Strings in playbooks are rendered with [`Templar::render_value`]: a string
//! that is exactly one `{{ expr }}` keeps the expression's native type (a
//! list stays a list), anything else renders to text. Conditions (`when`,
//! `failed_when`, ...) are bare expressions, evaluated with
//! [`Templar::eval_condition`]. Errors never carry variable values.

pub mod filters;
pub mod lookups;
pub mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

/// The variables a template sees.
pub type Context = minijinja::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A syntax or render error; `name` is the template file or the string's
    /// origin, `line` is the line inside that template (1-based, 0 unknown).
    #[error("{name}:{line}: {reason}")]
    Render {
        name: String,
        line: usize,
        reason: String,
    },
    #[error("template file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

impl TemplateError {
    fn from_minijinja(name: &str, e: &minijinja::Error) -> Self {
        // minijinja's detail names the undefined variable or the bad token;
        // it never includes the values of variables.
        let mut reason = e.kind().to_string();
        if let Some(detail) = e.detail() {
            reason = format!("{reason}: {detail}");
        }
        TemplateError::Render {
            name: e.name().unwrap_or(name).to_string(),
            line: e.line().unwrap_or(0),
            reason,
        }
    }
}

/// True when `s` needs rendering at all (saves building a template).
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// The shared template engine. Cheap to share across threads (`Arc` inside).
#[derive(Clone)]
pub struct Templar {
    env: Arc<Environment<'static>>,
}

impl Templar {
    /// `search_paths` is where `template:` `src` and `lookup('template')`
    /// look for files, in order (the playbook's `templates/`, then the project's).
    pub fn new(search_paths: Vec<PathBuf>) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .expect("the default delimiters are valid");
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        minijinja_contrib::add_to_environment(&mut env);
        filters::register(&mut env);
        tests::register(&mut env);
        lookups::register(&mut env, search_paths);
        Templar { env: Arc::new(env) }
    }

    pub fn env(&self) -> &Environment<'static> {
        &self.env
    }

    /// Render a string to text.
    pub fn render_str(
        &self,
        name: &str,
        source: &str,
        ctx: &Context,
    ) -> Result<String, TemplateError> {
        if !is_template(source) {
            return Ok(source.to_string());
        }
        let tmpl = self
            .env
            .template_from_named_str(name, source)
            .map_err(|e| TemplateError::from_minijinja(name, &e))?;
        tmpl.render(ctx)
            .map_err(|e| TemplateError::from_minijinja(name, &e))
    }

    /// Render every string inside `value`. A string that is exactly one
    /// `{{ expr }}` keeps the native type of `expr`.
    pub fn render_value(
        &self,
        name: &str,
        value: &Value,
        ctx: &Context,
    ) -> Result<Value, TemplateError> {
        match value {
            Value::String(s) => {
                if let Some(expr) = single_expression(s) {
                    let v = self.eval(name, expr, ctx)?;
                    Ok(to_json(&v))
                } else if is_template(s) {
                    Ok(Value::String(self.render_str(name, s, ctx)?))
                } else {
                    Ok(value.clone())
                }
            }
            Value::Array(items) => items
                .iter()
                .map(|v| self.render_value(name, v, ctx))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Value::Object(map) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    let k = if is_template(k) {
                        self.render_str(name, k, ctx)?
                    } else {
                        k.clone()
                    };
                    out.insert(k, self.render_value(name, v, ctx)?);
                }
                Ok(Value::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    /// Evaluate a bare expression (`x is defined and y | bool`).
    pub fn eval(
        &self,
        name: &str,
        expr: &str,
        ctx: &Context,
    ) -> Result<minijinja::Value, TemplateError> {
        let compiled = self
            .env
            .compile_expression(expr)
            .map_err(|e| TemplateError::from_minijinja(name, &e))?;
        compiled
            .eval(ctx)
            .map_err(|e| TemplateError::from_minijinja(name, &e))
    }

    /// Evaluate a condition. A condition written as `"{{ x }}"` works too,
    /// as in Ansible (with a warning there).
    pub fn eval_condition(
        &self,
        name: &str,
        expr: &str,
        ctx: &Context,
    ) -> Result<bool, TemplateError> {
        let expr = single_expression(expr.trim()).unwrap_or(expr);
        let v = self.eval(name, expr, ctx)?;
        Ok(filters::truthy(&v))
    }

    /// Check that a string parses as a template, without rendering it.
    pub fn check_syntax(&self, name: &str, source: &str) -> Result<(), TemplateError> {
        if !is_template(source) {
            return Ok(());
        }
        self.env
            .template_from_named_str(name, source)
            .map(|_| ())
            .map_err(|e| TemplateError::from_minijinja(name, &e))
    }

    /// Check that a bare expression parses.
    pub fn check_expression(&self, name: &str, expr: &str) -> Result<(), TemplateError> {
        let expr = single_expression(expr.trim()).unwrap_or(expr);
        self.env
            .compile_expression(expr)
            .map(|_| ())
            .map_err(|e| TemplateError::from_minijinja(name, &e))
    }

    /// Render a template file; `name` in errors is the file's path.
    pub fn render_file(&self, path: &Path, ctx: &Context) -> Result<String, TemplateError> {
        let source = std::fs::read_to_string(path).map_err(|e| TemplateError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let name = path.display().to_string();
        let tmpl = self
            .env
            .template_from_named_str(&name, &source)
            .map_err(|e| TemplateError::from_minijinja(&name, &e))?;
        tmpl.render(ctx)
            .map_err(|e| TemplateError::from_minijinja(&name, &e))
    }
}

/// `"{{ expr }}"` (and nothing else) gives `Some("expr")`. Text around
/// the braces, even a trailing newline, makes it a text template:
/// `"{{ name }}\n"` must render to the name and a newline.
pub fn single_expression(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("{{")?.strip_suffix("}}")?;
    // "{{ a }} and {{ b }}" is not a single expression.
    if inner.contains("{{") || inner.contains("}}") {
        return None;
    }
    Some(inner.trim())
}

/// A template value as JSON (undefined and none become null).
pub fn to_json(v: &minijinja::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A JSON value as a template value.
pub fn from_json(v: &Value) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(v))
}

#[cfg(test)]
mod core_tests {
    use super::*;

    #[test]
    fn text_around_an_expression_is_kept() {
        let t = Templar::new(Vec::new());
        let ctx = from_json(&serde_json::json!({"name": "web1", "ports": [80, 443]}));
        let v = t
            .render_value("t", &serde_json::json!("{{ name }}\n"), &ctx)
            .expect("render");
        assert_eq!(v, serde_json::json!("web1\n"));
        let v = t
            .render_value("t", &serde_json::json!("{{ ports }}"), &ctx)
            .expect("render");
        assert_eq!(v, serde_json::json!([80, 443]));
        assert!(t
            .eval_condition("c", " {{ ports | length == 2 }} ", &ctx)
            .expect("cond"));
    }
}
