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
//!
//! What matches Ansible, and how it is checked:
//! - printing follows Python's `str`/`repr` (`True`, `['a', 1]`, `None`
//!   prints as nothing) — `pyfmt.rs`;
//! - `to_yaml`/`to_nice_yaml` reproduce PyYAML byte for byte and `to_json`
//!   reproduces Python's `json` — `testdata/pyyaml.json` records PyYAML;
//! - builtin filters and tests whose minijinja versions differ (`int`,
//!   `float`, `indent`, `join`, `replace`, `truncate`, `tojson`, `string`,
//!   `escape`, `first`, `last`, `sequence`, `iterable`) are replaced, and
//!   whitespace control (`trim_blocks`, `{%-`, `-%}`) matches —
//!   `testdata/jinja2.json` records Jinja2 3.1's output for these and for
//!   random expressions and block layouts;
//! - undefined values chain (`a.b.c | default(x)`, `a.b.c is defined`)
//!   while printing, iterating or testing one fails naming it,
//!   `'%s' % x` formatting works, and `x | mandatory` names `x` —
//!   `chain.rs`, with `testdata/undefined.json` recorded from Jinja2 with
//!   an Ansible-style undefined;
//! - an undefined value never turns into null: a whole-value `"{{ x }}"`,
//!   one nested in a list or mapping, and a condition that comes out
//!   undefined are errors naming it ([`TemplateError::Undefined`]); a
//!   lazy variable whose template needed something undefined is
//!   undefined itself, and errors name what is really missing
//!   ([`note_undefined_variable`]) — `tests/fixtures/undefined` records
//!   what Ansible 2.18 does with each task field;
//! - `combine` follows Ansible's `merge_hash` (`testdata/combine.json`),
//!   key order included;
//! - a condition containing `{{ }}` is rendered, then the text evaluated;
//!   template files honour a `#jinja2:` first line, and `include`,
//!   `import` and `extends` find files in the search paths;
//! - `random(seed=...)`, `shuffle(seed=...)` and `password_hash(salt=...)`
//!   give the values Ansible gives (CPython's Mersenne Twister, glibc crypt);
//! - `quote`, `basename`, `dirname`, `splitext`, `regex_*` and `version`
//!   agree with Python's `shlex`, `os.path`, `re` and `LooseVersion` on the
//!   cases recorded in `testdata/python.json`.
//!
//! Known differences:
//! - tuples do not exist: `dictsort`, `items()` and `groupby` give lists,
//!   which print as `['a', 1]` where Python prints `('a', 1)`;
//! - Python treats `True` as 1 in comparisons and has unbounded integers;
//!   here `true > -1` is false and `3 ** 100` overflows with an error;
//! - values are immutable, so `list.append(x)` / `dict.update(...)` inside
//!   `{% set _ = ... %}` do not work (use `+` and `combine`);
//! - regular expressions use Rust's regex syntax: no look-around or
//!   backreferences in patterns; Python's `$` before a final newline is
//!   honoured when that is the text's only newline, not in longer text;
//! - conditions use Python truthiness, like Ansible: a variable holding the
//!   string `"false"` is true unless written `x | bool`;
//! - `to_datetime` (Python datetime objects and their arithmetic),
//!   JMESPath (`json_query`) and lookups that touch the network (`url`)
//!   are not provided; using one fails with an error that names it (see
//!   `lookups.rs` for the list).

mod bounds;
mod chain;
mod crypt;
pub mod filters;
pub(crate) mod guard;
mod header;
mod ipaddr;
mod jinja;
pub mod lookups;
mod methods;
mod paths;
pub mod pyfmt;
mod pyrandom;
mod pyyaml;
mod regexes;
pub mod tests;
mod timefmt;

pub use filters::OMIT;

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
    /// A value was needed and is undefined; `reason` names it
    /// ("`x` is undefined"), never its neighbours' values.
    #[error("{name}:{line}: {reason}")]
    Undefined {
        name: String,
        line: usize,
        reason: String,
    },
    #[error("template file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

impl TemplateError {
    fn from_minijinja(name: &str, e: &minijinja::Error) -> Self {
        let reason = describe(e);
        // Expressions are compiled under minijinja's own placeholder name;
        // the caller's name (file or task field) is the useful one.
        let own_name = e.name().filter(|n| *n != "<expression>");
        let name = own_name.unwrap_or(name).to_string();
        let line = e
            .line()
            .or_else(|| {
                std::error::Error::source(e)
                    .and_then(|s| s.downcast_ref::<guard::UnaryRunAt>())
                    .map(|at| at.line)
            })
            .unwrap_or(0);
        if e.kind() == minijinja::ErrorKind::UndefinedError {
            TemplateError::Undefined { name, line, reason }
        } else {
            TemplateError::Render { name, line, reason }
        }
    }

    /// True when the error is an undefined value being used.
    pub fn is_undefined(&self) -> bool {
        matches!(self, TemplateError::Undefined { .. })
    }

    /// What went wrong, without where (for messages that say where).
    pub fn reason(&self) -> &str {
        match self {
            TemplateError::Render { reason, .. }
            | TemplateError::Undefined { reason, .. }
            | TemplateError::File { reason, .. } => reason,
        }
    }

    /// The line inside the template (0 when unknown or a file error).
    pub fn line(&self) -> usize {
        match self {
            TemplateError::Render { line, .. } | TemplateError::Undefined { line, .. } => *line,
            TemplateError::File { .. } => 0,
        }
    }
}

/// A minijinja error as one line that never holds a variable's value.
/// An undefined value is named (`` `x` is undefined ``), and when `x` is
/// itself a variable whose template needed something undefined, the
/// variable that is really missing is named, with the way to it.
pub fn describe(e: &minijinja::Error) -> String {
    let kind = e.kind();
    if kind == minijinja::ErrorKind::UndefinedError {
        return match e.detail() {
            Some(detail) => explain_undefined(detail),
            None => "undefined value".to_string(),
        };
    }
    // minijinja's detail names the undefined variable or the bad token;
    // it never includes the values of variables.
    let mut reason = kind.to_string();
    if let Some(detail) = e.detail() {
        // The one minijinja message that quotes operands ("unable to
        // calculate 1 / 0"); the operands may be secrets.
        let detail = if detail.starts_with("unable to calculate") {
            "unable to calculate (overflow or division by zero)"
        } else {
            detail
        };
        if kind == minijinja::ErrorKind::InvalidOperation && detail.starts_with(LOOP_PREFIX) {
            // A variable cycle says what it is on its own.
            return detail.to_string();
        }
        reason = format!("{reason}: {detail}");
    }
    reason
}

