# The Python half of the REPL worker (quarry-repl/src/worker/mod.rs is the Rust half).
#
# Rust initialises the interpreter, confines the process, and calls `init`, `execute` and
# `load_context` with the GIL held; each returns a JSON string that Rust forwards to the host
# unchanged. Host functions reach Rust through `_host_call(name, args_json) -> reply_json`.
#
# Everything here runs inside the sandbox, so nothing in it is a security boundary: it only gives
# the model a REPL it can work with (persistent namespace, captured output, trimmed tracebacks,
# reserved names that survive assignment).

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

_budget = 8000
_host_call = None
_namespace = {}
_reserved = {}
_builtins_snapshot = {}
_cell = 0
_final = None
_main_ident = None
_MISSING = object()
_SIZED = (str, bytes, bytearray, list, tuple, dict, set, frozenset)


class ExecutionTimeout(BaseException):
    """Raised asynchronously in the main thread when an execution runs out of time.

    A BaseException, so `except Exception:` in model code does not swallow it.
    """


class HostError(Exception):
    """A host function (llm_query, read, ...) failed on the host's side."""


def _truncate(text):
    """Head + tail of `text` within the budget, with a marker saying how much was cut."""
    if text is None or len(text) <= _budget:
        return text
    half = _budget // 2
    cut = len(text) - 2 * half
    return "%s\n... [%d characters truncated] ...\n%s" % (text[:half], cut, text[-half:])


class _Capture(io.TextIOBase):
    """A write-only text stream that keeps only what the budget can show.

    Printing 1 GB must not cost 1 GB: keep the first `_budget` characters and a rolling tail,
    and count the rest.
    """

    def __init__(self):
        self._head = []
        self._head_len = 0
        self._tail = ""
        self._total = 0

    def writable(self):
        return True

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not %s" % type(s).__name__)
        n = len(s)
        self._total += n
        if self._head_len < _budget:
            piece = s[: _budget - self._head_len]
            self._head.append(piece)
            self._head_len += len(piece)
        if n >= _budget:
            self._tail = s[-_budget:]
        else:
            self._tail = (self._tail + s)[-_budget:]
        return n

    def flush(self):
        pass

    @property
    def encoding(self):
        return "utf-8"

    def getvalue(self):
        head = "".join(self._head)
        if self._total <= _budget:
            return head
        half = _budget // 2
        cut = self._total - 2 * half
        return "%s\n... [%d characters truncated] ...\n%s" % (head[:half], cut, self._tail[-half:])


class _Discard(io.TextIOBase):
    """Where background threads' output goes between executions."""

    def writable(self):
        return True

    def write(self, s):
        return len(s)


def _call(function, **args):
    reply = json.loads(_host_call(json.dumps(dict(args, function=function))))
    if "error" in reply:
        raise HostError("%s: %s" % (function, reply["error"]))
    return reply["value"]


def llm_query(prompt, model=None):
    """Ask a sub-model one question; returns its answer as a string."""
    return _call("llm_query", prompt=str(prompt), model=model)


def llm_query_batched(prompts, model=None):
    """Ask a sub-model many independent questions (the host may serve them concurrently)."""
    return _call("llm_query_batched", prompts=[str(p) for p in prompts], model=model)


def rlm_query(prompt, context=None):
    """Hand a sub-question (and optionally a piece of context) to a recursive RLM call."""
    if context is not None:
        try:
            json.dumps(context)
        except (TypeError, ValueError):
            context = str(context)
    return _call("rlm_query", prompt=str(prompt), context=context)


def grep(pattern, glob=None, ignore_case=False, max_results=100):
    """Regular-expression search over the documents; returns a list of matches."""
    return _call("grep", pattern=str(pattern), glob=glob, ignore_case=bool(ignore_case),
                 max_results=int(max_results))


def search(query, k=10):
    """Ranked full-text search over the documents; returns the top `k` hits."""
    return _call("search", query=str(query), k=int(k))


def read(path, start=None, end=None):
    """The text of one document, optionally only lines `start`..`end`."""
    return _call("read", path=str(path), start=start, end=end)


