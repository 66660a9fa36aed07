//! The ansible-playbook flags that look at a playbook instead of running
//! it (`--list-hosts`, `--list-tasks`, `--list-tags`, `--syntax-check`), in
//! ansible-playbook 2.18's layout, and `--start-at-task`, which drops the
//! tasks before the first one whose name matches before the run starts.

use clap::Args;
use globset::Glob;
use indexmap::IndexSet;

use crate::app::{exit, AppError, Project};
use crate::cli::RunArgs;
use crate::playbook::{Play, Task, TaskKind};

#[derive(Debug, Clone, Default, Args)]
pub struct ListArgs {
    /// List each play's hosts (after --limit); run nothing.
    #[arg(long = "list-hosts")]
    pub list_hosts: bool,
    /// List each play's tasks (after --tags/--skip-tags); run nothing.
    #[arg(long = "list-tasks")]
    pub list_tasks: bool,
    /// List each play's tags; run nothing.
    #[arg(long = "list-tags")]
    pub list_tags: bool,
    /// Load and validate the playbooks; run nothing.
    #[arg(long = "syntax-check")]
    pub syntax_check: bool,
    /// Start at the first task whose name matches (a glob); the tasks
    /// before it do not run.
    #[arg(long = "start-at-task", value_name = "NAME")]
    pub start_at_task: Option<String>,
}

impl ListArgs {
    /// Whether this run only shows the playbook.
    pub fn is_listing(&self) -> bool {
        self.list_hosts || self.list_tasks || self.list_tags || self.syntax_check
    }
}

/// Whether `--tags`/`--skip-tags` select a task with `tags` (its own and
/// its play's): `always` runs unless skipped by name, `never` only when
/// asked for by name, as in Ansible.
pub fn tags_selected(tags: &[&str], wanted: &[String], skip: &[String]) -> bool {
    let has = |t: &str| tags.contains(&t);
    if skip.iter().any(|s| has(s))
        || (skip.iter().any(|s| s == "tagged") && !tags.is_empty())
        || (skip.iter().any(|s| s == "untagged") && tags.is_empty())
    {
        return false;
    }
    if wanted.is_empty() || wanted.iter().any(|w| w == "all") {
        return !has("never") || wanted.iter().any(|w| tags.contains(&w.as_str()));
    }
    has("always")
        || wanted.iter().any(|w| has(w))
        || (wanted.iter().any(|w| w == "tagged") && !tags.is_empty())
        || (wanted.iter().any(|w| w == "untagged") && tags.is_empty())
}

/// Python's repr of a list of strings: `[a, b]` for tags, as Ansible prints.
fn tag_list<'a>(tags: impl IntoIterator<Item = &'a str>) -> String {
    let mut v: Vec<&str> = tags.into_iter().collect();
    v.sort_unstable();
    v.dedup();
    format!("[{}]", v.join(", "))
}

fn is_meta(t: &Task) -> bool {
    matches!(&t.kind, TaskKind::Action { action, .. } if crate::actions::short_name(action) == "meta")
}

/// Action tasks of a list in run order, blocks flattened.
fn leaves<'a>(tasks: &'a [Task], out: &mut Vec<&'a Task>) {
    for t in tasks {
        match &t.kind {
            TaskKind::Block {
                block,
                rescue,
                always,
            } => {
                leaves(block, out);
                leaves(rescue, out);
                leaves(always, out);
            }
            _ if is_meta(t) => {}
            _ => out.push(t),
        }
    }
}

fn play_tasks(play: &Play) -> Vec<&Task> {
    let mut out = Vec::new();
    for list in [&play.pre_tasks, &play.tasks, &play.post_tasks] {
        leaves(list, &mut out);
    }
    out
}

