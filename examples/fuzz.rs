//! The fuzzing driver behind `bench/fuzz.sh`: splits the inputs of every
//! loader into batches and runs each batch in a child process (this same
//! program with `--worker`), so an input that hangs or kills its process
//! (stack overflow, out of memory) costs one batch, not the run. A batch
//! that dies is run again reporting after every input, which pins the
//! input; it is saved, counted as a crash, and the batch goes on after it.
//!
//! ```text
//! fuzz [--total N] [--seed S] [--jobs J] [--chunk C] [--only a,b]
//!      [--hang-ms MS] [--findings DIR] [--corpus DIR]
//! fuzz --dump LOADER INDEX [--seed S]    # print one input
//! ```

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use herdsman::fuzz::targets::TARGETS;
use herdsman::fuzz::{table, Config, Fuzzer, ScratchDir, Stats, HANG_EXIT};

struct Args {
    total: u64,
    seed: u64,
    jobs: usize,
    chunk: u64,
    only: Option<Vec<String>>,
    hang_ms: u64,
    findings: PathBuf,
    corpus: Option<PathBuf>,
    /// `--worker T START END EVERY`
    worker: Option<(usize, u64, u64, u64)>,
    /// `--dump LOADER INDEX`: write that input to stdout.
    dump: Option<(String, u64)>,
}

fn parse_args() -> Result<Args, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut a = Args {
        total: 1_000_000,
        seed: 1,
        jobs: 2,
        chunk: 5_000,
        only: None,
        hang_ms: 1_000,
        findings: root.join("target/fuzz-findings"),
        corpus: Config::default_corpus(&root),
        worker: None,
        dump: None,
    };
    let mut it = std::env::args().skip(1);
    let num = |v: Option<String>, flag: &str| -> Result<u64, String> {
        v.and_then(|v| v.replace('_', "").parse().ok())
            .ok_or_else(|| format!("{flag} needs a number"))
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--total" => a.total = num(it.next(), &flag)?,
            "--seed" => a.seed = num(it.next(), &flag)?,
            "--jobs" => a.jobs = num(it.next(), &flag)?.max(1) as usize,
            "--chunk" => a.chunk = num(it.next(), &flag)?.max(1),
            "--hang-ms" => a.hang_ms = num(it.next(), &flag)?,
            "--only" => {
                a.only = Some(
                    it.next()
                        .unwrap_or_default()
                        .split(',')
                        .map(String::from)
                        .collect(),
                );
            }
            "--findings" => {
                a.findings = it
                    .next()
                    .map(PathBuf::from)
                    .ok_or("--findings needs a directory")?;
            }
            "--corpus" => a.corpus = it.next().map(PathBuf::from),
            "--worker" => {
                let t = num(it.next(), &flag)? as usize;
                let start = num(it.next(), &flag)?;
                let end = num(it.next(), &flag)?;
                let every = num(it.next(), &flag)?;
                a.worker = Some((t, start, end, every));
            }
            "--dump" => {
                let name = it.next().ok_or("--dump needs a loader and an index")?;
                a.dump = Some((name, num(it.next(), &flag)?));
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(a)
}

fn config(a: &Args) -> Config {
    let hang_after = Duration::from_millis(a.hang_ms);
    Config {
        seed: a.seed,
        root: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        corpus: a.corpus.clone(),
        findings: a.findings.clone(),
        hang_after,
        // Inputs just over the line finish and are timed; real hangs end here.
        kill_after: hang_after + Duration::from_secs(1),
        max_input: herdsman::fuzz::mutate::MAX_INPUT,
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fuzz: {e}");
            std::process::exit(2);
        }
    };
    if let Some((name, index)) = &args.dump {
        let Some(t) = Fuzzer::target(name) else {
            eprintln!("fuzz: no loader `{name}`");
            std::process::exit(2);
        };
        let input = Fuzzer::new(config(&args)).input(t, *index);
        let _ = std::io::Write::write_all(&mut std::io::stdout(), &input);
        return;
    }
    if let Some((t, start, end, every)) = args.worker {
        worker(&args, t, start, end, every);
    } else {
        supervise(&args);
    }
}

