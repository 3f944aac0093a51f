//! Killing real indexing processes to prove the batch protocol: `kill -9` at random moments
//! while files are edited, then checks that nothing committed was lost or doubled (issue 15,
//! item 5). `cargo test` runs 20 rounds (crates/cli/tests), `quarry bench index --torture` 200.
//!
//! Each round starts the indexing command on a fixture folder, edits files while it runs
//! (appends, rewrites, deletions, new files), kills it with SIGKILL after a random delay,
//! stops editing and runs [`Library::check`]: the index opens, every indexed file's chunks are
//! there exactly once with the text that was read, no batch is left open. After the rounds, one
//! run must finish, and its result must equal a clean build of the same folder in a fresh data
//! directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::Library;

/// Builds the indexing command for (folder, data dir).
pub type IndexCommand = Box<dyn Fn(&Path, &Path) -> Command + Sync>;

/// How to torture.
pub struct TortureOptions {
    pub rounds: usize,
    pub seed: u64,
    /// Where the fixture and data directories go (emptied first).
    pub work: PathBuf,
    /// Real documents (PDF, DOCX, ...) to copy into the fixture, so pages go through the
    /// extraction worker too.
    pub documents: Vec<PathBuf>,
    /// The indexing command for (folder, data dir): it must index the folder into a
    /// collection named [`COLLECTION`] of that data dir and exit 0 when done.
    pub command: IndexCommand,
}

/// The collection the command indexes into.
pub const COLLECTION: &str = "torture";

/// What the rounds did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TortureReport {
    pub rounds: usize,
    /// Rounds whose process was killed before it finished.
    pub killed: usize,
    /// Rounds whose process finished before its kill came.
    pub finished: usize,
    pub edits: usize,
    /// Files of the final folder.
    pub files: usize,
    /// Milliseconds a clean build of the first fixture took (the kills fall within it).
    pub clean_build_ms: u64,
    pub seconds: f64,
}

/// splitmix64: reproducible from the seed, and no dependency for a test harness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const WORDS: &[&str] = &[
    "indemnity",
    "warranty",
    "licensor",
    "termination",
    "audit",
    "invoice",
    "quarterly",
    "revenue",
    "clause",
    "liability",
    "governing",
    "confidential",
    "escrow",
    "renewal",
    "schedule",
    "exhibit",
    "payment",
    "notice",
];

fn text(rng: &mut Rng, bytes: usize, tag: u64) -> String {
    let mut s = String::with_capacity(bytes + 80);
    let mut line = 0u64;
    while s.len() < bytes {
        line += 1;
        s.push_str(&format!("{tag}-{line}:"));
        for _ in 0..(4 + rng.below(12)) {
            s.push(' ');
            s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        }
        s.push('\n');
    }
    s
}

/// Writes the fixture: nested text files of many sizes (a few of several chunks), the given
/// documents, and an ignored and a hidden file that must never be indexed.
fn fixture(dir: &Path, rng: &mut Rng, documents: &[PathBuf]) -> std::io::Result<()> {
    for i in 0..120u64 {
        let sub = dir.join(format!("d{}", i % 6)).join(format!("e{}", i % 3));
        std::fs::create_dir_all(&sub)?;
        let size = match i % 40 {
            0 => 300_000 + rng.below(200_000) as usize,
            _ => 200 + rng.below(24_000) as usize,
        };
        std::fs::write(sub.join(format!("f{i}.txt")), text(rng, size, i))?;
    }
    for d in documents {
        if let Some(name) = d.file_name() {
            std::fs::copy(d, dir.join(name))?;
        }
    }
    std::fs::write(dir.join(".gitignore"), "ignored.log\n")?;
    std::fs::write(dir.join("ignored.log"), "never indexed\n")?;
    std::fs::write(dir.join(".hidden.txt"), "never indexed\n")?;
    Ok(())
}

/// Every `.txt` file under `dir`.
fn text_files(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                text_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "txt") && !p.starts_with(dir.join(".hidden.txt")) {
                out.push(p);
            }
        }
    }
}

/// One random edit of the fixture.
fn edit(dir: &Path, rng: &mut Rng, serial: u64) -> std::io::Result<()> {
    let mut files = Vec::new();
    text_files(dir, &mut files);
    files.sort();
    if files.is_empty() {
        return Ok(());
    }
    let f = &files[rng.below(files.len() as u64) as usize];
    match rng.below(10) {
        0..=3 => {
            use std::io::Write;
            let mut h = std::fs::OpenOptions::new().append(true).open(f)?;
            h.write_all(text(rng, 200, 10_000 + serial).as_bytes())
        }
        4..=5 => {
            let size = 500 + rng.below(20_000) as usize;
            std::fs::write(f, text(rng, size, 20_000 + serial))
        }
        6 => std::fs::remove_file(f),
        _ => std::fs::write(dir.join(format!("d{}/new{serial}.txt", serial % 6)), text(rng, 3_000, 30_000 + serial)),
    }
}

