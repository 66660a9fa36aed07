//! One task on one host: loop items, `when`, `retries`/`until`, the action
//! itself (a module's plan/apply through the host's connection, or an engine
//! action), then `changed_when`/`failed_when`/`ignore_errors`, `register`
//! and `notify`.

use std::time::{Duration, Instant};

use herdsman_modules::shell_quote::is_env_name;
use herdsman_modules::{DynModule, HostError, ModuleError, Registry};
use rayon::prelude::*;
use serde_json::{Map, Value};

use crate::actions::{self, Action, EngineAction};
use crate::connection::task_host::{Become, TaskHost};
use crate::executor::inputs::{self, InputContext};
use crate::executor::{PlayRunner, OMIT};
use crate::output::{Event, HostResult, Status};
use crate::playbook::{self, Task, TaskKind};
use crate::template;

/// What one run of an action (one loop item) came to.
#[derive(Debug, Clone)]
pub struct ItemOutcome {
    pub status: Status,
    pub result: Map<String, Value>,
    pub msg: Option<String>,
    pub diffs: Vec<herdsman_modules::FileDiff>,
    pub changes: Vec<String>,
    pub output: Option<Value>,
    pub delegated_to: Option<String>,
    /// The handlers this run notifies if it changed something (the task's
    /// `notify`, rendered).
    pub notify: Vec<String>,
    /// A template failed (an undefined variable, a bad filter): as in
    /// Ansible, a loop stops at this item and the task fails as a whole.
    pub aborts_loop: bool,
    /// The action changed the host before the task failed (a
    /// `changed_when` that could not be evaluated, an item of a failed
    /// loop): when the failure is ignored, the change is counted too, as
    /// Ansible counts it.
    pub also_changed: bool,
}

impl ItemOutcome {
    pub(crate) fn new(status: Status) -> Self {
        ItemOutcome {
            status,
            result: Map::new(),
            msg: None,
            diffs: Vec::new(),
            changes: Vec::new(),
            output: None,
            delegated_to: None,
            notify: Vec::new(),
            aborts_loop: false,
            also_changed: false,
        }
    }
    pub(crate) fn failed(msg: impl Into<String>) -> Self {
        let mut o = ItemOutcome::new(Status::Failed);
        o.msg = Some(msg.into());
        o
    }
    /// A task field that failed to render: the message names the field,
    /// what is wrong (the undefined variable), the task and where it is.
    pub fn template_failed(task: &Task, field: &str, e: &template::TemplateError) -> Self {
        let mut o = ItemOutcome::failed(template_message(task, field, e));
        o.aborts_loop = true;
        o
    }
    fn is_failed(&self) -> bool {
        matches!(self.status, Status::Failed | Status::Unreachable)
    }
    /// The value `register:` stores, with Ansible's status keys.
    fn registered(&self) -> Value {
        let mut m = self.result.clone();
        m.insert(
            "changed".into(),
            Value::Bool(self.status == Status::Changed || self.also_changed),
        );
        m.insert(
            "failed".into(),
            Value::Bool(matches!(self.status, Status::Failed | Status::Ignored)),
        );
        if self.status == Status::Skipped {
            m.insert("skipped".into(), Value::Bool(true));
        }
        if self.status == Status::Unreachable {
            m.insert("unreachable".into(), Value::Bool(true));
        }
        if let Some(msg) = &self.msg {
            m.entry("msg").or_insert_with(|| Value::from(msg.as_str()));
        }
        Value::Object(m)
    }
}

/// What `debug: var=x` prints for an undefined `x`, as Ansible does.
const NOT_DEFINED: &str = "VARIABLE IS NOT DEFINED!";

const NO_LOG_MSG: &str =
    "the output has been hidden due to the fact that 'no_log: true' was specified for this result";