/// The text of the listing flags for the whole project.
pub fn render(args: &RunArgs, project: &Project) -> Result<String, AppError> {
    let list = &args.list;
    let mut out = String::new();
    let limit: Option<IndexSet<String>> = match &args.limit {
        Some(p) => Some(project.inventory.select(p)?.into_iter().collect()),
        None => None,
    };
    for (path, pb) in args.playbooks.iter().zip(&project.playbooks) {
        out.push_str(&format!("\nplaybook: {}\n", path.display()));
        if list.syntax_check && !(list.list_hosts || list.list_tasks || list.list_tags) {
            continue;
        }
        for (n, play) in pb.plays.iter().enumerate() {
            let play_tags: Vec<&str> = play.tags.iter().map(String::as_str).collect();
            out.push_str(&format!(
                "\n  play #{} ({}): {}\tTAGS: {}\n",
                n + 1,
                play.hosts,
                play.name,
                tag_list(play_tags.iter().copied())
            ));
            if list.list_hosts {
                let mut hosts = project.inventory.select(&play.hosts)?;
                if let Some(keep) = &limit {
                    hosts.retain(|h| keep.contains(h));
                }
                out.push_str(&format!("    pattern: ['{}']\n", play.hosts));
                out.push_str(&format!("    hosts ({}):\n", hosts.len()));
                for h in hosts {
                    out.push_str(&format!("      {h}\n"));
                }
            }
            let selected: Vec<(&Task, Vec<&str>)> = play_tasks(play)
                .into_iter()
                .map(|t| {
                    let mut tags: Vec<&str> = t.tags.iter().map(String::as_str).collect();
                    tags.extend(play_tags.iter().copied());
                    (t, tags)
                })
                .filter(|(_, tags)| tags_selected(tags, &args.tags, &args.skip_tags))
                .collect();
            if list.list_tasks {
                out.push_str("    tasks:\n");
                for (t, tags) in &selected {
                    out.push_str(&format!(
                        "      {}\tTAGS: {}\n",
                        t.display_name(),
                        tag_list(tags.iter().copied())
                    ));
                }
            }
            if list.list_tags {
                let all = selected.iter().flat_map(|(_, tags)| tags.iter().copied());
                out.push_str(&format!("      TASK TAGS: {}\n", tag_list(all)));
            }
        }
    }
    Ok(out)
}

/// Before the run: `--list-*` and `--syntax-check` print and say the exit
/// code; `--start-at-task` trims the project. None: the run goes on.
pub fn before_run(args: &RunArgs, project: &mut Project) -> Result<Option<u8>, AppError> {
    if args.list.is_listing() {
        print!("{}", render(args, project)?);
        return Ok(Some(exit::OK));
    }
    if let Some(pattern) = &args.list.start_at_task {
        start_at(project, pattern)?;
    }
    Ok(None)
}

/// Whether a task is the one `--start-at-task` names: its name as written
/// or shown, matched literally or as a glob (as Ansible's fnmatch).
fn names_match(pattern: &str, task: &Task) -> bool {
    let name = task.display_name();
    if name == pattern {
        return true;
    }
    Glob::new(pattern)
        .map(|g| g.compile_matcher().is_match(&name))
        .unwrap_or(false)
}

/// Drop from `tasks` everything before the first matching task (entering
/// blocks: a match inside a block keeps the rest of that block, its
/// rescue and always). True when the match was found.
fn prune(tasks: &mut Vec<Task>, pattern: &str) -> bool {
    for i in 0..tasks.len() {
        let found = if let TaskKind::Block { block, .. } = &mut tasks[i].kind {
            prune(block, pattern)
        } else {
            !is_meta(&tasks[i]) && names_match(pattern, &tasks[i])
        };
        if found {
            tasks.drain(..i);
            return true;
        }
    }
    tasks.clear();
    false
}

#[derive(Debug, thiserror::Error)]
#[error("no task matches --start-at-task `{0}` (only tasks of the playbooks and their import_tasks can be started at); nothing was run")]
pub struct NoSuchTask(pub String);

/// `--start-at-task`: the plays before the match keep no task and gather
/// no facts; the play with the match starts at it (its facts are
/// gathered); later plays are whole.
pub fn start_at(project: &mut Project, pattern: &str) -> Result<(), NoSuchTask> {
    for pb in &mut project.playbooks {
        for play in &mut pb.plays {
            let mut found = false;
            for list in [&mut play.pre_tasks, &mut play.tasks, &mut play.post_tasks] {
                if prune(list, pattern) {
                    found = true;
                    break;
                }
            }
            if found {
                return Ok(());
            }
            play.gather_facts = Some(false);
            play.handlers.clear();
        }
    }
    Err(NoSuchTask(pattern.to_string()))
}
