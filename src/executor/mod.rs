//! The executor: runs loaded plays against inventory hosts on a pool of
//! `--forks` workers and reports every step as an `Event`.
//!
//! - `strategy.rs`: task lists, blocks, includes, tags, failure limits,
//!   linear (all hosts finish task N before N+1) and free strategies;
//! - `task.rs`: one task on one host: loops, conditions, retries, actions;
//! - `handlers.rs`: notified handlers at flush points;
//! - `facts.rs`: fact gathering in one round trip;
//! - `vars.rs`: lazy variables and `hostvars`.
//!
//! A failing host never stops the others unless `any_errors_fatal` or
//! `max_fail_percentage` says so. Hosts that failed or were unreachable in
//! one play are left out of the following plays, as in Ansible.

mod add_host;
mod async_task;
pub mod facts;
mod facts_more;
pub mod handlers;
mod include_vars;
pub mod inputs;
mod loops;
pub mod pool;
mod reach;
pub mod roles;
pub mod strategy;
pub mod task;
pub mod vars;

#[cfg(test)]
mod capability_tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use herdsman_modules::{Host, HostError};
use indexmap::{IndexMap, IndexSet};
use serde_json::{Map, Value};

use crate::app::Project;
use crate::connection::open::{self, ConnectSettings, PlayConnection};
use crate::inventory::pattern::PatternError;
use crate::output::{Event, EventSink, HostStats, Recap, TaskProfile};
use crate::playbook::{Play, Playbook, Serial};
use crate::template;

/// What the command line asked for, validated.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub forks: usize,
    pub check: bool,
    pub diff: bool,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub become_: bool,
    pub become_user: Option<String>,
    pub limit: Option<String>,
    pub extra_vars: Map<String, Value>,
    pub force_handlers: bool,
    pub verbosity: u8,
    /// `--profile`: collect round trips and times per task.
    pub profile: bool,
    /// `--step`: ask on the terminal before each task.
    pub step: bool,
    /// How to reach hosts (users, keys, host-key policy, timeouts).
    pub connect: ConnectSettings,
    /// `-K`: the become password for every host without `ansible_become_password`.
    pub become_password: Option<String>,
    /// ansible.cfg `gathering = explicit`: a play without `gather_facts:`
    /// does not gather (false, the default, gathers as Ansible does).
    pub gather_explicit: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start the worker pool: {0}")]
    Pool(#[from] rayon::ThreadPoolBuildError),
    #[error("bad host pattern: {0}")]
    Pattern(#[from] PatternError),
    /// `--limit` matched none of the inventory's hosts. ansible-playbook
    /// stops here with exit status 1 rather than running empty plays.
    #[error(
        "--limit `{limit}` leaves no hosts to target: it matches none of the inventory's hosts"
    )]
    LimitMatchesNothing { limit: String },
}

/// The placeholder `omit` renders to; parameters equal to it are dropped.
pub const OMIT: &str = "__omit_place_holder__";

type SharedHost = Arc<Mutex<Box<dyn Host>>>;

/// One session to a host: opened by the first task that needs it, while
/// other hosts open theirs in parallel (the table lock is held only to find
/// the slot). Only an open session is kept; a failed open is tried again
/// by the next task that needs it.
type ConnectionSlot = Arc<Mutex<Option<Result<SharedHost, String>>>>;

/// The connection table's key: the inventory host and the session's
/// parameters ([`open::session_key`]).
type SessionId = (String, String);

/// State that lives for the whole run, across plays.
pub struct RunState {
    /// Gathered facts, `set_fact` and registered results, per host.
    pub facts: Arc<RwLock<IndexMap<String, Map<String, Value>>>>,
    /// The open sessions: one per host and connection parameters, kept
    /// for the run (`meta: reset_connection` drops a host's).
    connections: Mutex<HashMap<SessionId, ConnectionSlot>>,
    /// ssh options already warned about, so each is said once per run.
    warned_options: Mutex<IndexSet<String>>,
    /// Hosts that failed or were unreachable: not run in later plays.
    pub dead: Mutex<IndexSet<String>>,
    pub stats: Mutex<IndexMap<String, HostStats>>,
    /// `--profile` totals per task (keyed by location and name), in the
    /// order tasks first ran.
    pub profile: Mutex<IndexMap<(String, String), TaskProfile>>,
    /// The inventory as `add_host` and `group_by` have changed it so far.
    pub inventory: Arc<RwLock<Arc<crate::inventory::Inventory>>>,
    /// Variables from `include_vars`, per host (above task vars, below
    /// `set_fact`, as in Ansible's precedence table).
    pub included_vars: Arc<RwLock<IndexMap<String, Map<String, Value>>>>,
}

