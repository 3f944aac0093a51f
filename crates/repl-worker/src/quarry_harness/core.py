"""The REPL itself, as Rust calls it: `init`, `execute` and `load_context`, each returning the JSON
Rust forwards to the host; the reserved names and their restoration after every cell."""

import ast
import builtins
import io
import json
import linecache
import mmap
import sys
import threading
import time
import traceback

from quarry_harness import capture, host, pysource, state
from quarry_harness.errors import HostError
from quarry_harness.state import _namespace, _reserved
from quarry_harness.capture import _Capture, _Discard, _truncate
from quarry_harness.chunk import Chunk, _page_starts
from quarry_harness.provenance import _clear_registry, _registry_lock
from quarry_harness.host import FINAL, FINAL_VAR, files, grep, llm_query, llm_query_batched, read, rlm_query, search
from quarry_harness.documents import Document, Documents, chunks
from quarry_harness.records import RecordList, records
from quarry_harness.classify import llm_classify
from quarry_harness.strategies import _labelled, _set_question_labels, count_labels, files_where, find_passage, label_records
from quarry_harness.pysource import imports, symbols

_builtins_snapshot = {}
_cell = 0
_main_ident = None
_MISSING = object()
_SIZED = (str, bytes, bytearray, list, tuple, dict, set, frozenset)
_RESERVED_FUNCTIONS = {
    "llm_classify": llm_classify,
    "llm_query": llm_query,
    "llm_query_batched": llm_query_batched,
    "label_records": label_records,
    "count_labels": count_labels,
    "files_where": files_where,
    "find_passage": find_passage,
    "rlm_query": rlm_query,
    "grep": grep,
    "search": search,
    "read": read,
    "files": files,
    "chunks": chunks,
    "symbols": symbols,
    "imports": imports,
    "FINAL": FINAL,
    "FINAL_VAR": FINAL_VAR,
    # Called by the host before the first turn, never by the model (it is not in the prompt).
    "_set_question_labels": _set_question_labels,
}


def _restore_reserved():
    """Put back everything the model must not be able to break by assignment or deletion."""
    _namespace.update(_reserved)
    _namespace["__builtins__"] = builtins
    _namespace["__name__"] = "__main__"
    # Model code can also monkeypatch builtins (`builtins.print = ...`); undo that too.
    # Compared by identity: a replaced value's own __eq__ is model code and must not run here.
    current = builtins.__dict__
    if len(current) != len(_builtins_snapshot) or any(
        current.get(k, _MISSING) is not v for k, v in _builtins_snapshot.items()
    ):
        current.clear()
        current.update(_builtins_snapshot)
    sys.stdout = sys.stderr = _Discard()
    sys.stdin = io.StringIO("")


def init(host_call, budget):
    """Called once by Rust before confinement. Returns the paths Python needs to read."""
    global _main_ident, _builtins_snapshot
    host._host_call = host_call
    capture._budget = int(budget)
    _main_ident = threading.get_ident()
    _reserved.update(_RESERVED_FUNCTIONS)
    _reserved["context"] = None
    _reserved["HostError"] = HostError
    _builtins_snapshot = dict(builtins.__dict__)
    # Warm what the first execution would otherwise import lazily (and what `traceback` imports
    # on first use), so the first round trip is as fast as the rest.
    traceback.format_exception(ValueError, ValueError("warm"), None)
    _restore_reserved()
    # Not reserved: `records` is what models name their own list of records (the prompt's old
    # example did), and a reserved name would turn it back into this function after the cell.
    _namespace["records"] = records
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths.update(p for p in sys.path if p)
    return json.dumps({"main_ident": _main_ident, "python": sys.version, "paths": sorted(paths)})




# Python's own messages that name the change to make: NameError's and AttributeError's
# suggestion (added by the traceback, not in str(e)), and strptime's "time data 'Apr 07, 2024'
# does not match format '%Y-%m-%d'" (the 1.5B wrote that format for such dates and ran the same
# code until the error limit ended the run).
_PYTHON_HINTS = ("Did you mean", "does not match format")


def _hint(exc, formatted):
    """The sentence of an error that says what to change, or None (see ReplResult.hint)."""
    if getattr(exc, "_quarry_hint", False) and exc.args:
        return str(exc.args[0])
    last = formatted.rstrip("\n").rsplit("\n", 1)[-1]
    return last if any(h in last for h in _PYTHON_HINTS) else None


