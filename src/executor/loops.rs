//! The items of a task's loop and what each item sees: `loop:` as given,
//! `with_items:` flattened one level, `with_<lookup>:` through that lookup
//! (the same functions `lookup()`/`query()` run, see
//! `template::lookups::LOOKUPS`), and `loop_control`'s `loop_var`,
//! `index_var` and `extended` (`ansible_loop.*`) as Ansible sets them.

use serde_json::{Map, Value};

use crate::executor::task::ItemOutcome;
use crate::executor::PlayRunner;
use crate::output::Status;
use crate::playbook::{LoopControl, LoopKind, Task};

/// The task field a loop is written in (for messages).
pub(crate) fn loop_field(kind: &LoopKind) -> &'static str {
    match kind {
        LoopKind::Loop => "loop",
        LoopKind::WithItems => "with_items",
        LoopKind::Lookup(keyword) => keyword,
    }
}

impl PlayRunner<'_> {
    /// The items of `task`'s loop for the host whose context is `ctx`; an
    /// error is the task's failed outcome (not yet reported).
    pub(crate) fn loop_items(
        &self,
        task: &Task,
        raw: &Value,
        ctx: &minijinja::Value,
    ) -> Result<Vec<Value>, Box<ItemOutcome>> {
        let field = loop_field(&task.loop_kind);
        let templar = &self.project.templar;
        let rendered = match (&task.loop_kind, raw) {
            // As Ansible: a `with_first_found` term whose variables are not
            // defined is left out, not an error.
            (LoopKind::Lookup("with_first_found"), Value::Array(terms)) => Value::Array(
                terms
                    .iter()
                    .filter_map(|t| match templar.render_value(field, t, ctx) {
                        Err(e) if e.is_undefined() => None,
                        r => Some(r),
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|e| Box::new(ItemOutcome::template_failed(task, field, &e)))?,
            ),
            _ => templar
                .render_value(field, raw, ctx)
                .map_err(|e| Box::new(ItemOutcome::template_failed(task, field, &e)))?,
        };
        match (rendered, &task.loop_kind) {
            (Value::Array(a), LoopKind::WithItems) => Ok(a
                .into_iter()
                .flat_map(|v| match v {
                    Value::Array(inner) => inner,
                    other => vec![other],
                })
                .collect()),
            (Value::Array(a), LoopKind::Loop) => Ok(a),
            (Value::String(s), LoopKind::WithItems) => Ok(vec![Value::String(s)]),
            // `with_items: "{{ x }}"` with x null runs once, with item None.
            (Value::Null, LoopKind::WithItems) => Ok(vec![Value::Null]),
            (terms, LoopKind::Lookup(keyword)) => self.lookup_items(task, keyword, terms, ctx),
            (other, _) => {
                let kind = match other {
                    Value::Object(_) => "a mapping (use `| dict2items`)",
                    Value::Null => "None (null)",
                    _ => "not a list",
                };
                let mut o = ItemOutcome::failed(format!(
                    "`{field}` needs a list, and its value is {kind} (task `{}` at {})",
                    task.display_name(),
                    task.span
                ));
                o.aborts_loop = true;
                Err(Box::new(o))
            }
        }
    }

    /// `with_<lookup>: terms`: as Ansible, a list is the lookup's terms and
    /// anything else is its one term; the lookup's results are the items.
    fn lookup_items(
        &self,
        task: &Task,
        keyword: &str,
        terms: Value,
        ctx: &minijinja::Value,
    ) -> Result<Vec<Value>, Box<ItemOutcome>> {
        let kind = keyword.strip_prefix("with_").unwrap_or(keyword);
        let terms = match terms {
            Value::Array(a) => a,
            other => vec![other],
        };
        let task_dirs: Vec<String> = if kind == "first_found" {
            self.first_found_dirs(task)
        } else {
            Vec::new()
        };
        let ctx = minijinja::context! {
            __herd_lookup => kind,
            __herd_terms => crate::template::from_json(&Value::Array(terms)),
            __herd_task_dirs => task_dirs,
            ..ctx.clone()
        };
        let expr = if kind == "first_found" {
            format!(
                "query(__herd_lookup, *__herd_terms, {}=__herd_task_dirs)",
                crate::template::lookups::TASK_DIRS_KWARG
            )
        } else {
            "query(__herd_lookup, *__herd_terms)".to_string()
        };
        let items = self
            .project
            .templar
            .eval(keyword, &expr, &ctx)
            .map_err(|e| Box::new(ItemOutcome::template_failed(task, keyword, &e)))?;
        match crate::template::to_json(&items) {
            Value::Array(a) => Ok(a),
            other => Ok(vec![other]),
        }
    }
}

impl PlayRunner<'_> {
    /// Where `with_first_found` looks for a task's files, as Ansible does:
    /// the `vars/`, `templates/` or `files/` directory (by the action) and
    /// then the directory itself, beside the task's file and the playbook.
    fn first_found_dirs(&self, task: &Task) -> Vec<String> {
        let action = match &task.kind {
            crate::playbook::TaskKind::Action { action, .. } => action.as_str(),
            _ => "",
        };
        let subdir = ["template", "var", "file"]
            .into_iter()
            .find(|s| action.contains(s))
            .map(|s| format!("{s}s"))
            .unwrap_or_else(|| "files".into());
        let bases = crate::playbook::search::task_bases(&task.span.path, &self.playbook.dir);
        bases
            .iter()
            .flat_map(|b| [b.join(&subdir), b.clone()])
            .map(|p| p.display().to_string())
            .collect()
    }
}

