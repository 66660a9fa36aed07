//! `lookup(kind, *terms, **kwargs)` and `query`/`q`, with the lookup
//! plugins playbooks reach for on the controller: `env`, `file`,
//! `template`, `vars`, `first_found`, `fileglob`, `pipe`, `lines`,
//! `password`, `inventory_hostnames`, `random_choice`, and the ones behind
//! `with_*` loops (`list`/`items`, `dict`, `sequence`, `together`,
//! `nested`, `indexed_items`, `subelements`, and community.general's
//! `flattened` and `cartesian`), also under their `ansible.builtin.` names.
//!
//! Every lookup is one function registered in [`LOOKUPS`], which also
//! names the `with_<lookup>` loop keyword it backs; the loader and the
//! executor read the same table, so a lookup added here is a loop too.
//!
//! As in Ansible, `lookup` joins several string results with `,` and
//! `query` always gives a list; `wantlist=True` and `errors='ignore'|'warn'`
//! work. Errors name the lookup and the file, never a variable's value.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};

/// What a lookup function is given besides the template state.
pub(crate) struct Args<'a> {
    search_paths: &'a [PathBuf],
    /// The lookup's short name (`nested`, not `ansible.builtin.nested`).
    kind: &'a str,
    /// The terms; a list given as one term counts as many terms, unless
    /// the lookup keeps lists (see [`Lookup::keeps_lists`]).
    terms: Vec<Value>,
    kwargs: &'a Kwargs,
}

impl Args<'_> {
    /// The terms as text, as Python's `str()` shows them.
    fn text_terms(&self) -> Vec<String> {
        self.terms.iter().map(super::pyfmt::py_str).collect()
    }

    /// Every keyword argument was read; an unknown one is an error naming it.
    fn no_more_kwargs(&self) -> Result<(), Error> {
        self.kwargs
            .assert_all_used()
            .map_err(lookup_arg_err(self.kind))
    }
}

type LookupFn = fn(&State, &Args) -> Result<Vec<Value>, Error>;

/// One lookup plugin: its name, the `with_*` keyword that loops over it,
/// whether list terms stay whole, and the function that runs it.
pub struct Lookup {
    pub name: &'static str,
    pub with_keyword: &'static str,
    keeps_lists: bool,
    run: LookupFn,
}

const fn lookup(name: &'static str, with_keyword: &'static str, run: LookupFn) -> Lookup {
    Lookup {
        name,
        with_keyword,
        keeps_lists: false,
        run,
    }
}

const fn lookup_of_lists(name: &'static str, with_keyword: &'static str, run: LookupFn) -> Lookup {
    Lookup {
        name,
        with_keyword,
        keeps_lists: true,
        run,
    }
}

/// Every lookup herd has. `with_items` is here for `lookup('items')`;
/// the loop keyword itself flattens in the executor, as Ansible does.
pub const LOOKUPS: &[Lookup] = &[
    lookup("env", "with_env", env),
    lookup("file", "with_file", file),
    lookup("template", "with_template", template),
    lookup("vars", "with_vars", vars),
    lookup("first_found", "with_first_found", first_found),
    lookup_of_lists("list", "with_list", list),
    lookup_of_lists("items", "with_items", list),
    lookup("dict", "with_dict", dict),
    lookup("password", "with_password", password_lookup),
    lookup("pipe", "with_pipe", pipe),
    lookup("lines", "with_lines", pipe),
    lookup("fileglob", "with_fileglob", fileglob_lookup),
    lookup("sequence", "with_sequence", sequence_lookup),
    lookup("indexed_items", "with_indexed_items", indexed_items),
    lookup("flattened", "with_flattened", flattened),
    lookup_of_lists("together", "with_together", together),
    lookup_of_lists("nested", "with_nested", nested),
    lookup_of_lists("cartesian", "with_cartesian", nested),
    lookup_of_lists("subelements", "with_subelements", subelements),
    lookup("random_choice", "with_random_choice", random_choice),
    lookup(
        "inventory_hostnames",
        "with_inventory_hostnames",
        inventory_hostnames,
    ),
];

/// The lookup a `with_*` loop keyword runs (`with_nested` -> `nested`).
pub fn for_loop_keyword(keyword: &str) -> Option<&'static Lookup> {
    LOOKUPS.iter().find(|l| l.with_keyword == keyword)
}

/// A lookup by its short or `ansible.builtin.` name.
pub fn find_lookup(kind: &str) -> Option<&'static Lookup> {
    let kind = kind.strip_prefix("ansible.builtin.").unwrap_or(kind);
    LOOKUPS.iter().find(|l| l.name == kind)
}

pub fn register(env: &mut Environment<'static>, search_paths: Vec<PathBuf>) {
    let paths = Arc::new(search_paths);
    let p = paths.clone();
    env.add_function(
        "lookup",
        move |state: &State, kind: String, terms: Rest<Value>, kwargs: Kwargs| {
            let wantlist = kwargs
                .get::<Option<Value>>("wantlist")?
                .is_some_and(|v| v.is_true());
            let results = run_guarded(state, &p, &kind, &terms, &kwargs)?;
            Ok::<_, Error>(match results {
                None if wantlist => Value::from(Vec::<Value>::new()),
                None => Value::from(()),
                Some(r) if wantlist => Value::from(r),
                Some(r) => join_results(r),
            })
        },
    );
    for name in ["query", "q"] {
        let p = paths.clone();
        env.add_function(
            name,
            move |state: &State, kind: String, terms: Rest<Value>, kwargs: Kwargs| {
                // `query` always gives a list; `wantlist` is accepted and moot.
                kwargs.get::<Option<Value>>("wantlist")?;
                let results = run_guarded(state, &p, &kind, &terms, &kwargs)?;
                Ok::<_, Error>(Value::from(results.unwrap_or_default()))
            },
        );
    }
}

fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// `lookup()`'s single value: nothing found is an empty list (as in
/// Ansible), strings are joined with `,`, else the one item, else the list.
fn join_results(r: Vec<Value>) -> Value {
    if r.is_empty() {
        return Value::from(r);
    }
    if r.iter().all(|v| v.kind() == ValueKind::String) {
        let parts: Vec<&str> = r.iter().filter_map(|v| v.as_str()).collect();
        return Value::from(parts.join(","));
    }
    if r.len() == 1 {
        return r.into_iter().next().unwrap_or_default();
    }
    Value::from(r)
}

