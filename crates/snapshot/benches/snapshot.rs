//! # Snapshot benchmark
//!
//! Compares exo's snapshots with what Cline and Gemini CLI do: a shadow git
//! repository driven by the git command line,
//!
//! ```text
//! git --git-dir=SHADOW --work-tree=WS add -A
//! git --git-dir=SHADOW --work-tree=WS write-tree
//! git --git-dir=SHADOW commit-tree TREE -m snapshot
//! ```
//!
//! side by side on one generated workspace: 5,000 text files of varied
//! sizes in nested directories plus a few incompressible MiB-sized binaries,
//! about 60 MiB in all (quick mode: 1,000 files, about 12 MiB). git runs
//! with a hermetic environment (`GIT_CONFIG_NOSYSTEM=1`, `HOME` and global
//! config in the scratch directory).
//!
//! | metric | exo | git | target (exo / git) |
//! |---|---|---|---|
//! | first snapshot | `Shadow::snapshot(Full)` on a fresh shadow | `add -A` + `write-tree` + `commit-tree` on a fresh shadow | ≤ 1.0 |
//! | one file changed | `Watcher::take_hint` + `snapshot(hint)` | the same three commands | ≤ 0.5 |
//! | 100 files changed | `take_hint` + `snapshot(hint)` | the same three commands | ≤ 1.0 |
//! | restore 100 files | `Shadow::restore(A, Some(B))` | `git --git-dir=SHADOW --work-tree=WS checkout -f A -- .` | ≤ 1.5 |
//!
//! The git restore is `checkout -f <commit> -- .` rather than `read-tree` +
//! `checkout-index -f -a`: it keeps the stat data of index entries whose
//! blob does not change, so like exo it rewrites only the files that differ;
//! `read-tree` drops all stat data and `checkout-index -f -a` then rewrites
//! every file.
//!
//! Every exo number includes durability: a snapshot returns only after its
//! objects are fsynced (or the file system synced). git's loose objects are
//! not fsynced by default, and the git numbers do not include that. To keep
//! one side's writeback from landing on the other's clock, the file system
//! is synced (untimed) before every timed run.
//!
//! Each metric is the median of several runs (5, quick: 3); exo and git
//! alternate which goes first. Absolute medians are reported too.
//!
//! # Running
//!
//! ```text
//! cargo bench -p exo-snapshot --bench snapshot                      # full: 5,000 files, ~60 MiB
//! EXO_BENCH_QUICK=1 cargo bench -p exo-snapshot --bench snapshot    # quick smoke run
//! ```
//!
//! `EXO_BENCH_TMP=<dir>` puts the scratch directory elsewhere (default
//! `<target>/bench-tmp`). The table goes to stdout, progress to stderr; the
//! results are also written as JSON to `$EXO_BENCH_OUT` (relative to the
//! workspace root) or `<target>/bench/snapshot.json`. The process exits
//! successfully even when a target is missed: the bench reports, it does not
//! gate.

#![allow(clippy::print_stdout)]

use std::error::Error;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use exo_snapshot::{Options, RestoreOptions, ScanHint, Shadow, Watcher};
use serde_json::{json, Value};

type BenchResult<T> = Result<T, Box<dyn Error>>;

/// How much work to do.
struct Plan {
    quick: bool,
    text_files: usize,
    /// Mean text file size in bytes.
    mean_text_bytes: usize,
    binaries: usize,
    binary_bytes: usize,
    runs: usize,
    /// Files changed in the "many files" series.
    many: usize,
}