/// What the items of a loop add up to, as they finish.
pub(crate) struct LoopTally {
    results: Vec<Value>,
    notify: Vec<String>,
    any_changed: bool,
    any_failed: bool,
    any_ignored: bool,
    all_skipped: bool,
    unreachable: bool,
}

impl LoopTally {
    pub(crate) fn new(total: usize) -> Self {
        LoopTally {
            results: Vec::with_capacity(total),
            notify: Vec::new(),
            any_changed: false,
            any_failed: false,
            any_ignored: false,
            all_skipped: true,
            unreachable: false,
        }
    }

    /// Count one item's outcome and keep its registered result; true when
    /// the loop must stop (the host became unreachable).
    pub(crate) fn add(&mut self, o: &ItemOutcome, registered: Value) -> bool {
        for n in &o.notify {
            if !self.notify.contains(n) {
                self.notify.push(n.clone());
            }
        }
        self.any_changed |= o.status == Status::Changed || o.also_changed;
        self.any_failed |= o.status == Status::Failed;
        self.any_ignored |= o.status == Status::Ignored;
        self.unreachable |= o.status == Status::Unreachable;
        self.all_skipped &= o.status == Status::Skipped;
        self.results.push(registered);
        self.unreachable
    }

    pub(crate) fn into_results(self) -> Value {
        Value::Array(self.results)
    }

    /// The task's outcome once the loop is over; `cut_short` says why not
    /// every item ran.
    pub(crate) fn finish(self, cut_short: Option<String>) -> ItemOutcome {
        let status = if self.unreachable {
            Status::Unreachable
        } else if self.any_failed || cut_short.is_some() {
            Status::Failed
        } else if self.any_ignored {
            Status::Ignored
        } else if self.all_skipped {
            Status::Skipped
        } else if self.any_changed {
            Status::Changed
        } else {
            Status::Ok
        };
        let msg = if self.any_failed || self.any_ignored {
            "One or more items failed"
        } else if cut_short.is_some() {
            "Not every item ran"
        } else {
            "All items completed"
        };
        let mut agg = ItemOutcome::new(status);
        agg.also_changed = self.any_changed;
        agg.notify = self.notify;
        agg.result
            .insert("results".into(), Value::Array(self.results));
        agg.result.insert("msg".into(), Value::from(msg));
        agg.msg = cut_short;
        agg
    }
}

/// The variables item `idx` of `items` adds: the loop variable, the index
/// variable, and with `extended` Ansible's `ansible_loop`.
pub(crate) fn item_vars(lc: &LoopControl, items: &[Value], idx: usize) -> Map<String, Value> {
    let mut extra = Map::new();
    extra.insert(lc.loop_var.clone(), items[idx].clone());
    if let Some(iv) = &lc.index_var {
        extra.insert(iv.clone(), Value::from(idx));
    }
    if lc.extended {
        extra.insert(
            "ansible_loop".into(),
            Value::Object(extended(lc, items, idx)),
        );
    }
    extra
}

/// `ansible_loop` of item `idx`: `previtem`/`nextitem` only where there is
/// one, `allitems` unless `extended_allitems: false`, as in Ansible.
fn extended(lc: &LoopControl, items: &[Value], idx: usize) -> Map<String, Value> {
    let total = items.len();
    let mut l = Map::new();
    if lc.extended_allitems {
        l.insert("allitems".into(), Value::Array(items.to_vec()));
    }
    l.insert("index".into(), Value::from(idx + 1));
    l.insert("index0".into(), Value::from(idx));
    l.insert("first".into(), Value::Bool(idx == 0));
    l.insert("last".into(), Value::Bool(idx + 1 == total));
    l.insert("length".into(), Value::from(total));
    l.insert("revindex".into(), Value::from(total - idx));
    l.insert("revindex0".into(), Value::from(total - idx - 1));
    if idx > 0 {
        l.insert("previtem".into(), items[idx - 1].clone());
    }
    if idx + 1 < total {
        l.insert("nextitem".into(), items[idx + 1].clone());
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extended_fields_as_ansible_sets_them() {
        let lc = LoopControl {
            extended: true,
            index_var: Some("i".into()),
            ..LoopControl::default()
        };
        let items = vec![json!("a"), json!("b"), json!("c")];
        let v = item_vars(&lc, &items, 0);
        assert_eq!(v["item"], "a");
        assert_eq!(v["i"], 0);
        let l = &v["ansible_loop"];
        assert_eq!(l["revindex"], 3);
        assert_eq!(l["revindex0"], 2);
        assert_eq!(l["nextitem"], "b");
        assert!(l.get("previtem").is_none());
        assert_eq!(l["allitems"], json!(["a", "b", "c"]));
        let l = &item_vars(&lc, &items, 2)["ansible_loop"];
        assert_eq!(
            (l["last"].clone(), l["previtem"].clone()),
            (json!(true), json!("b"))
        );
        assert!(l.get("nextitem").is_none());
        let plain = item_vars(&LoopControl::default(), &items, 1);
        assert!(plain.get("ansible_loop").is_none());
        let no_all = LoopControl {
            extended: true,
            extended_allitems: false,
            ..LoopControl::default()
        };
        assert!(item_vars(&no_all, &items, 1)["ansible_loop"]
            .get("allitems")
            .is_none());
    }
}
