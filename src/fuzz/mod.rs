//! A fuzzing harness for every loader that reads user files: inventories
//! (INI, YAML, `group_vars/`), playbooks (load and validate, as `herd
//! validate`), templates and `when:` expressions, known_hosts, ssh_config,
//! `k=v` arguments, `-e` values, INI literals, host patterns and
//! `ProxyJump`. The loaders are the rows of [`targets::TARGETS`].
//!
//! Inputs are made from seed files (the repository's fixtures, examples and
//! template test tables, plus a corpus of real projects when one is given)
//! by [`mutate`], deterministically from `(seed, target, index)`. Each runs
//! under `catch_unwind`, timed; a panic or an input slower than
//! [`Config::hang_after`] is counted and saved under [`Config::findings`].
//! A watchdog thread ends the process when an input runs past
//! [`Config::kill_after`] (an in-process hang cannot be cancelled), after
//! saving it; `examples/fuzz.rs` runs inputs in child processes in batches
//! and carries on after such an exit, or after a crash (stack overflow,
//! out of memory), which it pins to one input by running the batch again.
//!
//! `cargo test --lib fuzz::` runs a seeded 10,000 inputs; `bench/fuzz.sh`
//! runs a million.

pub mod mutate;
pub mod targets;

use std::cell::RefCell;
use std::io::Write;
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use mutate::Rng;
use targets::{Outcome, Scratch, SeedFile, TARGETS};

/// Loaders run on threads of this stack size: that of the executor's worker
/// threads (where templates are rendered), the smallest `herd` uses.
pub const STACK_SIZE: usize = 2 * 1024 * 1024;

/// Debug builds (the CI test) use frames several times larger than
/// release ones; the release run (`bench/fuzz.sh`) checks the real size.
fn stack_size() -> usize {
    if cfg!(debug_assertions) {
        4 * STACK_SIZE
    } else {
        STACK_SIZE
    }
}

/// Seed files larger than this are skipped (they are data, not config).
const MAX_SEED: u64 = 256 * 1024;

/// Saved unpositioned rejections per target and run: enough to fix them.
const MAX_UNPOSITIONED_SAVED: u64 = 20;

#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    /// The repository: seeds come from its fixtures and examples.
    pub root: PathBuf,
    /// A directory of real projects to take more seeds from.
    pub corpus: Option<PathBuf>,
    /// Where inputs that panic, hang or crash are saved.
    pub findings: PathBuf,
    /// An input that works longer than this (its thread's CPU time) is a
    /// hang.
    pub hang_after: Duration,
    /// The watchdog saves an input running this long and exits the process.
    pub kill_after: Duration,
    /// The largest input, in bytes (at most [`mutate::MAX_INPUT`]).
    pub max_input: usize,
}

impl Config {
    /// The corpus beside the repository (`../shared/corpus/cases`, where CI
    /// puts it), or the one named by `HERD_FUZZ_CORPUS`.
    pub fn default_corpus(root: &Path) -> Option<PathBuf> {
        std::env::var_os("HERD_FUZZ_CORPUS")
            .map(PathBuf::from)
            .or_else(|| Some(root.join("../shared/corpus/cases")))
            .filter(|p| p.is_dir())
    }
}

/// Totals for one target.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub inputs: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Rejections whose error lacks `path:line:col` (targets that promise one).
    pub unpositioned: u64,
    pub panics: u64,
    pub hangs: u64,
    /// Inputs that killed the process (found by the child-process driver).
    pub crashes: u64,
    pub slowest: Duration,
    pub slowest_index: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.inputs += o.inputs;
        self.accepted += o.accepted;
        self.rejected += o.rejected;
        self.unpositioned += o.unpositioned;
        self.panics += o.panics;
        self.hangs += o.hangs;
        self.crashes += o.crashes;
        if o.slowest > self.slowest {
            self.slowest = o.slowest;
            self.slowest_index = o.slowest_index;
        }
    }

    /// One line of numbers, for the child-process protocol.
    pub fn to_line(&self) -> String {
        format!(
            "{} {} {} {} {} {} {} {} {}",
            self.inputs,
            self.accepted,
            self.rejected,
            self.unpositioned,
            self.panics,
            self.hangs,
            self.crashes,
            self.slowest.as_nanos(),
            self.slowest_index
        )
    }

    pub fn from_line(line: &str) -> Option<Stats> {
        let n: Vec<u64> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let [inputs, accepted, rejected, unpositioned, panics, hangs, crashes, slow, slow_i] =
            n[..]
        else {
            return None;
        };
        Some(Stats {
            inputs,
            accepted,
            rejected,
            unpositioned,
            panics,
            hangs,
            crashes,
            slowest: Duration::from_nanos(slow),
            slowest_index: slow_i,
        })
    }
}