/// Runs a lookup honouring `errors=`: `strict` (default) fails, `ignore`
/// and `warn` give `None` (the warning is the engine's to print).
fn run_guarded(
    state: &State,
    search_paths: &[PathBuf],
    kind: &str,
    terms: &[Value],
    kwargs: &Kwargs,
) -> Result<Option<Vec<Value>>, Error> {
    let errors = kwargs
        .get::<Option<String>>("errors")?
        .unwrap_or_else(|| "strict".into());
    if !matches!(errors.as_str(), "strict" | "warn" | "ignore") {
        return Err(err("lookup: errors must be one of strict, warn or ignore"));
    }
    let with_role = with_role_dirs(state, search_paths);
    match run(state, &with_role, kind, terms, kwargs) {
        Ok(r) => Ok(Some(r)),
        Err(e)
            if errors != "strict"
                && !matches!(
                    e.kind(),
                    ErrorKind::UnknownFunction | ErrorKind::UndefinedError
                ) =>
        {
            tracing::warn!(
                "lookup('{kind}') failed and errors='{errors}': {}",
                e.kind()
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn run(
    state: &State,
    search_paths: &[PathBuf],
    kind: &str,
    terms: &[Value],
    kwargs: &Kwargs,
) -> Result<Vec<Value>, Error> {
    let Some(lookup) = find_lookup(kind) else {
        return Err(Error::new(
            ErrorKind::UnknownFunction,
            format!("lookup plugin '{kind}' is not supported"),
        ));
    };
    // Terms given as one list (`lookup('file', files)`) count as many terms.
    let mut flat = Vec::new();
    for t in terms {
        if t.is_undefined() {
            // Reuse minijinja's message, which names the undefined variable.
            minijinja::value::StringInput::new(state, t)?;
        }
        if t.kind() == ValueKind::Seq && !lookup.keeps_lists {
            flat.extend(t.try_iter()?);
        } else {
            flat.push(t.clone());
        }
    }
    let args = Args {
        search_paths,
        kind: lookup.name,
        terms: flat,
        kwargs,
    };
    (lookup.run)(state, &args)
}

fn env(_: &State, a: &Args) -> Result<Vec<Value>, Error> {
    let default = a.kwargs.get::<Option<Value>>("default")?;
    a.no_more_kwargs()?;
    Ok(a.text_terms()
        .iter()
        .map(|name| match std::env::var(name) {
            Ok(v) => Value::from(v),
            Err(_) => default.clone().unwrap_or_else(|| Value::from("")),
        })
        .collect())
}

fn file(_: &State, a: &Args) -> Result<Vec<Value>, Error> {
    let rstrip = flag(a.kwargs, "rstrip", true)?;
    let lstrip = flag(a.kwargs, "lstrip", false)?;
    a.no_more_kwargs()?;
    let mut out = Vec::new();
    for name in a.text_terms() {
        let path = find(&file_dirs(a.search_paths), &name)
            .ok_or_else(|| err(format!("lookup('file'): could not find file '{name}'")))?;
        let mut text = read(&path, "file")?;
        if rstrip {
            text = text.trim_end().to_string();
        }
        if lstrip {
            text = text.trim_start().to_string();
        }
        out.push(Value::from(text));
    }
    Ok(out)
}

fn template(state: &State, a: &Args) -> Result<Vec<Value>, Error> {
    let extra = a.kwargs.get::<Option<Value>>("template_vars")?;
    // Options of Ansible's template lookup that change nothing here.
    for ignored in ["convert_data", "jinja2_native"] {
        a.kwargs.get::<Option<Value>>(ignored)?;
    }
    a.no_more_kwargs()?;
    let mut dirs: Vec<PathBuf> = a.search_paths.to_vec();
    dirs.push(PathBuf::from("."));
    let mut out = Vec::new();
    for name in a.text_terms() {
        let path = find(&dirs, &name).ok_or_else(|| {
            err(format!(
                "lookup('template'): could not find template '{name}'"
            ))
        })?;
        out.push(Value::from(render_template(state, &path, extra.as_ref())?));
    }
    Ok(out)
}

fn vars(state: &State, a: &Args) -> Result<Vec<Value>, Error> {
    let default = a.kwargs.get::<Option<Value>>("default")?;
    a.no_more_kwargs()?;
    let mut out = Vec::new();
    for name in a.text_terms() {
        match state.lookup(&name).filter(|v| !v.is_undefined()) {
            Some(v) => out.push(v),
            None => match &default {
                Some(d) => out.push(d.clone()),
                None => {
                    return Err(Error::new(
                        ErrorKind::UndefinedError,
                        format!("lookup('vars'): no variable named '{name}'"),
                    ))
                }
            },
        }
    }
    Ok(out)
}

fn first_found(state: &State, a: &Args) -> Result<Vec<Value>, Error> {
    let mut skip = flag(a.kwargs, "skip", false)?;
    let mut dirs = a
        .kwargs
        .get::<Option<Vec<String>>>("paths")?
        .unwrap_or_default()
        .into_iter()
        .map(PathBuf::from)
        .collect::<Vec<_>>();
    let mut files = a
        .kwargs
        .get::<Option<Vec<String>>>("files")?
        .unwrap_or_default();
    // Where a `with_first_found` loop's task looks for its files (set by
    // the executor from the task's action, as Ansible's `_subdir`).
    let task_dirs = a
        .kwargs
        .get::<Option<Vec<String>>>(TASK_DIRS_KWARG)?
        .unwrap_or_default();
    a.no_more_kwargs()?;
    for t in &a.terms {
        // A term may be a dict with `files`, `paths` and `skip`.
        if t.kind() == ValueKind::Map {
            for f in t.get_attr("files")?.try_iter().into_iter().flatten() {
                files.push(super::pyfmt::py_str(&f));
            }
            for p in t.get_attr("paths")?.try_iter().into_iter().flatten() {
                dirs.push(PathBuf::from(super::pyfmt::py_str(&p)));
            }
            skip |= t.get_attr("skip")?.is_true();
        } else {
            files.push(super::pyfmt::py_str(t));
        }
    }
    if let Some(role) = role_path(state) {
        // In a role, relative `paths` are the role's folders first.
        dirs = dirs
            .into_iter()
            .flat_map(|d| {
                if d.is_relative() {
                    vec![role.join(&d), d]
                } else {
                    vec![d]
                }
            })
            .collect();
    }
    dirs.extend(task_dirs.into_iter().map(PathBuf::from));
    dirs.extend(file_dirs(a.search_paths));
    dirs.extend(a.search_paths.iter().cloned());
    for f in &files {
        if let Some(p) = find(&dirs, f) {
            return Ok(vec![Value::from(absolute(&p).display().to_string())]);
        }
    }
    if skip {
        Ok(Vec::new())
    } else {
        Err(err(
            "lookup('first_found'): none of the files was found (use skip=True to allow that)",
        ))
    }
}

/// The keyword argument the executor passes to `first_found` in a loop:
/// the task's own search directories.
pub const TASK_DIRS_KWARG: &str = "_herd_task_dirs";

/// A found path made absolute, as Ansible reports them.
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// `list` keeps its terms as given; `items` flattens list terms one level.
fn list(_: &State, a: &Args) -> Result<Vec<Value>, Error> {
    a.no_more_kwargs()?;
    let mut out = Vec::new();
    for t in &a.terms {
        if t.kind() == ValueKind::Seq && a.kind == "items" {
            out.extend(t.try_iter()?);
        } else {
            out.push(t.clone());
        }
    }
    Ok(out)
}

fn dict(_: &State, a: &Args) -> Result<Vec<Value>, Error> {
    a.no_more_kwargs()?;
    let mut out = Vec::new();
    for t in &a.terms {
        if t.kind() != ValueKind::Map {
            return Err(err("lookup('dict'): with_dict expects a dict"));
        }
        for k in t.try_iter()? {
            let v = t.get_item(&k)?;
            out.push(Value::from_pairs([("key", k), ("value", v)]));
        }
    }
    Ok(out)
}

fn password_lookup(_: &State, a: &Args) -> Result<Vec<Value>, Error> {
    let opts = PasswordOptions {
        length: a.kwargs.get("length")?,
        chars: a.kwargs.get("chars")?,
        seed: a.kwargs.get("seed")?,
        encrypt: a.kwargs.get("encrypt")?,
    };
    a.no_more_kwargs()?;
    let mut out = Vec::new();
    for term in a.text_terms() {
        out.push(Value::from(password(a.search_paths, &term, &opts)?));
    }
    Ok(out)
}

/// `pipe` and `lines`: run on the controller through the shell, as Ansible
/// does; `pipe` strips the trailing newline, `lines` splits the output.
fn pipe(_: &State, a: &Args) -> Result<Vec<Value>, Error> {
    let kind = a.kind;
    a.no_more_kwargs()?;
    let mut out = Vec::new();
    for command in a.text_terms() {
        let (status, stdout) = run_bounded(kind, &command)?;
        if !status.success() {
            // The command may hold secrets: name the lookup and the
            // exit code only.
            return Err(err(format!(
                "lookup('{kind}'): the command failed with {status}"
            )));
        }
        let text = String::from_utf8_lossy(&stdout).into_owned();
        if kind == "pipe" {
            out.push(Value::from(text.trim_end_matches('\n').to_string()));
        } else {
            out.extend(text.lines().map(Value::from));
        }
    }
    Ok(out)
}

fn fileglob_lookup(_: &State, a: &Args) -> Result<Vec<Value>, Error> {
    a.no_more_kwargs()?;
    let mut out = Vec::new();
    for pattern in a.text_terms() {
        out.extend(
            fileglob(a.search_paths, &pattern)?
                .into_iter()
                .map(Value::from),
        );
    }
    Ok(out)
}

fn sequence_lookup(_: &State, a: &Args) -> Result<Vec<Value>, Error> {
    a.no_more_kwargs()?;
    let mut out = Vec::new();
    for spec in a.text_terms() {
        out.extend(sequence(&spec)?.into_iter().map(Value::from));
    }
    Ok(out)
}

fn indexed_items(_: &State, a: &Args) -> Result<Vec<Value>, Error> {
    a.no_more_kwargs()?;
    Ok(a.terms
        .iter()
        .enumerate()
        .map(|(i, v)| Value::from(vec![Value::from(i), v.clone()]))
        .collect())
}

/// community.general's `flattened`: every nested list, all levels.
fn flattened(_: &State, a: &Args) -> Result<Vec<Value>, Error> {
    a.no_more_kwargs()?;
    fn walk(v: Value, out: &mut Vec<Value>) {
        match v.try_iter() {
            Ok(items) if v.kind() == ValueKind::Seq => {
                for i in items {
                    walk(i, out);
                }
            }
            _ => out.push(v),
        }
    }
    let mut out = Vec::new();
    for t in &a.terms {
        walk(t.clone(), &mut out);
    }
    Ok(out)
}

/// A term as a list: a list as it is, anything else as a list of one
/// (Ansible's `listify_lookup_plugin_terms`).
fn listify(t: &Value) -> Vec<Value> {
    if t.kind() == ValueKind::Seq {
        t.try_iter()
            .map(std::iter::Iterator::collect)
            .unwrap_or_default()
    } else {
        vec![t.clone()]
    }
}

/// A combination flattened one level, as Ansible's `_flatten` does.
fn flatten_once(parts: Vec<Value>) -> Value {
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        if p.kind() == ValueKind::Seq {
            out.extend(p.try_iter().into_iter().flatten());
        } else {
            out.push(p);
        }
    }
    Value::from(out)
}

/// `with_together`: items side by side, missing ones are None.
fn together(_: &State, a: &Args) -> Result<Vec<Value>, Error> {
    a.no_more_kwargs()?;
    if a.terms.is_empty() {
        return Err(err(
            "lookup('together'): with_together requires at least one element in each list",
        ));
    }
    let lists: Vec<Vec<Value>> = a.terms.iter().map(listify).collect();
    let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
    Ok((0..longest)
        .map(|i| {
            flatten_once(
                lists
                    .iter()
                    .map(|l| l.get(i).cloned().unwrap_or(Value::from(())))
                    .collect(),
            )
        })
        .collect())
}

/// `with_nested` (and community.general's `with_cartesian`): every
/// combination, first list outermost.
fn nested(_: &State, a: &Args) -> Result<Vec<Value>, Error> {
    a.no_more_kwargs()?;
    if a.terms.is_empty() {
        return Err(err(format!(
            "lookup('{}'): with_{} requires at least one element in the nested list",
            a.kind, a.kind
        )));
    }
    let mut result: Vec<Vec<Value>> = vec![Vec::new()];
    for t in &a.terms {
        let pool = listify(t);
        let mut next = Vec::new();
        for prefix in &result {
            for item in &pool {
                let mut p = prefix.clone();
                p.push(item.clone());
                next.push(p);
            }
        }
        result = next;
    }
    Ok(result.into_iter().map(flatten_once).collect())
}

/// `with_subelements: [users, 'groups', {skip_missing: true}]`: each
/// element of each item's sub-list, paired with the item without that
/// sub-list (as Ansible pairs them). A dict stands for its values.
fn subelements(_: &State, a: &Args) -> Result<Vec<Value>, Error> {
    a.no_more_kwargs()?;
    let usage = || {
        err("lookup('subelements'): expects a list of two or three items, first a dict or a list, second a string pointing to the subkey")
    };
    let (Some(list), Some(key)) = (a.terms.first(), a.terms.get(1)) else {
        return Err(usage());
    };
    if a.terms.len() > 3 || key.kind() != ValueKind::String {
        return Err(usage());
    }
    let skip_missing = match a.terms.get(2) {
        Some(f) if f.kind() == ValueKind::Map => f.get_attr("skip_missing")?.is_true(),
        Some(_) => return Err(usage()),
        None => false,
    };
    let elements: Vec<Value> = match list.kind() {
        ValueKind::Seq => list.try_iter()?.collect(),
        ValueKind::Map if list.get_attr("skipped")?.is_true() => return Ok(Vec::new()),
        ValueKind::Map => list
            .try_iter()?
            .map(|k| list.get_item(&k))
            .collect::<Result<_, _>>()?,
        _ => return Err(usage()),
    };
    let path: Vec<&str> = key.as_str().unwrap_or_default().split('.').collect();
    let mut out = Vec::new();
    for item in elements {
        if item.kind() != ValueKind::Map {
            return Err(err("lookup('subelements'): expects a dictionary item"));
        }
        if item.get_attr("skipped")?.is_true() {
            continue;
        }
        let json = super::to_json(&item);
        if let Some((parent, sub)) = subelement(json, &path, skip_missing)? {
            let parent = super::from_json(&parent);
            out.extend(
                sub.iter()
                    .map(|s| Value::from(vec![parent.clone(), super::from_json(s)])),
            );
        }
    }
    Ok(out)
}

/// The list at `path` inside `item`, and `item` without it; `None` when a
/// key is missing and `skip_missing` is set.
fn subelement(
    mut item: serde_json::Value,
    path: &[&str],
    skip_missing: bool,
) -> Result<Option<(serde_json::Value, Vec<serde_json::Value>)>, Error> {
    let Some((last, parents)) = path.split_last() else {
        return Ok(None);
    };
    let mut at = &mut item;
    for key in parents {
        match at.get_mut(*key) {
            Some(v @ serde_json::Value::Object(_)) => at = v,
            Some(_) if skip_missing => return Ok(None),
            Some(_) => {
                return Err(err(format!(
                    "lookup('subelements'): the key {key} should point to a dictionary"
                )))
            }
            None if skip_missing => return Ok(None),
            None => {
                return Err(err(format!(
                    "lookup('subelements'): could not find '{key}' key in an iterated item"
                )))
            }
        }
    }
    let sub = match at.as_object_mut().and_then(|m| m.shift_remove(*last)) {
        Some(serde_json::Value::Array(a)) => a,
        Some(_) => {
            return Err(err(format!(
                "lookup('subelements'): the key {last} should point to a list"
            )))
        }
        None if skip_missing => return Ok(None),
        None => {
            return Err(err(format!(
                "lookup('subelements'): could not find '{last}' key in an iterated item"
            )))
        }
    };
    Ok(Some((item, sub)))
}

/// One of the terms, picked at random (all of them when there are none).
fn random_choice(_: &State, a: &Args) -> Result<Vec<Value>, Error> {
    a.no_more_kwargs()?;
    if a.terms.is_empty() {
        return Ok(Vec::new());
    }
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|_| err("lookup('random_choice'): no random numbers available"))?;
    let i = (u64::from_le_bytes(bytes) % a.terms.len() as u64) as usize;
    Ok(vec![a.terms[i].clone()])
}

/// Hosts matching a host pattern, from the `groups` the template sees (so
/// hosts added by `add_host` and groups made by `group_by` count).
fn inventory_hostnames(state: &State, a: &Args) -> Result<Vec<Value>, Error> {
    a.no_more_kwargs()?;
    let groups = state
        .lookup("groups")
        .filter(|g| g.kind() == ValueKind::Map)
        .ok_or_else(|| err("lookup('inventory_hostnames'): no inventory groups are known"))?;
    let mut map: indexmap::IndexMap<String, Vec<String>> = indexmap::IndexMap::new();
    for g in groups.try_iter()? {
        let hosts = groups.get_item(&g)?;
        map.insert(
            super::pyfmt::py_str(&g),
            hosts
                .try_iter()
                .into_iter()
                .flatten()
                .map(|h| super::pyfmt::py_str(&h))
                .collect(),
        );
    }
    let inv = crate::inventory::Inventory::from_groups(&map);
    let pattern = a.text_terms().join(",");
    // As Ansible: a pattern that cannot be read matches nothing.
    Ok(inv
        .select(&pattern)
        .unwrap_or_default()
        .into_iter()
        .map(Value::from)
        .collect())
}

/// Options of `lookup('password', ...)` given as keyword arguments; the
/// same can be written inside the term (`path length=12 chars=digits`).
struct PasswordOptions {
    length: Option<usize>,
    chars: Option<String>,
    seed: Option<String>,
    encrypt: Option<String>,
}

/// The characters named by `chars=` (Python's `string` constants, or
/// literal text; `,,` is a literal comma).
fn password_chars(spec: Option<&str>) -> String {
    let spec = spec.unwrap_or("ascii_letters,digits,.,,:-_");
    let mut names = Vec::new();
    let mut cur = String::new();
    let mut it = spec.chars().peekable();
    while let Some(c) = it.next() {
        if c == ',' {
            if it.peek() == Some(&',') {
                it.next();
                cur.push(',');
            } else {
                names.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    names.push(cur);
    let mut chars = String::new();
    for name in names {
        chars.push_str(match name.as_str() {
            "ascii_letters" => "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
            "ascii_lowercase" => "abcdefghijklmnopqrstuvwxyz",
            "ascii_uppercase" => "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            "digits" => "0123456789",
            "hexdigits" => "0123456789abcdefABCDEF",
            "octdigits" => "01234567",
            "punctuation" => "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
            other => other,
        });
    }
    chars
}

/// `lookup('password', 'creds/db length=15')`: the password stored in the
/// file (relative to the playbook), or a new random one written there with
/// mode 0600, as Ansible does. `seed=` makes the password Python's
/// `Random(seed)` choice, so it equals the one Ansible would generate.
fn password(search_paths: &[PathBuf], term: &str, opts: &PasswordOptions) -> Result<String, Error> {
    let (rel, params) = match term.trim().split_once(' ') {
        Some((p, rest)) => (p, rest),
        None => (term.trim(), ""),
    };
    let mut length = opts.length;
    let mut chars = opts.chars.clone();
    let mut seed = opts.seed.clone();
    let mut encrypt = opts.encrypt.clone();
    for kv in params.split_whitespace() {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(err(format!(
                "lookup('password'): cannot read the option '{kv}'"
            )));
        };
        match k {
            "length" => {
                length = Some(
                    v.parse()
                        .map_err(|_| err("lookup('password'): length must be a number"))?,
                );
            }
            "chars" => chars = Some(v.to_string()),
            "seed" => seed = Some(v.to_string()),
            "encrypt" => encrypt = Some(v.to_string()),
            other => {
                return Err(err(format!(
                    "lookup('password'): unknown option '{other}' (length, chars, seed, encrypt)"
                )))
            }
        }
    }
    let generate = |length: usize| -> String {
        let alphabet: Vec<char> = password_chars(chars.as_deref()).chars().collect();
        let mut rng = super::filters::py_random(seed.as_deref().map(Value::from));
        (0..length)
            .map(|_| alphabet[rng.below(alphabet.len() as u128) as usize])
            .collect()
    };
    let length = length.unwrap_or(20);
    super::bounds::check_text_len("lookup('password'): length", length)?;
    let hash = |pw: &str, salt: &str| -> Result<String, Error> {
        Ok(match encrypt.as_deref() {
            None => pw.to_string(),
            Some("sha512_crypt") => super::crypt::sha512_crypt(pw, salt, 5000),
            Some("sha256_crypt") => super::crypt::sha256_crypt(pw, salt, 5000),
            Some("md5_crypt") => super::crypt::md5_crypt(pw, salt),
            Some(other) => {
                return Err(err(format!(
                    "lookup('password'): encrypt={other} is not supported (sha512_crypt, sha256_crypt, md5_crypt)"
                )))
            }
        })
    };
    let new_salt = || -> String {
        let alphabet: Vec<char> =
            "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                .chars()
                .collect();
        let mut rng = super::filters::py_random(None);
        (0..16)
            .map(|_| alphabet[rng.below(alphabet.len() as u128) as usize])
            .collect()
    };
    if rel == "/dev/null" {
        let pw = generate(length);
        return hash(&pw, &new_salt());
    }
    let path = if Path::new(rel).is_absolute() {
        PathBuf::from(rel)
    } else {
        // Relative to the playbook, which is the first search path's parent
        // (`<playbook>/templates`).
        let base = search_paths
            .first()
            .filter(|p| p.file_name().is_some_and(|n| n == "templates"))
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        base.join(rel)
    };
    let (pw, salt, changed) = if path.exists() {
        let content = read(&path, "password")?;
        let content = content.trim_end();
        let (pw, salt) = match content.rfind(" salt=") {
            Some(i) => (
                content[..i].to_string(),
                Some(
                    content[i + 6..]
                        .split(" ident=")
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                ),
            ),
            None => (content.to_string(), None),
        };
        let missing_salt = salt.is_none() && encrypt.is_some();
        (pw, salt, missing_salt)
    } else {
        (generate(length), None, true)
    };
    let salt = match (salt, &encrypt) {
        (Some(s), _) => Some(s),
        (None, Some(_)) => Some(new_salt()),
        (None, None) => None,
    };
    if changed {
        let content = match &salt {
            Some(s) => format!("{pw} salt={s}\n"),
            None => format!("{pw}\n"),
        };
        write_private(&path, &content)?;
    }
    hash(&pw, salt.as_deref().unwrap_or_default())
}

/// Writes a file only its owner can read, creating its directory.
fn write_private(path: &Path, content: &str) -> Result<(), Error> {
    let fail = |e: std::io::Error| {
        err(format!(
            "lookup('password'): cannot write {}: {e}",
            path.display()
        ))
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    f.write_all(content.as_bytes()).map_err(fail)
}

/// `lookup('fileglob', 'conf.d/*.conf')`: the directory part is found like
/// `lookup('file')` finds files, the file-name part is matched inside it.
/// Only files are returned, sorted so runs are repeatable.
fn fileglob(search_paths: &[PathBuf], pattern: &str) -> Result<Vec<String>, Error> {
    let p = Path::new(pattern);
    let (dir, name) = match (p.parent(), p.file_name()) {
        (Some(d), Some(n)) => (d.to_path_buf(), n.to_string_lossy().into_owned()),
        _ => (PathBuf::new(), pattern.to_string()),
    };
    let matcher = globset::Glob::new(&name)
        .map_err(|e| err(format!("lookup('fileglob'): invalid pattern: {e}")))?
        .compile_matcher();
    let dir = if dir.is_absolute() {
        Some(dir)
    } else {
        file_dirs(search_paths)
            .into_iter()
            .map(|d| d.join(&dir))
            .find(|d| d.is_dir())
    };
    let Some(dir) = dir else {
        return Ok(Vec::new());
    };
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| {
            err(format!(
                "lookup('fileglob'): cannot list {}: {e}",
                dir.display()
            ))
        })?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file() && matcher.is_match(e.file_name()))
        .map(|e| absolute(&e.path()).display().to_string())
        .collect();
    found.sort();
    Ok(found)
}

/// Run a `pipe`/`lines` command with `/bin/sh`, keeping at most
/// [`super::bounds::MAX_READ_BYTES`] of its stdout; past that it is killed
/// (and reaped) and the lookup fails, so `cat /dev/zero` cannot exhaust the
/// controller's memory.
fn run_bounded(kind: &str, command: &str) -> Result<(std::process::ExitStatus, Vec<u8>), Error> {
    let mut child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .map_err(|e| err(format!("lookup('{kind}'): cannot start /bin/sh: {e}")))?;
    let read = match child.stdout.take() {
        Some(out) => {
            super::bounds::read_bounded(&format!("lookup('{kind}'): the command's output"), out)
        }
        None => Ok(Vec::new()),
    };
    if read.is_err() {
        let _ = child.kill();
    }
    let status = child
        .wait()
        .map_err(|e| err(format!("lookup('{kind}'): cannot wait for /bin/sh: {e}")))?;
    Ok((status, read?))
}

/// `with_sequence`: `start=1 end=5 stride=1 format=web%02d`, `count=3`,
/// or the short form `[start-]end[/stride][:format]`.
fn sequence(spec: &str) -> Result<Vec<String>, Error> {
    let bad = || {
        err("lookup('sequence'): cannot read the sequence, expected start=N end=N [stride=N] [format=F]")
    };
    let parse_int = |s: &str| -> Result<i64, Error> {
        let s = s.trim();
        let (neg, digits) = match s.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, s),
        };
        let n = if let Some(h) = digits.strip_prefix("0x") {
            i64::from_str_radix(h, 16)
        } else if let Some(o) = digits
            .strip_prefix("0o")
            .or(digits.strip_prefix('0').filter(|o| !o.is_empty()))
        {
            i64::from_str_radix(o, 8)
        } else {
            digits.parse()
        }
        .map_err(|_| bad())?;
        Ok(if neg { -n } else { n })
    };
    let (mut start, mut end, mut stride, mut count, mut format) =
        (1i64, None, 1i64, None, "%d".to_string());
    if spec.contains('=') {
        for part in spec.split_whitespace() {
            let (k, v) = part.split_once('=').ok_or_else(bad)?;
            match k {
                "start" => start = parse_int(v)?,
                "end" => end = Some(parse_int(v)?),
                "stride" => stride = parse_int(v)?,
                "count" => count = Some(parse_int(v)?),
                "format" => format = v.to_string(),
                _ => return Err(bad()),
            }
        }
    } else {
        let (rest, fmt) = match spec.split_once(':') {
            Some((r, f)) => (r, Some(f)),
            None => (spec, None),
        };
        if let Some(f) = fmt {
            format = f.to_string();
        }
        let (range, step) = match rest.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (rest, None),
        };
        if let Some(s) = step {
            stride = parse_int(s)?;
        }
        match range.trim().split_once('-') {
            Some((a, b)) if !a.is_empty() => {
                start = parse_int(a)?;
                end = Some(parse_int(b)?);
            }
            _ => end = Some(parse_int(range)?),
        }
    }
    let end = match (end, count) {
        (Some(_), Some(_)) => {
            return Err(err("lookup('sequence'): can't specify both count and end"))
        }
        (Some(e), None) => e,
        (None, Some(c)) if c <= 0 => return Ok(Vec::new()),
        // i128 cannot overflow here; an end past i64 is refused below.
        (None, Some(c)) => i64::try_from(start as i128 + (c as i128 - 1) * stride as i128)
            .map_err(|_| err("lookup('sequence'): the sequence ends outside the 64-bit range"))?,
        (None, None) => return Err(err("lookup('sequence'): must specify count or end")),
    };
    if stride == 0 {
        return Err(err("lookup('sequence'): stride must not be 0"));
    }
    if stride > 0 && end < start {
        return Err(err(
            "lookup('sequence'): to count backwards make stride negative",
        ));
    }
    if stride < 0 && end > start {
        return Err(err(
            "lookup('sequence'): to count forward don't make stride negative",
        ));
    }
    // Counted in i128 so neither the count nor the last step can overflow
    // (`start=9223372036854775806 end=9223372036854775807` used to).
    let n = (end as i128 - start as i128) / stride as i128 + 1;
    super::bounds::check_items("lookup('sequence')", n.unsigned_abs())?;
    let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    for k in 0..n {
        let i = i64::try_from(start as i128 + k * stride as i128)
            .map_err(|_| err("lookup('sequence'): the sequence leaves the 64-bit range"))?;
        out.push(printf_int(&format, i).ok_or_else(|| err("lookup('sequence'): bad format"))?);
    }
    Ok(out)
}

