//! Walking task lists. `linear`: every host finishes a task before any host
//! starts the next (a barrier per task). `free`: each host walks the whole
//! list on its own worker. Blocks give per-host rescue/always; includes are
//! loaded when reached; `meta` actions steer the play; tags filter tasks.

use std::sync::atomic::Ordering;

use rayon::prelude::*;
use serde_json::Value;

use crate::actions::{self, MetaAction};
use crate::executor::task::template_message;
use crate::executor::PlayRunner;
use crate::output::{Event, HostResult, Status};
use crate::playbook::{self, Strategy, Task, TaskKind};
use crate::template::TemplateError;

impl PlayRunner<'_> {
    /// Run `tasks` on the hosts of `batch` that are still active.
    pub fn run_list(&self, tasks: &[Task], batch: &[usize]) {
        match self.play.strategy {
            Strategy::Linear => self.run_list_linear(tasks, batch),
            Strategy::Free => self.pool.install(|| {
                batch
                    .par_iter()
                    .for_each(|&i| self.run_list_linear(tasks, &[i]));
            }),
        }
    }

    pub fn active(&self, batch: &[usize]) -> Vec<usize> {
        batch
            .iter()
            .copied()
            .filter(|&i| self.hosts[i].lock().map(|h| h.active()).unwrap_or(false))
            .collect()
    }

    fn run_list_linear(&self, tasks: &[Task], batch: &[usize]) {
        for task in tasks {
            if self.ended() {
                return;
            }
            let active = self.active(batch);
            if active.is_empty() {
                return;
            }
            let down_before = self.down_hosts(batch);
            match &task.kind {
                TaskKind::Block { block, .. } if task.role_include => {
                    self.run_role_include(task, block, &active);
                }
                TaskKind::Block {
                    block,
                    rescue,
                    always,
                } => self.run_role_or_block(task, [block, rescue, always], &active),
                TaskKind::IncludeTasks { file } => {
                    if self.tags_match(task) {
                        self.run_include(task, file, &active);
                    }
                }
                TaskKind::Action { action, args }
                    if task.role_include && action == "include_role" =>
                {
                    self.run_dynamic_role(task, args, &active);
                }
                TaskKind::Action { action, args } if actions::short_name(action) == "meta" => {
                    self.run_meta(task, args, &active, batch);
                }
                TaskKind::Action { .. } => {
                    if self.tags_match(task) {
                        self.run_task(task, &active, false);
                    }
                }
            }
            self.apply_failure_limits(task, batch, &down_before);
        }
    }

    /// `block`, then `rescue` for the hosts that failed in it, then
    /// `always` for every host that entered, failed or not.
    fn run_block(&self, block: &[Task], rescue: &[Task], always: &[Task], entered: &[usize]) {
        self.run_list_linear(block, entered);
        let failed = self.failed_hosts(entered);
        if !rescue.is_empty() && !failed.is_empty() {
            for &i in &failed {
                let swept = self.hosts[i].lock().map(|h| h.swept).unwrap_or(false);
                if !swept {
                    self.count_rescued(i);
                }
            }
            self.set_failed(&failed, false);
            self.run_list_linear(rescue, &failed);
        }
        if !always.is_empty() {
            // Hosts still failed run `always` too, and stay failed after it.
            let still_failed = self.failed_hosts(entered);
            self.set_failed(&still_failed, false);
            self.run_list_linear(always, entered);
            self.set_failed(&still_failed, true);
        }
    }

    /// A block; a run-once role's block only on the hosts that have not
    /// completed that role yet, marking it complete afterwards on those
    /// still running where one of its tasks ran (Ansible's `role_complete`).
    fn run_role_or_block(
        &self,
        task: &Task,
        [block, rescue, always]: [&Vec<Task>; 3],
        active: &[usize],
    ) {
        let Some(key) = task.role.as_ref().and_then(|r| r.once.as_ref()) else {
            self.run_block(block, rescue, always, active);
            return;
        };
        let entered: Vec<usize> = active
            .iter()
            .copied()
            .filter(|&i| {
                self.hosts[i]
                    .lock()
                    .map(|h| !h.roles_done.contains(key))
                    .unwrap_or(false)
            })
            .collect();
        if entered.is_empty() {
            return;
        }
        self.run_block(block, rescue, always, &entered);
        for i in self.active(&entered) {
            if let Ok(mut h) = self.hosts[i].lock() {
                if h.roles_ran.contains(key) {
                    h.roles_done.insert(key.clone());
                }
            }
        }
    }

    /// The hosts of `among` that failed (and are still reachable).
    fn failed_hosts(&self, among: &[usize]) -> Vec<usize> {
        among
            .iter()
            .copied()
            .filter(|&i| {
                self.hosts[i]
                    .lock()
                    .map(|h| h.failed && !h.unreachable)
                    .unwrap_or(false)
            })
            .collect()
    }

    /// The hosts of `batch` that are failed or unreachable.
    fn down_hosts(&self, batch: &[usize]) -> Vec<usize> {
        batch
            .iter()
            .copied()
            .filter(|&i| {
                self.hosts[i]
                    .lock()
                    .map(|h| h.failed || h.unreachable)
                    .unwrap_or(false)
            })
            .collect()
    }

    fn set_failed(&self, hosts: &[usize], failed: bool) {
        for &i in hosts {
            if let Ok(mut h) = self.hosts[i].lock() {
                h.failed = failed;
                if !failed {
                    h.swept = false;
                }
            }
        }
    }

    /// `include_tasks`: render the file name per host, load each distinct
    /// file once, and run it on the hosts that asked for it.
    fn run_include(&self, task: &Task, file: &str, active: &[usize]) {
        let mut by_file: indexmap::IndexMap<String, Vec<usize>> = indexmap::IndexMap::new();
        for &i in active {
            let ctx = self.task_context(i, task, &serde_json::Map::new());
            match self.when_holds(task, &ctx) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    self.fail_host(i, task, &template_message(task, "when", &e));
                    continue;
                }
            }
            match self.project.templar.render_str("include_tasks", file, &ctx) {
                Ok(f) => by_file.entry(f).or_default().push(i),
                Err(e) => self.fail_host(i, task, &template_message(task, "include_tasks", &e)),
            }
        }
        for (file, hosts) in by_file {
            let base = task
                .span
                .path
                .parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_else(|| self.playbook.dir.clone());
            let path = [base.join(&file), self.playbook.dir.join(&file)]
                .into_iter()
                .find(|p| p.exists())
                .unwrap_or_else(|| base.join(&file));
            match playbook::load_task_file_with(&path, &self.project.modules) {
                Ok(mut tasks) => {
                    crate::executor::roles::inherit_role(&mut tasks, task);
                    // Keywords on include_tasks apply to the included tasks.
                    for t in &mut tasks {
                        for (k, v) in &task.vars {
                            t.vars.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                        if t.become_.is_none() && t.become_expr.is_none() {
                            t.become_ = task.become_;
                            t.become_expr = task.become_expr.clone();
                        }
                        if t.become_user.is_none() {
                            t.become_user = task.become_user.clone();
                        }
                    }
                    self.run_list_linear(&tasks, &hosts);
                }
                Err(diags) => {
                    let msg = diags
                        .iter()
                        .map(std::string::ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ");
                    for i in hosts {
                        self.fail_host(i, task, &format!("include_tasks: {msg}"));
                    }
                }
            }
        }
    }

    fn run_meta(&self, task: &Task, args: &Value, active: &[usize], batch: &[usize]) {
        let Some(meta) = actions::meta_argument(args).and_then(MetaAction::parse) else {
            return;
        };
        match meta {
            MetaAction::FlushHandlers => self.flush_handlers(batch),
            MetaAction::Noop => {}
            MetaAction::EndPlay => self.play_ended.store(true, Ordering::SeqCst),
            MetaAction::EndHost => {
                for &i in active {
                    let ctx = self.task_context(i, task, &serde_json::Map::new());
                    match self.when_holds(task, &ctx) {
                        Ok(true) => {
                            if let Ok(mut h) = self.hosts[i].lock() {
                                h.ended = true;
                            }
                        }
                        Ok(false) => {}
                        Err(e) => self.fail_host(i, task, &template_message(task, "when", &e)),
                    }
                }
            }
            MetaAction::ClearHostErrors => {
                for &i in batch {
                    if let Ok(mut h) = self.hosts[i].lock() {
                        h.failed = false;
                    }
                }
            }
            MetaAction::ResetConnection => self.reset_connections(active),
            MetaAction::RefreshInventory => {}
            MetaAction::EndBatch => {
                // Ansible evaluates `when` per host; one host for which it
                // holds ends the batch for all.
                let mut end = false;
                for &i in active {
                    let ctx = self.task_context(i, task, &serde_json::Map::new());
                    match self.when_holds(task, &ctx) {
                        Ok(true) => end = true,
                        Ok(false) => self.meta_skipped(i, task),
                        Err(e) => self.fail_host(i, task, &template_message(task, "when", &e)),
                    }
                }
                if end {
                    self.batch_ended.store(true, Ordering::SeqCst);
                }
            }
            MetaAction::EndRole => {
                for &i in active {
                    self.fail_host(i, task, "Cannot execute 'end_role' from outside of a role");
                }
            }
        }
    }

    /// `meta: reset_connection`: drop the hosts' open sessions (whatever
    /// user or port they were opened with); the next task that needs one
    /// connects again with the variables then in force.
    fn reset_connections(&self, active: &[usize]) {
        if let Ok(mut table) = self.run.connections.lock() {
            for &i in active {
                table.retain(|(host, _), _| *host != self.names[i]);
            }
        }
    }

    /// Whether every `when` of a control task (include, meta) holds; a
    /// condition that can't be evaluated (an undefined variable) fails the
    /// host (see [`template_message`]), as in Ansible.
    pub(crate) fn when_holds(
        &self,
        task: &Task,
        ctx: &minijinja::Value,
    ) -> Result<bool, TemplateError> {
        for c in &task.when {
            if !self.project.templar.eval_condition("when", c, ctx)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A meta task whose `when` is false for host `i`: reported as skipped,
    /// not counted in the recap (as ansible-playbook does).
    fn meta_skipped(&self, i: usize, task: &Task) {
        self.sink.send(Event::HostResult(HostResult {
            host: self.names[i].clone(),
            task: task.display_name(),
            status: Status::Skipped,
            changed: false,
            duration_ms: 0,
            msg: None,
            item: None,
            delegated_to: None,
            diffs: Vec::new(),
            output: None,
            changes: Vec::new(),
            censored: false,
            result: None,
        }));
    }

    /// Mark host `i` failed for `task` with a message and report it.
    pub fn fail_host(&self, i: usize, task: &Task, msg: &str) {
        if let Ok(mut h) = self.hosts[i].lock() {
            h.failed = true;
        }
        self.count(i, Status::Failed);
        self.sink.send(Event::HostResult(HostResult {
            host: self.names[i].clone(),
            task: task.display_name(),
            status: Status::Failed,
            changed: false,
            duration_ms: 0,
            msg: Some(msg.to_string()),
            item: None,
            delegated_to: None,
            diffs: Vec::new(),
            output: None,
            changes: Vec::new(),
            censored: false,
            result: None,
        }));
    }

    /// Whether `--tags`/`--skip-tags` let this task run. `always` runs
    /// unless skipped by name; `never` runs only when asked for by name.
    pub fn tags_match(&self, task: &Task) -> bool {
        let mut tags: Vec<&str> = task.tags.iter().map(String::as_str).collect();
        tags.extend(self.play.tags.iter().map(String::as_str));
        let has = |t: &str| tags.contains(&t);
        let skip = &self.opts.skip_tags;
        if skip.iter().any(|s| has(s))
            || (skip.iter().any(|s| s == "tagged") && !tags.is_empty())
            || (skip.iter().any(|s| s == "untagged") && tags.is_empty())
        {
            return false;
        }
        let wanted = &self.opts.tags;
        if wanted.is_empty() || wanted.iter().any(|w| w == "all") {
            return !has("never") || wanted.iter().any(|w| tags.contains(&w.as_str()));
        }
        has("always")
            || wanted.iter().any(|w| has(w))
            || (wanted.iter().any(|w| w == "tagged") && !tags.is_empty())
            || (wanted.iter().any(|w| w == "untagged") && tags.is_empty())
    }

    /// `any_errors_fatal` and `max_fail_percentage`, checked after each task.
    ///
    /// `any_errors_fatal` (the task's, a block's or role's around it, else
    /// the play's; a `run_once` task counts as one too): when this task
    /// failed a host or left it unreachable, every other host still running
    /// fails too, as Ansible's linear strategy marks them. A host inside a
    /// block with a `rescue` then runs the rescue; the others stop, and so
    /// the play (and the run) ends when no host is left.
    fn apply_failure_limits(&self, task: &Task, batch: &[usize], down_before: &[usize]) {
        let down = self.down_hosts(batch);
        let failed = down.len();
        if failed == 0 {
            return;
        }
        let fatal = (task.any_errors_fatal.unwrap_or(self.play.any_errors_fatal) || task.run_once)
            && down.iter().any(|i| !down_before.contains(i));
        if fatal {
            for &i in batch {
                if let Ok(mut h) = self.hosts[i].lock() {
                    if h.active() {
                        h.failed = true;
                        h.swept = true;
                    }
                }
            }
        }
        let abort = self
            .play
            .max_fail_percentage
            .is_some_and(|pct| (failed as f64) * 100.0 / (batch.len() as f64) > pct);
        if abort {
            if !self.ended() {
                self.sink.send(Event::Warning {
                    message: format!(
                        "{failed} of {} hosts failed; stopping play `{}` (max_fail_percentage)",
                        batch.len(),
                        self.play_name()
                    ),
                });
            }
            self.play_ended.store(true, Ordering::SeqCst);
            for &i in batch {
                if let Ok(mut h) = self.hosts[i].lock() {
                    if !h.unreachable {
                        h.failed = true;
                    }
                }
            }
        }
    }
}