/// The per-target table, as `bench/fuzz.sh` and the test print it.
pub fn table(rows: &[(&str, Stats)]) -> String {
    let mut out = format!(
        "{:<20} {:>9} {:>9} {:>9} {:>7} {:>7} {:>6} {:>8} {:>10}  slowest input\n",
        "loader",
        "inputs",
        "accepted",
        "rejected",
        "no-pos",
        "panics",
        "hangs",
        "crashes",
        "slowest"
    );
    let mut total = Stats::default();
    for (name, s) in rows {
        total.add(s);
        out.push_str(&row(name, s));
    }
    out.push_str(&row("total", &total));
    out
}

fn row(name: &str, s: &Stats) -> String {
    format!(
        "{:<20} {:>9} {:>9} {:>9} {:>7} {:>7} {:>6} {:>8} {:>8.1}ms  #{}\n",
        name,
        s.inputs,
        s.accepted,
        s.rejected,
        s.unpositioned,
        s.panics,
        s.hangs,
        s.crashes,
        s.slowest.as_secs_f64() * 1000.0,
        s.slowest_index
    )
}

pub struct Fuzzer {
    pub config: Config,
    /// Seeds per target, in [`TARGETS`] order.
    seeds: Vec<Vec<Vec<u8>>>,
}

impl Fuzzer {
    pub fn new(config: Config) -> Fuzzer {
        let mut files = Vec::new();
        for dir in [
            "tests/fixtures",
            "inventories",
            "playbooks",
            "templates",
            "src/template/testdata",
        ] {
            collect(&config.root.join(dir), &mut files);
        }
        if let Some(corpus) = &config.corpus {
            collect(corpus, &mut files);
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let seeds = TARGETS
            .iter()
            .map(|t| {
                let mut s = (t.seeds)(&files);
                s.extend(t.builtin.iter().map(|b| b.as_bytes().to_vec()));
                s
            })
            .collect();
        Fuzzer { config, seeds }
    }

    pub fn target(name: &str) -> Option<usize> {
        TARGETS.iter().position(|t| t.name == name)
    }

    pub fn seed_count(&self, target: usize) -> usize {
        self.seeds[target].len()
    }

    /// Input `index` of `target`: the same bytes every time.
    pub fn input(&self, target: usize, index: u64) -> Vec<u8> {
        let mut rng = Rng::for_input(self.config.seed, target, index);
        mutate::generate(
            &mut rng,
            &self.seeds[target],
            &TARGETS[target].grammar,
            self.config.max_input,
        )
    }

    /// Save input `index` under `findings/<kind>/`, with a note beside it.
    pub fn save(&self, kind: &str, target: usize, index: u64, note: &str) -> PathBuf {
        let dir = self.config.findings.join(kind);
        let _ = std::fs::create_dir_all(&dir);
        let base = format!("{}-{}-{index}", TARGETS[target].name, self.config.seed);
        let path = dir.join(format!("{base}.input"));
        let _ = std::fs::write(&path, self.input(target, index));
        let _ = std::fs::write(dir.join(format!("{base}.txt")), note);
        path
    }

    /// Run inputs `range` of `target` on a thread of [`STACK_SIZE`].
    /// `report(next, delta)` is called every `report_every` inputs and at
    /// the end with the stats since the last call.
    pub fn run(
        &self,
        target: usize,
        range: Range<u64>,
        scratch_dir: &Path,
        report_every: u64,
        report: &mut (dyn FnMut(u64, &Stats) + Send),
    ) -> std::io::Result<Stats> {
        install_panic_hook();
        let scratch = Scratch::new(scratch_dir)?;
        let watch = Arc::new(Watch::default());
        let epoch = Instant::now();
        std::thread::scope(|scope| {
            let w = watch.clone();
            let dog = scope.spawn(move || self.watchdog(&w, target, epoch));
            let runner = std::thread::Builder::new()
                .name(format!("fuzz-{}", TARGETS[target].name))
                .stack_size(stack_size())
                .spawn_scoped(scope, || {
                    self.run_inputs(target, range, &scratch, &watch, epoch, report_every, report)
                })?;
            let result = runner.join();
            watch.stop.store(true, Ordering::SeqCst);
            let _ = dog.join();
            result.map_err(|_| std::io::Error::other("the fuzz runner itself panicked"))
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn run_inputs(
        &self,
        target: usize,
        range: Range<u64>,
        scratch: &Scratch,
        watch: &Watch,
        epoch: Instant,
        report_every: u64,
        report: &mut (dyn FnMut(u64, &Stats) + Send),
    ) -> Stats {
        let t = &TARGETS[target];
        let mut total = Stats::default();
        let mut delta = Stats::default();
        let mut unpositioned_saved = 0;
        for index in range.clone() {
            let input = self.input(target, index);
            watch.index.store(index, Ordering::SeqCst);
            watch
                .started
                .store(epoch.elapsed().as_nanos() as u64 + 1, Ordering::SeqCst);
            let start = Instant::now();
            let cpu_start = thread_cpu_time();
            FUZZING.with(|f| *f.borrow_mut() = Some(String::new()));
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| (t.run)(scratch, &input)));
            let message = FUZZING.with(|f| f.borrow_mut().take()).unwrap_or_default();
            let elapsed = start.elapsed();
            // The hang limit counts this thread's CPU time, not the wall
            // clock: on a shared machine a busy neighbour stretches the
            // wall time of a fast input, but not the work it does. An input
            // that blocks without working is the watchdog's (`kill_after`).
            let worked = thread_cpu_time().saturating_sub(cpu_start);
            watch.started.store(0, Ordering::SeqCst);
            delta.inputs += 1;
            match result {
                Ok(Outcome::Accepted) => delta.accepted += 1,
                Ok(Outcome::Rejected { unpositioned }) => {
                    delta.rejected += 1;
                    if let Some(rendered) = unpositioned {
                        delta.unpositioned += 1;
                        if unpositioned_saved < MAX_UNPOSITIONED_SAVED {
                            unpositioned_saved += 1;
                            self.save("unpositioned", target, index, &rendered);
                        }
                    }
                }
                Err(_) => {
                    delta.panics += 1;
                    let path = self.save("panics", target, index, &message);
                    eprintln!(
                        "fuzz: {} #{index} panicked: {message} (saved {})",
                        t.name,
                        path.display()
                    );
                }
            }
            if worked > self.config.hang_after {
                delta.hangs += 1;
                let note = format!(
                    "took {} ms of CPU time ({} ms wall)",
                    worked.as_millis(),
                    elapsed.as_millis()
                );
                let path = self.save("hangs", target, index, &note);
                eprintln!(
                    "fuzz: {} #{index} {note} (saved {})",
                    t.name,
                    path.display()
                );
            }
            if elapsed > delta.slowest {
                delta.slowest = elapsed;
                delta.slowest_index = index;
            }
            if delta.inputs >= report_every {
                total.add(&delta);
                report(index + 1, &delta);
                delta = Stats::default();
            }
        }
        total.add(&delta);
        report(range.end, &delta);
        total
    }

    /// Ends the process when one input runs past `kill_after`, after
    /// saving it and saying which it was (`H <target> <index> <ms>` on stdout
    /// for the child-process driver).
    fn watchdog(&self, watch: &Watch, target: usize, epoch: Instant) {
        while !watch.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
            let started = watch.started.load(Ordering::SeqCst);
            if started == 0 {
                continue;
            }
            let running = epoch
                .elapsed()
                .saturating_sub(Duration::from_nanos(started - 1));
            if running > self.config.kill_after {
                let index = watch.index.load(Ordering::SeqCst);
                let ms = running.as_millis();
                let path = self.save(
                    "hangs",
                    target,
                    index,
                    &format!("still running after {ms} ms"),
                );
                eprintln!(
                    "fuzz: {} #{index} still running after {ms} ms; saved {}; stopping",
                    TARGETS[target].name,
                    path.display()
                );
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "H {target} {index} {ms}");
                let _ = out.flush();
                std::process::exit(HANG_EXIT);
            }
        }
    }
}