/// Child: run one batch, reporting `S <target> <next> <stats>` lines.
fn worker(args: &Args, t: usize, start: u64, end: u64, every: u64) {
    let fuzzer = Fuzzer::new(config(args));
    let scratch = match ScratchDir::new(&format!("{}-{start}", TARGETS[t].name)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fuzz: scratch dir: {e}");
            std::process::exit(2);
        }
    };
    let mut report = |next: u64, delta: &Stats| println!("S {t} {next} {}", delta.to_line());
    if let Err(e) = fuzzer.run(t, start..end, &scratch.0, every, &mut report) {
        eprintln!("fuzz: {e}");
        std::process::exit(2);
    }
}

#[derive(Clone, Copy)]
struct Batch {
    target: usize,
    start: u64,
    end: u64,
    /// Report after every input (to pin a crash).
    precise: bool,
}

const REPORT_EVERY: u64 = 250;

fn supervise(args: &Args) {
    let wall = Instant::now();
    let fuzzer = Fuzzer::new(config(args));
    let targets: Vec<usize> = (0..TARGETS.len())
        .filter(|&i| {
            args.only
                .as_ref()
                .is_none_or(|o| o.iter().any(|n| n == TARGETS[i].name))
        })
        .collect();
    if targets.is_empty() {
        eprintln!(
            "fuzz: no such loader; loaders: {}",
            TARGETS
                .iter()
                .map(|t| t.name)
                .collect::<Vec<_>>()
                .join(", ")
        );
        std::process::exit(2);
    }
    let per_target = args.total.div_ceil(targets.len() as u64);
    println!(
        "fuzz: {} inputs per loader over {} loaders, seed {}, {} jobs, corpus {}",
        per_target,
        targets.len(),
        args.seed,
        args.jobs,
        args.corpus
            .as_ref()
            .map_or("none".to_string(), |c| c.display().to_string())
    );
    for &t in &targets {
        println!("  {:<20} {} seeds", TARGETS[t].name, fuzzer.seed_count(t));
    }
    // Round-robin over loaders, so the slow ones are spread over the run.
    let mut queue = VecDeque::new();
    let mut start = 0;
    while start < per_target {
        let end = (start + args.chunk).min(per_target);
        for &target in &targets {
            queue.push_back(Batch {
                target,
                start,
                end,
                precise: false,
            });
        }
        start = end;
    }
    let queue = Mutex::new(queue);
    let stats = Mutex::new(vec![Stats::default(); TARGETS.len()]);
    std::thread::scope(|s| {
        for job in 0..args.jobs {
            let (queue, stats, fuzzer) = (&queue, &stats, &fuzzer);
            s.spawn(move || {
                while let Some(batch) = pop(queue) {
                    for more in run_batch(args, fuzzer, job, batch, stats) {
                        if let Ok(mut q) = queue.lock() {
                            q.push_front(more);
                        }
                    }
                }
            });
        }
    });
    let stats = stats.into_inner().unwrap_or_default();
    let rows: Vec<(&str, Stats)> = targets
        .iter()
        .map(|&t| (TARGETS[t].name, stats[t].clone()))
        .collect();
    println!("{}", table(&rows));
    let total: u64 = rows.iter().map(|(_, s)| s.inputs).sum();
    let secs = wall.elapsed().as_secs_f64();
    println!(
        "wall time {secs:.1} s for {total} inputs ({:.0} inputs/s, {} jobs); findings under {}",
        total as f64 / secs,
        args.jobs,
        args.findings.display()
    );
    let bad: u64 = rows
        .iter()
        .map(|(_, s)| s.panics + s.hangs + s.crashes)
        .sum();
    if bad > 0 {
        std::process::exit(1);
    }
}

