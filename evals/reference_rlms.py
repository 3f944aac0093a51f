#!/usr/bin/env python3
"""Run the reference Recursive Language Model implementation on evalkit tasks.

What it is
----------
A benchmark driver that answers evalkit tasks (format: the evaluation kit's README) with
the *reference* RLM implementation of arXiv 2512.24601 -- the `rlms` package on PyPI
(import name `rlm`, by the paper's authors) -- while the language models behind it are
served by `quarry serve` (OpenAI-compatible).  Quarry's own loop (`quarry eval`) and
the reference loop then run on the same engine, the same GGUF weights and the same
tasks, so the two loops can be compared like with like.

Pinned reference: rlms==0.1.3 (the version this driver was written against and tested
with; its API -- RLM(backend=..., backend_kwargs=..., other_backends=...,
other_backend_kwargs=..., max_iterations=..., max_depth=..., logger=RLMLogger()) and
RLM.completion(prompt, root_prompt=...) -> RLMChatCompletion -- was read from its source).

Setup (once)
------------
    python3 -m venv .cache/venv-rlms
    .cache/venv-rlms/bin/pip install rlms==0.1.3

This script itself needs only the standard library: it runs each task in a worker
process started with the venv's interpreter (`--python`, default
.cache/venv-rlms/bin/python when it exists, else the current interpreter), so it
can be invoked with the system `python3`.

Invocation
----------
    python3 evals/reference_rlms.py TASKS.jsonl --out PRED.jsonl \
        [--kinds sniah,oolong] [--sizes 8k] [--limit N] [--ids a,b] \
        [--serve | --base-url URL [--api-key K]] \
        [--root-model qwen2.5-coder-1.5b-instruct-q4_k_m] \
        [--sub-model qwen2.5-coder-0.5b-instruct-q4_k_m] \
        [--max-iterations 12] [--max-depth 1] [--task-timeout 900] \
        [--quarry-bin target/release/quarry] [--slots 4] [--ctx 8192] \
        [--log-dir DIR] [--verbose] [--retry-errors]
    python3 $EVALKIT/evalkit.py score --tasks TASKS.jsonl --pred PRED.jsonl

Without --base-url, --serve is implied: the script starts
`QUARRY_BIN serve --model ROOT --model SUB --port 0 --slots 4 --ctx 8192` (QUARRY_MODELS_DIR
and QUARRY_API_KEY are inherited from the environment), reads its one-line ready event
`{"event":"ready","port":...,"models":[...]}` from stdout, checks that both model names are
served (quarry answers an unknown model name with its first model, so a typo would otherwise
go unnoticed), and stops it with SIGTERM at the end.  Ids already in --out are skipped
(resume); --retry-errors re-runs those whose line carries an "error".

How the reference is configured (all from the rlms 0.1.3 source)
-----------------------------------------------------------------
* root model: backend "openai", backend_kwargs {model_name: ROOT, base_url: URL/v1, api_key}.
  The OpenAI client needs some key; a dummy one is used when none is given (quarry serve does
  not require a key on loopback).
* sub model: other_backends=["openai"], other_backend_kwargs=[{model_name: SUB, ...}].  The
  package routes every REPL `llm_query`/`llm_query_batched` call (environment depth 1) to this
  client.  With the default max_depth=1 `rlm_query` falls back to `llm_query`, as in the paper's
  depth-1 setup.
* max_iterations=--max-iterations (default 12, as Quarry; the package default is 30); when the
  loop runs out the package asks the root model once more for a final answer.
* environment "local" (in-process exec REPL), the package's default system prompt
  (RLM_SYSTEM_PROMPT + ORCHESTRATOR_ADDENDUM, untouched), no sampling arguments (server
  defaults), no max_tokens/max_timeout/max_errors limits inside the package.
* the package's RLMLogger (in memory) captures the trajectory; with --log-dir it is written to
  DIR/<id>.json (iterations, code, REPL output, sub-calls).

How the context is handed over
------------------------------
RLM.completion(prompt, root_prompt) accepts `prompt` as str, dict or list (QueryMetadata and
LocalREPL.add_context): a str is loaded into the REPL variable `context` as text, a list/dict via
JSON.  Every file of the task folder is read (recursively, sorted by relative POSIX path, UTF-8
with replacement) and the context is a **list of strings, one per file, each starting with a
header line `=== <relative path> ===`** followed by the file's text.  The question goes in as
`root_prompt`, which the package shows the root model as "Answer the following: <question>" in
the first user message (the documents themselves are only in the REPL).

Output
------
One JSON line per task: {"id", "answer", "seconds", "tokens"} plus diagnostics: "error" (on
timeout/exception; answer is then ""), "iterations" (root turns), "sub_calls" (llm_query calls
issued from the REPL), "finished" (true when the model set answer["ready"], false when the
package's out-of-iterations default answer was used), "usage" (calls/tokens per model name as
counted by this driver), "rlms_version".  `seconds` is the wall time of the whole completion
(including starting the REPL); `tokens` is prompt+completion tokens of every chat completion
sent to the server for the task, counted by wrapping the package's usage tracker (the package's
own usage summary merges per-model dicts by model name, so it under-counts when root and sub
are the same model).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_VENV_PY = REPO / ".cache/venv-rlms/bin/python"
DEFAULT_ROOT = "qwen2.5-coder-1.5b-instruct-q4_k_m"
DEFAULT_SUB = "qwen2.5-coder-0.5b-instruct-q4_k_m"
DUMMY_KEY = "sk-quarry-local"


# --------------------------------------------------------------------------------------
# context building (shared by parent and worker; stdlib only)
# --------------------------------------------------------------------------------------

def read_context(folder: Path) -> list[str]:
    """Every file under `folder`, sorted by relative path, as `=== rel ===\\n<text>` strings."""
    files = sorted(
        (p for p in folder.rglob("*") if p.is_file()),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
    docs = []
    for p in files:
        rel = p.relative_to(folder).as_posix()
        text = p.read_bytes().decode("utf-8", errors="replace")
        docs.append(f"=== {rel} ===\n{text}")
    return docs


# --------------------------------------------------------------------------------------
# worker: runs one task with the rlms package (invoked with the venv's interpreter)
# --------------------------------------------------------------------------------------

def worker_main(job_path: str, result_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    out: dict = {"id": job["id"]}

    def write():
        tmp = result_path + ".tmp"
        Path(tmp).write_text(json.dumps(out))
        os.replace(tmp, result_path)

    try:
        from importlib.metadata import version

        import rlm.clients.openai as rlm_openai
        from rlm import RLM
        from rlm.logger import RLMLogger
    except Exception as e:  # pragma: no cover - environment problem
        out["error"] = f"cannot import rlms: {e!r} (python {sys.executable})"
        write()
        return 2

    out["rlms_version"] = version("rlms")

    # Count every chat completion's usage (root, sub, batched, default answer) per model.
    # This wraps the package's own tracker; it does not change what the package does.
    usage: dict[str, dict[str, int]] = {}
    lock = threading.Lock()
    orig_track = rlm_openai.OpenAIClient._track_cost

    def counting_track(self, response, model):
        u = getattr(response, "usage", None)
        if u is not None:
            with lock:
                d = usage.setdefault(model, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0})
                d["calls"] += 1
                d["prompt_tokens"] += int(getattr(u, "prompt_tokens", 0) or 0)
                d["completion_tokens"] += int(getattr(u, "completion_tokens", 0) or 0)
        return orig_track(self, response, model)

    rlm_openai.OpenAIClient._track_cost = counting_track

    folder = Path(job["context_dir"])
    context = read_context(folder)

    common = {"base_url": job["base_url"], "api_key": job["api_key"]}
    logger = RLMLogger()
    rlm = RLM(
        backend="openai",
        backend_kwargs={"model_name": job["root_model"], **common},
        other_backends=["openai"],
        other_backend_kwargs=[{"model_name": job["sub_model"], **common}],
        environment="local",
        max_iterations=job["max_iterations"],
        max_depth=job["max_depth"],
        logger=logger,
        verbose=job.get("verbose", False),
    )
    t0 = time.perf_counter()
    try:
        res = rlm.completion(context, root_prompt=job["question"])
        out["answer"] = "" if res.response is None else str(res.response)
    except Exception as e:
        out["answer"] = ""
        out["error"] = f"{type(e).__name__}: {e}"
        partial = getattr(e, "partial_answer", None)
        if partial:
            out["partial_answer"] = str(partial)[:2000]
    finally:
        out["seconds"] = round(time.perf_counter() - t0, 3)
        try:
            rlm.close()
        except Exception:
            pass

    traj = logger.get_trajectory() or {"iterations": []}
    iters = traj.get("iterations", [])
    # Root turns are logged with their iteration_time; the package's out-of-iterations
    # default answer is logged as one more entry without iteration_time and without code.
    out["iterations"] = sum(1 for it in iters if it.get("iteration_time") is not None)
    out["sub_calls"] = sum(
        len(cb.get("result", {}).get("rlm_calls", []))
        for it in iters for cb in it.get("code_blocks", [])
    )
    out["finished"] = bool(iters) and iters[-1].get("final_answer") is not None and \
        iters[-1].get("iteration_time") is not None
    out["usage"] = usage
    out["tokens"] = sum(d["prompt_tokens"] + d["completion_tokens"] for d in usage.values())
    if job.get("log_path"):
        Path(job["log_path"]).parent.mkdir(parents=True, exist_ok=True)
        Path(job["log_path"]).write_text(json.dumps(
            {"id": job["id"], "question": job["question"], "result": out, "trajectory": traj},
            indent=1, default=str))
    write()
    return 0


# --------------------------------------------------------------------------------------
# quarry serve
# --------------------------------------------------------------------------------------

class Server:
    def __init__(self, quarry_bin: Path, models: list[str], slots: int, ctx: int,
                 threads: int | None, ready_timeout: float):
        cmd = [str(quarry_bin), "serve"]
        for m in models:
            cmd += ["--model", m]
        cmd += ["--port", "0", "--slots", str(slots), "--ctx", str(ctx)]
        if threads:
            cmd += ["--threads", str(threads)]
        log(f"starting: {' '.join(cmd)}")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True)
        self.ready = self._wait_ready(ready_timeout)
        # keep draining stdout so the server never blocks on a full pipe
        threading.Thread(target=self._drain, daemon=True).start()
        self.port = int(self.ready["port"])
        self.models = list(self.ready.get("models", []))

    def _wait_ready(self, timeout: float) -> dict:
        result: dict = {}

        def reader():
            for line in self.proc.stdout:
                line = line.strip()
                if not line:
                    continue
                try:
                    ev = json.loads(line)
                except ValueError:
                    log(f"serve: {line}")
                    continue
                if isinstance(ev, dict) and ev.get("event") == "ready":
                    result.update(ev)
                    return
                log(f"serve: {line}")

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t.join(timeout)
        if not result:
            self.stop()
            raise SystemExit(f"quarry serve did not report ready within {timeout:.0f}s "
                             f"(exit code {self.proc.poll()})")
        return result

    def _drain(self):
        try:
            for line in self.proc.stdout:
                if line.strip():
                    log(f"serve: {line.strip()}")
        except Exception:
            pass

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def served_models(base_url: str, api_key: str) -> list[str] | None:
    req = urllib.request.Request(base_url.rstrip("/") + "/models",
                                 headers={"Authorization": f"Bearer {api_key}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            data = json.load(r)
        return [m.get("id") for m in data.get("data", [])]
    except Exception as e:
        log(f"warning: cannot list models at {base_url}: {e}")
        return None


# --------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------

def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def short(s: str, n: int = 70) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def load_done(out: Path, retry_errors: bool) -> set[str]:
    done: dict[str, dict] = {}
    if out.exists():
        for line in out.read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "id" in rec:
                done[rec["id"]] = rec
    return {i for i, r in done.items() if not (retry_errors and r.get("error"))}


def select_tasks(args) -> list[dict]:
    tasks = []
    for line in Path(args.tasks).read_text().splitlines():
        if line.strip():
            tasks.append(json.loads(line))
    kinds = set(filter(None, (args.kinds or "").split(",")))
    sizes = set(filter(None, (args.sizes or "").split(",")))
    ids = [i for i in (args.ids or "").split(",") if i]
    if ids:
        by_id = {t["id"]: t for t in tasks}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise SystemExit(f"unknown ids: {', '.join(missing)}")
        tasks = [by_id[i] for i in ids]
    if kinds:
        tasks = [t for t in tasks if t.get("kind") in kinds]
    if sizes:
        tasks = [t for t in tasks if (t.get("meta") or {}).get("size") in sizes]
    if args.limit is not None:
        tasks = tasks[: args.limit]
    return tasks


def run_task(args, task: dict, base_url: str, api_key: str, tasks_dir: Path) -> dict:
    tid = task["id"]
    with tempfile.TemporaryDirectory(prefix="refrlm-") as tmp:
        job_path = os.path.join(tmp, "job.json")
        result_path = os.path.join(tmp, "result.json")
        job = {
            "id": tid,
            "context_dir": str((tasks_dir / task["context_dir"]).resolve()),
            "question": task["question"],
            "base_url": base_url,
            "api_key": api_key,
            "root_model": args.root_model,
            "sub_model": args.sub_model,
            "max_iterations": args.max_iterations,
            "max_depth": args.max_depth,
            "verbose": args.verbose,
            "log_path": str(Path(args.log_dir) / f"{tid}.json") if args.log_dir else None,
        }
        Path(job_path).write_text(json.dumps(job))
        t0 = time.perf_counter()
        # Worker output (package prints, tracebacks) goes to our stderr; stdout stays clean.
        proc = subprocess.Popen(
            [args.python, os.path.abspath(__file__), "--_worker", job_path, result_path],
            stdout=sys.stderr, stderr=sys.stderr, start_new_session=True,
        )
        err = None

        def kill_worker():
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the worker's own process group
            except ProcessLookupError:
                pass
            proc.wait()

        try:
            proc.wait(timeout=args.task_timeout)
        except subprocess.TimeoutExpired:
            err = f"timeout after {args.task_timeout:g}s"
            kill_worker()
        except BaseException:  # e.g. Ctrl-C: the worker is in its own session, stop it too
            kill_worker()
            raise
        wall = round(time.perf_counter() - t0, 3)
        res = {}
        if os.path.exists(result_path):
            try:
                res = json.loads(Path(result_path).read_text())
            except ValueError:
                res = {}
        if err is None and not res:
            err = f"worker exited with code {proc.returncode} and no result"
    rec = {"id": tid, "answer": res.get("answer", "") if not err else "",
           "seconds": res.get("seconds", wall) if not err else wall,
           "tokens": res.get("tokens")}
    if err or res.get("error"):
        rec["error"] = err or res.get("error")
    for k in ("iterations", "sub_calls", "finished", "usage", "partial_answer", "rlms_version"):
        if k in res:
            rec[k] = res[k]
    rec["root_model"] = args.root_model
    rec["sub_model"] = args.sub_model
    return rec


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--_worker"]:
        return worker_main(argv[1], argv[2])

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tasks", help="evalkit tasks.jsonl")
    ap.add_argument("--out", required=True, help="predictions JSONL (appended; resumable)")
    ap.add_argument("--kinds", help="comma-separated task kinds to run")
    ap.add_argument("--sizes", help="comma-separated sizes (meta.size) to run, e.g. 8k,32k")
    ap.add_argument("--limit", type=int, help="run at most N tasks (after filtering)")
    ap.add_argument("--ids", help="comma-separated task ids (in this order)")
    ap.add_argument("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8123/v1")
    ap.add_argument("--api-key", help="key for --base-url (default: $QUARRY_API_KEY or a dummy)")
    ap.add_argument("--serve", action="store_true",
                    help="start `quarry serve` (default when --base-url is not given)")
    ap.add_argument("--quarry-bin", default=str(REPO / "target/release/quarry"))
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=8192)
    ap.add_argument("--threads", type=int, help="quarry serve --threads (default: its own)")
    ap.add_argument("--ready-timeout", type=float, default=600)
    ap.add_argument("--root-model", default=DEFAULT_ROOT)
    ap.add_argument("--sub-model", default=DEFAULT_SUB)
    ap.add_argument("--max-iterations", type=int, default=12)
    ap.add_argument("--max-depth", type=int, default=1,
                    help="rlms max_depth (1 = paper setup: sub-calls are plain LM calls)")
    ap.add_argument("--task-timeout", type=float, default=900)
    ap.add_argument("--python", default=str(DEFAULT_VENV_PY) if DEFAULT_VENV_PY.exists()
                    else sys.executable, help="interpreter with rlms installed")
    ap.add_argument("--log-dir", help="write each task's trajectory to DIR/<id>.json")
    ap.add_argument("--verbose", action="store_true", help="rlms verbose (rich) output to stderr")
    ap.add_argument("--retry-errors", action="store_true",
                    help="re-run ids whose line in --out has an error")
    args = ap.parse_args(argv)

    tasks_path = Path(args.tasks)
    tasks_dir = tasks_path.resolve().parent
    tasks = select_tasks(args)
    out = Path(args.out)
    done = load_done(out, args.retry_errors)
    todo = [t for t in tasks if t["id"] not in done]
    log(f"{len(tasks)} tasks selected, {len(tasks) - len(todo)} already in {out}, {len(todo)} to run")
    if not todo:
        return 0

    server = None
    if args.base_url and args.serve:
        raise SystemExit("use either --base-url or --serve")
    try:
        if args.base_url:
            base_url = args.base_url.rstrip("/")
            api_key = args.api_key or os.environ.get("QUARRY_API_KEY") or DUMMY_KEY
        else:
            models = [args.root_model] + ([args.sub_model] if args.sub_model != args.root_model else [])
            server = Server(Path(args.quarry_bin), models, args.slots, args.ctx, args.threads,
                            args.ready_timeout)
            base_url = f"http://127.0.0.1:{server.port}/v1"
            api_key = os.environ.get("QUARRY_API_KEY") or DUMMY_KEY
            log(f"quarry serve ready on {base_url}: {', '.join(server.models)}")
        available = served_models(base_url, api_key)
        if available is not None:
            for m in (args.root_model, args.sub_model):
                if m not in available:
                    raise SystemExit(f"model {m!r} is not served at {base_url} (serves: {available})")

        out.parent.mkdir(parents=True, exist_ok=True)
        for n, task in enumerate(todo, 1):
            rec = run_task(args, task, base_url, api_key, tasks_dir)
            with out.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            extra = f" ERROR {short(rec['error'], 60)}" if rec.get("error") else ""
            log(f"[{n}/{len(todo)}] {rec['id']} {rec['seconds']:.1f}s tokens={rec.get('tokens')} "
                f"iters={rec.get('iterations')} sub={rec.get('sub_calls')} "
                f"answer={short(rec['answer'])!r}{extra}")
    finally:
        if server is not None:
            server.stop()
            log("quarry serve stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