impl Plan {
    fn from_env() -> Plan {
        // `cargo test --all-targets` runs benches without `--bench`: a quick
        // smoke run then, never the full 66 MiB workload in a debug build.
        let quick = !under_cargo_bench()
            || std::env::var("EXO_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        if quick {
            Plan {
                quick,
                text_files: 1_000,
                mean_text_bytes: 8 << 10,
                binaries: 2,
                binary_bytes: 2 << 20,
                runs: 3,
                many: 100,
            }
        } else {
            Plan {
                quick,
                text_files: 5_000,
                mean_text_bytes: 10 << 10,
                binaries: 4,
                binary_bytes: 3 << 20,
                runs: 5,
                many: 100,
            }
        }
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: [&str; 24] = [
    "fn", "let", "mut", "self", "impl", "struct", "return", "match", "Some", "None", "Ok", "Err",
    "value", "index", "buffer", "count", "state", "error", "result", "config", "path", "entry",
    "tree", "commit",
];

/// Text of about `size` bytes: lines of words, like source code.
fn text(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 64);
    while out.len() < size {
        let indent = rng.below(4) as usize * 4;
        out.extend(std::iter::repeat_n(b' ', indent));
        for _ in 0..3 + rng.below(8) {
            out.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(format!("{};\n", rng.below(100_000)).as_bytes());
    }
    out
}

/// Writes the workspace; returns the text files' relative paths.
fn generate(ws: &Path, plan: &Plan) -> BenchResult<(Vec<PathBuf>, u64)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut files = Vec::with_capacity(plan.text_files);
    let mut total = 0u64;
    for index in 0..plan.text_files {
        // Three levels: 10 × 10 × up to 50 files.
        let rel = PathBuf::from(format!(
            "src/m{:02}/s{:02}/file{index:05}.rs",
            index % 10,
            (index / 10) % 10
        ));
        // Sizes from ~100 B to ~8 × the mean, mostly small.
        let size = match rng.below(10) {
            0..=5 => 100 + rng.below(plan.mean_text_bytes as u64 / 2) as usize,
            6..=8 => plan.mean_text_bytes + rng.below(plan.mean_text_bytes as u64) as usize,
            _ => plan.mean_text_bytes * 2 + rng.below(plan.mean_text_bytes as u64 * 6) as usize,
        };
        let path = ws.join(&rel);
        fs::create_dir_all(path.parent().ok_or("no parent")?)?;
        let content = text(&mut rng, size);
        total += content.len() as u64;
        fs::write(&path, content)?;
        files.push(rel);
    }
    for index in 0..plan.binaries {
        let bytes: Vec<u8> = (0..plan.binary_bytes).map(|_| rng.next() as u8).collect();
        total += bytes.len() as u64;
        let path = ws.join(format!("assets/blob{index}.bin"));
        fs::create_dir_all(path.parent().ok_or("no parent")?)?;
        fs::write(path, bytes)?;
    }
    fs::write(ws.join(".gitignore"), "*.log\n/target/\n")?;
    fs::create_dir_all(ws.join("target"))?;
    fs::write(ws.join("target/ignored.log"), "ignored\n")?;
    Ok((files, total))
}

/// The git-CLI shadow repository Cline and Gemini CLI use.
struct Git {
    shadow: PathBuf,
    ws: PathBuf,
    home: PathBuf,
}

impl Git {
    fn new(scratch: &Path, name: &str, ws: &Path) -> BenchResult<Git> {
        let home = scratch.join("home");
        fs::create_dir_all(&home)?;
        fs::write(
            home.join(".gitconfig"),
            "[user]\n\tname = Bench\n\temail = bench@example.com\n[init]\n\tdefaultBranch = main\n[gc]\n\tauto = 0\n",
        )?;
        let git = Git {
            shadow: scratch.join(name),
            ws: ws.to_path_buf(),
            home,
        };
        git.run(&["init", "-q", "--bare", &git.shadow.to_string_lossy()])?;
        Ok(git)
    }

    fn run(&self, args: &[&str]) -> BenchResult<String> {
        let output = Command::new("git")
            .args(args)
            .current_dir(&self.home)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", self.home.join(".gitconfig"))
            .env("LC_ALL", "C")
            .output()?;
        if !output.status.success() {
            return Err(
                format!("git {args:?}: {}", String::from_utf8_lossy(&output.stderr)).into(),
            );
        }
        Ok(String::from_utf8(output.stdout)?.trim().to_string())
    }

    fn dirs(&self) -> [String; 2] {
        [
            format!("--git-dir={}", self.shadow.display()),
            format!("--work-tree={}", self.ws.display()),
        ]
    }

    fn add(&self) -> BenchResult<()> {
        let [git_dir, work_tree] = self.dirs();
        self.run(&[&git_dir, &work_tree, "add", "-A"])?;
        Ok(())
    }

    /// `add -A`, `write-tree`, `commit-tree`: one snapshot; returns the commit.
    fn snapshot(&self) -> BenchResult<String> {
        self.add()?;
        let [git_dir, work_tree] = self.dirs();
        let tree = self.run(&[&git_dir, &work_tree, "write-tree"])?;
        self.run(&[&git_dir, "commit-tree", &tree, "-m", "snapshot"])
    }

