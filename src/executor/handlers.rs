//! Handlers: run once per flush point (end of pre_tasks, tasks, post_tasks,
//! and `meta: flush_handlers`), in the order they are defined, on the hosts
//! that notified them by name or by a `listen` topic. With
//! `--force-handlers` (or the play's `force_handlers`) hosts that failed
//! after notifying still run them.

use crate::executor::PlayRunner;

impl PlayRunner<'_> {
    pub fn flush_handlers(&self, batch: &[usize]) {
        let force = self.opts.force_handlers || self.play.force_handlers.unwrap_or(false);
        let dynamic = self
            .dynamic_handlers
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default();
        for handler in self.play.handlers.iter().chain(&dynamic) {
            if self.ended() {
                return;
            }
            let name = handler.name.clone().unwrap_or_default();
            let hosts: Vec<usize> = batch
                .iter()
                .copied()
                .filter(|&i| {
                    // `notify` is rendered per host; a templated handler
                    // name is matched rendered too.
                    let rendered = self.handler_name(handler, &name, i);
                    let Ok(mut h) = self.hosts[i].lock() else {
                        return false;
                    };
                    let in_role = crate::executor::roles::role_handler_name(handler, &rendered);
                    let notified = h.notified.contains(&name)
                        || h.notified.contains(&rendered)
                        || in_role.as_ref().is_some_and(|n| h.notified.contains(n))
                        || handler.listen.iter().any(|l| h.notified.contains(l));
                    if !notified {
                        return false;
                    }
                    let runs = !h.unreachable && (force || (!h.failed && !h.ended));
                    if runs {
                        h.notified.shift_remove(&name);
                        h.notified.shift_remove(&rendered);
                        if let Some(n) = &in_role {
                            h.notified.shift_remove(n);
                        }
                        for l in &handler.listen {
                            h.notified.shift_remove(l);
                        }
                        if force && h.failed {
                            // Forced handlers run on failed hosts; the
                            // host stays failed.
                            return true;
                        }
                    }
                    runs
                })
                .collect();
            if !hosts.is_empty() {
                self.run_task(handler, &hosts, true);
            }
        }
    }

    /// The handler's name as host `i` sees it (rendered when it is a
    /// template; as written when that fails, so it still matches itself).
    fn handler_name(&self, handler: &crate::playbook::Task, name: &str, i: usize) -> String {
        if !crate::template::is_template(name) {
            return name.to_string();
        }
        let ctx = self.task_context(i, handler, &serde_json::Map::new());
        self.project
            .templar
            .render_str("name", name, &ctx)
            .unwrap_or_else(|_| name.to_string())
    }
}