/// The next batch; the lock is released before it runs.
fn pop(queue: &Mutex<VecDeque<Batch>>) -> Option<Batch> {
    queue.lock().ok()?.pop_front()
}

/// Run one batch in a child; returns the batches left to run when it died.
fn run_batch(
    args: &Args,
    fuzzer: &Fuzzer,
    job: usize,
    b: Batch,
    stats: &Mutex<Vec<Stats>>,
) -> Vec<Batch> {
    let every = if b.precise { 1 } else { REPORT_EVERY };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("fuzz: cannot find this program: {e}");
            return Vec::new();
        }
    };
    let _ = std::fs::create_dir_all(&args.findings);
    let stderr_path = args.findings.join(format!("worker-{job}.stderr"));
    let stderr = std::fs::File::create(&stderr_path)
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    let mut cmd = Command::new(exe);
    cmd.args([
        "--seed",
        &args.seed.to_string(),
        "--hang-ms",
        &args.hang_ms.to_string(),
    ])
    .arg("--findings")
    .arg(&args.findings)
    .args([
        "--worker",
        &b.target.to_string(),
        &b.start.to_string(),
        &b.end.to_string(),
        &every.to_string(),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(stderr);
    match &args.corpus {
        Some(c) => cmd.arg("--corpus").arg(c),
        None => cmd.args(["--corpus", "/nonexistent"]),
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fuzz: cannot start a worker: {e}");
            return Vec::new();
        }
    };
    let mut next = b.start;
    let mut hang: Option<(u64, u64)> = None;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let mut parts = line.splitn(4, ' ');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some("S"), Some(_), Some(n), Some(rest)) => {
                    if let (Ok(n), Some(delta)) = (n.parse(), Stats::from_line(rest)) {
                        next = n;
                        if let Ok(mut s) = stats.lock() {
                            s[b.target].add(&delta);
                        }
                    }
                }
                (Some("H"), Some(_), Some(i), Some(ms)) => {
                    hang = i.parse().ok().zip(ms.parse().ok());
                }
                _ => {}
            }
        }
    }
    let status = match child.wait() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fuzz: worker: {e}");
            return Vec::new();
        }
    };
    if status.success() {
        return Vec::new();
    }
    let name = TARGETS[b.target].name;
    if let (Some(HANG_EXIT), Some((index, ms))) = (status.code(), hang) {
        println!(
            "fuzz: {name} #{index} hung ({ms} ms); saved under {}",
            args.findings.join("hangs").display()
        );
        if let Ok(mut s) = stats.lock() {
            s[b.target].add(&Stats {
                inputs: 1,
                hangs: 1,
                slowest: Duration::from_millis(ms),
                slowest_index: index,
                ..Stats::default()
            });
        }
        // The inputs between the last report and the hang ran but were not
        // counted: run them again.
        let mut out = rest(b, index + 1);
        if next < index {
            out.push(Batch {
                start: next,
                end: index,
                ..b
            });
        }
        return out;
    }
    if !b.precise {
        // The crash is one of the next REPORT_EVERY inputs: find which.
        let mut out = vec![Batch {
            start: next,
            end: (next + REPORT_EVERY).min(b.end),
            precise: true,
            ..b
        }];
        out.extend(rest(b, next + REPORT_EVERY));
        return out;
    }
    let note = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let tail: String = note
        .chars()
        .rev()
        .take(2000)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let saved = fuzzer.save(
        "crashes",
        b.target,
        next,
        &format!("worker died: {status}\n{tail}"),
    );
    println!(
        "fuzz: {name} #{next} killed its process ({status}); saved {}",
        saved.display()
    );
    if let Ok(mut s) = stats.lock() {
        s[b.target].add(&Stats {
            inputs: 1,
            crashes: 1,
            ..Stats::default()
        });
    }
    rest(b, next + 1)
}

fn rest(b: Batch, from: u64) -> Vec<Batch> {
    if from < b.end {
        vec![Batch { start: from, ..b }]
    } else {
        Vec::new()
    }
}