/// How a variable cycle's error starts (see `executor::vars`).
pub const LOOP_PREFIX: &str = "recursive loop";

/// "`x` is undefined", or, when `x` is a variable whose own template
/// needed an undefined value, what was missing and how it was reached.
fn explain_undefined(detail: &str) -> String {
    let (missing, via) = undefined_parts(detail);
    if via.is_empty() {
        return missing;
    }
    let path = via
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(" -> ");
    format!("{missing} (reached through {path})")
}

/// What is really missing behind minijinja's "`x.y` is undefined", and the
/// variables (outermost first) whose templates led to it.
fn undefined_parts(detail: &str) -> (String, Vec<String>) {
    let root = detail
        .strip_prefix('`')
        .and_then(|d| d.split_once('`'))
        .map(|(expr, _)| expr)
        .and_then(|expr| expr.split(['.', '[']).next());
    let Some(root) = root else {
        return (detail.to_string(), Vec::new());
    };
    WHY_UNDEFINED.with(|w| {
        let w = w.borrow();
        match w.iter().rev().find(|n| n.var == root) {
            Some(note) => {
                let mut via = note.via.clone();
                via.insert(0, root.to_string());
                (note.missing.clone(), via)
            }
            None => (detail.to_string(), Vec::new()),
        }
    })
}

/// Why a variable read lazily came out undefined: its template needed
/// `missing`, reached through the variables in `via`.
#[derive(Debug, Clone)]
struct UndefinedNote {
    var: String,
    missing: String,
    via: Vec<String>,
}