def files(glob="*"):
    """The paths of the documents matching `glob`."""
    return _call("files", glob=str(glob))


def FINAL(answer):
    """Declare the final answer."""
    global _final
    _final = str(answer)
    return None


def FINAL_VAR(name):
    """Declare the value of the variable `name` the final answer."""
    global _final
    name = str(name).strip().strip("'\"")
    if name not in _namespace:
        raise NameError("FINAL_VAR: there is no variable named %r" % name)
    _final = str(_namespace[name])
    return None


class Document:
    """One file of the analysed folder; its text is decoded on first use."""

    __slots__ = ("path", "_buf", "_start", "_end", "_text")

    def __init__(self, path, buf, start, end):
        self.path = path
        self._buf = buf
        self._start = start
        self._end = end
        self._text = None

    @property
    def text(self):
        if self._text is None:
            self._text = str(self._buf[self._start:self._end], "utf-8")
        return self._text

    def lines(self):
        return self.text.splitlines()

    def __len__(self):
        return len(self.text)

    def __str__(self):
        return self.text

    def __repr__(self):
        return "Document(path=%r, bytes=%d)" % (self.path, self._end - self._start)


class Documents:
    """The documents of the analysed folder, in path order: index, iterate, `len()`."""

    def __init__(self, docs):
        self._docs = docs

    def __len__(self):
        return len(self._docs)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Documents(self._docs[i])
        return self._docs[i]

    def __iter__(self):
        return iter(self._docs)

    def paths(self):
        return [d.path for d in self._docs]

    def __repr__(self):
        total = sum(d._end - d._start for d in self._docs)
        head = ", ".join(repr(d.path) for d in self._docs[:5])
        more = ", ..." if len(self._docs) > 5 else ""
        return "Documents(%d files, %d bytes: %s%s)" % (len(self._docs), total, head, more)


_RESERVED_FUNCTIONS = {
    "llm_query": llm_query,
    "llm_query_batched": llm_query_batched,
    "rlm_query": rlm_query,
    "grep": grep,
    "search": search,
    "read": read,
    "files": files,
    "FINAL": FINAL,
    "FINAL_VAR": FINAL_VAR,
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
    global _host_call, _budget, _main_ident, _builtins_snapshot
    _host_call = host_call
    _budget = int(budget)
    _main_ident = threading.get_ident()
    _reserved.update(_RESERVED_FUNCTIONS)
    _reserved["context"] = None
    _reserved["HostError"] = HostError
    _builtins_snapshot = dict(builtins.__dict__)
    # Warm what the first execution would otherwise import lazily (and what `traceback` imports
    # on first use), so the first round trip is as fast as the rest.
    traceback.format_exception(ValueError, ValueError("warm"), None)
    _restore_reserved()
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths.update(p for p in sys.path if p)
    return json.dumps({"main_ident": _main_ident, "python": sys.version, "paths": sorted(paths)})


def _trim_traceback(exc, filename):
    """Drop the harness's own frames: the traceback starts at the user's code."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb)).rstrip("\n")


def _describe_variables():
    out = []
    for name, value in _namespace.items():
        if name.startswith("_") or name in _reserved or name == "In":
            continue
        if type(value).__name__ == "module":
            continue
        # Only built-in containers: a model-defined __len__ is model code and could hang here.
        n = len(value) if type(value) in _SIZED or type(value) is Documents else None
        if len(out) == 200:
            out.append({"name": "...", "type": "more variables not listed", "len": None})
            break
        out.append({"name": name, "type": type(value).__name__, "len": n})
    return out


def execute(code):
    global _cell, _final
    _cell += 1
    _final = None
    filename = "<cell %d>" % _cell
    started = time.perf_counter()
    stdout, stderr = _Capture(), _Capture()
    error = value = None

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
        "final_answer": _final,
    }
    return json.dumps(result)


def load_context(spec_json):
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
        context = Documents([Document(p, buf, s, e) for p, s, e in index])
        info = {"kind": "documents", "documents": len(index), "chars": size}
    else:
        raise ValueError("unknown context kind %r" % kind)
    _reserved["context"] = context
    _namespace["context"] = context
    return json.dumps(info)
