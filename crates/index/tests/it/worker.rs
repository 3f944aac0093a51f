//! The confined worker (issue 14, item 2): what it may touch, and how a file that kills or
//! stalls it costs that file only.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use quarry_index::extract::Extractor;
use quarry_index::Error;

use crate::common::{self, show, write_pdf};
use crate::hostile::{flate_bomb, nested_pdf};

#[test]
fn the_worker_is_confined_to_its_inputs() {
    let inside = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(inside.path().join("a.txt"), "inside\n").unwrap();
    std::fs::write(outside.path().join("b.txt"), "outside\n").unwrap();
    std::os::unix::fs::symlink(outside.path().join("b.txt"), inside.path().join("link.txt")).unwrap();
    let mut ex = common::extractor(&[inside.path()]);
    for m in ["landlock", "seccomp", "rlimits"] {
        assert!(ex.info().active.iter().any(|a| a == m), "{:?}", ex.info());
    }
    assert!(ex.info().missing.is_empty(), "{:?}", ex.info());
    assert_eq!(ex.extract(&inside.path().join("a.txt"), &mut |_| {}).unwrap().text(), "inside\n");
    let denied = "permission denied: the file may not be read (check its permissions)";
    for path in [outside.path().join("b.txt"), inside.path().join("link.txt"), PathBuf::from("/etc/passwd")] {
        match ex.extract(&path, &mut |_| {}) {
            Err(Error::Unreadable { reason, .. }) => assert_eq!(reason, denied, "{}", path.display()),
            other => panic!("{} was read: {other:?}", path.display()),
        }
    }
    assert_eq!(ex.restarts(), 0);
}

#[test]
fn without_the_sandbox_it_refuses_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(&[dir.path()]);
    config.pretend_unavailable = vec!["landlock".into()];
    let err = Extractor::new(config.clone()).err().expect("refused").to_string();
    assert!(
        err.contains("landlock: unavailable (pretend)") && err.contains("refusing to run document parsers"),
        "{err}"
    );
    config.allow_unconfined = true;
    let ex = Extractor::new(config).unwrap();
    assert_eq!(ex.info().missing, ["landlock: unavailable (pretend)"]);
}

/// A stack overflow (pdf_oxide on 100,000 nested arrays, on a small stack and without PDFium)
/// kills the worker; that file gets the reason, the next file is read by a new worker.
#[test]
fn a_crash_costs_one_file_and_the_worker_restarts() {
    let dir = tempfile::tempdir().unwrap();
    nested_pdf(&dir.path().join("nested.pdf"), 100_000);
    write_pdf(&dir.path().join("fine.pdf"), &show("Still here"), "", None);
    let mut config = common::config(&[dir.path()]);
    config.pdfium = Some("/nonexistent/libpdfium.so".into());
    config.limits.stack_bytes = 256 << 10;
    let mut ex = Extractor::new(config).unwrap();
    assert!(ex.info().pdfium.is_none());
    let mut events = Vec::new();
    let err = ex.extract(&dir.path().join("nested.pdf"), &mut |e| events.push(e)).unwrap_err().to_string();
    assert!(err.ends_with("the extractor overflowed its stack on this file (nesting too deep)"), "{err}");
    assert_eq!(events.len(), 1, "{events:?}");
    let fine = ex.extract(&dir.path().join("fine.pdf"), &mut |_| {}).unwrap();
    assert_eq!(fine.text(), "Still here\n");
    assert_eq!(fine.extractor, "pdf_oxide 0.3");
    assert!(fine.warnings[0].starts_with("PDFium is not installed"), "{:?}", fine.warnings);
    assert_eq!(ex.restarts(), 1);
}

#[test]
fn a_file_past_the_time_limit_is_stopped_and_cancel_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.pdf");
    flate_bomb(&bomb, 400 << 20);
    write_pdf(&dir.path().join("fine.pdf"), &show("After the bomb"), "", None);
    let mut config = common::config(&[dir.path()]);
    config.timeout = Duration::from_secs(1);
    let mut ex = Extractor::new(config).unwrap();
    let started = Instant::now();
    let err = ex.extract(&bomb, &mut |_| {}).unwrap_err().to_string();
    assert!(err.ends_with("took longer than 1 s; the extractor was stopped"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    assert_eq!(ex.extract(&dir.path().join("fine.pdf"), &mut |_| {}).unwrap().text(), "After the bomb\n");

    let mut ex = common::extractor(&[dir.path()]);
    let token = ex.cancel_token();
    let started = Instant::now();
    let err = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            token.cancel();
        });
        ex.extract(&bomb, &mut |_| {}).unwrap_err()
    });
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    token.reset();
    assert_eq!(ex.extract(&dir.path().join("fine.pdf"), &mut |_| {}).unwrap().text(), "After the bomb\n");
}