thread_local! {
    /// Notes about variables whose templates failed on an undefined value
    /// during the current top-level render (on this thread).
    static WHY_UNDEFINED: std::cell::RefCell<Vec<UndefinedNote>> =
        const { std::cell::RefCell::new(Vec::new()) };
    /// How many `Templar` calls are running on this thread; notes are
    /// forgotten when an outermost call starts.
    static ENTRIES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Remember that variable `var` is undefined for templates because its
/// own template failed with `e` (an undefined value), so that the error
/// of whoever reads `var` can name what is really missing.
pub fn note_undefined_variable(var: &str, e: &minijinja::Error) {
    let (missing, via) = match e.detail() {
        Some(detail) => undefined_parts(detail),
        None => ("undefined value".to_string(), Vec::new()),
    };
    WHY_UNDEFINED.with(|w| {
        w.borrow_mut().push(UndefinedNote {
            var: var.to_string(),
            missing,
            via,
        });
    });
}

/// Marks one public `Templar` call; the outermost forgets old notes.
struct Entry;

impl Entry {
    fn enter() -> Entry {
        ENTRIES.with(|n| {
            if n.get() == 0 {
                WHY_UNDEFINED.with(|w| w.borrow_mut().clear());
            }
            n.set(n.get() + 1);
        });
        Entry
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        ENTRIES.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// A template whose code minijinja's parser cannot take (see [`guard`]).
fn guard_template(
    name: &str,
    source: &str,
    syntax: &minijinja::syntax::SyntaxConfig,
) -> Result<(), TemplateError> {
    match guard::unary_run_in_template(source, syntax) {
        Some(line) => Err(too_many_unary(name, line)),
        None => Ok(()),
    }
}

fn guard_expression(name: &str, expr: &str) -> Result<(), TemplateError> {
    match guard::unary_run_in_expression(expr) {
        Some(line) => Err(too_many_unary(name, line)),
        None => Ok(()),
    }
}

/// The same refusal inside the engine's own error paths (nested values,
/// conditions), keeping its line through [`guard::UnaryRunAt`].
fn unary_run_error(line: usize) -> minijinja::Error {
    minijinja::Error::new(
        minijinja::ErrorKind::SyntaxError,
        format!(
            "more than {} `-`/`not` operators in a row",
            guard::MAX_UNARY_RUN
        ),
    )
    .with_source(guard::UnaryRunAt { line })
}

fn too_many_unary(name: &str, line: usize) -> TemplateError {
    TemplateError::Render {
        name: name.to_string(),
        line,
        reason: format!(
            "syntax error: more than {} `-`/`not` operators in a row",
            guard::MAX_UNARY_RUN
        ),
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
    /// Where `{% include %}` and friends look (see [`Templar::new`]).
    include_paths: Arc<Vec<PathBuf>>,
}

impl Templar {
    /// `search_paths` is where `template:` `src` and `lookup('template')`
    /// look for files, in order (the playbook's `templates/`, then the project's).
    pub fn new(search_paths: Vec<PathBuf>) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Debug mode makes minijinja remember where an undefined value came
        // from, so errors say "`x` is undefined". Only the kind and detail of
        // an error are ever shown, never the debug dump (it holds values).
        env.set_debug(true);
        // Print values as Python does (`True`, `['a', 1]`); `None` prints as
        // nothing, like Ansible's finalize hook.
        env.set_formatter(|out, _state, value| {
            out.write_str(&pyfmt::py_str(value))
                .map_err(minijinja::Error::from)
        });
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .expect("the default delimiters are valid");
        env.set_syntax(syntax);
        env.set_unknown_method_callback(methods::unknown_method_callback);
        minijinja_contrib::add_to_environment(&mut env);
        env.add_function(chain::CHAIN_FN, chain::chain);
        filters::register(&mut env);
        tests::register(&mut env);
        // `{% include %}`, `{% import %}` and `{% extends %}` find files
        // the way `template:` does: in the search paths, then from the
        // working directory.
        env.set_loader(file_loader(search_paths.clone()));
        let include_paths = Arc::new(search_paths.clone());
        lookups::register(&mut env, search_paths);
        Templar {
            env: Arc::new(env),
            include_paths,
        }
    }

    pub fn env(&self) -> &Environment<'static> {
        &self.env
    }

    /// A Templar over a changed copy of another one's environment (the
    /// fuzzer takes out the lookups that run commands or write files).
    pub(crate) fn from_env(env: Environment<'static>) -> Self {
        Templar {
            env: Arc::new(env),
            include_paths: Arc::new(Vec::new()),
        }
    }

    /// Render a string to text.
    pub fn render_str(
        &self,
        name: &str,
        source: &str,
        ctx: &Context,
    ) -> Result<String, TemplateError> {
        let _entry = Entry::enter();
        self.render_str_raw(name, source, ctx)
            .map_err(|e| TemplateError::from_minijinja(name, &e))
    }

    fn render_str_raw(
        &self,
        name: &str,
        source: &str,
        ctx: &Context,
    ) -> Result<String, minijinja::Error> {
        if !is_template(source) {
            return Ok(source.to_string());
        }
        if let Some(line) = guard::unary_run_in_template(source, self.env.syntax()) {
            return Err(unary_run_error(line));
        }
        let source = chain::rewrite_template(source);
        let tmpl = self.env.template_from_named_str(name, &source)?;
        tmpl.render(ctx)
    }

    /// Render every string inside `value`. A string that is exactly one
    /// `{{ expr }}` keeps the native type of `expr`. An undefined value
    /// anywhere is an error naming it, as in Ansible; it never becomes
    /// null.
    pub fn render_value(
        &self,
        name: &str,
        value: &Value,
        ctx: &Context,
    ) -> Result<Value, TemplateError> {
        let _entry = Entry::enter();
        self.render_value_raw(name, value, ctx)
            .map_err(|e| TemplateError::from_minijinja(name, &e))
    }

    /// [`Templar::render_value`] with minijinja's own error, for lazy
    /// variables that hand the error on to the template that read them.
    pub fn render_value_raw(
        &self,
        name: &str,
        value: &Value,
        ctx: &Context,
    ) -> Result<Value, minijinja::Error> {
        match value {
            Value::String(s) => {
                if let Some(expr) = single_expression(s) {
                    let v = self.eval_raw(expr, ctx)?;
                    self.defined_json(name, expr, &v, ctx)
                } else if is_template(s) {
                    Ok(Value::String(self.render_str_raw(name, s, ctx)?))
                } else {
                    Ok(value.clone())
                }
            }
            Value::Array(items) => items
                .iter()
                .map(|v| self.render_value_raw(name, v, ctx))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Value::Object(map) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    let k = if is_template(k) {
                        self.render_str_raw(name, k, ctx)?
                    } else {
                        k.clone()
                    };
                    out.insert(k, self.render_value_raw(name, v, ctx)?);
                }
                Ok(Value::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    /// `v`, the value of `{{ expr }}`, as JSON; an undefined value, or one
    /// inside a list or mapping, is an error naming what is undefined.
    fn defined_json(
        &self,
        name: &str,
        expr: &str,
        v: &minijinja::Value,
        ctx: &Context,
    ) -> Result<Value, minijinja::Error> {
        if v.is_undefined() {
            // Printing the expression fails the way Jinja2 fails, naming
            // the undefined value; the silent undefined of `x if c` (no
            // `else`) prints as nothing, as in Jinja2.
            let text = self.render_str_raw(name, &format!("{{{{ {expr} }}}}"), ctx)?;
            return Ok(Value::String(text));
        }
        if holds_undefined(v, 0) {
            return Err(self.name_undefined_in(expr, ctx));
        }
        Ok(to_json(v))
    }

    /// The error for an expression whose value holds an undefined value
    /// (`[1, x]`): the variables it reads that are undefined, by name.
    fn name_undefined_in(&self, expr: &str, ctx: &Context) -> minijinja::Error {
        let mut missing: Vec<String> = match self.env.compile_expression(expr) {
            Ok(compiled) => compiled
                .undeclared_variables(true)
                .into_iter()
                .filter(|path| {
                    self.eval_raw(&format!("{path} is defined"), ctx)
                        .map(|d| !d.is_true())
                        .unwrap_or(false)
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        missing.sort();
        let detail = match missing.as_slice() {
            [] => "the value holds an undefined value".to_string(),
            [one] => format!("`{one}` is undefined"),
            many => format!(
                "{} are undefined",
                many.iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        minijinja::Error::new(minijinja::ErrorKind::UndefinedError, detail)
    }

    /// Evaluate a bare expression (`x is defined and y | bool`).
    pub fn eval(
        &self,
        name: &str,
        expr: &str,
        ctx: &Context,
    ) -> Result<minijinja::Value, TemplateError> {
        let _entry = Entry::enter();
        self.eval_raw(expr, ctx)
            .map_err(|e| TemplateError::from_minijinja(name, &e))
    }

    fn eval_raw(&self, expr: &str, ctx: &Context) -> Result<minijinja::Value, minijinja::Error> {
        if let Some(line) = guard::unary_run_in_expression(expr) {
            return Err(unary_run_error(line));
        }
        let expr = chain::rewrite_expression(expr);
        self.env.compile_expression(&expr)?.eval(ctx)
    }

    /// Evaluate a condition with Python truthiness: empty strings, lists
    /// and dicts, `0` and `None` are false, and so is nothing else, so a
    /// variable holding the string `"false"` is true (use `x | bool`).
    /// A condition that comes out undefined (`x`, `a and x`) is an error
    /// naming it, as in Ansible; `x is defined` and `x | default(...)`
    /// are how to test for it.
    ///
    /// A condition containing `{{ }}` is handled as Ansible does: it is
    /// rendered to text first and that text is evaluated, so `"{{ flag }}"`
    /// with `flag: "false"` is false and `x == "{{ y }}"` compares with
    /// `y`'s text.
    pub fn eval_condition(
        &self,
        name: &str,
        expr: &str,
        ctx: &Context,
    ) -> Result<bool, TemplateError> {
        let _entry = Entry::enter();
        if !is_template(expr) {
            return self
                .condition_raw(name, expr, ctx)
                .map_err(|e| TemplateError::from_minijinja(name, &e));
        }
        let text = self.render_str(name, expr, ctx)?;
        let text = text.trim();
        if text.is_empty() {
            return Ok(false);
        }
        // The text came from variables: report the failure without it.
        self.condition_raw(name, text, ctx).map_err(|e| {
            let (name, line) = (name.to_string(), e.line().unwrap_or(0));
            if e.kind() == minijinja::ErrorKind::UndefinedError {
                TemplateError::Undefined {
                    name,
                    line,
                    reason: describe(&e),
                }
            } else {
                TemplateError::Render {
                    name,
                    line,
                    reason: "the condition's templated text is not a valid expression".into(),
                }
            }
        })
    }

    fn condition_raw(
        &self,
        name: &str,
        expr: &str,
        ctx: &Context,
    ) -> Result<bool, minijinja::Error> {
        let v = self.eval_raw(expr, ctx)?;
        if v.is_undefined() {
            // Printing it fails naming what is undefined; the silent
            // undefined of `x if c` is false.
            let text = self.render_str_raw(name, &format!("{{{{ {expr} }}}}"), ctx)?;
            return Ok(!text.is_empty());
        }
        Ok(filters::truthy(&v))
    }

    /// Check that a string parses as a template, without rendering it.
    pub fn check_syntax(&self, name: &str, source: &str) -> Result<(), TemplateError> {
        if !is_template(source) {
            return Ok(());
        }
        guard_template(name, source, self.env.syntax())?;
        self.env
            .template_from_named_str(name, source)
            .map(|_| ())
            .map_err(|e| TemplateError::from_minijinja(name, &e))
    }

    /// Check that a bare expression parses (a condition with `{{ }}` in it
    /// is checked as a template, since it is rendered before evaluation).
    pub fn check_expression(&self, name: &str, expr: &str) -> Result<(), TemplateError> {
        if is_template(expr) {
            return self.check_syntax(name, expr);
        }
        guard_expression(name, expr)?;
        self.env
            .compile_expression(expr)
            .map(|_| ())
            .map_err(|e| TemplateError::from_minijinja(name, &e))
    }

    /// Render a template file; `name` in errors is the file's path.
    pub fn render_file(&self, path: &Path, ctx: &Context) -> Result<String, TemplateError> {
        self.render_file_in(path, ctx, &[])
    }

    /// [`Templar::render_file`], with `{% include %}`, `{% import %}` and
    /// `{% extends %}` looking in `first` before the usual paths: a role's
    /// `templates/` and the role itself, and the template's own directory,
    /// as Ansible's template search path has them.
    pub fn render_file_in(
        &self,
        path: &Path,
        ctx: &Context,
        first: &[PathBuf],
    ) -> Result<String, TemplateError> {
        let _entry = Entry::enter();
        let source = std::fs::read_to_string(path).map_err(|e| TemplateError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let name = path.display().to_string();
        // A vault-encrypted template is decrypted first, as Ansible does.
        let source = if crate::vault::is_encrypted(&source) {
            crate::vault::keyring()
                .decrypt(&name, &source)
                .map_err(|e| TemplateError::File {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?
        } else {
            source
        };
        // Only a template that loads others needs its own search path;
        // a copy of the environment starts with no template cached, so a
        // `base.j2` of one role never stands in for another's.
        let local;
        let base: &Environment<'static> = if first.is_empty() || !loads_templates(&source) {
            self.env.as_ref()
        } else {
            let mut env = (*self.env).clone();
            env.clear_templates();
            let paths: Vec<PathBuf> = first
                .iter()
                .chain(self.include_paths.iter())
                .cloned()
                .collect();
            env.set_loader(file_loader(paths));
            local = env;
            &local
        };
        let header = header::split(&source).map_err(|e| TemplateError::Render {
            name: name.clone(),
            line: 1,
            reason: e.to_string(),
        })?;
        let Some(header) = header else {
            guard_template(&name, &source, base.syntax())?;
            let source = chain::rewrite_template(&source);
            let tmpl = base
                .template_from_named_str(&name, &source)
                .map_err(|e| TemplateError::from_minijinja(&name, &e))?;
            let out = tmpl
                .render(ctx)
                .map_err(|e| TemplateError::from_minijinja(&name, &e))?;
            return Ok(pad_newlines(out, &source));
        };
        // A `#jinja2:` first line: render the rest with its settings, and
        // count lines from the file's first line in errors.
        let env = header
            .environment(base)
            .map_err(|e| TemplateError::Render {
                name: name.clone(),
                line: 1,
                reason: e.to_string(),
            })?;
        if let Some(line) = guard::unary_run_in_template(header.body, env.syntax()) {
            return Err(too_many_unary(&name, line + 1));
        }
        let body = if header.changes_delimiters() {
            std::borrow::Cow::Borrowed(header.body)
        } else {
            chain::rewrite_template(header.body)
        };
        let shift = |e: minijinja::Error| match TemplateError::from_minijinja(&name, &e) {
            TemplateError::Render { name, line, reason } if line > 0 => TemplateError::Render {
                name,
                line: line + 1,
                reason,
            },
            TemplateError::Undefined { name, line, reason } if line > 0 => {
                TemplateError::Undefined {
                    name,
                    line: line + 1,
                    reason,
                }
            }
            other => other,
        };
        let tmpl = env.template_from_named_str(&name, &body).map_err(shift)?;
        let out = tmpl.render(ctx).map_err(shift)?;
        Ok(pad_newlines(out, header.body))
    }
}

/// Whether a template pulls in others (`{% include %}`, `{% import %}`,
/// `{% from %}`, `{% extends %}`).
fn loads_templates(source: &str) -> bool {
    ["include", "import", "extends"]
        .iter()
        .any(|w| source.contains(w))
}

/// `{% include %}`, `{% import %}` and `{% extends %}` find files the way
/// `template:` does: in `paths`, then from the working directory.
fn file_loader(
    include_paths: Vec<PathBuf>,
) -> impl Fn(&str) -> Result<Option<String>, minijinja::Error> + Send + Sync + 'static {
    move |name| {
        let p = Path::new(name);
        let mut candidates: Vec<PathBuf> = Vec::new();
        if p.is_absolute() {
            candidates.push(p.to_path_buf());
        } else {
            candidates.extend(include_paths.iter().map(|d| d.join(p)));
            candidates.push(p.to_path_buf());
        }
        let Some(c) = candidates.iter().find(|c| c.is_file()) else {
            return Ok(None);
        };
        let source = std::fs::read_to_string(c).map_err(|e| {
            minijinja::Error::new(
                minijinja::ErrorKind::TemplateNotFound,
                format!("cannot read {}: {e}", c.display()),
            )
        })?;
        if let Some(line) = guard::unary_run_in_template(&source, &Default::default()) {
            let TemplateError::Render { reason, .. } = too_many_unary(name, line) else {
                unreachable!("too_many_unary gives a Render error")
            };
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::SyntaxError,
                format!("{name}:{line}: {reason}"),
            ));
        }
        // Ansible's Jinja2 environment drops one trailing newline of every
        // template it loads (only the top one gets its newlines back).
        let source = source
            .strip_suffix("\r\n")
            .or_else(|| source.strip_suffix('\n'))
            .unwrap_or(&source);
        Ok(Some(chain::rewrite_template(source).into_owned()))
    }
}

/// Ansible gives a rendered file back the trailing newlines its source
/// ends with, whatever the templates it extends or includes ended with.
fn pad_newlines(mut out: String, source: &str) -> String {
    let count = |s: &str| s.len() - s.trim_end_matches('\n').len();
    let (want, have) = (count(source), count(&out));
    if want > have {
        out.push_str(&"\n".repeat(want - have));
    }
    out
}

/// `"{{ expr }}"` (and nothing else) gives `Some("expr")`. Text around
/// the braces, even a trailing newline, makes it a text template:
/// `"{{ name }}\n"` must render to the name and a newline.
pub fn single_expression(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("{{")?.strip_suffix("}}")?;
    // Whitespace control (`{{- x -}}`) changes nothing around one expression.
    let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
    let inner = inner.strip_suffix(['-', '+']).unwrap_or(inner);
    // "{{ a }} and {{ b }}" is not a single expression.
    if inner.contains("{{") || inner.contains("}}") {
        return None;
    }
    Some(inner.trim())
}

/// A template value as JSON (undefined and none become null: callers
/// that must not lose an undefined value check first, as
/// [`Templar::render_value`] does).
pub fn to_json(v: &minijinja::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// True when a list or mapping inside `v` (not `v` itself) holds an
/// undefined value. Lazy iterables (`range`, generators) are not walked.
fn holds_undefined(v: &minijinja::Value, depth: usize) -> bool {
    use minijinja::value::ValueKind;
    // Values come from YAML and templates: deeper than this is a cycle
    // or not worth walking.
    if depth > 64 {
        return false;
    }
    let kind = v.kind();
    if !matches!(kind, ValueKind::Seq | ValueKind::Map) {
        return false;
    }
    let Ok(iter) = v.try_iter() else {
        return false;
    };
    for item in iter {
        let child = if kind == ValueKind::Map {
            v.get_item(&item).unwrap_or(minijinja::Value::UNDEFINED)
        } else {
            item
        };
        if child.is_undefined() || holds_undefined(&child, depth + 1) {
            return true;
        }
    }
    false
}

/// A JSON value as a template value.
pub fn from_json(v: &Value) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(v))
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    /// Renders `source` with `vars` (JSON) through a fresh engine.
    pub(crate) fn render(source: &str, vars: serde_json::Value) -> Result<String, TemplateError> {
        Templar::new(Vec::new()).render_str("test", source, &from_json(&vars))
    }

    /// Renders `source` with no variables, panicking with the error.
    pub(crate) fn r(source: &str) -> String {
        match render(source, serde_json::json!({})) {
            Ok(s) => s,
            Err(e) => panic!("{source}: {e}"),
        }
    }

    /// Evaluates an expression to JSON.
    pub(crate) fn eval(
        expr: &str,
        vars: serde_json::Value,
    ) -> Result<serde_json::Value, TemplateError> {
        Templar::new(Vec::new())
            .eval("test", expr, &from_json(&vars))
            .map(|v| to_json(&v))
    }

    pub(crate) fn e(expr: &str) -> serde_json::Value {
        match eval(expr, serde_json::json!({})) {
            Ok(v) => v,
            Err(err) => panic!("{expr}: {err}"),
        }
    }
}

#[cfg(test)]
mod unit {
    use super::testutil::{eval, r, render};
    use super::*;
    use serde_json::json;

    /// Found by the fuzzer: a base outside 2..=36 panicked in
    /// `from_str_radix`. Jinja2 falls back to `int(float(value))`.
    #[test]
    fn int_with_an_impossible_base_falls_back_like_jinja() {
        assert_eq!(
            r("{{ '12' | int(0, 1) }} {{ '12' | int(0, 99) }} {{ 'x' | int(7, 265536) }}"),
            "12 12 7"
        );
    }

    /// Found by the fuzzer: `center(999999999)`, `indent(999999999)`,
    /// An unclosed `%(` in a printf format made the width check slice past
    /// the end of the text (found by the fuzzer).
    #[test]
    fn an_unclosed_printf_mapping_key_is_no_panic() {
        let t = Templar::new(Vec::new());
        let ctx = Context::from(());
        for src in ["x=%s y=%(((", "%(", "%(a", "%("] {
            let _ = t.eval("when", &format!("'{src}' % 1"), &ctx);
            let _ = t.render_str("t", &format!("{{{{ '{src}' % 1 }}}}"), &ctx);
        }
    }

    /// `'%999999999d' % 1` and `'{:>99999999}'.format(1)` built gigabytes.
    #[test]
    fn huge_widths_are_errors() {
        let t = Templar::new(Vec::new());
        let ctx = Context::from(());
        for src in [
            "{{ 'a' | center(999999999) }}",
            "{{ 'a' | indent(999999999) }}",
            "{{ '%999999999d' % 1 }}",
            "{{ '%.999999999f' | format(1.5) }}",
            "{{ '%*d' % (999999999, 1) }}",
            "{{ '{:>99999999}'.format(1) }}",
            "{{ '{:>{}}'.format(1, 99999999) }}",
            "{{ 'a'.ljust(999999999) }}",
            "{{ '1'.zfill(999999999) }}",
            "{{ 'a' | slice(999999) }}",
        ] {
            let e = t.render_str("t", src, &ctx).unwrap_err().to_string();
            assert!(e.contains("may be at most 65536"), "{src}: {e}");
        }
        assert_eq!(
            r("{{ '%5d|%-3s|%.2f|%%' % (42, 'a', 1.5) }} {{ '{:>5}{{}}'.format(7) }} {{ 'a' | center(5) }} {{ [1, 2, 3] | slice(2) | list }}"),
            "   42|a  |1.50|%     7{}   a   [[1, 2], [3]]"
        );
    }

    /// The resource bombs a template can hold are errors, quickly: huge
    /// ranges and loops over them, string and list repetition, huge powers,
    /// unbounded macro recursion (minijinja's own limits, checked here so
    /// a change of engine or of a filter cannot lose them).
    #[test]
    fn resource_bombs_are_errors_not_hangs() {
        let t = Templar::new(Vec::new());
        let ctx = Context::from(());
        let start = std::time::Instant::now();
        for (src, reason) in [
            (
                "{{ range(10**12) | length }}",
                "range has too many elements",
            ),
            (
                "{% for i in range(999999999) %}{% endfor %}",
                "range has too many elements",
            ),
            (
                "{{ ('a' * 10**12) | length }}",
                "repeated string is too large",
            ),
            ("{{ ([1] * 999999999) | length }}", "too large"),
            ("{{ 10**10**10 }}", "unable to calculate"),
            (
                "{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}",
                "recursion",
            ),
        ] {
            let e = t.render_str("t", src, &ctx).unwrap_err().to_string();
            assert!(e.contains(reason), "{src}: {e}");
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    /// Found by the fuzzer: minijinja's parser recursed once per `-` or
    /// `not` and a long run aborted the process with a stack overflow.
    #[test]
    fn long_prefix_operator_runs_are_errors_not_stack_overflows() {
        let run = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(|| {
                let t = Templar::new(Vec::new());
                let ctx = Context::from(());
                let minus = format!("a\n{{{{ {}1 }}}}", "-".repeat(100_000));
                let nots = format!("{}x", "not ".repeat(100_000));
                let errors = [
                    t.render_str("t", &minus, &ctx).unwrap_err(),
                    t.check_syntax("t", &minus).unwrap_err(),
                    t.eval("when", &nots, &ctx).unwrap_err(),
                    t.check_expression("when", &nots).unwrap_err(),
                ];
                errors.map(|e| e.to_string())
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(
            run[0].starts_with("t:2: syntax error: more than 32"),
            "{}",
            run[0]
        );
        assert!(run[2].starts_with("when:1: syntax error"), "{}", run[2]);
    }

    #[test]
    fn prints_like_python() {
        assert_eq!(r("{{ true }} {{ false }}"), "True False");
        assert_eq!(r("[{{ none }}]"), "[]");
        assert_eq!(r("{{ [1, 'a', true, none] }}"), "[1, 'a', True, None]");
        assert_eq!(r("{{ {'a': 1} }}"), "{'a': 1}");
        assert_eq!(r("{{ 1.0 }} {{ 3 }}"), "1.0 3");
        assert_eq!(r("{{ true | string }}"), "True");
        assert_eq!(r("{{ '%s:%04d' % ('h', 80) }}"), "h:0080");
        assert_eq!(r("{{ none | string }}"), "None");
        assert_eq!(r("{{ [1, true, none, 'a'] | join(',') }}"), "1,True,None,a");
        assert_eq!(
            r("{{ [{'n': 'a'}, {'n': 'b'}] | join(' ', attribute='n') }}"),
            "a b"
        );
    }

    /// Results of Python's own functions (`shlex.quote`, `os.path`, `re`,
    /// `LooseVersion`) for the filters and tests that mirror them.
    #[test]
    fn matches_python_on_recorded_cases() {
        #[derive(serde::Deserialize)]
        struct Case {
            f: String,
            a: Value,
            r: Value,
        }
        let cases: Vec<Case> =
            serde_json::from_str(include_str!("testdata/python.json")).expect("valid test data");
        let t = Templar::new(Vec::new());
        for case in cases {
            let expr = match case.f.as_str() {
                "version" => "a[0] is version(a[1], a[2])".to_string(),
                "regex_replace" => "a[0] | regex_replace(a[1], a[2])".to_string(),
                "regex_replace_m" => "a[0] | regex_replace(a[1], a[2], multiline=true)".to_string(),
                "regex_search" => "a[0] | regex_search(a[1])".to_string(),
                "regex_findall" => "a[0] | regex_findall(a[1])".to_string(),
                other => format!("a[0] | {other}"),
            };
            let ctx = from_json(&json!({ "a": case.a }));
            let got = match t.eval("case", &expr, &ctx) {
                Ok(v) => to_json(&v),
                Err(_) => json!("err"),
            };
            assert_eq!(got, case.r, "{expr} with {}", case.a);
        }
    }

    /// Templates rendered by Jinja2 3.1 with Ansible's settings
    /// (`trim_blocks`, `keep_trailing_newline`, `StrictUndefined`, `None`
    /// printed as nothing); herd must print the same text.
    #[test]
    fn matches_jinja2_on_recorded_cases() {
        #[derive(serde::Deserialize)]
        struct Case {
            template: String,
            jinja2: String,
        }
        let cases: Vec<Case> =
            serde_json::from_str(include_str!("testdata/jinja2.json")).expect("valid test data");
        let t = Templar::new(Vec::new());
        let ctx = from_json(&json!({}));
        for case in cases {
            match t.render_str("case", &case.template, &ctx) {
                Ok(out) => assert_eq!(out, case.jinja2, "{}", case.template),
                Err(e) => panic!("{}: {e}", case.template),
            }
        }
    }

    #[test]
    fn render_value_keeps_native_types() {
        let t = Templar::new(Vec::new());
        let ctx = from_json(&json!({"n": 3}));
        let v = t
            .render_value("t", &json!({"a": "{{ [1,2] }}", "b": "{{ {'a': 1} }}", "c": "n={{ n }}", "d": "{{ n }}"}), &ctx)
            .unwrap();
        assert_eq!(v, json!({"a": [1, 2], "b": {"a": 1}, "c": "n=3", "d": 3}));
        assert_eq!(single_expression("{{- n -}}"), Some("n"));
        assert_eq!(single_expression("{{ n - 1 }}"), Some("n - 1"));
    }

    #[test]
    fn undefined_variable_is_named() {
        let e = render("line1\n{{ x }}", json!({})).unwrap_err();
        let TemplateError::Undefined { name, line, reason } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(name, "test");
        assert_eq!(*line, 2);
        assert!(reason.contains("`x`"), "{reason}");
        let e = eval("y.z + 1", json!({})).unwrap_err().to_string();
        assert!(e.contains("`y`"), "{e}");
        let e = eval("h.missing | upper", json!({"h": {"a": "secret"}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("h.missing"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        let e = eval("n / 0", json!({"n": 4242})).unwrap_err().to_string();
        assert!(!e.contains("4242"), "{e}");
        assert!(e.starts_with("test:1:"), "{e}");
    }

    #[test]
    fn conditions_use_python_truthiness() {
        let t = Templar::new(Vec::new());
        let ctx = from_json(&json!({"s": "false", "e": "", "l": [], "x": "no"}));
        assert!(t.eval_condition("t", "s", &ctx).unwrap());
        assert!(!t.eval_condition("t", "e", &ctx).unwrap());
        assert!(!t.eval_condition("t", "l", &ctx).unwrap());
        assert!(!t.eval_condition("t", "x | bool", &ctx).unwrap());
        assert!(t.eval_condition("t", "{{ x == 'no' }}", &ctx).unwrap());
        // Ansible renders `{{ }}` conditions, then evaluates the text.
        assert!(!t.eval_condition("t", "{{ s }}", &ctx).unwrap());
        assert!(!t.eval_condition("t", "{{ e }}", &ctx).unwrap());
        assert!(t.eval_condition("t", "x == '{{ x }}'", &ctx).unwrap());
        let err = t.eval_condition("t", "{{ x }} and", &ctx).unwrap_err();
        assert!(!err.to_string().contains("no and"), "{err}");
        assert!(t.check_expression("t", "x == '{{ x }}'").is_ok());
        assert!(t
            .eval_condition("t", "undefined_thing is not defined", &ctx)
            .unwrap());
    }

    #[test]
    fn template_file_trims_blocks_and_keeps_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf.j2");
        std::fs::write(
            &path,
            "{% for h in hosts %}\nserver {{ h }}\n{% endfor %}\nport={{ port }}\n",
        )
        .unwrap();
        let t = Templar::new(vec![dir.path().to_path_buf()]);
        let out = t
            .render_file(
                &path,
                &from_json(&json!({"hosts": ["a", "b"], "port": 9200})),
            )
            .unwrap();
        assert_eq!(out, "server a\nserver b\nport=9200\n");
        let e = t.render_file(&path, &from_json(&json!({}))).unwrap_err();
        assert!(
            e.to_string().starts_with(&path.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn jinja2_header_overrides_whitespace_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.j2");
        std::fs::write(
            &path,
            "#jinja2: lstrip_blocks: True, trim_blocks: False\n  {% if true %}\nx\n  {% endif %}\n{{ nope }}\n",
        )
        .unwrap();
        let t = Templar::new(Vec::new());
        let e = t.render_file(&path, &from_json(&json!({}))).unwrap_err();
        // Line 5 of the file (the header counts).
        assert!(e.to_string().contains(":5: "), "{e}");
        std::fs::write(
            &path,
            "#jinja2: variable_start_string: '[[', variable_end_string: ']]'\n[[ x ]] {{ x }}\n",
        )
        .unwrap();
        let out = t.render_file(&path, &from_json(&json!({"x": 1}))).unwrap();
        assert_eq!(out, "1 {{ x }}\n");
        std::fs::write(
            &path,
            "#jinja2: lstrip_blocks: True\n  {% if true %}\nx\n  {% endif %}\n",
        )
        .unwrap();
        assert_eq!(t.render_file(&path, &from_json(&json!({}))).unwrap(), "x\n");
        std::fs::write(&path, "#jinja2: bogus: True\n").unwrap();
        assert!(t.render_file(&path, &from_json(&json!({}))).is_err());
    }

    #[test]
    fn includes_and_imports_use_the_search_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("part.j2"), "part {{ x }}\n").unwrap();
        std::fs::write(
            dir.path().join("macros.j2"),
            "{% macro kv(k, v) %}{{ k }}={{ v }}{% endmacro %}",
        )
        .unwrap();
        let main = dir.path().join("main.j2");
        std::fs::write(
            &main,
            "{% import 'macros.j2' as m %}\n{% include 'part.j2' %}\n{{ m.kv('a', x) }}\n",
        )
        .unwrap();
        let t = Templar::new(vec![dir.path().to_path_buf()]);
        let out = t.render_file(&main, &from_json(&json!({"x": 1}))).unwrap();
        // As in Ansible: the included file's trailing newline is dropped
        // and trim_blocks eats the one after the `{% include %}` tag.
        assert_eq!(out, "part 1a=1\n");
        std::fs::write(&main, "{% include 'missing.j2' %}").unwrap();
        let e = t.render_file(&main, &from_json(&json!({}))).unwrap_err();
        assert!(e.to_string().contains("missing.j2"), "{e}");
    }

    #[test]
    fn syntax_errors_name_the_template() {
        let t = Templar::new(Vec::new());
        let e = t.check_syntax("play.yml", "a\n{{ x | }}").unwrap_err();
        assert!(e.to_string().starts_with("play.yml:2:"), "{e}");
        assert!(t.check_expression("play.yml", "x is defined and").is_err());
        assert!(t
            .check_expression("play.yml", "{{ x | default(1) }}")
            .is_ok());
    }

    #[test]
    fn omit_is_a_placeholder() {
        assert_eq!(eval("x | default(omit)", json!({})).unwrap(), json!(OMIT));
    }
}

#[cfg(test)]
mod chained_undefined {
    use super::testutil::{eval, render};
    use serde_json::json;

    /// Recorded from Jinja2 with an undefined class that behaves like
    /// Ansible's (strict, but attribute lookups on it chain): the same
    /// templates must succeed or fail, and print the same when they succeed.
    #[test]
    fn matches_ansible_undefined_semantics() {
        #[derive(serde::Deserialize)]
        struct Case {
            t: String,
            r: (String, String),
        }
        #[derive(serde::Deserialize)]
        struct Data {
            ctx: serde_json::Value,
            cases: Vec<Case>,
        }
        let data: Data =
            serde_json::from_str(include_str!("testdata/undefined.json")).expect("valid test data");
        for case in data.cases {
            let got = render(&case.t, data.ctx.clone());
            match (case.r.0.as_str(), got) {
                ("ok", Ok(out)) => assert_eq!(out, case.r.1, "{}", case.t),
                ("err", Err(_)) => {}
                (_, got) => panic!("{}: expected {:?}, got {got:?}", case.t, case.r),
            }
        }
    }

    #[test]
    fn missing_steps_chain_like_ansible() {
        let v = json!({"a": {"x": 1}, "l": [{"k": 1}]});
        let ev = |e: &str| eval(e, v.clone()).unwrap();
        assert_eq!(ev("a.b.c is defined"), json!(false));
        assert_eq!(ev("a.b.c is not defined"), json!(true));
        assert_eq!(ev("a.b.c is undefined"), json!(true));
        assert_eq!(ev("a.b.c | default(3)"), json!(3));
        assert_eq!(ev("a['b']['c'] | d(4)"), json!(4));
        assert_eq!(ev("zz.b is defined"), json!(false));
        assert_eq!(ev("a.x is defined"), json!(true));
        assert_eq!(ev("a.x | default(2)"), json!(1));
        assert_eq!(ev("l[0].k | default(2)"), json!(1));
        assert_eq!(ev("l[5].k | default(2)"), json!(2));
        assert_eq!(ev("a.b.c is none"), json!(false));
        // Anything else on an undefined value still fails, naming it.
        let e = eval("a.b.c", v.clone()).unwrap_err().to_string();
        assert!(e.contains("`a.b`"), "{e}");
        let e = render("{% if a.b.c %}x{% endif %}", v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`a.b`"), "{e}");
    }
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

#[cfg(test)]
mod undefined_values {
    use super::*;
    use serde_json::json;

    fn t() -> Templar {
        Templar::new(Vec::new())
    }

    fn value(source: Value, vars: Value) -> Result<Value, TemplateError> {
        t().render_value("arg", &source, &from_json(&vars))
    }

    /// A whole-value `"{{ x }}"` used to become null; it fails naming `x`,
    /// nested in lists and mappings too.
    #[test]
    fn an_undefined_value_is_an_error_not_null() {
        for source in [
            json!("{{ nosuch }}"),
            json!("x {{ nosuch }} y"),
            json!({"a": [1, "{{ nosuch }}"]}),
            json!({"a": {"b": "{{ nosuch }}"}}),
            json!("{{ [1, nosuch] }}"),
            json!("{{ {'k': nosuch} }}"),
            json!("{{ d.nosuch }}"),
        ] {
            let e = value(source.clone(), json!({"d": {"x": "s3cr3t"}})).unwrap_err();
            assert!(e.is_undefined(), "{source}: {e:?}");
            assert!(e.reason().contains("nosuch"), "{source}: {e}");
            assert!(!e.to_string().contains("s3cr3t"), "{source}: {e}");
        }
    }

    #[test]
    fn defined_and_defaulted_values_pass() {
        let vars = json!({"n": null, "l": [1, 2]});
        assert_eq!(value(json!("{{ n }}"), vars.clone()).unwrap(), json!(null));
        assert_eq!(
            value(json!("{{ l }}"), vars.clone()).unwrap(),
            json!([1, 2])
        );
        assert_eq!(
            value(json!("{{ x | default([]) }}"), vars.clone()).unwrap(),
            json!([])
        );
        assert_eq!(
            value(json!("{{ x.y.z | default(omit) }}"), vars.clone()).unwrap(),
            json!(OMIT)
        );
        // Jinja2's `x if c` without `else` is a silent undefined: nothing.
        assert_eq!(value(json!("{{ 'a' if false }}"), vars).unwrap(), json!(""));
    }

    /// A condition that comes out undefined fails naming it; `and`/`or`
    /// short-circuit as in Python; tests and `default` see undefined.
    #[test]
    fn conditions_on_undefined_values_fail() {
        let t = t();
        let ctx = from_json(&json!({"off": false, "on": true}));
        let err = |c: &str| t.eval_condition("when", c, &ctx).unwrap_err();
        for (cond, name) in [
            ("nosuch", "nosuch"),
            ("on and nosuch", "nosuch"),
            ("nosuch or on", "nosuch"),
            ("not nosuch", "nosuch"),
            ("nosuch == 'x'", "nosuch"),
            ("{{ nosuch }}", "nosuch"),
            ("on and '{{ nosuch }}'", "nosuch"),
            ("nosuch is even", "nosuch"),
            ("nosuch is eq 1", "nosuch"),
            ("nosuch is in [1]", "nosuch"),
            ("nosuch is iterable", "nosuch"),
        ] {
            let e = err(cond);
            assert!(e.is_undefined(), "{cond}: {e:?}");
            assert!(e.reason().contains(&format!("`{name}`")), "{cond}: {e}");
        }
        let ok = |c: &str| t.eval_condition("when", c, &ctx).unwrap();
        assert!(!ok("off and nosuch"));
        assert!(ok("on or nosuch"));
        assert!(!ok("nosuch is defined"));
        assert!(ok("nosuch is undefined"));
        assert!(!ok("nosuch | default(false)"));
        assert!(!ok("'a' if false"));
        assert!(!ok("nosuch is number"));
        assert!(!ok("nosuch is sameas none"));
        assert!(ok("2 is even and 1 is in [1] and 'a' is lower"));
    }
}