    fn checkout(&self, commit: &str) -> BenchResult<()> {
        let [git_dir, work_tree] = self.dirs();
        self.run(&[
            &git_dir, &work_tree, "checkout", "-q", "-f", commit, "--", ".",
        ])?;
        Ok(())
    }
}

/// Flushes the scratch file system, untimed, so no run pays for another's
/// writeback.
fn settle(scratch: &Path) -> BenchResult<()> {
    let dir = File::open(scratch)?;
    rustix::fs::syncfs(&dir)?;
    Ok(())
}

fn timed<T>(f: impl FnOnce() -> BenchResult<T>) -> BenchResult<(Duration, T)> {
    let start = Instant::now();
    let value = f()?;
    Ok((start.elapsed(), value))
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    sorted[(sorted.len() - 1) / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// One compared operation: exo's and git's samples.
struct Pairing {
    key: &'static str,
    label: &'static str,
    target: f64,
    exo: Vec<Duration>,
    git: Vec<Duration>,
}

impl Pairing {
    fn new(key: &'static str, label: &'static str, target: f64) -> Pairing {
        Pairing {
            key,
            label,
            target,
            exo: Vec::new(),
            git: Vec::new(),
        }
    }

    fn ratio(&self) -> f64 {
        ms(median(&self.exo)) / ms(median(&self.git))
    }

    fn to_json(&self) -> Value {
        json!({
            "key": self.key,
            "label": self.label,
            "exo_ms": self.exo.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
            "git_ms": self.git.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
            "exo_median_ms": ms(median(&self.exo)),
            "git_median_ms": ms(median(&self.git)),
            "ratio": self.ratio(),
            "target": {"op": "<=", "value": self.target},
            "pass": self.ratio() <= self.target,
        })
    }
}

/// Appends a line to a text file: a one-line edit, like an agent's.
fn edit(ws: &Path, rel: &Path, stamp: &str) -> BenchResult<()> {
    use std::io::Write;
    let mut file = fs::OpenOptions::new().append(true).open(ws.join(rel))?;
    writeln!(file, "// edit {stamp}")?;
    Ok(())
}

/// Where the JSON results go.
/// Whether `cargo bench` started this (it passes `--bench`).
fn under_cargo_bench() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

fn output_path() -> PathBuf {
    match std::env::var_os("EXO_BENCH_OUT") {
        Some(path) if !path.is_empty() => workspace_root().join(path),
        _ => target_dir().join("bench").join("snapshot.json"),
    }
}

fn target_dir() -> PathBuf {
    fn from_exe() -> Option<PathBuf> {
        let exe = std::env::current_exe().ok()?;
        let deps = exe.parent()?;
        if deps.file_name()? != "deps" {
            return None;
        }
        deps.parent()?.parent().map(Path::to_path_buf)
    }
    from_exe().unwrap_or_else(|| workspace_root().join("target"))
}

/// The workspace root; cargo runs benches from the package's directory.
fn workspace_root() -> PathBuf {
    let package = Path::new(env!("CARGO_MANIFEST_DIR"));
    package.ancestors().nth(2).unwrap_or(package).to_path_buf()
}

fn main() -> BenchResult<()> {
    let plan = Plan::from_env();
    let scratch_root = match std::env::var_os("EXO_BENCH_TMP") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => target_dir().join("bench-tmp"),
    };
    fs::create_dir_all(&scratch_root)?;
    let tmp = tempfile::Builder::new()
        .prefix("snapshot-")
        .tempdir_in(&scratch_root)?;
    let scratch = tmp.path().to_path_buf();
    let ws = scratch.join("ws");
    fs::create_dir_all(&ws)?;
    eprintln!("generating the workspace in {}", ws.display());
    let (files, total_bytes) = generate(&ws, &plan)?;
    let git_version = Command::new("git").arg("--version").output()?.stdout;
    let git_version = String::from_utf8_lossy(&git_version).trim().to_string();
    settle(&scratch)?;

    // 1. First snapshot, fresh shadows each run.
    let mut first = Pairing::new("first_snapshot", "first snapshot", 1.0);
    for run in 0..plan.runs {
        eprintln!("first snapshot, run {}", run + 1);
        let exo_root = scratch.join(format!("exo-first-{run}"));
        let git = Git::new(&scratch, &format!("git-first-{run}.git"), &ws)?;
        let mut shadow = Shadow::open(&exo_root, &ws, Options::default())?;
        let mut exo_once = || -> BenchResult<()> {
            settle(&scratch)?;
            let (elapsed, _) = timed(|| Ok(shadow.snapshot(ScanHint::Full)?))?;
            first.exo.push(elapsed);
            Ok(())
        };
        if run % 2 == 0 {
            exo_once()?;
            settle(&scratch)?;
            first.git.push(timed(|| git.snapshot())?.0);
        } else {
            settle(&scratch)?;
            first.git.push(timed(|| git.snapshot())?.0);
            exo_once()?;
        }
        // The stores stay until the end: deleting thousands of files here
        // would slow the next run down (on file systems that discard freed
        // blocks) and penalize git, which has many more files.
        drop(shadow);
    }

    // The long-lived pair for the incremental series.
    let exo_root = scratch.join("exo");
    let git = Git::new(&scratch, "git-shadow.git", &ws)?;
    let mut watcher = Watcher::new(&ws, &exo_root)?;
    let mut shadow = Shadow::open(&exo_root, &ws, Options::default())?;
    let hint = watcher.take_hint();
    shadow.snapshot(hint)?;
    git.snapshot()?;

    // 2. One file changed.
    let mut one = Pairing::new("one_file", "1 file changed (watcher hint)", 0.5);
    for run in 0..plan.runs {
        let rel = &files[(run * 997) % files.len()];
        edit(&ws, rel, &format!("one {run}"))?;
        settle(&scratch)?;
        let exo_time = |shadow: &mut Shadow, watcher: &mut Watcher| -> BenchResult<Duration> {
            let (elapsed, snapshot) = timed(|| {
                let hint = watcher.take_hint();
                Ok(shadow.snapshot(hint)?)
            })?;
            assert!(
                !snapshot.full_scan,
                "a hinted snapshot fell back to a full scan"
            );
            assert_eq!(snapshot.modified, 1);
            Ok(elapsed)
        };
        if run % 2 == 0 {
            one.exo.push(exo_time(&mut shadow, &mut watcher)?);
            settle(&scratch)?;
            one.git.push(timed(|| git.snapshot())?.0);
        } else {
            one.git.push(timed(|| git.snapshot())?.0);
            settle(&scratch)?;
            one.exo.push(exo_time(&mut shadow, &mut watcher)?);
        }
    }

    // 3. Many files changed.
    let mut many = Pairing::new("many_files", "100 files changed (watcher hint)", 1.0);
    let stride = files.len() / plan.many;
    for run in 0..plan.runs {
        for index in 0..plan.many {
            edit(
                &ws,
                &files[(index * stride + run) % files.len()],
                &format!("many {run}"),
            )?;
        }
        settle(&scratch)?;
        let exo_time = |shadow: &mut Shadow, watcher: &mut Watcher| -> BenchResult<Duration> {
            let (elapsed, snapshot) = timed(|| {
                let hint = watcher.take_hint();
                Ok(shadow.snapshot(hint)?)
            })?;
            assert!(!snapshot.full_scan);
            assert_eq!(snapshot.modified, plan.many as u64);
            Ok(elapsed)
        };
        if run % 2 == 0 {
            many.exo.push(exo_time(&mut shadow, &mut watcher)?);
            settle(&scratch)?;
            many.git.push(timed(|| git.snapshot())?.0);
        } else {
            many.git.push(timed(|| git.snapshot())?.0);
            settle(&scratch)?;
            many.exo.push(exo_time(&mut shadow, &mut watcher)?);
        }
    }

    // 4. Restore 100 files: from B (now) back to A (100 files earlier).
    let before_a = shadow.snapshot(watcher.take_hint())?.commit;
    let git_a = git.snapshot()?;
    for index in 0..plan.many {
        edit(&ws, &files[(index * stride + 7) % files.len()], "restore")?;
    }
    let exo_b = shadow.snapshot(watcher.take_hint())?.commit;
    git.snapshot()?;
    let force = RestoreOptions {
        force: true,
        ..RestoreOptions::default()
    };
    let mut restore = Pairing::new("restore", "restore 100 files", 1.5);
    for run in 0..plan.runs {
        // Back at B, both sides knowing it.
        let back_at_b = |shadow: &mut Shadow| -> BenchResult<()> {
            shadow.restore(&exo_b, None, force)?;
            git.add()?;
            settle(&scratch)?;
            Ok(())
        };
        let exo_time = |shadow: &mut Shadow| -> BenchResult<Duration> {
            let (elapsed, report) = timed(|| {
                Ok(shadow.restore(&before_a, Some(&exo_b), RestoreOptions::default())?)
            })?;
            assert_eq!(report.changes.len(), plan.many);
            Ok(elapsed)
        };
        back_at_b(&mut shadow)?;
        if run % 2 == 0 {
            restore.exo.push(exo_time(&mut shadow)?);
            back_at_b(&mut shadow)?;
            restore.git.push(timed(|| git.checkout(&git_a))?.0);
        } else {
            restore.git.push(timed(|| git.checkout(&git_a))?.0);
            back_at_b(&mut shadow)?;
            restore.exo.push(exo_time(&mut shadow)?);
        }
    }
    // Leave the hint stream consistent (restores wrote files).
    let _ = watcher.take_hint();

    let shadow_bytes = dir_size(shadow.dir());
    let git_bytes = dir_size(&git.shadow);
    let gc_start = Instant::now();
    let gc = shadow.gc(std::slice::from_ref(&before_a))?;
    let gc_time = gc_start.elapsed();

    // Report.
    let pairings = [&first, &one, &many, &restore];
    let mode = if plan.quick { "quick" } else { "full" };
    println!();
    println!(
        "exo-snapshot benchmark ({mode}: {} text files + {} binaries, {:.1} MiB; {} runs each; {git_version})",
        plan.text_files,
        plan.binaries,
        total_bytes as f64 / (1 << 20) as f64,
        plan.runs
    );
    println!(
        "{:<34} {:>12} {:>12} {:>9} {:>8}  result",
        "operation", "exo median", "git median", "exo/git", "target"
    );
    println!("{}", "-".repeat(34 + 12 + 12 + 9 + 8 + 12));
    for pairing in pairings {
        let ratio = pairing.ratio();
        println!(
            "{:<34} {:>9.1} ms {:>9.1} ms {:>8.2}x {:>7}x  {}",
            pairing.label,
            ms(median(&pairing.exo)),
            ms(median(&pairing.git)),
            ratio,
            format!("<={}", pairing.target),
            if ratio <= pairing.target {
                "PASS"
            } else {
                "MISS"
            }
        );
    }
    println!(
        "store size after the series: exo {:.1} MiB, git {:.1} MiB (loose objects); exo gc keeping one snapshot: {:.0} ms, {:.1} MiB freed",
        shadow_bytes as f64 / (1 << 20) as f64,
        git_bytes as f64 / (1 << 20) as f64,
        ms(gc_time),
        gc.bytes_freed as f64 / (1 << 20) as f64
    );
    let met = pairings.iter().filter(|p| p.ratio() <= p.target).count();
    println!("{met} of {} targets met", pairings.len());

    let unix_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let report = json!({
        "bench": "snapshot",
        "mode": mode,
        "unix_time": unix_time,
        "git_version": git_version,
        "workspace": {
            "text_files": plan.text_files,
            "binaries": plan.binaries,
            "bytes": total_bytes,
        },
        "runs": plan.runs,
        "results": pairings.iter().map(|p| p.to_json()).collect::<Vec<_>>(),
        "store_bytes": {"exo": shadow_bytes, "git": git_bytes},
        "gc": {
            "ms": ms(gc_time),
            "objects_before": gc.objects_before,
            "objects_after": gc.objects_after,
            "bytes_freed": gc.bytes_freed,
        },
    });
    // A smoke run under `cargo test` keeps earlier results unless asked to
    // write (EXO_BENCH_OUT).
    if under_cargo_bench() || std::env::var_os("EXO_BENCH_OUT").is_some() {
        let out = output_path();
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")?;
        println!("results written to {}", out.display());
    }
    drop(watcher);
    drop(shadow);
    tmp.close()?;
    Ok(())
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries.flatten() {
        match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => total += dir_size(&entry.path()),
            Ok(metadata) => total += metadata.len(),
            Err(_) => {}
        }
    }
    total
}