/// The exit status of a process the watchdog stopped.
pub const HANG_EXIT: i32 = 3;

#[derive(Default)]
struct Watch {
    index: AtomicU64,
    /// Nanoseconds since the epoch plus one when the input started; 0 idle.
    started: AtomicU64,
    stop: AtomicBool,
}

thread_local! {
    /// `Some` while a fuzz input runs on this thread: the panic hook puts
    /// the message here instead of printing it.
    static FUZZING: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Panics on fuzz threads are recorded quietly; every other thread (other
/// tests in the same binary) keeps the usual hook.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let captured = FUZZING.with(|f| {
                let mut f = f.borrow_mut();
                match f.as_mut() {
                    Some(slot) => {
                        let location = info
                            .location()
                            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                            .unwrap_or_default();
                        let payload = info
                            .payload()
                            .downcast_ref::<&str>()
                            .map(std::string::ToString::to_string)
                            .or_else(|| info.payload().downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        *slot = format!("panicked at {location}: {payload}");
                        true
                    }
                    None => false,
                }
            });
            if !captured {
                previous(info);
            }
        }));
    });
}

fn collect(dir: &Path, out: &mut Vec<SeedFile>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            collect(&path, out);
        } else if meta.is_file() && meta.len() <= MAX_SEED {
            if let Ok(bytes) = std::fs::read(&path) {
                out.push(SeedFile { path, bytes });
            }
        }
    }
}