def _trim_traceback(exc, filename):
    """Drop the harness's own frames: the traceback starts at the user's code."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip("\n")


def _describe_variables():
    out = []
    for name, value in _namespace.items():
        if name.startswith("_") or name in _reserved or name == "In" or value is records:
            continue
        if type(value).__name__ == "module":
            continue
        # Only built-in containers: a model-defined __len__ is model code and could hang here.
        n = len(value) if type(value) in _SIZED or type(value) in (Documents, Chunk, RecordList) else None
        if len(out) == 200:
            out.append({"name": "...", "type": "more variables not listed", "len": None})
            break
        out.append({"name": name, "type": type(value).__name__, "len": n})
    return out


def execute(code):
    global _cell
    _cell += 1
    state._final = None
    filename = "<cell %d>" % _cell
    started = time.perf_counter()
    stdout, stderr = _Capture(), _Capture()
    error = value = hint = None

    # Compile everything before running anything: a syntax error on line 40 must not leave
    # lines 1-39 half-applied to the namespace.
    try:
        tree = ast.parse(code, filename, "exec")
        trailing = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            trailing = compile(ast.Expression(tree.body.pop().value), filename, "eval")
        body = compile(tree, filename, "exec")
    except SyntaxError as e:
        error = "%s: %s (line %s, column %s)" % (type(e).__name__, e.msg, e.lineno, e.offset)
        if e.text:
            error += "\n    " + e.text.rstrip("\n")
    except (ValueError, RecursionError, MemoryError) as e:
        # ValueError: source with NUL bytes; RecursionError/MemoryError: absurdly nested code.
        error = "%s: %s" % (type(e).__name__, e)

    if error is None:
        # Tracebacks show the source lines of the cell.
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        sys.stdout, sys.stderr = stdout, stderr
        try:
            exec(body, _namespace)
            if trailing is not None:
                result = eval(trailing, _namespace)
                if result is not None:
                    _namespace["_"] = result
                    value = repr(result)
        except SystemExit as e:
            error = "SystemExit: %s (the REPL keeps running; call FINAL(answer) to finish)" % (e.code,)
        except BaseException as e:
            try:
                error = _trim_traceback(e, filename)
                hint = _hint(e, error)
            except BaseException as e2:
                error = "%s: %s" % (type(e).__name__, e2)
        finally:
            _restore_reserved()

    result = {
        "stdout": stdout.getvalue(),
        "stderr": stderr.getvalue(),
        "error": _truncate(error),
        "value": _truncate(value),
        "duration": time.perf_counter() - started,
        "variables": _describe_variables(),
        "final_answer": state._final,
    }
    if hint is not None:
        result["hint"] = _truncate(hint)
    return json.dumps(result)


def load_context(spec_json):
    pysource._index = None
    spec = json.loads(spec_json)
    kind = spec["kind"]
    if kind == "text":
        with open(spec["path"], "rb") as f:
            size = f.seek(0, 2)
            if size == 0:
                context = ""
            else:
                with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                    context = str(m, "utf-8")
        info = {"kind": "str", "documents": 1, "chars": len(context)}
    elif kind == "documents":
        with open(spec["index"], "r", encoding="utf-8") as f:
            index = json.load(f)
        with open(spec["data"], "rb") as f:
            size = f.seek(0, 2)
            # The mapping outlives the file object; the host never rewrites a context file in
            # place (each load gets a new name), so the mapping cannot be truncated under us.
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        _page_starts.clear()
        docs = []
        for entry in index:
            p, s, e = entry[0], entry[1], entry[2]
            if len(entry) > 3 and entry[3]:
                _page_starts[p] = ([m[2] for m in entry[3]], [(m[0], m[1]) for m in entry[3]])
            docs.append(Document(p, buf, s, e))
        context = Documents(docs)
        info = {"kind": "documents", "documents": len(index), "chars": size}
    else:
        raise ValueError("unknown context kind %r" % kind)
    _reserved["context"] = context
    _namespace["context"] = context
    with _registry_lock:
        _clear_registry()
    _labelled.clear()
    return json.dumps(info)