/// The widest field a sequence's `format` may ask for.
const MAX_FORMAT_WIDTH: usize = 1024;

/// `format % n` for one integer directive (`%d`, `%02d`, `%x`, `%o`, `%5d`).
fn printf_int(format: &str, n: i64) -> Option<String> {
    let start = format.find('%')?;
    let rest = &format[start + 1..];
    let spec_end = rest.find(|c: char| c.is_ascii_alphabetic())?;
    let (flags, conv) = (&rest[..spec_end], rest[spec_end..].chars().next()?);
    let zero = flags.starts_with('0');
    let left = flags.starts_with('-');
    let width: usize = flags.trim_start_matches(['0', '-']).parse().unwrap_or(0);
    // A format is a label, not a way to allocate gigabytes per item.
    if width > MAX_FORMAT_WIDTH {
        return None;
    }
    let body = match conv {
        'd' | 'i' | 'u' => n.to_string(),
        'x' => format!("{n:x}"),
        'X' => format!("{n:X}"),
        'o' => format!("{n:o}"),
        _ => return None,
    };
    let padded = if left {
        format!("{body:<width$}")
    } else if zero {
        format!("{body:0>width$}")
    } else {
        format!("{body:>width$}")
    };
    let tail = &rest[spec_end + conv.len_utf8()..];
    Some(format!("{}{padded}{tail}", &format[..start]))
}