impl PlayRunner<'_> {
    /// Run `task` on `hosts` in parallel (the linear barrier is the return).
    pub fn run_task(&self, task: &Task, hosts: &[usize], handler: bool) {
        let name = self.task_name(task, hosts[0]);
        let kind = if handler { "HANDLER" } else { "TASK" };
        let on = (self.play.strategy == crate::playbook::Strategy::Free).then_some(hosts[0]);
        if !self.take_step(&format!("{kind}: {name}"), on) {
            return;
        }
        self.sink.send(Event::TaskStart {
            name: name.clone(),
            location: format!("{}:{}", task.span.path.display(), task.span.line),
            hosts: hosts.iter().map(|&i| self.names[i].clone()).collect(),
            handler,
        });
        let runs: &[usize] = if task.run_once || bypasses_host_loop(&self.project.modules, task) {
            &hosts[..1]
        } else {
            hosts
        };
        // `throttle`: the hosts go in groups of that size, one group after
        // the other.
        let group = if engine_action(&self.project.modules, task)
            .is_some_and(EngineAction::runs_in_host_order)
        {
            1
        } else {
            self.throttle(task, hosts[0]).unwrap_or(runs.len()).max(1)
        };
        for chunk in runs.chunks(group) {
            self.pool.install(|| {
                chunk
                    .par_iter()
                    .for_each(|&i| self.run_on_host(task, i, &name, hosts));
            });
        }
    }

    /// `become_method`, `become_flags` and `become_exe`: the host's
    /// `ansible_become_*` variable, else the task's keyword, else the
    /// play's (variables beat keywords, as in Ansible).
    fn become_how(
        &self,
        task: &Task,
        vars: &Map<String, Value>,
        ctx: &minijinja::Value,
    ) -> Result<crate::connection::task_host::BecomeHow, Box<ItemOutcome>> {
        use crate::connection::task_host::{BecomeHow, BecomeMethod};
        let templar = &self.project.templar;
        let pick = |own: &Option<String>, play: &Option<String>, var: &str| {
            vars.get(var)
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| own.clone())
                .or_else(|| play.clone())
        };
        let render = |what: &str, text: Option<String>| match text {
            Some(t) => templar
                .render_str(what, &t, ctx)
                .map(|s| Some(s).filter(|s| s != OMIT))
                .map_err(|e| Box::new(ItemOutcome::template_failed(task, what, &e))),
            None => Ok(None),
        };
        let method = render(
            "become_method",
            pick(
                &task.become_method,
                &self.play.become_method,
                "ansible_become_method",
            ),
        )?;
        let flags = render(
            "become_flags",
            pick(
                &task.become_flags,
                &self.play.become_flags,
                "ansible_become_flags",
            ),
        )?;
        let method = match method.as_deref().map(str::trim) {
            None | Some("sudo") => BecomeMethod::Sudo,
            Some("su") => BecomeMethod::Su,
            Some(_) => {
                return Err(Box::new(ItemOutcome::failed(
                    "unsupported become_method: herd has sudo and su",
                )))
            }
        };
        let exe = render(
            "become_exe",
            pick(
                &task.become_exe,
                &self.play.become_exe,
                "ansible_become_exe",
            ),
        )?
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty());
        Ok(BecomeHow { method, flags, exe })
    }

    /// Who a `setup`/`set_fact` task's facts belong to, and (for `setup`)
    /// the delegate to gather them from: with `delegate_to` and
    /// `delegate_facts`, the delegate; otherwise host `i`.
    #[allow(clippy::type_complexity)]
    fn facts_owner(
        &self,
        task: &Task,
        i: usize,
        ctx: &minijinja::Value,
    ) -> Result<(String, Option<String>), Box<ItemOutcome>> {
        let delegate = match &task.delegate_to {
            Some(d) => match self.project.templar.render_str("delegate_to", d, ctx) {
                Ok(d) => Some(d),
                Err(e) => {
                    return Err(Box::new(ItemOutcome::template_failed(
                        task,
                        "delegate_to",
                        &e,
                    )))
                }
            },
            None => None,
        };
        let owner = match (&delegate, task.delegate_facts) {
            (Some(d), true) => d.clone(),
            _ => self.names[i].clone(),
        };
        Ok((owner, delegate))
    }

    /// `throttle` rendered with the first host's variables (a template
    /// that does not render to a positive number means no limit).
    fn throttle(&self, task: &Task, first: usize) -> Option<usize> {
        let v = task.throttle.as_ref()?;
        let v = match v {
            Value::String(s) => {
                let ctx = self.task_context(first, task, &Map::new());
                let text = self.project.templar.render_str("throttle", s, &ctx).ok()?;
                Value::from(text.trim().parse::<u64>().ok()?)
            }
            other => other.clone(),
        };
        v.as_u64().filter(|n| *n > 0).map(|n| n as usize)
    }

    /// The task's name, rendered with the first host's variables.
    fn task_name(&self, task: &Task, first: usize) -> String {
        let name = task.display_name();
        if !template::is_template(&name) {
            return name;
        }
        let ctx = self.task_context(first, task, &Map::new());
        self.project
            .templar
            .render_str("name", &name, &ctx)
            .unwrap_or(name)
    }

    fn run_on_host(&self, task: &Task, i: usize, name: &str, all_hosts: &[usize]) {
        self.sink.host_started(&self.names[i]);
        let start = Instant::now();
        let ctx = self.task_context(i, task, &Map::new());
        let censor = self.no_log(task, &ctx);
        let outcome = match &task.loop_items {
            None => {
                let o = self.run_item(task, i, &ctx);
                self.report(task, i, name, &o, None, censor, start);
                o
            }
            Some(items) => self.run_loop(task, i, name, items, censor, start),
        };
        let status = outcome.status;
        self.sink.host_finished(&self.names[i], status);
        if let Some(key) = task.role.as_ref().and_then(|r| r.once.as_ref()) {
            if !matches!(status, Status::Skipped | Status::Unreachable) {
                if let Ok(mut h) = self.hosts[i].lock() {
                    h.roles_ran.insert(key.clone());
                }
            }
        }
        // register/notify apply to the host that ran and, for run_once, to
        // every host of the task, as in Ansible.
        let targets: Vec<usize> = if task.run_once {
            all_hosts.to_vec()
        } else {
            vec![i]
        };
        if let Some(reg) = &task.register {
            let value = outcome.registered();
            for &t in &targets {
                let mut m = Map::new();
                m.insert(reg.clone(), value.clone());
                self.run.set_facts(&self.names[t], m);
            }
        }
        if status == Status::Changed {
            for &t in &targets {
                if let Ok(mut h) = self.hosts[t].lock() {
                    for n in &outcome.notify {
                        h.notified.insert(n.clone());
                    }
                }
            }
        }
        if status == Status::Unreachable && task.ignore_unreachable {
            // Ansible counts it ok and ignored; the host stays in the play.
            self.count(i, Status::Ignored);
            return;
        }
        self.count(i, status);
        // Ansible counts the change of a failure it ignores, not of one
        // that fails the host.
        if outcome.also_changed && status == Status::Ignored {
            self.count_changed(i);
        }
        match status {
            Status::Failed => {
                if let Ok(mut h) = self.hosts[i].lock() {
                    h.failed = true;
                }
            }
            Status::Unreachable => {
                if let Ok(mut h) = self.hosts[i].lock() {
                    h.unreachable = true;
                }
            }
            _ => {}
        }
    }

    /// Whether `no_log` hides this task's results on this host. A
    /// `no_log` that cannot be evaluated hides them: a typo must not print
    /// what it was meant to hide.
    fn no_log(&self, task: &Task, ctx: &minijinja::Value) -> bool {
        match &task.no_log {
            None => false,
            Some(expr) => self
                .project
                .templar
                .eval_condition("no_log", expr, ctx)
                .unwrap_or(true),
        }
    }

    fn run_loop(
        &self,
        task: &Task,
        i: usize,
        name: &str,
        items: &Value,
        censor: bool,
        start: Instant,
    ) -> ItemOutcome {
        let ctx = self.task_context(i, task, &Map::new());
        let items = match self.loop_items(task, items, &ctx) {
            Ok(items) => items,
            Err(o) => {
                let o = self.ignoring_errors(task, &ctx, *o);
                self.report(task, i, name, &o, None, censor, start);
                return o;
            }
        };
        let lc = &task.loop_control;
        let total = items.len();
        if total == 0 {
            // Nothing to loop over: the task is skipped, and says so.
            let mut o = ItemOutcome::new(Status::Skipped);
            o.msg = Some("No items in the list".into());
            o.result
                .insert("skipped_reason".into(), Value::from("No items in the list"));
            o.result.insert("results".into(), Value::Array(Vec::new()));
            self.report(task, i, name, &o, None, censor, start);
            return o;
        }
        let mut tally = super::loops::LoopTally::new(total);
        let mut cut_short = None;
        // An item whose templates failed ends the loop; the task fails with it.
        let mut aborted: Option<ItemOutcome> = None;
        for (idx, item) in items.iter().cloned().enumerate() {
            // An interrupted run starts no further item, and the loop is
            // not reported as done when it is not.
            if let Some(signal) = herdsman_modules::cancel::interrupted().filter(|_| idx > 0) {
                cut_short = Some(HostError::Interrupted { signal }.to_string());
                break;
            }
            if idx > 0 {
                if let Some(p) = lc.pause {
                    // Cut short by an interrupt; the next item then stops
                    // at its first command.
                    let _ = herdsman_modules::cancel::sleep(bounded_secs(p));
                }
            }
            let extra = super::loops::item_vars(lc, &items, idx);
            let ctx = self.task_context(i, task, &extra);
            let (label, o) = match &lc.label {
                // Ansible's label for a hidden item; neither the item nor
                // its label is rendered for display.
                _ if censor => ("None".to_string(), self.run_item(task, i, &ctx)),
                Some(l) => match self
                    .project
                    .templar
                    .render_str("loop_control.label", l, &ctx)
                {
                    Ok(label) => (label, self.run_item(task, i, &ctx)),
                    // As in Ansible, the item fails and the loop goes on.
                    Err(e) => {
                        let mut o = ItemOutcome::template_failed(task, "loop_control.label", &e);
                        o.aborts_loop = false;
                        (l.clone(), self.ignoring_errors(task, &ctx, o))
                    }
                },
                None => (item_label(&item), self.run_item(task, i, &ctx)),
            };
            if o.aborts_loop {
                aborted = Some(o);
                break;
            }
            self.report(task, i, name, &o, Some(label), censor, Instant::now());
            let mut r = match o.registered() {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            r.insert(lc.loop_var.clone(), item);
            r.insert("ansible_loop_var".into(), Value::from(lc.loop_var.as_str()));
            if let Some(iv) = &lc.index_var {
                r.insert(iv.clone(), Value::from(idx));
                r.insert("ansible_index_var".into(), Value::from(iv.as_str()));
            }
            if tally.add(&o, Value::Object(r)) {
                break;
            }
        }
        if let Some(mut o) = aborted {
            self.report(task, i, name, &o, None, censor, Instant::now());
            o.result.insert("results".into(), tally.into_results());
            return o;
        }
        tally.finish(cut_short)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn report(
        &self,
        task: &Task,
        i: usize,
        name: &str,
        o: &ItemOutcome,
        item: Option<String>,
        censor: bool,
        start: Instant,
    ) {
        let show_diff = task.diff.unwrap_or(self.opts.diff);
        let registered = (!censor).then(|| o.registered());
        let (msg, diffs, output, changes) = if censor {
            (Some(NO_LOG_MSG.to_string()), Vec::new(), None, Vec::new())
        } else {
            (
                o.msg.clone(),
                if show_diff {
                    o.diffs.clone()
                } else {
                    Vec::new()
                },
                // Ad-hoc runs show the module's whole result, as `ansible`.
                o.output
                    .clone()
                    .or_else(|| crate::adhoc::active().then(|| registered.clone()).flatten()),
                o.changes.clone(),
            )
        };
        self.sink.send(Event::HostResult(HostResult {
            host: self.names[i].clone(),
            task: name.to_string(),
            status: o.status,
            changed: o.status == Status::Changed || o.also_changed,
            duration_ms: start.elapsed().as_millis() as u64,
            msg,
            item,
            delegated_to: o.delegated_to.clone(),
            diffs,
            output,
            changes,
            censored: censor,
            result: registered,
        }));
        if !censor {
            let ms = start.elapsed().as_millis() as u64;
            if let Some(b) = crate::jobs::backup::report(
                &self.project.modules,
                task,
                &self.names[i],
                name,
                &o.result,
                ms,
            ) {
                self.sink.send(Event::Backup(b));
            }
        }
    }

    /// One item: `when`, then the task's own fields, then the action with
    /// `retries`/`until`, then `changed_when`, `failed_when` and
    /// `ignore_errors`.
    pub(crate) fn run_item(&self, task: &Task, i: usize, ctx: &minijinja::Value) -> ItemOutcome {
        let o = self.run_item_unignored(task, i, ctx);
        self.ignoring_errors(task, ctx, o)
    }

    /// `ignore_errors` applied to a failed outcome. When `ignore_errors`
    /// itself can't be rendered, the task fails with that error, and is
    /// ignored: Ansible does the same (the field's text is not empty).
    pub(crate) fn ignoring_errors(
        &self,
        task: &Task,
        ctx: &minijinja::Value,
        mut o: ItemOutcome,
    ) -> ItemOutcome {
        let Some(ig) = &task.ignore_errors else {
            return o;
        };
        if o.status == Status::Failed {
            match self
                .project
                .templar
                .eval_condition("ignore_errors", ig, ctx)
            {
                Ok(true) => o.status = Status::Ignored,
                Ok(false) => {}
                Err(e) => {
                    let aborts = o.aborts_loop;
                    o = ItemOutcome::template_failed(task, "ignore_errors", &e);
                    o.aborts_loop = aborts;
                    o.status = Status::Ignored;
                }
            }
        }
        o
    }

    fn run_item_unignored(&self, task: &Task, i: usize, ctx: &minijinja::Value) -> ItemOutcome {
        let templar = &self.project.templar;
        for cond in &task.when {
            match templar.eval_condition("when", cond, ctx) {
                Ok(true) => {}
                Ok(false) => {
                    let mut o = ItemOutcome::new(Status::Skipped);
                    o.result.insert(
                        "skip_reason".into(),
                        Value::from("Conditional result was False"),
                    );
                    o.result
                        .insert("false_condition".into(), Value::from(cond.as_str()));
                    return o;
                }
                Err(e) => return ItemOutcome::template_failed(task, "when", &e),
            }
        }
        let notify = match self.task_fields(task, ctx) {
            Ok(notify) => notify,
            Err(o) => return *o,
        };
        let mut o = match &task.until {
            None => self.perform(task, i, ctx),
            Some(until) => self.perform_until(task, i, ctx, until),
        };
        o.notify = notify;
        if matches!(o.status, Status::Unreachable | Status::Skipped) || o.aborts_loop {
            return o;
        }
        if task.changed_when.is_some() || task.failed_when.is_some() {
            let ctx = self.with_registered(task, i, ctx, &o);
            // As in Ansible, `changed_when` judges a failed result too, and
            // `failed_when` then decides whether it failed.
            let mut changed = o.status == Status::Changed || o.also_changed;
            if let Some(conds) = &task.changed_when {
                match all_true(templar, "changed_when", conds, &ctx) {
                    Ok(c) => {
                        changed = c;
                        if o.is_failed() {
                            o.also_changed = c;
                        } else {
                            o.status = if c { Status::Changed } else { Status::Ok };
                        }
                    }
                    Err(e) => {
                        let mut f = ItemOutcome::template_failed(task, "changed_when", &e);
                        f.also_changed = o.status == Status::Changed;
                        // Ansible fails the item and goes on with the loop.
                        f.aborts_loop = false;
                        return f;
                    }
                }
            }
            if let Some(conds) = &task.failed_when {
                match any_true(templar, "failed_when", conds, &ctx) {
                    Ok(true) => {
                        o.status = Status::Failed;
                        o.also_changed = changed;
                        o.msg
                            .get_or_insert_with(|| "failed_when condition was met".into());
                    }
                    Ok(false) => {
                        if o.status == Status::Failed {
                            o.status = if changed { Status::Changed } else { Status::Ok };
                            o.also_changed = false;
                            o.msg = None;
                        }
                    }
                    Err(e) => {
                        let mut f = ItemOutcome::template_failed(task, "failed_when", &e);
                        f.also_changed = o.status == Status::Changed;
                        // Ansible fails the item and goes on with the loop.
                        f.aborts_loop = false;
                        return f;
                    }
                }
            }
        }
        o
    }

    /// The task's own fields, rendered before the action as Ansible does
    /// (an undefined variable in any of them fails the task without
    /// running it): `notify` (returned, rendered), `ignore_errors`,
    /// `environment` and `become_user`.
    fn task_fields(
        &self,
        task: &Task,
        ctx: &minijinja::Value,
    ) -> Result<Vec<String>, Box<ItemOutcome>> {
        let templar = &self.project.templar;
        let mut notify = Vec::with_capacity(task.notify.len());
        for n in &task.notify {
            match templar.render_str("notify", n, ctx) {
                Ok(n) => notify.push(n),
                Err(e) => return Err(Box::new(ItemOutcome::template_failed(task, "notify", &e))),
            }
        }
        if let Err(e) = self.environment_for(task, ctx) {
            return Err(Box::new(ItemOutcome::template_failed(
                task,
                "environment",
                &e,
            )));
        }
        if let Some(ig) = task
            .ignore_errors
            .as_ref()
            .filter(|ig| template::is_template(ig))
        {
            if let Err(e) = templar.eval_condition("ignore_errors", ig, ctx) {
                // Ignored all the same, as in Ansible (the field's text is
                // not empty).
                let mut o = ItemOutcome::template_failed(task, "ignore_errors", &e);
                o.status = Status::Ignored;
                return Err(Box::new(o));
            }
        }
        let become_user = task.become_user.as_ref().or(self.play.become_user.as_ref());
        if let Some(user) = become_user {
            if let Err(e) = templar.render_str("become_user", user, ctx) {
                return Err(Box::new(ItemOutcome::template_failed(
                    task,
                    "become_user",
                    &e,
                )));
            }
        }
        Ok(notify)
    }

    /// The context with this result registered under the task's `register`
    /// name, for `changed_when`/`failed_when`/`until`.
    fn with_registered(
        &self,
        task: &Task,
        i: usize,
        ctx: &minijinja::Value,
        o: &ItemOutcome,
    ) -> minijinja::Value {
        let mut extra = Map::new();
        if let Some(reg) = &task.register {
            extra.insert(reg.clone(), o.registered());
        }
        // The item's own variables (the loop variable, `index_var`,
        // `ansible_loop`) are only in `ctx`: a condition on a loop
        // result sees them, as in Ansible.
        minijinja::value::merge_maps([self.task_context(i, task, &extra), ctx.clone()])
    }

    fn perform_until(
        &self,
        task: &Task,
        i: usize,
        ctx: &minijinja::Value,
        until: &[String],
    ) -> ItemOutcome {
        let templar = &self.project.templar;
        let number = |field: &str,
                      v: &Option<Value>,
                      default: f64|
         -> Result<f64, template::TemplateError> {
            match v {
                Some(v) => {
                    let v = templar.render_value(field, v, ctx)?;
                    Ok(v.as_f64()
                        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                        .unwrap_or(default))
                }
                None => Ok(default),
            }
        };
        let retries = match number("retries", &task.retries, 3.0) {
            Ok(n) => n.clamp(1.0, 10_000.0) as u32,
            Err(e) => return ItemOutcome::template_failed(task, "retries", &e),
        };
        let delay = match number("delay", &task.delay, 5.0) {
            Ok(n) => n.clamp(0.0, 3600.0),
            Err(e) => return ItemOutcome::template_failed(task, "delay", &e),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut o = self.perform(task, i, ctx);
            o.result.insert("attempts".into(), Value::from(attempt));
            if o.status == Status::Unreachable || o.aborts_loop {
                return o;
            }
            let rctx = self.with_registered(task, i, ctx, &o);
            match all_true(templar, "until", until, &rctx) {
                Ok(true) => return o,
                Ok(false) if attempt >= retries => {
                    o.status = Status::Failed;
                    o.msg = Some(format!("retries exhausted after {attempt} attempts"));
                    return o;
                }
                Ok(false) => {
                    if let Err(c) = herdsman_modules::cancel::sleep(bounded_secs(delay)) {
                        return error_outcome(ModuleError::Host(c.into_error()));
                    }
                }
                Err(e) => return ItemOutcome::template_failed(task, "until", &e),
            }
        }
    }

    /// Run the action once, within the task's `timeout:` when it has one
    /// (as in Ansible, each loop item and each retry gets the whole time).
    /// A task that runs out of time fails with Ansible's message and
    /// `timedout.period`, whatever the module made of its stopped command.
    fn perform(&self, task: &Task, i: usize, ctx: &minijinja::Value) -> ItemOutcome {
        let seconds = match &task.timeout {
            None => 0,
            Some(v) => match self.project.templar.render_value("timeout", v, ctx) {
                Ok(v) => match v
                    .as_u64()
                    .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f.ceil() as u64))
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                {
                    Some(n) => n,
                    None => {
                        return ItemOutcome::failed("`timeout` must be a whole number of seconds")
                    }
                },
                Err(e) => return ItemOutcome::failed(format!("template error in `timeout`: {e}")),
            },
        };
        if seconds == 0 {
            return self.perform_once(task, i, ctx);
        }
        let deadline = herdsman_modules::cancel::TaskDeadline::start(seconds);
        let o = self.perform_once(task, i, ctx);
        if !deadline.expired() || o.status == Status::Unreachable {
            return o;
        }
        let mut timed_out = ItemOutcome::failed(HostError::TaskTimeout { seconds }.to_string());
        let mut period = Map::new();
        period.insert("period".into(), Value::from(seconds));
        timed_out
            .result
            .insert("timedout".into(), Value::Object(period));
        timed_out.delegated_to = o.delegated_to;
        timed_out
    }

    /// Render the arguments and run the action once.
    fn perform_once(&self, task: &Task, i: usize, ctx: &minijinja::Value) -> ItemOutcome {
        let TaskKind::Action { action, args } = &task.kind else {
            return ItemOutcome::failed("not an action");
        };
        let Some(act) = actions::lookup(&self.project.modules, action) else {
            return unimplemented_module(action);
        };
        let args = match self.render_args(task, action, args, ctx) {
            Ok(v) => strip_omitted(v),
            Err(o) => return *o,
        };
        match act {
            Action::Module(m) => self.run_module(m, args, task, i, ctx),
            Action::Engine(e) => {
                match self.async_spec(task, ctx) {
                    Ok(None) => {}
                    Ok(Some(_)) => return super::async_task::refused(e.name()),
                    Err(o) => return *o,
                }
                self.run_engine_action(e, args, task, i, ctx)
            }
        }
    }

    /// The action's arguments rendered, each under its own name so that an
    /// error says which argument it is in.
    fn render_args(
        &self,
        task: &Task,
        action: &str,
        args: &Value,
        ctx: &minijinja::Value,
    ) -> Result<Value, Box<ItemOutcome>> {
        let templar = &self.project.templar;
        let Value::Object(map) = args else {
            return templar
                .render_value(action, args, ctx)
                .map_err(|e| Box::new(ItemOutcome::template_failed(task, action, &e)));
        };
        let mut out = Map::new();
        for (k, v) in map {
            let field = format!("{action}.{k}");
            let key = if template::is_template(k) {
                templar
                    .render_str(&field, k, ctx)
                    .map_err(|e| Box::new(ItemOutcome::template_failed(task, &field, &e)))?
            } else {
                k.clone()
            };
            let value = templar
                .render_value(&field, v, ctx)
                .map_err(|e| Box::new(ItemOutcome::template_failed(task, &field, &e)))?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }

    fn run_engine_action(
        &self,
        e: EngineAction,
        args: Value,
        task: &Task,
        i: usize,
        ctx: &minijinja::Value,
    ) -> ItemOutcome {
        use herdsman_modules::module::parse_params;
        match e {
            EngineAction::Debug => self.run_debug(&args, task, ctx),
            EngineAction::SetFact => {
                let facts = actions::set_fact_values(&args);
                let owner = match self.facts_owner(task, i, ctx) {
                    Ok(o) => o,
                    Err(o) => return *o,
                };
                self.run.set_facts(&owner.0, facts.clone());
                let mut o = ItemOutcome::new(Status::Ok);
                o.result
                    .insert("ansible_facts".into(), Value::Object(facts));
                o
            }
            EngineAction::Assert => self.run_assert(&args, task, ctx),
            EngineAction::Fail => {
                let p = parse_params::<actions::FailParams>("fail", &args).ok();
                ItemOutcome::failed(
                    p.and_then(|p| p.msg)
                        .as_ref()
                        .map(value_text)
                        .unwrap_or_else(|| "Failed as requested from task".into()),
                )
            }
            EngineAction::Template => self.run_template(args, task, i, ctx),
            EngineAction::Setup => self.run_setup(&args, task, i, ctx),
            EngineAction::IncludeVars => self.run_include_vars(&args, task, i),
            EngineAction::AddHost => self.run_add_host(&args),
            EngineAction::GroupBy => self.run_group_by(&args, i),
            EngineAction::Meta => ItemOutcome::new(Status::Ok),
            EngineAction::ValidateArgumentSpec => match self.validate_argument_spec(&args, ctx) {
                Ok(msg) => {
                    let mut o = ItemOutcome::new(Status::Ok);
                    o.msg = Some(msg.to_string());
                    o
                }
                Err(e) => ItemOutcome::failed(e.to_string()),
            },
            EngineAction::IncludeTasks | EngineAction::ImportTasks => {
                ItemOutcome::failed("include_tasks cannot be used inside a loop here")
            }
        }
    }

    /// `debug`: `msg` or `var`, shown unless `verbosity` is above the run's.
    fn run_debug(&self, args: &Value, task: &Task, ctx: &minijinja::Value) -> ItemOutcome {
        use herdsman_modules::module::parse_params;
        let templar = &self.project.templar;
        let p = match parse_params::<actions::DebugParams>("debug", args) {
            Ok(p) => p,
            Err(e) => return ItemOutcome::failed(e.to_string()),
        };
        let mut o = ItemOutcome::new(Status::Ok);
        if p.verbosity > self.opts.verbosity {
            o.status = Status::Skipped;
            o.result.insert(
                "skipped_reason".into(),
                Value::from("verbosity threshold not met"),
            );
            return o;
        }
        let mut out = Map::new();
        if let Some(var) = p.var {
            // As in Ansible: an undefined variable (or one whose
            // template needs an undefined value) prints a marker
            // and is no failure; any other error is.
            let v = match templar.eval("debug.var", &var, ctx) {
                Ok(v) if v.is_undefined() => Value::from(NOT_DEFINED),
                Ok(v) => template::to_json(&v),
                Err(e) if e.is_undefined() => Value::from(NOT_DEFINED),
                Err(e) => return ItemOutcome::template_failed(task, "debug.var", &e),
            };
            out.insert(var, v);
        } else if args.get("msg").is_some_and(Value::is_null) {
            // A template that came out None (`lookup(..., errors=
            // 'ignore')`) prints as empty text, as in Ansible.
            out.insert("msg".into(), Value::from(""));
        } else {
            out.insert(
                "msg".into(),
                p.msg.unwrap_or_else(|| Value::from("Hello world!")),
            );
        }
        o.result = out.clone();
        o.output = Some(Value::Object(out));
        o
    }

    /// `assert`: every `that` must hold.
    fn run_assert(&self, args: &Value, task: &Task, ctx: &minijinja::Value) -> ItemOutcome {
        use herdsman_modules::module::parse_params;
        let templar = &self.project.templar;
        let p = match parse_params::<actions::AssertParams>("assert", args) {
            Ok(p) => p,
            Err(e) => return ItemOutcome::failed(e.to_string()),
        };
        for cond in p.that.into_vec() {
            match templar.eval_condition("assert", &cond, ctx) {
                Ok(true) => {}
                Ok(false) => {
                    let mut o = ItemOutcome::failed(
                        p.fail_msg
                            .as_ref()
                            .map(value_text)
                            .unwrap_or_else(|| "Assertion failed".into()),
                    );
                    o.result.insert("assertion".into(), Value::from(cond));
                    o.result.insert("evaluated_to".into(), Value::Bool(false));
                    return o;
                }
                Err(e) => return ItemOutcome::template_failed(task, "assert.that", &e),
            }
        }
        let mut o = ItemOutcome::new(Status::Ok);
        o.msg = Some(
            p.success_msg
                .as_ref()
                .map(value_text)
                .unwrap_or_else(|| "All assertions passed".into()),
        );
        o
    }

    /// `setup`: gather facts now (a delegate's when delegated).
    fn run_setup(
        &self,
        args: &Value,
        task: &Task,
        i: usize,
        ctx: &minijinja::Value,
    ) -> ItemOutcome {
        use herdsman_modules::module::parse_params;
        let p = match parse_params::<actions::SetupParams>("setup", args) {
            Ok(p) => p,
            Err(e) => return ItemOutcome::failed(e.to_string()),
        };
        let subset = p
            .gather_subset
            .map(super::super::actions::OneOrMany::into_vec)
            .unwrap_or_default();
        let (owner, source) = match self.facts_owner(task, i, ctx) {
            Ok(o) => o,
            Err(o) => return *o,
        };
        // Delegated: the delegate's facts (for this host, or for the
        // delegate with `delegate_facts`).
        let reach = match self.reach(Some(task), i, source.as_deref(), ctx) {
            Ok(r) => r,
            Err(e) => return ItemOutcome::template_failed(task, "connection variables", &e),
        };
        let name = source.clone().unwrap_or_else(|| self.names[i].clone());
        let gathered = self.gather_from(&name, &reach, &subset, p.fact_path.as_deref());
        match gathered {
            Ok(facts) => {
                let filter = p
                    .filter
                    .map(super::super::actions::OneOrMany::into_vec)
                    .unwrap_or_default();
                let facts = crate::executor::facts::filter_facts(facts, &filter);
                self.run.set_facts(&owner, facts.clone());
                // The result holds the facts by their `ansible_` names, as
                // setup returns them (`r.ansible_facts.ansible_distribution`);
                // the host's `ansible_facts` variable has them unprefixed.
                let returned: Map<String, Value> = facts
                    .iter()
                    .filter(|(k, _)| k.as_str() != "ansible_facts")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let mut o = ItemOutcome::new(Status::Ok);
                o.result
                    .insert("ansible_facts".into(), Value::Object(returned));
                o
            }
            Err(e) => {
                let mut o = ItemOutcome::new(e.status());
                o.msg = Some(e.to_string());
                o
            }
        }
    }

    /// `template`: render `src` on the controller, then hand the text to
    /// `copy` so writing, diff, backup and modes behave the same.
    fn run_template(
        &self,
        args: Value,
        task: &Task,
        i: usize,
        ctx: &minijinja::Value,
    ) -> ItemOutcome {
        use herdsman_modules::module::parse_params;
        let p = match parse_params::<actions::TemplateParams>("template", &args) {
            Ok(p) => p,
            Err(e) => return ItemOutcome::failed(e.to_string()),
        };
        let search = self.template_search(task);
        let Some(src) = playbook::find_in(&search, &p.src) else {
            return ItemOutcome::failed(format!("template source `{}` not found", p.src));
        };
        // Includes in the template look in the role's folders, then the
        // usual paths, and the template's own directory (Ansible's
        // template search path).
        let mut first = super::roles::role_dirs(task, "templates");
        if let Some(dir) = src.parent() {
            first.push(dir.to_path_buf());
        }
        // The variables Ansible's template action adds for the template
        // alone, over the task's own (`ansible_managed` is Ansible's
        // default string: its strftime/{file} forms come from ansible.cfg,
        // which sets nothing here).
        let template_ctx = minijinja::context! {
            ansible_managed => "Ansible managed",
            template_path => p.src.clone(),
            template_fullpath => src.display().to_string(),
            template_destpath => p.dest.clone(),
            ..ctx.clone()
        };
        let content = match self
            .project
            .templar
            .render_file_in(&src, &template_ctx, &first)
        {
            Ok(c) => c,
            Err(e) => {
                let mut o = ItemOutcome::failed(format!(
                    "{e} (task `{}` at {})",
                    task.display_name(),
                    task.span
                ));
                o.aborts_loop = true;
                return o;
            }
        };
        let mut copy = Map::new();
        copy.insert("dest".into(), Value::from(p.dest));
        copy.insert("content".into(), Value::from(content));
        for (k, v) in [
            ("owner", p.owner.map(Value::from)),
            ("group", p.group.map(Value::from)),
            ("mode", p.mode),
        ] {
            if let Some(v) = v {
                copy.insert(k.into(), v);
            }
        }
        if p.backup {
            copy.insert("backup".into(), Value::Bool(true));
        }
        if !p.force {
            copy.insert("force".into(), Value::Bool(false));
        }
        if let Some(v) = p.validate {
            copy.insert("validate".into(), Value::from(v));
        }
        match self.project.modules.find("copy") {
            Some(m) => self.run_module(m, Value::Object(copy), task, i, ctx),
            None => ItemOutcome::failed("the copy module is missing from this build"),
        }
    }

    fn run_module(
        &self,
        m: &'static dyn DynModule,
        mut params: Value,
        task: &Task,
        i: usize,
        ctx: &minijinja::Value,
    ) -> ItemOutcome {
        let templar = &self.project.templar;
        let async_spec = match self.async_spec(task, ctx) {
            Ok(s) => s,
            Err(o) => return *o,
        };
        let inputs = InputContext {
            playbook_dir: &self.playbook.dir,
            templar,
            vars: ctx,
            first: &super::roles::role_dirs(task, "files"),
        };
        if let Err(e) = inputs::resolve(m, &mut params, &inputs) {
            return ItemOutcome::failed(e.to_string());
        }
        if m.needs_inventory() {
            if let Value::Object(map) = &mut params {
                let view = serde_json::to_value(self.inventory_view(i)).unwrap_or(Value::Null);
                map.insert(herdsman_modules::inventory::PARAM.into(), view);
            }
        }
        let delegate = match &task.delegate_to {
            Some(d) => match templar.render_str("delegate_to", d, ctx) {
                Ok(d) => Some(d),
                Err(e) => return ItemOutcome::template_failed(task, "delegate_to", &e),
            },
            None => None,
        };
        let target = delegate.clone().unwrap_or_else(|| self.names[i].clone());
        let reach = match self.reach(Some(task), i, delegate.as_deref(), ctx) {
            Ok(r) => r,
            Err(e) => return ItemOutcome::template_failed(task, "connection variables", &e),
        };
        let target_vars = &reach.vars;
        let become_ = match self.become_for(task, target_vars, ctx) {
            Ok(b) => b,
            Err(e) => return ItemOutcome::template_failed(task, "become", &e),
        };
        let check = task
            .check_mode
            .unwrap_or(self.play.check_mode.unwrap_or(self.opts.check));
        let become_how = match self.become_how(task, target_vars, ctx) {
            Ok(how) => how,
            Err(o) => return *o,
        };
        if m.controller_process() {
            let sudo = (become_how.method == crate::connection::task_host::BecomeMethod::Sudo)
                .then_some(())
                .and(become_.as_ref());
            let mut cx = self.controller_context(task, target_vars, sudo, check);
            cx.delegated = delegate.is_some();
            if let (Value::Object(map), Ok(cx)) = (&mut params, serde_json::to_value(cx)) {
                map.insert(herdsman_modules::relay::PARAM.into(), cx);
            }
        }
        let (conn, connect_time) =
            self.connection_timed(&target, target_vars, reach.play_connection());
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                self.record_profile(task, connect_time, Default::default());
                let mut o = ItemOutcome::new(Status::Unreachable);
                o.msg = Some(e.to_string());
                return o;
            }
        };
        let Ok(mut guard) = conn.lock() else {
            return ItemOutcome::failed("connection lock poisoned");
        };
        let env = match self.environment_for(task, ctx) {
            Ok(env) => env,
            Err(e) => return ItemOutcome::template_failed(task, "environment", &e),
        };
        if let Some(bad) = env.iter().position(|(k, _)| !is_env_name(k)) {
            // Name the task and where it is, never the rendered name: it
            // came from a variable and may be anything.
            return ItemOutcome::failed(format!(
                "environment: variable #{} of task `{}` ({}:{}:{}) renders to an invalid environment variable name; names must match [A-Za-z_][A-Za-z0-9_]*",
                bad + 1,
                task.display_name(),
                task.span.path.display(),
                task.span.line,
                task.span.col,
            ));
        }
        let mut host = match TaskHost::new(&mut **guard, become_, &env) {
            Ok(h) => h,
            Err(e) => {
                return ItemOutcome::failed(format!(
                    "environment of task `{}` ({}:{}:{}): {e}",
                    task.display_name(),
                    task.span.path.display(),
                    task.span.line,
                    task.span.col,
                ))
            }
        };
        host.set_become_how(become_how);
        let mut o = match async_spec {
            None => module_outcome(m, &params, &mut host, check),
            Some(spec) => super::async_task::run(m, &params, &mut host, check, spec),
        };
        self.record_profile(task, connect_time, host.counters());
        // A module's `ansible_facts` become the host's facts, as in
        // Ansible (getent, and the *_facts modules).
        if o.status != Status::Failed {
            if let Some(Value::Object(facts)) = o.result.get("ansible_facts") {
                let owner = match (&delegate, task.delegate_facts) {
                    (Some(d), true) => d.clone(),
                    _ => self.names[i].clone(),
                };
                self.run.set_facts(&owner, facts.clone());
            }
        }
        o.delegated_to = delegate;
        o
    }

    /// What a module that runs a controller program is told (see
    /// [`herdsman_modules::relay`]): how to start the relay (this very
    /// binary), check mode, the sudo user when the task becomes, where
    /// relative controller paths are found, and the connection's user.
    fn controller_context(
        &self,
        task: &Task,
        vars: &Map<String, Value>,
        sudo: Option<&Become>,
        check: bool,
    ) -> herdsman_modules::relay::ControllerContext {
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "herd".into());
        let mut search: Vec<String> = super::roles::role_dirs(task, "files")
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        search.push(self.playbook.dir.join("files").display().to_string());
        search.push(self.playbook.dir.display().to_string());
        herdsman_modules::relay::ControllerContext {
            relay: vec![exe, herdsman_modules::relay::SUBCOMMAND.into()],
            check_mode: check,
            become_user: sudo.map(|b| b.user.clone()),
            search,
            remote_user: vars
                .get("ansible_user")
                .map(value_text)
                .filter(|u| !u.is_empty()),
            delegated: false,
        }
    }

    /// The inventory as a module that asked for it sees it: every group's
    /// hosts and every host's address, whatever the play selected.
    fn inventory_view(&self, i: usize) -> herdsman_modules::inventory::InventoryView {
        let inv = self.run.inventory();
        let addresses = inv
            .group_hosts("all")
            .into_iter()
            .map(|h| {
                let addr = inv
                    .host_vars(&h)
                    .get("ansible_host")
                    .map(value_text)
                    .filter(|a| !a.is_empty())
                    .unwrap_or_else(|| h.clone());
                (h, addr)
            })
            .collect();
        herdsman_modules::inventory::InventoryView {
            host: self.names[i].clone(),
            groups: inv.groups_map().into_iter().collect(),
            addresses,
        }
    }

    /// Who to become for this task. `vars` are the task's connection
    /// variables from [`PlayRunner::reach`], already rendered
    /// (`ansible_become_password: "{{ vault_sudo_password }}"` is the
    /// password by now), so they are not rendered again.
    fn become_for(
        &self,
        task: &Task,
        vars: &Map<String, Value>,
        ctx: &minijinja::Value,
    ) -> Result<Option<Become>, template::TemplateError> {
        let templar = &self.project.templar;
        let var_text = |name: &str| -> Result<Option<String>, template::TemplateError> {
            Ok(vars.get(name).map(value_text))
        };
        // As in Ansible, a variable (`ansible_become`, `ansible_become_user`,
        // from the inventory or the task's vars) beats the keyword, which
        // beats the command line.
        let on = match vars.get("ansible_become") {
            Some(v) => truthy_json(v),
            None => match self.templated_become(task, ctx)? {
                Some(on) => on,
                None => task
                    .become_
                    .or(self.play.become_)
                    .unwrap_or(self.opts.become_),
            },
        };
        if !on {
            return Ok(None);
        }
        let keyword_user = task
            .become_user
            .clone()
            .or_else(|| self.play.become_user.clone());
        let user = match (var_text("ansible_become_user")?, keyword_user) {
            (Some(user), _) => user,
            (None, Some(user)) => templar.render_str("become_user", &user, ctx)?,
            (None, None) => self
                .opts
                .become_user
                .clone()
                .unwrap_or_else(|| "root".into()),
        };
        let password = match var_text("ansible_become_password")? {
            Some(p) => Some(p),
            None => var_text("ansible_become_pass")?,
        }
        .or_else(|| self.opts.become_password.clone());
        if let Some(pw) = &password {
            // A templated password (`{{ vault_sudo_password }}`) is known
            // only now.
            crate::secrets::mark(pw);
        }
        Ok(Some(Become { user, password }))
    }

    /// A templated `become` (`become: "{{ use_sudo }}"`) on the task, or on
    /// the play when the task sets none: rendered for this host and read as
    /// Ansible reads a boolean.
    fn templated_become(
        &self,
        task: &Task,
        ctx: &minijinja::Value,
    ) -> Result<Option<bool>, template::TemplateError> {
        let expr = match (&task.become_expr, task.become_) {
            (Some(e), _) => e,
            (None, None) => match (&self.play.become_expr, self.play.become_) {
                (Some(e), _) => e,
                _ => return Ok(None),
            },
            (None, Some(_)) => return Ok(None),
        };
        let v = self
            .project
            .templar
            .render_value("become", &Value::from(expr.as_str()), ctx)?;
        Ok(Some(truthy_json(&v)))
    }

    fn environment_for(
        &self,
        task: &Task,
        ctx: &minijinja::Value,
    ) -> Result<Vec<(String, String)>, template::TemplateError> {
        let mut env = self.play.environment.clone();
        for (k, v) in &task.environment {
            env.insert(k.clone(), v.clone());
        }
        let rendered =
            self.project
                .templar
                .render_value("environment", &Value::Object(env), ctx)?;
        Ok(match rendered {
            Value::Object(m) => m.into_iter().map(|(k, v)| (k, value_text(&v))).collect(),
            _ => Vec::new(),
        })
    }
}