/// A scratch directory removed on drop.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn new(tag: &str) -> std::io::Result<ScratchDir> {
        let dir = std::env::temp_dir().join(format!("herd-fuzz-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// CPU time used by the calling thread so far.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where a loader's panic is someone else's to fix: recorded, not failed.
    const OWNED_ELSEWHERE: &[&str] = &["src/template/lookups.rs"];

    /// The CI run: 10,000 seeded inputs across every loader, in process.
    #[test]
    fn seeded_inputs_neither_panic_nor_hang() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let findings = root.join("target/fuzz-findings/ci");
        let _ = std::fs::remove_dir_all(&findings);
        let config = Config {
            seed: 20_261_204,
            corpus: Config::default_corpus(&root),
            root,
            findings: findings.clone(),
            // Debug code runs about ten times slower than release: the
            // release run (`bench/fuzz.sh`) holds inputs to 1 s, this one
            // to 3 s so a loaded CI machine does not flake.
            hang_after: Duration::from_secs(if cfg!(debug_assertions) { 3 } else { 1 }),
            kill_after: Duration::from_secs(30),
            // Debug YAML parsing is slow enough that 64 KiB inputs take
            // seconds on a busy machine; the release run uses the full size.
            max_input: if cfg!(debug_assertions) {
                16 * 1024
            } else {
                mutate::MAX_INPUT
            },
        };
        let fuzzer = Fuzzer::new(config);
        let per_target = 10_000u64.div_ceil(TARGETS.len() as u64);
        let mut rows = Vec::new();
        for (i, t) in TARGETS.iter().enumerate() {
            let scratch = ScratchDir::new(t.name).expect("scratch dir");
            let stats = fuzzer
                .run(i, 0..per_target, &scratch.0, u64::MAX, &mut |_, _| {})
                .expect("fuzz run");
            rows.push((t.name, stats));
        }
        println!("{}", table(&rows));
        let total: u64 = rows.iter().map(|(_, s)| s.inputs).sum();
        assert!(total >= 10_000);
        let mut problems = Vec::new();
        for (name, s) in &rows {
            if s.hangs > 0 || s.unpositioned > 0 {
                problems.push(format!("{name}: {s:?}"));
            }
        }
        for entry in std::fs::read_dir(findings.join("panics"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "txt") {
                let note = std::fs::read_to_string(&path).unwrap_or_default();
                if !OWNED_ELSEWHERE.iter().any(|o| note.contains(o)) {
                    problems.push(format!("{}: {note}", path.display()));
                }
            }
        }
        assert!(
            problems.is_empty(),
            "fuzz findings (saved under {}):\n{}",
            findings.display(),
            problems.join("\n")
        );
    }
}