fn lookup_arg_err(kind: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| {
        err(format!(
            "lookup('{kind}'): {}",
            e.detail().unwrap_or("bad keyword argument")
        ))
    }
}

fn flag(kwargs: &Kwargs, name: &str, default: bool) -> Result<bool, Error> {
    Ok(kwargs
        .get::<Option<Value>>(name)?
        .map(|v| v.is_true())
        .unwrap_or(default))
}

/// The `role_path` of the task whose template runs the lookup, if any.
fn role_path(state: &State) -> Option<PathBuf> {
    state
        .lookup("role_path")
        .and_then(|v| v.as_str().map(PathBuf::from))
}

/// In a role, the role's `templates/` and the role itself come before the
/// playbook's folders (so `file` finds the role's `files/` first), as
/// Ansible's `path_dwim_relative` searches.
fn with_role_dirs(state: &State, search_paths: &[PathBuf]) -> Vec<PathBuf> {
    match role_path(state) {
        Some(role) => [role.join("templates"), role]
            .into_iter()
            .chain(search_paths.iter().cloned())
            .collect(),
        None => search_paths.to_vec(),
    }
}

/// Where `lookup('file')` looks: `files/` next to each `templates/` search
/// path, the search paths themselves, then the working directory.
fn file_dirs(search_paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for sp in search_paths {
        if sp.file_name().is_some_and(|n| n == "templates") {
            if let Some(parent) = sp.parent() {
                dirs.push(parent.join("files"));
            }
        }
    }
    dirs.extend(search_paths.iter().cloned());
    dirs.push(PathBuf::from("."));
    dirs
}