fn run_to_end(command: &dyn Fn(&Path, &Path) -> Command, folder: &Path, data: &Path) -> Result<Duration, String> {
    let started = Instant::now();
    let out = command(folder, data).output().map_err(|e| format!("the indexing command could not start: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the indexing command failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        ));
    }
    Ok(started.elapsed())
}

fn check(data: &Path, round: usize) -> Result<Library, String> {
    let mut library = Library::open(data).map_err(|e| format!("round {round}: the catalog does not open: {e}"))?;
    let Some(row) = library.catalog().collection(COLLECTION).map_err(|e| format!("round {round}: {e}"))? else {
        // Killed before the collection was added: nothing to check yet.
        return Ok(library);
    };
    let problems = library.check(&row).map_err(|e| {
        let holders = match &e {
            crate::Error::Locked { path } => {
                format!(" (held by {:?})", lock_holders(&path.join(".tantivy-writer.lock")))
            }
            _ => String::new(),
        };
        format!("round {round}: the index does not open: {e}{holders}")
    })?;
    if !problems.is_empty() {
        return Err(format!("round {round}: {}", problems.join("; ")));
    }
    Ok(library)
}

/// Runs the rounds; `Err` names the first round whose check failed and what it found.
pub fn run(options: &TortureOptions, progress: &mut dyn FnMut(&str)) -> Result<TortureReport, String> {
    let started = Instant::now();
    let io = |e: std::io::Error| format!("the fixture could not be written: {e}");
    let _ = std::fs::remove_dir_all(&options.work);
    let folder = options.work.join("folder");
    let data = options.work.join("data");
    std::fs::create_dir_all(&folder).map_err(io)?;
    let mut rng = Rng(options.seed);
    fixture(&folder, &mut rng, &options.documents).map_err(io)?;

    let calibration = options.work.join("calibration");
    let clean = run_to_end(&*options.command, &folder, &calibration)?;
    let _ = std::fs::remove_dir_all(&calibration);
    let mut window_ms = (clean.as_millis() as u64).max(50);
    let mut report = TortureReport { rounds: options.rounds, clean_build_ms: window_ms, ..Default::default() };
    progress(&format!("clean build: {window_ms} ms; {} rounds of kill -9 within it", options.rounds));

    for round in 1..=options.rounds {
        // Work for this run beyond the edits made while it runs: without it, a run after the
        // first has little to do and often finishes before its kill.
        for k in 0..(10 + rng.below(20)) {
            if edit(&folder, &mut rng, round as u64 * 1_000 + 500 + k).is_ok() {
                report.edits += 1;
            }
        }
        let mut child = (options.command)(&folder, &data)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("round {round}: the indexing command could not start: {e}"))?;
        let delay = Duration::from_millis(rng.below(window_ms * 3 / 4 + 1));
        let stop = AtomicBool::new(false);
        let edits = AtomicUsize::new(0);
        let edit_seed = rng.next();
        let serial_base = round as u64 * 1_000;
        let finished_after = std::thread::scope(|s| {
            s.spawn(|| {
                let mut r = Rng(edit_seed);
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5 + r.below(40)));
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if edit(&folder, &mut r, serial_base + n).is_ok() {
                        edits.fetch_add(1, Ordering::SeqCst);
                    }
                    n += 1;
                }
            });
            // Until the kill is due, or the run ends first.
            let spawned = Instant::now();
            let mut finished_after = None;
            while spawned.elapsed() < delay {
                if let Ok(Some(_)) = child.try_wait() {
                    finished_after = Some(spawned.elapsed());
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            stop.store(true, Ordering::SeqCst);
            finished_after
        });
        match finished_after {
            None => {
                let _ = child.kill(); // SIGKILL
                report.killed += 1;
            }
            Some(took) => {
                // A resumed run has less to do than the clean build: aim the next kills within
                // the runs as they are now.
                window_ms = ((window_ms + took.as_millis() as u64) / 2).max(50);
                report.finished += 1;
            }
        }
        report.edits += edits.load(Ordering::SeqCst);
        let _ = child.wait();
        check(&data, round)?;
        if round % 10 == 0 || round == options.rounds {
            progress(&format!(
                "round {round}: {} killed, {} finished, {} edits; consistent",
                report.killed, report.finished, report.edits
            ));
        }
    }

    // The run completes, and equals a clean build.
    run_to_end(&*options.command, &folder, &data)?;
    let library = check(&data, options.rounds + 1)?;
    let row = library.get(COLLECTION).map_err(|e| e.to_string())?;
    let status = library.status(&row).map_err(|e| e.to_string())?;
    if status.pending > 0 {
        return Err(format!("after the final run {} files are still pending", status.pending));
    }
    let resumed = library.snapshot(&row).map_err(|e| e.to_string())?;
    let fresh_data = options.work.join("fresh");
    run_to_end(&*options.command, &folder, &fresh_data)?;
    let fresh_library = Library::open(&fresh_data).map_err(|e| e.to_string())?;
    let fresh_row = fresh_library.get(COLLECTION).map_err(|e| e.to_string())?;
    let fresh = fresh_library.snapshot(&fresh_row).map_err(|e| e.to_string())?;
    if resumed != fresh {
        let paths = |s: &[super::FileSnapshot]| s.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
        let diff = resumed
            .iter()
            .zip(&fresh)
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("first difference at {} / {}", a.path, b.path))
            .unwrap_or_else(|| {
                format!(
                    "{} files against {} ({:?} vs {:?})",
                    resumed.len(),
                    fresh.len(),
                    paths(&resumed).len(),
                    paths(&fresh).len()
                )
            });
        return Err(format!("the resumed index differs from a clean build: {diff}"));
    }
    if let Some(f) = resumed.iter().find(|f| f.path == ".hidden.txt" || f.path == "ignored.log") {
        return Err(format!("{} was indexed, yet it is hidden or ignored", f.path));
    }
    report.files = resumed.len();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The processes holding `path` open (from /proc), with their command lines.
fn lock_holders(path: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    for p in procs.flatten() {
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        if fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == path)) {
            let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            out.push(format!(
                "{}: {}",
                p.file_name().to_string_lossy(),
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            ));
        }
    }
    out
}
