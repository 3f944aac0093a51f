//! The extraction worker (`quarry worker extract`, or this crate's `quarry-extract-worker`):
//! reads one file per request and answers with its [`Extracted`] or a reason.
//!
//! Start-up, in this order (the reasons are `quarry-sandbox`'s crate docs):
//! 1. die with the host (`PR_SET_PDEATHSIG`); protocol descriptors above fd 100, fds 0 and 1 on
//!    `/dev/null`, so a library printing to stdout cannot corrupt the protocol;
//! 2. read the start message; load PDFium (a `dlopen` needs the library's file);
//! 3. confine: user + network namespace (or, as root without one, drop every capability, so a
//!    `chmod 000` file is unreadable to root's worker too), rlimits (address space, file size,
//!    descriptors, no core dumps), Landlock (read-only the inputs, read-write the scratch folder,
//!    nothing else), seccomp (no `execve`, no new processes, no sockets);
//! 4. only then start the extraction thread, with a large stack (see [`Limits::stack_bytes`]).
//!
//! A crash, an abort on a failed allocation, a stack overflow or a hang ends this process, not
//! the app; the host gives that file a reason and starts a new worker.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};

use super::protocol::{Limits, Reply, Request, WorkerConfig, PROTOCOL_VERSION};
use super::{extract_file, pdf, pdfium, Unreadable};

/// The worker's entry point. Never returns: the process ends with `_exit`.
pub fn main() -> ! {
    let code = match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("quarry worker extract: {e}");
            2
        }
    };
    unsafe { libc::_exit(code) }
}

fn send(out: &mut File, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).expect("replies serialize");
    line.push(b'\n');
    out.write_all(&line)
}

fn run() -> Result<(), String> {
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if unsafe { libc::getppid() } == 1 {
        return Err("the host is already gone".into());
    }
    let (input, mut output) = quarry_sandbox::take_protocol_fds().map_err(|e| format!("protocol descriptors: {e}"))?;
    let mut reader = BufReader::new(input);
    let mut first = String::new();
    reader.read_line(&mut first).map_err(|e| format!("reading the start message: {e}"))?;
    if first.is_empty() {
        return Ok(());
    }
    let config: WorkerConfig = match serde_json::from_str::<Request>(&first) {
        Ok(Request::Start { protocol, config }) if protocol == PROTOCOL_VERSION => config,
        Ok(Request::Start { protocol, .. }) => {
            let message = format!("protocol version {protocol} requested, this worker speaks {PROTOCOL_VERSION}");
            let _ = send(&mut output, &Reply::Refused { message: message.clone() });
            return Err(message);
        }
        _ => return Err(format!("expected a start message, got {:?}", first.trim_end())),
    };

    let engine = match &config.pdfium {
        Some(p) => pdfium::Engine::load(&p.0),
        None => Err(config.pdfium_missing.clone().unwrap_or_else(|| "PDFium is not installed".into())),
    };

    let limits: Limits = config.limits;
    let confinement = quarry_sandbox::confine(&quarry_sandbox::Policy {
        read_only: config.readable.iter().map(|p| p.0.clone()).collect(),
        scratch: config.scratch.0.clone(),
        limits: quarry_sandbox::Limits {
            memory_bytes: limits.memory_bytes,
            cpu_seconds: 24 * 3600,
            file_size_bytes: limits.file_size_bytes,
            open_files: limits.open_files,
        },
        allow_unconfined: config.allow_unconfined,
        pretend_unavailable: config.pretend_unavailable.clone(),
        protects: "document parsers on these files".into(),
    });
    let confinement = match confinement {
        Ok(c) => c,
        Err(message) => {
            let _ = send(&mut output, &Reply::Refused { message: message.clone() });
            return Err(message);
        }
    };
    send(
        &mut output,
        &Reply::Ready {
            protocol: PROTOCOL_VERSION,
            pid: std::process::id(),
            active: confinement.active,
            missing: confinement.missing,
            pdfium: engine.as_ref().map(|e| e.name.clone()).map_err(|e| e.clone()),
        },
    )
    .map_err(|e| format!("announcing readiness: {e}"))?;

    // Only now may threads exist (unshare needed a single-threaded process).
    let handle = std::thread::Builder::new()
        .name("extract".into())
        .stack_size(limits.stack_bytes as usize)
        .spawn(move || serve(reader, output, engine.ok()))
        .map_err(|e| format!("starting the extraction thread: {e}"))?;
    handle.join().map_err(|_| "the extraction thread panicked".to_string())?
}

fn serve(mut reader: BufReader<File>, mut output: File, engine: Option<pdfium::Engine>) -> Result<(), String> {
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading a request: {e}")),
        }
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(Request::Extract { id, path, options }) => match extract_file(&path.0, &options, engine.as_ref()) {
                Ok(result) => Reply::Extracted { id, result: Box::new(result) },
                Err(Unreadable(reason)) => Reply::Unreadable { id, reason },
            },
            Ok(Request::Render { id, path, page, dpi, out }) => {
                match render(&path.0, page, dpi, &out.0, engine.as_ref()) {
                    Ok((width, height)) => Reply::Rendered { id, width, height },
                    Err(Unreadable(reason)) => Reply::Unreadable { id, reason },
                }
            }
            Ok(Request::Start { .. }) => continue,
            Err(e) => return Err(format!("a malformed request: {e}")),
        };
        send(&mut output, &reply).map_err(|e| format!("answering: {e}"))?;
    }
}

fn render(
    path: &std::path::Path,
    page: u32,
    dpi: u32,
    out: &std::path::Path,
    engine: Option<&pdfium::Engine>,
) -> Result<(u32, u32), Unreadable> {
    let engine = engine.ok_or_else(|| Unreadable::new("scanned pages need PDFium to be rendered for OCR"))?;
    let bytes = std::fs::read(path).map_err(|e| super::io_reason(&e))?;
    let (w, h, gray) = pdf::render_gray(engine, &bytes, page, dpi, super::ocr::MAX_PIXELS)?;
    super::ocr::write_pgm(out, w, h, &gray)
        .map_err(|e| Unreadable::new(format!("the rendered page could not be written: {e}")))?;
    Ok((w, h))
}