fn find(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    dirs.iter().map(|d| d.join(p)).find(|c| c.is_file())
}

fn read(path: &Path, kind: &str) -> Result<String, Error> {
    super::bounds::read_file_text(&format!("lookup('{kind}')"), path)
}

/// Renders a template file with the variables the calling template sees
/// (plus `template_vars`), in the same environment.
fn render_template(state: &State, path: &Path, extra: Option<&Value>) -> Result<String, Error> {
    thread_local! {
        /// Nested `lookup('template')` renders on this thread; a template
        /// that looks itself up would otherwise overflow the stack.
        static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    const MAX_DEPTH: usize = 20;
    let depth = DEPTH.with(std::cell::Cell::get);
    if depth >= MAX_DEPTH {
        return Err(err(format!(
            "lookup('template'): templates nest more than {MAX_DEPTH} deep at {}",
            path.display()
        )));
    }
    DEPTH.with(|d| d.set(depth + 1));
    let result = render_template_inner(state, path, extra);
    DEPTH.with(|d| d.set(depth));
    result
}

fn render_template_inner(
    state: &State,
    path: &Path,
    extra: Option<&Value>,
) -> Result<String, Error> {
    let source = read(path, "template")?;
    let mut vars = indexmap::IndexMap::new();
    for name in state.known_variables() {
        if let Some(v) = state.lookup(&name) {
            vars.insert(name.into_owned(), v);
        }
    }
    if let Some(extra) = extra {
        if extra.kind() == ValueKind::Map {
            for k in extra.try_iter()? {
                let v = extra.get_item(&k)?;
                vars.insert(super::pyfmt::py_str(&k), v);
            }
        }
    }
    let name = path.display().to_string();
    let ctx = Value::from_pairs(vars);
    match super::header::split(&source).map_err(|e| err(e.to_string()))? {
        None => {
            let source = super::chain::rewrite_template(&source);
            let tmpl = state.env().template_from_named_str(&name, &source)?;
            tmpl.render(ctx)
        }
        Some(header) => {
            let env = header
                .environment(state.env())
                .map_err(|e| err(e.to_string()))?;
            let body = if header.changes_delimiters() {
                std::borrow::Cow::Borrowed(header.body)
            } else {
                super::chain::rewrite_template(header.body)
            };
            let tmpl = env.template_from_named_str(&name, &body)?;
            tmpl.render(ctx)
        }
    }
}

#[cfg(test)]
mod unit {
    use crate::template::{from_json, Templar};
    use serde_json::json;

    fn setup() -> (tempfile::TempDir, Templar) {
        let dir = tempfile::tempdir().unwrap();
        let templates = dir.path().join("templates");
        let files = dir.path().join("files");
        std::fs::create_dir_all(&templates).unwrap();
        std::fs::create_dir_all(&files).unwrap();
        std::fs::write(files.join("motd"), "Welcome\n\n").unwrap();
        std::fs::write(
            templates.join("part.j2"),
            "{% for x in items %}\n- {{ x }} on {{ host }}\n{% endfor %}\n",
        )
        .unwrap();
        std::fs::write(templates.join("broken.j2"), "line\n{{ nope }}\n").unwrap();
        let t = Templar::new(vec![templates]);
        (dir, t)
    }

    fn render(t: &Templar, s: &str) -> Result<String, String> {
        t.render_str(
            "play.yml",
            s,
            &from_json(&json!({"host": "h1", "items": [1, 2]})),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn env_lookup() {
        let (_d, t) = setup();
        std::env::set_var("HERD_LOOKUP_TEST", "v1");
        assert_eq!(
            render(&t, "{{ lookup('env', 'HERD_LOOKUP_TEST') }}").unwrap(),
            "v1"
        );
        assert_eq!(
            render(&t, "[{{ lookup('env', 'HERD_SURELY_UNSET_VAR') }}]").unwrap(),
            "[]"
        );
        assert_eq!(
            render(
                &t,
                "{{ lookup('ansible.builtin.env', 'HERD_SURELY_UNSET_VAR', default='d') }}"
            )
            .unwrap(),
            "d"
        );
        assert_eq!(
            render(
                &t,
                "{{ query('env', 'HERD_LOOKUP_TEST', 'HERD_LOOKUP_TEST') }}"
            )
            .unwrap(),
            "['v1', 'v1']"
        );
        assert_eq!(
            render(
                &t,
                "{{ lookup('env', 'HERD_LOOKUP_TEST', 'HERD_LOOKUP_TEST') }}"
            )
            .unwrap(),
            "v1,v1"
        );
    }

    #[test]
    fn file_lookup_strips_trailing_whitespace() {
        let (_d, t) = setup();
        assert_eq!(
            render(&t, "[{{ lookup('file', 'motd') }}]").unwrap(),
            "[Welcome]"
        );
        assert_eq!(
            render(&t, "[{{ lookup('file', 'motd', rstrip=false) }}]").unwrap(),
            "[Welcome\n\n]"
        );
        let e = render(&t, "{{ lookup('file', 'nothere.txt') }}").unwrap_err();
        assert!(e.contains("nothere.txt"), "{e}");
        assert_eq!(
            render(&t, "[{{ lookup('file', 'nothere.txt', errors='ignore') }}]").unwrap(),
            "[]"
        );
    }

    #[test]
    fn pipe_and_lines_lookups() {
        let (_d, t) = setup();
        assert_eq!(
            render(&t, "[{{ lookup('pipe', 'echo hi') }}]").unwrap(),
            "[hi]"
        );
        assert_eq!(
            render(&t, "{{ query('lines', 'printf \"a\\nb\\n\"') }}").unwrap(),
            "['a', 'b']"
        );
        let e = render(&t, "{{ lookup('pipe', 'exit 3') }}").unwrap_err();
        assert!(e.contains("failed") && !e.contains("exit 3"), "{e}");
    }

    #[test]
    fn password_lookup_creates_then_reuses() {
        let (d, t) = setup();
        // CPython: ''.join(Random('s1').choice(ascii_letters + digits + '.,:-_') for _ in range(20))
        assert_eq!(
            render(&t, "{{ lookup('password', '/dev/null seed=s1') }}").unwrap(),
            "bJ27qvwl0NuUd-3YgCQV"
        );
        assert_eq!(
            render(
                &t,
                "{{ lookup('password', '/dev/null', seed='s1', chars='digits', length=8) }}"
            )
            .unwrap(),
            "98046792"
        );
        let first = render(&t, "{{ lookup('password', 'creds/db length=12') }}").unwrap();
        assert_eq!(first.len(), 12);
        let file = d.path().join("creds").join("db");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("{first}\n")
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = render(&t, "{{ lookup('password', 'creds/db length=12') }}").unwrap();
        assert_eq!(first, again);
        let hashed = render(
            &t,
            "{{ lookup('password', 'creds/db encrypt=sha512_crypt') }}",
        )
        .unwrap();
        assert!(hashed.starts_with("$6$"), "{hashed}");
        let again = render(
            &t,
            "{{ lookup('password', 'creds/db encrypt=sha512_crypt') }}",
        )
        .unwrap();
        assert_eq!(hashed, again);
        assert!(render(&t, "{{ lookup('password', 'x bogus=1') }}").is_err());
    }

    #[test]
    fn fileglob_lookup() {
        let (d, t) = setup();
        std::fs::write(d.path().join("files").join("a.conf"), "").unwrap();
        std::fs::write(d.path().join("files").join("b.conf"), "").unwrap();
        let out = render(
            &t,
            "{{ query('fileglob', '*.conf') | map('basename') | list }}",
        )
        .unwrap();
        assert_eq!(out, "['a.conf', 'b.conf']");
        assert_eq!(
            render(&t, "{{ query('fileglob', 'nodir/*.x') }}").unwrap(),
            "[]"
        );
    }

    #[test]
    fn template_lookup_sees_the_context() {
        let (d, t) = setup();
        assert_eq!(
            render(&t, "{{ lookup('template', 'part.j2') }}").unwrap(),
            "- 1 on h1\n- 2 on h1\n"
        );
        assert_eq!(
            render(
                &t,
                "{{ lookup('template', 'part.j2', template_vars={'host': 'h9'}) }}"
            )
            .unwrap(),
            "- 1 on h9\n- 2 on h9\n"
        );
        std::fs::write(
            d.path().join("templates").join("self.j2"),
            "{{ lookup('template', 'self.j2') }}",
        )
        .unwrap();
        let e = render(&t, "{{ lookup('template', 'self.j2') }}").unwrap_err();
        assert!(e.contains("nest"), "{e}");
        let e = render(&t, "{{ lookup('template', 'broken.j2') }}").unwrap_err();
        assert!(e.contains("broken.j2"), "{e}");
        assert!(e.contains("`nope`"), "{e}");
    }

    #[test]
    fn other_lookups() {
        let (_d, t) = setup();
        assert_eq!(render(&t, "{{ lookup('vars', 'host') }}").unwrap(), "h1");
        assert_eq!(
            render(&t, "{{ lookup('vars', 'host', wantlist=true) }}").unwrap(),
            "['h1']"
        );
        assert_eq!(
            render(&t, "{{ query('vars', 'host', wantlist=true) }}").unwrap(),
            "['h1']"
        );
        assert_eq!(
            render(&t, "{{ query('dict', {'a': 1}) }}").unwrap(),
            "[{'key': 'a', 'value': 1}]"
        );
        assert_eq!(
            render(&t, "{{ query('list', [1, 2]) }}").unwrap(),
            "[[1, 2]]"
        );
        assert_eq!(
            render(
                &t,
                "{{ lookup('first_found', ['nope', 'motd']) | basename }}"
            )
            .unwrap(),
            "motd"
        );
        assert_eq!(
            render(
                &t,
                "{{ query('sequence', 'start=1 end=3 format=web%02d') }}"
            )
            .unwrap(),
            "['web01', 'web02', 'web03']"
        );
        assert_eq!(
            render(&t, "{{ query('sequence', '4-8/2') }}").unwrap(),
            "['4', '6', '8']"
        );
        assert_eq!(
            render(&t, "{{ query('sequence', 'count=2') }}").unwrap(),
            "['1', '2']"
        );
        assert_eq!(
            render(&t, "{{ query('together', [1, 2], ['a']) }}").unwrap(),
            "[[1, 'a'], [2, None]]"
        );
        assert_eq!(
            render(&t, "{{ query('nested', [1, 2], ['a', 'b']) }}").unwrap(),
            "[[1, 'a'], [1, 'b'], [2, 'a'], [2, 'b']]"
        );
        assert_eq!(
            render(&t, "{{ query('indexed_items', ['a', 'b']) }}").unwrap(),
            "[[0, 'a'], [1, 'b']]"
        );
        assert_eq!(
            render(&t, "{{ query('flattened', [1, [2, [3]]]) }}").unwrap(),
            "[1, 2, 3]"
        );
        assert_eq!(
            render(
                &t,
                "{{ query('subelements', [{'n': 1, 'g': ['a']}, {'n': 2}], 'g', {'skip_missing': true}) }}"
            )
            .unwrap(),
            // As ansible-core 2.18: the item is paired without its sub-list
            // (tests/fixtures/loops/ansible-2.18.json, with_subelements.yml).
            "[[{'n': 1}, 'a']]"
        );
        let e = render(&t, "{{ lookup('nosuch', 'x') }}").unwrap_err();
        assert!(e.contains("nosuch"), "{e}");
        let e = render(&t, "{{ lookup('file', undefined_name) }}").unwrap_err();
        assert!(e.contains("undefined_name"), "{e}");
    }

    /// The lookups added with the table: community.general's `cartesian`
    /// (as `nested`), `random_choice` and `inventory_hostnames` (host
    /// patterns over the `groups` the template sees).
    #[test]
    fn table_lookups() {
        let (_d, t) = setup();
        assert_eq!(
            render(&t, "{{ query('cartesian', ['a', 'b'], [1]) }}").unwrap(),
            "[['a', 1], ['b', 1]]"
        );
        assert_eq!(
            render(&t, "{{ query('nested', [[1, 2]], [3]) }}").unwrap(),
            "[[1, 2, 3]]"
        );
        assert_eq!(
            render(&t, "{{ query('together', 1, [2, 3]) }}").unwrap(),
            "[[1, 2], [None, 3]]"
        );
        assert_eq!(
            render(&t, "{{ lookup('random_choice', 'only') }}").unwrap(),
            "only"
        );
        assert_eq!(render(&t, "{{ lookup('items', []) }}").unwrap(), "[]");
        let groups = "{% set groups = {'all': ['a', 'b', 'c'], 'web': ['a', 'b'], 'db': ['c']} %}";
        assert_eq!(
            render(
                &t,
                &format!("{groups}{{{{ query('inventory_hostnames', 'all:!db') }}}}")
            )
            .unwrap(),
            "['a', 'b']"
        );
        assert!(super::for_loop_keyword("with_nested").is_some());
        assert!(super::for_loop_keyword("with_nosuch").is_none());
    }

    /// Sequences at the edge of i64 used to overflow (a panic in a debug
    /// build, an endless loop in release); huge ones are refused.
    #[test]
    fn sequence_overflow_and_size_are_bounded() {
        let (_d, t) = setup();
        assert_eq!(
            render(
                &t,
                "{{ query('sequence', 'start=9223372036854775806 end=9223372036854775807') }}"
            )
            .unwrap(),
            "['9223372036854775806', '9223372036854775807']"
        );
        assert_eq!(
            render(
                &t,
                "{{ query('sequence', 'start=-9223372036854775806 end=-9223372036854775807 stride=-1') | length }}"
            )
            .unwrap(),
            "2"
        );
        let e = render(
            &t,
            "{{ query('sequence', 'start=9223372036854775807 count=2') }}",
        )
        .unwrap_err();
        assert!(e.contains("64-bit range"), "{e}");
        let e = render(
            &t,
            "{{ query('sequence', 'start=0 end=9223372036854775807') }}",
        )
        .unwrap_err();
        assert!(e.contains("more than the limit of 1000000"), "{e}");
        let e = render(
            &t,
            "{{ query('sequence', 'count=3 format=%999999999999d') }}",
        )
        .unwrap_err();
        assert!(e.contains("bad format"), "{e}");
        assert_eq!(
            render(&t, "{{ query('sequence', 'start=10 end=1 stride=-4') }}").unwrap(),
            "['10', '6', '2']"
        );
    }

    #[test]
    fn file_and_command_reads_are_bounded() {
        let (d, t) = setup();
        // Sparse: 64 MiB + 1 byte costs no disk.
        let big = d.path().join("big");
        let f = std::fs::File::create(&big).expect("create");
        f.set_len(crate::template::bounds::MAX_READ_BYTES + 1)
            .expect("set_len");
        let e = render(
            &t,
            &format!("{{{{ lookup('file', '{}') }}}}", big.display()),
        )
        .unwrap_err();
        assert!(e.contains("more than the limit"), "{e}");
        let e = render(
            &t,
            &format!("{{{{ lookup('template', '{}') }}}}", big.display()),
        )
        .unwrap_err();
        assert!(e.contains("more than the limit"), "{e}");
        let started = std::time::Instant::now();
        let e = render(&t, "{{ lookup('pipe', 'cat /dev/zero') }}").unwrap_err();
        assert!(e.contains("more than the limit"), "{e}");
        let e = render(&t, "{{ lookup('lines', 'yes') }}").unwrap_err();
        assert!(e.contains("more than the limit"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        let e = render(
            &t,
            "{{ lookup('password', '/dev/null length=999999999999') }}",
        )
        .unwrap_err();
        assert!(e.contains("more than the limit"), "{e}");
    }

    #[test]
    fn padding_and_combinatorics_are_bounded() {
        let (_d, t) = setup();
        for expr in [
            "{{ 'x'.ljust(10**12) }}",
            "{{ 'x'.rjust(10**12) }}",
            "{{ 'x'.center(10**12) }}",
            "{{ '1'.zfill(10**12) }}",
            "{{ 'x' | center(10**12) }}",
            "{{ 'a\nb' | indent(10**12) }}",
            "{{ {'a': [1]} | to_json(indent=10**12) }}",
            "{{ {'a': [1]} | to_nice_yaml(indent=10**12) }}",
            "{{ range(30) | permutations | list | length }}",
            "{{ range(60) | combinations(30) | list | length }}",
            "{{ [1, 2] | product(repeat=64) | list | length }}",
            "{{ [1] | product(repeat=10**12) | list | length }}",
        ] {
            let e = render(&t, expr).expect_err(expr);
            assert!(e.contains("limit"), "{expr}: {e}");
        }
        assert_eq!(
            render(&t, "{{ range(5) | combinations(2) | list | length }}").unwrap(),
            "10"
        );
        // `length + leeway` used to overflow.
        assert_eq!(
            render(&t, "{{ 'abc' | truncate(18446744073709551615) }}").unwrap(),
            "abc"
        );
        // minijinja bounds range() itself.
        let e = render(&t, "{{ range(10**9) | length }}").unwrap_err();
        assert!(e.contains("too many"), "{e}");
    }
}