/// A user's pause or delay in seconds, as a sleep of at most an hour. NaN
/// (`delay: nan`) and negatives are no sleep: `Duration::from_secs_f64`
/// panics on them.
fn bounded_secs(s: f64) -> Duration {
    if s.is_nan() {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(s.clamp(0.0, 3600.0))
}

/// The message for a task field that failed to render: the field, what
/// is wrong (for an undefined value, which variable), the task and its
/// `file:line:col`. Never a variable's value.
pub fn template_message(task: &Task, field: &str, e: &template::TemplateError) -> String {
    let what = if e.is_undefined() {
        "undefined variable"
    } else {
        "template error"
    };
    let line = match e.line() {
        n if n > 1 => format!(" (line {n} of the value)"),
        _ => String::new(),
    };
    format!(
        "{what} in `{field}`{line}: {} (task `{}` at {})",
        e.reason(),
        task.display_name(),
        task.span
    )
}

/// Plan, then (outside check mode, when there is something to do) apply.
pub fn module_outcome(
    m: &dyn DynModule,
    params: &Value,
    host: &mut dyn herdsman_modules::Host,
    check: bool,
) -> ItemOutcome {
    if check && !m.check_mode() {
        let mut o = ItemOutcome::new(Status::Skipped);
        o.msg = Some(format!(
            "remote module ({}) does not support check mode",
            m.name()
        ));
        return o;
    }
    let plan = match m.plan(params, host) {
        Ok(p) => p,
        Err(e) => return error_outcome(e),
    };
    let mut o = ItemOutcome::new(Status::Ok);
    o.result = match (&plan.check_result, check) {
        (Some(r), true) => r.clone(),
        _ => plan.result.clone(),
    };
    if let Some(msg) = plan.skip {
        o.status = Status::Skipped;
        o.msg = Some(msg);
        return o;
    }
    if let (true, Some(msg)) = (check, plan.check_skip.clone()) {
        o.status = Status::Skipped;
        o.msg = Some(msg);
        o.result = Map::new();
        return o;
    }
    if plan.is_empty() {
        return o;
    }
    o.changes = plan.changes.clone();
    o.diffs = plan.diffs.clone();
    if check && plan.not_a_change {
        o.changes.clear();
        o.diffs.clear();
        return o;
    }
    if check {
        if plan.unknowable {
            o.status = Status::Skipped;
            o.msg = Some("skipped in check mode: the result can't be known without running".into());
        } else {
            o.status = Status::Changed;
        }
        return o;
    }
    match m.apply(params, plan, host) {
        Ok(out) => {
            for (k, v) in out.result {
                o.result.insert(k, v);
            }
            o.msg = out.msg;
            o.status = if out.failed {
                Status::Failed
            } else if out.changed {
                Status::Changed
            } else {
                Status::Ok
            };
            // A failed command still changed the host (Ansible's result
            // says `changed: true`): `failed_when` turning the failure off
            // leaves a change.
            o.also_changed = out.failed && out.changed;
            if out.failed {
                let stderr = o
                    .result
                    .get("stderr")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .trim();
                let base = o.msg.clone().unwrap_or_else(|| "module failed".into());
                o.msg = Some(if stderr.is_empty() {
                    base
                } else {
                    format!("{base}: {stderr}")
                });
            }
            o
        }
        Err(e) => {
            let mut failed = error_outcome(e);
            failed.changes = o.changes;
            failed
        }
    }
}

pub(crate) fn error_outcome(e: ModuleError) -> ItemOutcome {
    match e {
        ModuleError::Host(HostError::Unreachable(msg)) => {
            let mut o = ItemOutcome::new(Status::Unreachable);
            o.msg = Some(msg);
            o
        }
        ModuleError::Failed { msg, result } => {
            let mut o = ItemOutcome::failed(msg);
            o.result = result;
            o
        }
        other => ItemOutcome::failed(other.to_string()),
    }
}

/// Drop parameters that rendered to `omit`.
fn strip_omitted(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| v.as_str() != Some(OMIT))
                .map(|(k, v)| (k, strip_omitted(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.into_iter()
                .filter(|v| v.as_str() != Some(OMIT))
                .map(strip_omitted)
                .collect(),
        ),
        other => other,
    }
}

fn all_true(
    t: &template::Templar,
    what: &str,
    conds: &[String],
    ctx: &minijinja::Value,
) -> Result<bool, template::TemplateError> {
    for c in conds {
        if !t.eval_condition(what, c, ctx)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn any_true(
    t: &template::Templar,
    what: &str,
    conds: &[String],
    ctx: &minijinja::Value,
) -> Result<bool, template::TemplateError> {
    for c in conds {
        if t.eval_condition(what, c, ctx)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A value as text: strings as they are, everything else as JSON.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Ansible's loose booleans in variables: true, "yes", "true", "1", 1.
pub fn truthy_json(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => matches!(
            s.to_ascii_lowercase().as_str(),
            "yes" | "true" | "1" | "on" | "y"
        ),
        _ => false,
    }
}

/// `add_host` runs once for all the task's hosts, as in Ansible.
/// The engine action `task` runs, if it runs one.
fn engine_action(modules: &Registry, task: &Task) -> Option<EngineAction> {
    match &task.kind {
        TaskKind::Action { action, .. } => match actions::lookup(modules, action) {
            Some(Action::Engine(e)) => Some(e),
            _ => None,
        },
        _ => None,
    }
}

/// `add_host`, and a module that declares it (`pause`), run once for all
/// the task's hosts.
fn bypasses_host_loop(modules: &Registry, task: &Task) -> bool {
    match &task.kind {
        TaskKind::Action { action, .. } => match actions::lookup(modules, action) {
            Some(Action::Engine(e)) => e.bypasses_host_loop(),
            Some(Action::Module(m)) => m.bypasses_host_loop(),
            None => false,
        },
        _ => false,
    }
}

/// How a loop item is shown: strings as they are, others as compact JSON.
fn item_label(item: &Value) -> String {
    let s = value_text(item);
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(119).collect::<String>())
    } else {
        s
    }
}
/// The failure of a task whose module Ansible knows but herd does not
/// implement (the loader let it through; `validate` warned about it).
fn unimplemented_module(action: &str) -> ItemOutcome {
    let fqcn = crate::known_modules::resolve(action, &[])
        .filter(|f| *f != action)
        .map(|f| format!(" ({f})"))
        .unwrap_or_default();
    ItemOutcome::failed(format!(
        "module `{action}`{fqcn} is not implemented in herd"
    ))
}