impl RunState {
    fn new(inventory: &crate::inventory::Inventory) -> Self {
        RunState {
            inventory: Arc::new(RwLock::new(Arc::new(inventory.clone()))),
            included_vars: Arc::new(RwLock::new(IndexMap::new())),
            facts: Arc::new(RwLock::new(IndexMap::new())),
            connections: Mutex::new(HashMap::new()),
            warned_options: Mutex::new(IndexSet::new()),
            dead: Mutex::new(IndexSet::new()),
            stats: Mutex::new(IndexMap::new()),
            profile: Mutex::new(IndexMap::new()),
        }
    }

    pub fn facts_of(&self, host: &str) -> Map<String, Value> {
        self.facts
            .read()
            .map(|f| f.get(host).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// The inventory now (a snapshot: later changes don't reach it).
    pub fn inventory(&self) -> Arc<crate::inventory::Inventory> {
        match self.inventory.read() {
            Ok(inv) => inv.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Change the inventory with `f`, which says whether it changed anything.
    pub fn change_inventory(
        &self,
        f: impl FnOnce(&mut crate::inventory::Inventory) -> bool,
    ) -> bool {
        let Ok(mut inv) = self.inventory.write() else {
            return false;
        };
        f(Arc::make_mut(&mut inv))
    }

    pub fn included_vars_of(&self, host: &str) -> Map<String, Value> {
        self.included_vars
            .read()
            .map(|f| f.get(host).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    pub fn include_vars(&self, host: &str, values: Map<String, Value>) {
        if let Ok(mut f) = self.included_vars.write() {
            let entry = f.entry(host.to_string()).or_default();
            for (k, v) in values {
                entry.insert(k, v);
            }
        }
    }

    /// Facts of `host`: each name as a variable, and also under
    /// `ansible_facts`, where Ansible keeps a module's or set_fact's facts
    /// (`ansible_facts.services` after service_facts). A gathered set
    /// brings its own `ansible_facts`, merged over what is there. Names
    /// with the `ansible_` prefix stay out of it: the context tells a
    /// gathered `ansible_X` (below play vars) from a set one by whether
    /// `X` is in `ansible_facts`.
    pub fn set_facts(&self, host: &str, mut values: Map<String, Value>) {
        if let Ok(mut f) = self.facts.write() {
            let entry = f.entry(host.to_string()).or_default();
            let inner = entry
                .entry("ansible_facts")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = inner {
                match values.remove("ansible_facts") {
                    Some(Value::Object(gathered)) => inner.extend(gathered),
                    _ => {
                        for (k, v) in &values {
                            if !k.starts_with("ansible_") {
                                inner.insert(k.clone(), v.clone());
                            }
                        }
                    }
                }
            }
            for (k, v) in values {
                entry.insert(k, v);
            }
        }
    }
}

/// Run every playbook of the project; returns the recap.
/// Mark every password the run knows before anything is printed: the
/// inventory's and `-e`'s password variables, `-k`, `-K` and the key
/// passphrase. Templated ones are marked when they are rendered.
fn mark_secrets(
    secrets: &crate::secrets::Secrets,
    inventory: &crate::inventory::Inventory,
    opts: &RunOptions,
) {
    for host in inventory.hosts.keys() {
        secrets.mark_password_vars(&inventory.host_vars(host));
    }
    secrets.mark_password_vars(&opts.extra_vars);
    for pw in [
        &opts.become_password,
        &opts.connect.password,
        &opts.connect.key_passphrase,
    ]
    .into_iter()
    .flatten()
    {
        secrets.mark(pw);
    }
}

pub fn run(project: &Project, opts: &RunOptions, sink: &EventSink) -> Result<Recap, RunError> {
    let pool = pool::build(opts.forks)?;
    let state = RunState::new(&project.inventory);
    mark_secrets(crate::secrets::global(), &project.inventory, opts);
    let limit: Option<IndexSet<String>> = match &opts.limit {
        Some(p) => Some(project.inventory.select(p)?.into_iter().collect()),
        None => None,
    };
    if let (Some(pattern), Some(keep)) = (&opts.limit, &limit) {
        // As ansible-playbook: an empty inventory only warns, but a limit
        // that leaves none of its hosts (the implicit localhost is not
        // one) is an error before any play starts.
        let inv = &project.inventory.hosts;
        if !inv.is_empty() && !keep.iter().any(|h| inv.contains_key(h)) {
            return Err(RunError::LimitMatchesNothing {
                limit: pattern.clone(),
            });
        }
    }
    for playbook in &project.playbooks {
        sink.send(Event::PlaybookStart {
            path: playbook.path.display().to_string(),
            check: opts.check,
        });
        for play in &playbook.plays {
            if herdsman_modules::cancel::interrupted().is_some() {
                break;
            }
            let mut hosts = state.inventory().select(&play.hosts)?;
            if let Some(limit) = &limit {
                hosts.retain(|h| limit.contains(h));
            }
            if let Ok(dead) = state.dead.lock() {
                hosts.retain(|h| !dead.contains(h));
            }
            let runner = PlayRunner::new(project, playbook, play, opts, sink, &pool, &state, hosts);
            runner.run();
        }
    }
    if let Some(signal) = herdsman_modules::cancel::interrupted() {
        sink.send(Event::Warning {
            message: format!(
                "interrupted by {}: commands in flight were stopped on their hosts and no further task was started",
                herdsman_modules::host::signal_name(signal)
            ),
        });
    }
    let mut recap = Recap::default();
    if let Ok(stats) = state.stats.lock() {
        recap.hosts = stats.clone();
    }
    sink.send(Event::Recap(recap.clone()));
    if opts.profile {
        if let Ok(profile) = state.profile.lock() {
            sink.send(Event::Profile {
                tasks: profile.values().cloned().collect(),
            });
        }
    }
    Ok(recap)
}

/// Per-play state of one host.
#[derive(Debug, Default)]
pub struct HostState {
    pub name: String,
    pub failed: bool,
    pub unreachable: bool,
    /// `meta: end_host`.
    pub ended: bool,
    pub notified: IndexSet<String>,
    /// Run-once roles (`RoleInfo::once`) of which a task ran here (not
    /// skipped, not unreachable), and those the host completed.
    pub roles_ran: std::collections::HashSet<String>,
    pub roles_done: std::collections::HashSet<String>,
    /// Failed by `any_errors_fatal` because another host failed: inside a
    /// block with a `rescue` the host runs the rescue, but is not counted
    /// as rescued (it had no failure of its own), as in Ansible.
    pub swept: bool,
}

impl HostState {
    pub fn active(&self) -> bool {
        !self.failed && !self.unreachable && !self.ended
    }
}

pub struct PlayRunner<'a> {
    pub project: &'a Project,
    pub playbook: &'a Playbook,
    pub play: &'a Play,
    pub opts: &'a RunOptions,
    pub sink: &'a EventSink,
    pub pool: &'a rayon::ThreadPool,
    pub run: &'a RunState,
    pub hosts: Vec<Mutex<HostState>>,
    /// Host names, index-aligned with `hosts`.
    pub names: Vec<String>,
    /// Inventory variables per host (computed once per play).
    pub inventory_vars: Vec<RwLock<Map<String, Value>>>,
    /// Play vars with vars_files merged over them.
    pub play_vars: RwLock<Map<String, Value>>,
    /// `groups` and `hostvars`, shared by every context (made again when
    /// `add_host` or `group_by` change the inventory).
    pub groups: RwLock<minijinja::Value>,
    pub hostvars: RwLock<minijinja::Value>,
    /// `meta: end_play` was reached.
    pub play_ended: std::sync::atomic::AtomicBool,
    /// `meta: end_batch` was reached (reset at each `serial` batch).
    pub batch_ended: std::sync::atomic::AtomicBool,
    /// Handlers of roles loaded at run time (a looped or templated
    /// `include_role`), after the play's own.
    pub dynamic_handlers: Mutex<Vec<crate::playbook::Task>>,
    /// Defaults and vars of public `include_role`s that have run.
    pub included_roles: RwLock<crate::playbook::PlayRoles>,
    /// `--step` is still asking (a `c` answer stops it for the rest of
    /// the play, as in ansible-playbook, whose step mode lives in the
    /// play's strategy).
    pub stepping: std::sync::atomic::AtomicBool,
}

impl<'a> PlayRunner<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        project: &'a Project,
        playbook: &'a Playbook,
        play: &'a Play,
        opts: &'a RunOptions,
        sink: &'a EventSink,
        pool: &'a rayon::ThreadPool,
        run: &'a RunState,
        hosts: Vec<String>,
    ) -> Self {
        let inventory = run.inventory();
        let inventory_vars = hosts
            .iter()
            .map(|h| RwLock::new(inventory.host_vars(h)))
            .collect();
        let (groups, hostvars) = inventory_view(project, run);
        // The recap lists hosts in inventory order, not in the order their
        // first results happened to arrive.
        if let Ok(mut stats) = run.stats.lock() {
            for h in &hosts {
                stats.entry(h.clone()).or_default();
            }
        }
        PlayRunner {
            project,
            playbook,
            play,
            opts,
            sink,
            pool,
            run,
            hosts: hosts
                .iter()
                .map(|h| {
                    Mutex::new(HostState {
                        name: h.clone(),
                        ..HostState::default()
                    })
                })
                .collect(),
            names: hosts,
            inventory_vars,
            play_vars: RwLock::new(play.vars.clone()),
            groups: RwLock::new(groups),
            hostvars: RwLock::new(hostvars),
            play_ended: std::sync::atomic::AtomicBool::new(false),
            batch_ended: std::sync::atomic::AtomicBool::new(false),
            dynamic_handlers: Mutex::new(Vec::new()),
            included_roles: RwLock::new(crate::playbook::PlayRoles::default()),
            stepping: std::sync::atomic::AtomicBool::new(opts.step),
        }
    }

    pub fn run(&self) {
        self.sink.send(Event::PlayStart {
            name: self.play_name(),
            hosts: self.names.clone(),
        });
        if self.names.is_empty() {
            self.sink.send(Event::Warning {
                message: format!(
                    "no hosts matched `{}` in play `{}`; skipping it",
                    self.play.hosts,
                    self.play_name()
                ),
            });
            return;
        }
        self.load_vars_files();
        for batch in self.batches() {
            self.batch_ended
                .store(false, std::sync::atomic::Ordering::SeqCst);
            if self.ended() {
                break;
            }
            if self.play.gather_facts.unwrap_or(!self.opts.gather_explicit) {
                self.gather_facts(&batch);
            }
            self.run_list(&self.play.pre_tasks, &batch);
            self.flush_handlers(&batch);
            self.run_list(&self.play.tasks, &batch);
            self.flush_handlers(&batch);
            self.run_list(&self.play.post_tasks, &batch);
            self.flush_handlers(&batch);
        }
        // Failed and unreachable hosts sit out the following plays.
        if let Ok(mut dead) = self.run.dead.lock() {
            for h in &self.hosts {
                if let Ok(h) = h.lock() {
                    if h.failed || h.unreachable {
                        dead.insert(h.name.clone());
                    }
                }
            }
        }
    }

    pub fn play_name(&self) -> String {
        if self.play.name.is_empty() {
            self.play.hosts.clone()
        } else {
            self.play.name.clone()
        }
    }

    /// `--step`: whether to run `what` (`TASK: name`, `HANDLER: name`),
    /// asked on the terminal as ansible-playbook asks (`on HOST` under the
    /// `free` strategy, where each host reaches the task on its own).
    pub(crate) fn take_step(&self, what: &str, host: Option<usize>) -> bool {
        use crate::output::step::Answer;
        use std::sync::atomic::Ordering;
        if !self.stepping.load(Ordering::SeqCst) {
            return true;
        }
        let on = host
            .map(|i| format!("on {} ", self.names[i]))
            .unwrap_or_default();
        let prompt = format!("Perform task: {what} {on}(N)o/(y)es/(c)ontinue: ");
        match self.sink.ask_step(prompt) {
            Answer::Yes => true,
            Answer::Continue => {
                self.stepping.store(false, Ordering::SeqCst);
                true
            }
            Answer::No => false,
        }
    }

    /// `meta: end_play` was reached, or the run was interrupted: no
    /// further task (or handler) starts.
    pub fn ended(&self) -> bool {
        self.play_ended.load(std::sync::atomic::Ordering::SeqCst)
            || self.batch_ended.load(std::sync::atomic::Ordering::SeqCst)
            || herdsman_modules::cancel::interrupted().is_some()
    }

    /// Host indexes split into `serial` batches (all at once without it).
    fn batches(&self) -> Vec<Vec<usize>> {
        let total = self.names.len();
        if self.play.serial.is_empty() {
            return vec![(0..total).collect()];
        }
        let mut out = Vec::new();
        let mut start = 0;
        let mut sizes = self.play.serial.iter();
        let mut last = self.play.serial[0];
        while start < total {
            let spec = sizes.next().copied().unwrap_or(last);
            last = spec;
            let size = match spec {
                Serial::Count(n) => n.max(1),
                Serial::Percent(p) => ((total as f64 * p / 100.0).floor() as usize).max(1),
            };
            // Saturating: a huge batch after a first one must not wrap around.
            let end = start.saturating_add(size).min(total);
            out.push((start..end).collect());
            start = end;
        }
        out
    }

    /// Merge `vars_files` into the play vars. A file that can't be read or
    /// isn't a mapping fails every host of the play, naming the file.
    fn load_vars_files(&self) {
        if self.play.vars_files.is_empty() {
            return;
        }
        let mut merged = self.play.vars.clone();
        for (name, span) in &self.play.vars_files {
            let ctx = self.simple_context(&merged);
            let rendered = match self.project.templar.render_str("vars_files", name, &ctx) {
                Ok(r) => r,
                Err(e) => {
                    self.fail_play(&format!("{span}: vars_files entry: {e}"));
                    return;
                }
            };
            let path = self.playbook.dir.join(&rendered);
            match crate::yaml::parse_file(&path).map(|n| n.to_json()) {
                Ok(Value::Object(m)) => vars::overlay(&mut merged, &m),
                Ok(Value::Null) => {}
                Ok(_) => {
                    self.fail_play(&format!(
                        "{span}: vars file {} is not a mapping of variables",
                        path.display()
                    ));
                    return;
                }
                Err(d) => {
                    self.fail_play(&format!("{span}: {d}"));
                    return;
                }
            }
        }
        if let Ok(mut pv) = self.play_vars.write() {
            *pv = merged;
        }
    }

    fn fail_play(&self, message: &str) {
        self.sink.send(Event::Warning {
            message: message.to_string(),
        });
        for (i, h) in self.hosts.iter().enumerate() {
            if let Ok(mut h) = h.lock() {
                h.failed = true;
            }
            self.count(i, crate::output::Status::Failed);
        }
    }

    /// A context of extra vars over `vars` only (for play-level paths).
    fn simple_context(&self, vars: &Map<String, Value>) -> minijinja::Value {
        let mut all = vars.clone();
        vars::overlay(&mut all, &self.opts.extra_vars);
        vars::LazyVars {
            vars: all,
            native: IndexMap::new(),
            templar: self.project.templar.clone(),
        }
        .into_context()
    }

    /// The full template context of host `i`: every variable layer in
    /// precedence order, then the magic variables.
    pub fn context(
        &self,
        i: usize,
        task_vars: &Map<String, Value>,
        extra: &Map<String, Value>,
    ) -> minijinja::Value {
        self.context_in_role(i, task_vars, None, extra)
    }

    /// [`PlayRunner::context`] for a task, with the layers of its role.
    pub fn task_context(
        &self,
        i: usize,
        task: &crate::playbook::Task,
        extra: &Map<String, Value>,
    ) -> minijinja::Value {
        self.context_in_role(i, &task.vars, task.role.as_deref(), extra)
    }

    /// The context with role defaults (lowest), role vars (above play
    /// vars) and role params (above set_fact), as Ansible layers them.
    pub fn context_in_role(
        &self,
        i: usize,
        task_vars: &Map<String, Value>,
        role: Option<&crate::playbook::RoleInfo>,
        extra: &Map<String, Value>,
    ) -> minijinja::Value {
        let name = &self.names[i];
        let mut all = self.role_defaults(role);
        vars::overlay(&mut all, &self.inventory_vars_of(i));
        let facts = self.run.facts_of(name);
        // Gathered facts sit below play vars; set_fact/register above task
        // vars. A gathered fact is `ansible_X` with `X` in `ansible_facts`;
        // any other `ansible_*` name (`set_fact: ansible_user=deploy`) was
        // set, and wins over play vars as in Ansible.
        let gathered_names: std::collections::HashSet<String> = match facts.get("ansible_facts") {
            Some(Value::Object(inner)) => inner.keys().map(|k| format!("ansible_{k}")).collect(),
            _ => std::collections::HashSet::new(),
        };
        let (gathered, set): (Map<String, Value>, Map<String, Value>) =
            facts.into_iter().partition(|(k, _)| {
                k == "ansible_local" || (k != "ansible_facts" && gathered_names.contains(k))
            });
        vars::overlay(&mut all, &gathered);
        if let Ok(pv) = self.play_vars.read() {
            vars::overlay(&mut all, &pv);
        }
        self.overlay_role_vars(&mut all, role);
        vars::overlay(&mut all, task_vars);
        vars::overlay(&mut all, &self.run.included_vars_of(name));
        vars::overlay(&mut all, &set);
        if let Some(role) = role {
            vars::overlay(&mut all, &role.params);
        }
        vars::overlay(&mut all, extra);
        vars::overlay(&mut all, &self.opts.extra_vars);
        let magic = self.magic_vars(i);
        vars::overlay(&mut all, &magic);
        self.overlay_role_magic(&mut all, role);
        let mut native = IndexMap::new();
        for (key, value) in [("groups", &self.groups), ("hostvars", &self.hostvars)] {
            if let Ok(v) = value.read() {
                native.insert(key.to_string(), v.clone());
            }
        }
        vars::LazyVars {
            vars: all,
            native,
            templar: self.project.templar.clone(),
        }
        .into_context()
    }

    fn magic_vars(&self, i: usize) -> Map<String, Value> {
        let name = &self.names[i];
        let mut m = Map::new();
        m.insert("inventory_hostname".into(), Value::from(name.as_str()));
        m.insert(
            "inventory_hostname_short".into(),
            Value::from(vars::short_hostname(name)),
        );
        m.insert(
            "group_names".into(),
            Value::from(self.run.inventory().group_names(name)),
        );
        let play_hosts: Vec<Value> = self
            .hosts
            .iter()
            .filter_map(|h| {
                h.lock()
                    .ok()
                    .filter(|h| !h.unreachable)
                    .map(|h| Value::from(h.name.clone()))
            })
            .collect();
        m.insert("play_hosts".into(), Value::Array(play_hosts.clone()));
        m.insert(
            "ansible_play_hosts".into(),
            Value::Array(play_hosts.clone()),
        );
        m.insert("ansible_play_batch".into(), Value::Array(play_hosts));
        m.insert(
            "ansible_play_hosts_all".into(),
            Value::from(self.names.clone()),
        );
        m.insert("ansible_play_name".into(), Value::from(self.play_name()));
        m.insert("omit".into(), Value::from(OMIT));
        // Absolute, as in Ansible: `{{ playbook_dir }}/out` must not turn
        // into `/out` when the playbook was named without a directory.
        m.insert(
            "playbook_dir".into(),
            Value::from(absolute_dir(&self.playbook.dir).display().to_string()),
        );
        m.insert("ansible_check_mode".into(), Value::Bool(self.opts.check));
        m.insert("ansible_diff_mode".into(), Value::Bool(self.opts.diff));
        // As in Ansible: the effective forks (flag, ANSIBLE_FORKS, ansible.cfg).
        m.insert("ansible_forks".into(), Value::from(self.opts.forks));
        m.insert(
            "inventory_dir".into(),
            self.project
                .inventory
                .sources
                .first()
                .and_then(|p| p.parent())
                .map(|p| Value::from(p.display().to_string()))
                .unwrap_or(Value::Null),
        );
        m
    }

    /// The connection to `host` with the connection variables `vars` and
    /// keywords `play`, opened on first use and kept for the run.
    pub fn connection(
        &self,
        host: &str,
        vars: &Map<String, Value>,
        play: PlayConnection,
    ) -> Result<SharedHost, HostError> {
        self.connection_timed(host, vars, play).0
    }

    /// [`PlayRunner::connection`], and how long opening it took when this
    /// call was the one that opened it (for `--profile`).
    pub fn connection_timed(
        &self,
        host: &str,
        vars: &Map<String, Value>,
        play: PlayConnection,
    ) -> (Result<SharedHost, HostError>, Option<std::time::Duration>) {
        let id = (
            host.to_string(),
            open::session_key(host, vars, play, &self.opts.connect),
        );
        let slot = match self.run.connections.lock() {
            Ok(mut table) => table.entry(id).or_default().clone(),
            Err(_) => {
                return (
                    Err(HostError::Unreachable("connection table poisoned".into())),
                    None,
                )
            }
        };
        let Ok(mut slot) = slot.lock() else {
            return (
                Err(HostError::Unreachable("connection slot poisoned".into())),
                None,
            );
        };
        if let Some(existing) = slot.as_ref() {
            return (existing.clone().map_err(HostError::Unreachable), None);
        }
        let started = std::time::Instant::now();
        let opened = open::open(host, vars, play, &self.opts.connect);
        let result = match opened {
            Ok(o) => {
                self.warn_ignored_options(&o.ignored_options);
                Ok(Arc::new(Mutex::new(o.host)))
            }
            Err(e) => Err(match e {
                HostError::Unreachable(m) => m,
                other => other.to_string(),
            }),
        };
        // A failed open is not kept: the host leaves the play anyway, unless
        // the task ignored that (`ignore_unreachable`), and then the next
        // task tries again, as in Ansible (a node being bootstrapped
        // refuses a user until a task creates it).
        if result.is_ok() {
            *slot = Some(result.clone());
        }
        (
            result.map_err(HostError::Unreachable),
            Some(started.elapsed()),
        )
    }

    /// Add one module run's cost to the `--profile` totals of `task`.
    pub fn record_profile(
        &self,
        task: &crate::playbook::Task,
        connect: Option<std::time::Duration>,
        trips: crate::connection::task_host::RoundTrips,
    ) {
        if !self.opts.profile {
            return;
        }
        let location = format!("{}:{}", task.span.path.display(), task.span.line);
        let name = task.display_name();
        let Ok(mut profile) = self.run.profile.lock() else {
            return;
        };
        let p = profile
            .entry((location.clone(), name.clone()))
            .or_insert_with(|| TaskProfile {
                task: name,
                location,
                ..TaskProfile::default()
            });
        p.runs += 1;
        p.execs += trips.execs;
        p.transfers += trips.transfers;
        p.exec_ms += trips.exec_time.as_secs_f64() * 1000.0;
        p.transfer_ms += trips.transfer_time.as_secs_f64() * 1000.0;
        if let Some(c) = connect {
            p.connects += 1;
            p.connect_ms += c.as_secs_f64() * 1000.0;
        }
    }

    fn warn_ignored_options(&self, options: &[String]) {
        let Ok(mut warned) = self.run.warned_options.lock() else {
            return;
        };
        for o in options {
            if warned.insert(o.to_lowercase()) {
                self.sink.send(Event::Warning {
                    message: format!(
                        "ssh option `{o}` from ansible_ssh_*_args or ansible.cfg ssh_args is not supported and was ignored"
                    ),
                });
            }
        }
    }

    /// Count a task result for host `i` in the run's recap.
    pub fn count(&self, i: usize, status: crate::output::Status) {
        if let Ok(mut stats) = self.run.stats.lock() {
            stats
                .entry(self.names[i].clone())
                .or_default()
                .count(status);
        }
    }

    /// Count a change for host `i` whose task failed after making it.
    pub fn count_changed(&self, i: usize) {
        if let Ok(mut stats) = self.run.stats.lock() {
            stats.entry(self.names[i].clone()).or_default().changed += 1;
        }
    }

    pub fn count_rescued(&self, i: usize) {
        if let Ok(mut stats) = self.run.stats.lock() {
            let s = stats.entry(self.names[i].clone()).or_default();
            s.rescued += 1;
            // The failure that was rescued no longer counts as one.
            s.failed = s.failed.saturating_sub(1);
        }
    }
}

/// `dir` made absolute against the working directory (an empty `dir` is
/// the working directory itself).
fn absolute_dir(dir: &std::path::Path) -> std::path::PathBuf {
    if dir.as_os_str().is_empty() {
        return std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from("."));
    }
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// `groups` and `hostvars` as the inventory is now.
fn inventory_view(project: &Project, run: &RunState) -> (minijinja::Value, minijinja::Value) {
    let inventory = run.inventory();
    let groups =
        template::from_json(&serde_json::to_value(inventory.groups_map()).unwrap_or(Value::Null));
    (groups, hostvars_object(project, run, inventory))
}

/// `hostvars`: each host's inventory vars with its facts over them. Facts
/// are read when a template asks, so `hostvars[other]` sees what the other
/// host gathered before the first task.
fn hostvars_object(
    project: &Project,
    run: &RunState,
    inventory: Arc<crate::inventory::Inventory>,
) -> minijinja::Value {
    let facts = run.facts.clone();
    let included = run.included_vars.clone();
    let names: Vec<String> = inventory.hosts.keys().cloned().collect();
    let lookup = move |name: &str| -> Option<Map<String, Value>> {
        if !inventory.hosts.contains_key(name) && name != "localhost" {
            return None;
        }
        let mut vars = inventory.host_vars(name);
        for layer in [&included, &facts] {
            if let Ok(f) = layer.read() {
                if let Some(host_layer) = f.get(name) {
                    vars::overlay(&mut vars, host_layer);
                }
            }
        }
        Some(vars)
    };
    minijinja::Value::from_object(vars::HostVars {
        hosts: Arc::new(lookup),
        names,
        templar: project.templar.clone(),
    })
}

impl PlayRunner<'_> {
    /// Host `i`'s inventory variables as the inventory is now.
    pub fn inventory_vars_of(&self, i: usize) -> Map<String, Value> {
        match self.inventory_vars[i].read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// After `add_host` or `group_by` changed `host`: later tasks see the
    /// new `groups` and `hostvars`, and `host` (when in this play) the
    /// variables of its new groups.
    pub(crate) fn refresh_inventory_view(&self, host: &str) {
        if let Some(i) = self.names.iter().position(|n| n == host) {
            let vars = self.run.inventory().host_vars(host);
            if let Ok(mut v) = self.inventory_vars[i].write() {
                *v = vars;
            }
        }
        let (groups, hostvars) = inventory_view(self.project, self.run);
        if let Ok(mut g) = self.groups.write() {
            *g = groups;
        }
        if let Ok(mut h) = self.hostvars.write() {
            *h = hostvars;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Secrets;

    #[test]
    fn every_password_the_run_knows_is_marked_before_it_starts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hosts.ini");
        std::fs::write(
            &path,
            "[web]\nw1 ansible_password=inv-login-pw\n[web:vars]\nansible_become_pass=group-become-pw\n",
        )
        .expect("write inventory");
        let inventory = crate::inventory::Inventory::load(&[path]).expect("inventory");
        let mut opts = RunOptions {
            become_password: Some("dash-K-pw".into()),
            ..RunOptions::default()
        };
        opts.connect.password = Some("dash-k-pw".into());
        opts.connect.key_passphrase = Some("key-pass-pw".into());
        opts.extra_vars.insert(
            "ansible_become_password".into(),
            Value::from("extra-become-pw"),
        );
        let secrets = Secrets::new();
        mark_secrets(&secrets, &inventory, &opts);
        let text = "inv-login-pw group-become-pw dash-K-pw dash-k-pw key-pass-pw extra-become-pw";
        assert_eq!(
            secrets.redact(text),
            ["********"; 6].join(" "),
            "every password masked"
        );
    }
}
