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
import bisect
import builtins
import collections
import io
import json
import itertools
import linecache
import math
import mmap
import operator
import os
import re
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
    text = str(prompt)
    args = {"prompt": text, "model": model}
    sources = _provenance([prompt], [text])[0]
    if sources:
        args["sources"] = sources
    return _call("llm_query", **args)


def llm_query_batched(prompts, model=None):
    """Ask a sub-model many independent questions (the host may serve them concurrently)."""
    return _batched(prompts, model)


def _batched(prompts, model=None, grammars=None):
    """`llm_query_batched`, with a GBNF grammar per prompt that its answer must follow where the
    host's sub model takes grammars (helpers use it; model code gets the plain function)."""
    prompts = list(prompts)
    texts = [str(p) for p in prompts]
    args = {"prompts": texts, "model": model}
    if grammars is not None:
        args["grammars"] = [str(g) for g in grammars]
    sources = _provenance(prompts, texts)
    if any(sources):
        args["sources"] = sources
    return _call("llm_query_batched", **args)


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


def read(path, start=None, end=None, page=None):
    """The text of one document, optionally only lines `start`..`end`.

    `page` reads one page of a paged document (a PDF page, a slide, a sheet): its number as grep
    hits give it (`page=12`) or its label (`page="iv"`); `start`/`end` then count lines within
    that page.
    """
    if page is not None and not isinstance(page, int):
        page = str(page)
    return _call("read", path=str(path), start=start, end=end, page=page)


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


# Paged documents (PDF, Office, EPUB, mail): path -> (first lines, [(number, label)]), sorted by
# first line. Set with the context; text files have no entry.
_page_starts = {}


def _page_at(path, line):
    """(number, label) of the page of `path` holding document line `line`, or None."""
    marks = _page_starts.get(path)
    if not marks or not isinstance(line, int):
        return None
    i = bisect.bisect_right(marks[0], line) - 1
    return marks[1][i] if i >= 0 else None


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

    @property
    def pages(self):
        """The pages of a paged document (PDF, Office, EPUB, mail), in order: dicts with "number",
        "label" (what the document prints: "iv", "12", a sheet's name) and "first_line"; [] for
        text. `read(path, page=n)` reads one."""
        marks = _page_starts.get(self.path)
        if not marks:
            return []
        return [{"number": n, "label": label, "first_line": first}
                for first, (n, label) in zip(marks[0], marks[1])]

    def __iter__(self):
        # Its lines, as iterating a file gives: small models write `for line in doc`.
        return iter(self.lines())

    def __contains__(self, text):
        return text in self.text

    def __getattr__(self, name):
        # Only reached for a missing attribute. The 1.5B model wrote `[r.split("Instance:")[1]
        # for r in context]` and, told only "'Document' object has no attribute 'split'", wrote
        # it again until the run ended; a sentence naming the fix is what it can act on.
        if hasattr(str, name):
            raise _hinted(AttributeError(
                "a Document is a whole file, not a line: use .text for its text, .lines() for its "
                "lines (e.g. [l for d in context for l in d.lines()]) or records() for its records"
            ))
        raise AttributeError("'Document' object has no attribute %r" % name)

    def __len__(self):
        return len(self.text)

    def __str__(self):
        return self.text

    def __repr__(self):
        marks = _page_starts.get(self.path)
        pages = ", pages=%d" % len(marks[0]) if marks else ""
        return "Document(path=%r, bytes=%d%s)" % (self.path, self._end - self._start, pages)


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


class Chunk(str):
    """A piece of a text cut by `chunks()`: a `str` (use it as one) that knows where it came from.

    `.path` is the document's path (None for a plain string), `.line_start` and `.line_end` the
    1-based, inclusive lines it covers, `.source` the same as "path:start-end", `.page` the label
    of the page it starts on (paged documents; None otherwise). Operations on it
    (`+`, slicing, `.strip()`) give plain strings.
    """

    def __new__(cls, text, path=None, line_start=1, line_end=None):
        self = str.__new__(cls, text)
        self.path = path
        self.line_start = line_start
        if line_end is None:
            line_end = line_start + max(0, text.count("\n", 0, len(text) - 1))
        self.line_end = line_end
        return self

    @property
    def source(self):
        return "%s:%s-%s" % ("<str>" if self.path is None else self.path, self.line_start, self.line_end)

    @property
    def page(self):
        """The label of the page `line_start` is on, for a chunk of a paged document; else None."""
        at = _page_at(self.path, self.line_start)
        return at[1] if at else None

    def __repr__(self):
        page = self.page
        return "<chunk %s%s, %d chars>" % (self.source, "" if page is None else " (p. %s)" % page, len(self))


def _positive_int(name, value, minimum):
    if isinstance(value, bool):
        raise ValueError("chunks(): %s must be an int, not bool" % name)
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError("chunks(): %s must be an int, not %s" % (name, type(value).__name__)) from None
    if value < minimum:
        raise ValueError("chunks(): %s must be >= %d, got %d" % (name, minimum, value))
    return value


def _chunk_inputs(x):
    """(text, path, number of its first line) for each text `x` stands for."""
    if isinstance(x, Chunk):
        path = x.path if isinstance(x.path, str) else None
        first = x.line_start if type(x.line_start) is int and x.line_start >= 1 else 1
        return [(str(x), path, first)]
    if isinstance(x, str):
        return [(x, None, 1)]
    if isinstance(x, Document):
        return [(x.text, x.path, 1)]
    if isinstance(x, (bytes, bytearray, dict)) or not hasattr(x, "__iter__"):
        raise TypeError("chunks() takes a str, a Document, or a list of them (context), not %s"
                        % type(x).__name__)
    out = []
    for i, item in enumerate(x):
        if isinstance(item, (str, Document)):
            out.extend(_chunk_inputs(item))
        else:
            raise TypeError("chunks(): item %d is a %s; items must be str or Document" % (i, type(item).__name__))
    return out


def _chunk_end(text, start, prev_end, max_chars):
    """Where the chunk starting at `start` ends (after its last whole line), and its start (moved
    later when the overlap leaves no room for a line that would fit in a chunk of its own)."""
    n = len(text)
    limit = start + max_chars
    if limit >= n:
        return n, start
    k = text.rfind("\n", prev_end, limit)
    if k != -1:
        return k + 1, start
    if prev_end > start and text[prev_end - 1] == "\n":
        nl = text.find("\n", prev_end, prev_end + max_chars)
        line_end = nl + 1 if nl != -1 else (n if n - prev_end <= max_chars else -1)
        if line_end != -1:
            # Repeat fewer lines: the first line start from which that line still fits.
            k = text.find("\n", line_end - max_chars - 1, prev_end)
            return line_end, k + 1
    # One line longer than max_chars (from here): cut it hard.
    return limit, start


def _overlap_start(text, start, end, overlap):
    """Where the chunk after text[start:end] starts: `overlap` characters before `end`, moved to
    the nearest line start (repeating at most twice `overlap`) when there is one."""
    target = end - overlap
    best = None
    lo = max(target, start + 1)
    k = text.find("\n", lo - 1, end - 1)
    if k != -1:
        best = k + 1
    if target > start:
        k = text.rfind("\n", start, target)
        if k != -1 and end - (k + 1) <= 2 * overlap and (best is None or target - (k + 1) < best - target):
            best = k + 1
    if best is not None:
        return best
    return target if target > start else end


def _split(text, path, line, max_chars, overlap, out):
    n = len(text)
    pos = prev_end = 0
    while pos < n:
        end, start = _chunk_end(text, pos, prev_end, max_chars)
        if start != pos:
            line += text.count("\n", pos, start)
            pos = start
        last = line + text.count("\n", pos, end) - (text[end - 1] == "\n")
        out.append(Chunk(text[pos:end], path, line, last))
        if end >= n:
            break
        nxt = _overlap_start(text, pos, end, overlap) if overlap else end
        line += text.count("\n", pos, nxt)
        pos, prev_end = nxt, end


def chunks(x, max_chars=8000, overlap=0):
    """Cut `x` into pieces of at most `max_chars` characters, at line ends where possible.

    `x` is a str, a Document, or a list of them (`context` itself, or a filtered list). Returns a
    list of `Chunk`s: strings that also carry `.path`, `.line_start`, `.line_end` and `.source`
    ("path:start-end"). A chunk never spans two documents; a line longer than `max_chars` is cut
    hard. With `overlap`, each chunk starts with about that many characters (whole lines when
    possible) of the end of the one before. Passing chunks to `llm_query` tells the host which
    lines the sub-model read.
    """
    max_chars = _positive_int("max_chars", max_chars, 1)
    overlap = _positive_int("overlap", overlap, 0)
    if overlap >= max_chars:
        raise ValueError("chunks(): overlap must be smaller than max_chars (%d >= %d)" % (overlap, max_chars))
    out = []
    for text, path, first in _chunk_inputs(x):
        _split(text, path, first, max_chars, overlap, out)
    _register(out)
    return out


# --- Records: line-structured data ---------------------------------------------------------
#
# Exports, logs and ledgers hold one record per line. Told the form in words, the 1.5B model
# still filtered and split lines on field names copied from its prompt's example ("Text:" over
# records of "Instance:") and got nothing, twelve turns running. `records()` parses the lines
# into dicts, and a wrong field name gets an error listing the right ones.

_FIELD = re.compile(r"\s*([A-Za-z_][\w .\-/]{0,39}?)\s*:[ \t]?(.*?)\s*", re.S)
_FIELD_SEPARATORS = ("||", "|", "\t")
_TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+")


def _value(text):
    """A field's value: an int or float when it is written as one (so `r["User"] in [14837]`
    works: the 1.5B compared ids as ints with values kept as str and counted nothing), else the
    text. Leading zeros ("02139") stay text."""
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


class Record(dict):
    """One record from `records()`: its fields by name, plus `.path` and `.line`, the document
    and the 1-based line it came from (cite it as path:line)."""

    __slots__ = ("path", "line")

    def __missing__(self, key):
        raise _hinted(KeyError(
            "%r is not a field of this record (%s:%s); its fields are %s"
            % (key, self.path, self.line, ", ".join(repr(k) for k in self))
        ))


def _line_fields(line):
    """The fields of one 'Key: value || Key: value' line (also '|' or tab between fields) or of
    one JSON object, or None when the line is neither (at least two fields are needed)."""
    s = line.strip()
    if not s:
        return None
    if s[0] == "{":
        try:
            value = json.loads(s)
        except ValueError:
            return None
        if isinstance(value, dict) and value:
            return {str(k): v if isinstance(v, (str, int, float)) else json.dumps(v) for k, v in value.items()}
        return None
    for sep in _FIELD_SEPARATORS:
        if sep in s:
            parts = s.split(sep)
            break
    else:
        return None
    fields = {}
    for part in parts:
        m = _FIELD.fullmatch(part)
        if m is None or m.group(1) in fields:
            return None
        fields[m.group(1)] = _value(m.group(2))
    return fields if len(fields) >= 2 else None


_MD_RULE = re.compile(r":?-{3,}:?")
# `[2024-01-03 21:38:23] user=32447 level=info :: the message`: a bracketed time, key=value
# fields, then the free text after '::' (or ' - '), as application logs write them.
_LOG_LINE = re.compile(r"\s*(?:\[([^\]]{4,40})\]\s*)?((?:[A-Za-z_][\w.\-]{0,39}=\S+\s+)*[A-Za-z_][\w.\-]{0,39}=\S+)(?:\s*(?:::|\s-\s)\s*(.*?))?\s*")
_LOG_PAIR = re.compile(r"([A-Za-z_][\w.\-]{0,39})=(\S+)")


def _markdown_cells(line):
    """The cells of one Markdown table row (`| a | b |`), or None when the line is not one."""
    s = line.strip()
    if len(s) < 3 or s[0] != "|" or s[-1] != "|":
        return None
    return [c.strip() for c in s[1:-1].split("|")]


def _markdown_rule(cells):
    """Whether a row's cells are the `|---|:---:|` rule under a Markdown table's header."""
    return cells is not None and all(_MD_RULE.fullmatch(c) for c in cells)


def _log_fields(line):
    """The fields of one log line: 'time' for a bracketed stamp, each key=value, and 'text' for
    what follows '::' or ' - '; None unless at least two fields are found."""
    m = _LOG_LINE.fullmatch(line)
    if m is None:
        return None
    fields = {}
    if m.group(1):
        fields["time"] = m.group(1).strip()
    for key, value in _LOG_PAIR.findall(m.group(2)):
        if key in fields:
            return None
        fields[key] = _value(value)
    if m.group(3):
        fields["text"] = m.group(3)
    return fields if len(fields) >= 2 else None


def _table_records(text, path, delimiter, out):
    import csv

    # Quarry's extraction turns CSV rows into tab-separated lines (cells unquoted), as it does
    # for every sheet; a text that is still comma-separated keeps its quoting.
    first = text.lstrip("\n").split("\n", 1)[0]
    if "\t" in first:
        rows = csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        rows = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = None
    for row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [h.strip() for h in row]
            continue
        r = Record(zip(header, (_value(cell.strip()) for cell in row)))
        r.path, r.line = path, rows.line_num
        out.append(r)


class RecordList(list):
    """The list `records()` returns. Calling it is calling `records()`: models write
    `records = records()` and later call `records()` again, which on a plain list is a TypeError
    (the 1.5B did, and repeated the failing block until the run ended)."""

    def __call__(self, x=None):
        return records(x)


def records(x=None):
    """The records in `x` (default: every document of `context`), in order: a list of `Record`s,
    dicts of field name -> value that also carry `.path` and `.line`. A value written as a whole
    or decimal number is an int or float, any other value a str.

    A record is a line of 'Key: value' fields separated by '||', '|' or a tab
    ('Date: Jan 02, 2023 || User: 311 || Text: Great service'), a line holding one JSON object, a
    row of a .csv / .tsv file with a header row, a row of a Markdown table (`| a | b |` under a
    header and a `|---|` rule), or a log line (`[time] key=value ... :: text`, fields 'time',
    each key and 'text'). Other lines are skipped. `x` is a str, a
    Document, or a list of them.
    """
    if x is None:
        x = _reserved.get("context")
        if x is None:
            raise ValueError("records(): there is no context loaded")
    out = RecordList()
    for text, path, first in _chunk_inputs(x):
        delimiter = _TABLE_SUFFIXES.get(os.path.splitext(path)[1].lower()) if path else None
        if delimiter:
            _table_records(text, path, delimiter, out)
            continue
        lines = text.splitlines()
        cells = [_markdown_cells(line) for line in lines]
        header = None  # the column names of the Markdown table being read
        for i, line in enumerate(lines):
            row = cells[i]
            if row is not None and header is None and i + 1 < len(lines) and _markdown_rule(cells[i + 1]):
                header = row
                continue
            if row is not None and header is not None:
                fields = None if _markdown_rule(row) else dict(zip(header, (_value(c) for c in row)))
            else:
                header = None
                fields = _line_fields(line) or _log_fields(line)
            if fields is not None:
                r = Record(fields)
                r.path, r.line = path, first + i
                out.append(r)
    if not out:
        raise ValueError(
            "records(): no line is a record ('Key: value || Key: value', a JSON object, a row of a "
            ".csv/.tsv file or a Markdown table, or a '[time] key=value :: text' log line); use "
            "grep() or .lines() on this text"
        )
    return out


# Provenance: the chunks cut in the current context, so that a prompt built from them
# (`"Summarise:\n" + c`) can name the lines it contains. Each chunk is indexed by one of its
# inner lines (a whole line wherever the chunk is pasted), truncated to _ANCHOR_KEY characters;
# a prompt is split into lines, each line looked up, and a candidate confirmed by comparing the
# chunk's first and last _NEEDLE characters at the position the anchor implies. Chunks with no
# inner line (one or two lines) are looked for by their head, most recent first, a bounded number.
_REGISTRY_MAX = 20000
_NEEDLE = 200
_ANCHOR_KEY = 64
_ANCHOR_MIN = 8
_LOOSE_MIN = 32
_MAX_CHECKS = 200000
_MAX_SOURCES = 1000
_registry = collections.OrderedDict()  # (path, line_start, line_end, len, hash) -> entry
_anchors = {}  # anchor key -> {ident: entry}
_loose = collections.OrderedDict()  # ident -> entry, chunks without an anchor line
_registry_lock = threading.Lock()


def _clear_registry():
    _registry.clear()
    _anchors.clear()
    _loose.clear()


def _unindex(ident, entry):
    key = entry[7]
    if key is None:
        _loose.pop(ident, None)
    else:
        bucket = _anchors.get(key)
        if bucket is not None:
            bucket.pop(ident, None)
            if not bucket:
                del _anchors[key]


def _register(chunk_list):
    todo = [c for c in chunk_list if len(c) and _source_dict(c.path, c.line_start, c.line_end)]
    if not todo or not _registry_lock.acquire(timeout=5):
        return
    try:
        for c in todo[-_REGISTRY_MAX:]:
            # The text's hash too: the pieces of one long line share path and lines.
            ident = (c.path, c.line_start, c.line_end, len(c), str.__hash__(c))
            old = _registry.pop(ident, None)
            if old is not None:
                _unindex(ident, old)
            lines = c.split("\n", 32)
            best, best_score, offset, off = None, -1, 0, len(lines[0]) + 1
            for line in lines[1:-1]:
                score = len(line.strip())
                if score > best_score:
                    best, best_score, offset = line, score, off
                off += len(line) + 1
            if best_score >= _ANCHOR_MIN:
                key = best[:_ANCHOR_KEY]
            elif len(c) >= _LOOSE_MIN:
                key = None
            else:
                continue  # too short to recognise inside another text
            entry = (c.path, c.line_start, c.line_end, len(c), offset, c[:_NEEDLE], c[-_NEEDLE:], key)
            _registry[ident] = entry
            if key is None:
                _loose[ident] = entry
            else:
                _anchors.setdefault(key, {})[ident] = entry
        while len(_registry) > _REGISTRY_MAX:
            ident, entry = _registry.popitem(last=False)
            _unindex(ident, entry)
    finally:
        _registry_lock.release()


def _source_dict(path, line_start, line_end):
    if isinstance(path, str) and type(line_start) is int and type(line_end) is int and 1 <= line_start <= line_end:
        return {"path": str(path), "line_start": line_start, "line_end": line_end}
    return None


def _sources_of(prompt, text, loose_cap, budget):
    if isinstance(prompt, Chunk):
        s = _source_dict(prompt.path, prompt.line_start, prompt.line_end)
        return [s] if s else []
    if not _registry:
        return []
    found = {}  # ident -> (position in text, entry)
    if _anchors:
        pos = 0
        for line in text.split("\n"):
            if len(line) >= _ANCHOR_MIN:
                bucket = _anchors.get(line[:_ANCHOR_KEY])
                if bucket:
                    for ident, e in tuple(bucket.items()):
                        if ident in found:
                            continue
                        budget[0] -= 1
                        if budget[0] < 0:
                            break
                        start = pos - e[4]
                        if (start >= 0 and text.startswith(e[5], start)
                                and text.startswith(e[6], start + e[3] - len(e[6]))):
                            found[ident] = (start, e)
                    if budget[0] < 0:
                        break
            pos += len(line) + 1
    if _loose and loose_cap:
        for ident, e in itertools.islice(reversed(tuple(_loose.items())), loose_cap):
            if ident in found:
                continue
            head, tail, n = e[5], e[6], e[3]
            i = text.find(head)
            tries = 0
            while i != -1 and tries < 4:
                if text.startswith(tail, i + n - len(tail)):
                    found[ident] = (i, e)
                    break
                i = text.find(head, i + 1)
                tries += 1
    hits = sorted(found.values(), key=lambda h: (h[0], h[1][1]))[:_MAX_SOURCES]
    return [{"path": e[0], "line_start": e[1], "line_end": e[2]} for _, e in hits]


def _provenance(prompts, texts):
    """For each prompt, the sources of the registered chunks it contains (best effort: never
    fails a call, and the work is bounded)."""
    try:
        loose_cap = min(2000, max(100, 20000 // max(1, len(prompts))))
        budget = [_MAX_CHECKS]
        return [_sources_of(p, t, loose_cap, budget) for p, t in zip(prompts, texts)]
    except Exception:
        return [[] for _ in prompts]


def _gbnf_literal(text):
    """`text` as a GBNF string literal."""
    escaped = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return '"' + escaped + '"'


def _match_label(text, labels):
    """The label a sub-model's reply names: exact (case and punctuation aside), else the longest
    label it contains, else None."""
    t = re.sub(r"[^a-z0-9 ]+", " ", str(text).lower()).strip()
    by_norm = {re.sub(r"[^a-z0-9 ]+", " ", l.lower()).strip(): l for l in labels}
    if t in by_norm:
        return by_norm[t]
    for norm in sorted(by_norm, key=len, reverse=True):
        if norm and re.search(r"\b" + re.escape(norm) + r"\b", t):
            return by_norm[norm]
    return None


def _cannot_score(e):
    """Whether a HostError from `llm_score` says the sub model cannot score (a hosted API), so
    the caller falls back to generated replies. It matches the host's wording until ReplResult
    carries a structured hint (issue 16.8)."""
    return "does not score" in str(e) or "not available" in str(e)


def llm_classify(items, labels, instruction=None, batch=10):
    """Label every item with one of `labels` using the sub-model. Returns a list as long as
    `items`: a label, or None where no label could be given. Where the host's sub model scores
    continuations (Quarry's local engine), each label's likelihood is read for each item, one
    prompt per item, and calibrated; otherwise the sub model writes the labels, `batch` items per
    prompt."""
    items = [str(x) for x in items]
    labels = [str(l) for l in labels]
    if not labels:
        raise ValueError("llm_classify needs at least one label")
    if any(not l.strip() for l in labels):
        raise ValueError("llm_classify's labels must not be empty")
    labels = list(dict.fromkeys(labels))
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError("batch must be a positive int")
    if not items:
        return []
    try:
        return _classify_scored(items, labels, instruction)
    except HostError as e:
        if not _cannot_score(e):
            raise
    return _classify_generated(items, labels, instruction, batch)


# Labelling by likelihood. A 0.5B model asked to write labels for numbered TREC questions got
# 25-37% right; scored, it cannot name a label outside the set, and each item costs one prompt
# evaluation and no generation. Contextual calibration (Zhao et al. 2021, "Calibrate Before
# Use") divides out the model's prior for each label, measured on content-free inputs: small
# models favour some labels whatever the input. Measured in evals/classify.py, docs/results.md.
_CONTENT_FREE = ("N/A", "", "[MASK]")


def _score_prompt(head, labels, item):
    # The instruction and labels first and the item last, so every item's prompt shares the
    # engine's cached prefix and only the item is evaluated.
    return (
        head + "Labels: " + "; ".join(labels) + ".\nWhich label fits the text below best? Reply with the label only.\n\n"
        + "Text: " + " ".join(item.split())[:600]
    )


def _label_logprobs(prompts, labels, field="logprob"):
    """Per prompt, per label, the log-probability of the label as the reply (host's `llm_score`;
    `field` "first_logprob" takes its first token's alone), normalised over the labels."""
    out = []
    for scores in _call("llm_score", prompts=list(prompts), candidates=list(labels)):
        raw = [float(s[field]) for s in scores]
        top = max(raw)
        z = top + math.log(sum(math.exp(x - top) for x in raw))
        out.append([x - z for x in raw])
    return out


def _classify_scored(items, labels, instruction=None, calibrate=True, field="logprob"):
    head = (str(instruction).strip() + "\n") if instruction else ""
    prompts = [_score_prompt(head, labels, t) for t in items]
    if calibrate:
        prompts += [_score_prompt(head, labels, t) for t in _CONTENT_FREE]
    logp = _label_logprobs(prompts, labels, field)
    prior = [0.0] * len(labels)
    if calibrate:
        free = logp[len(items):]
        logp = logp[:len(items)]
        prior = [math.log(sum(math.exp(f[j]) for f in free) / len(free)) for j in range(len(labels))]
    return [labels[max(range(len(labels)), key=lambda j: row[j] - prior[j])] for row in logp]


def _classify_generated(items, labels, instruction=None, batch=10):
    """`llm_classify` where the sub model cannot score: it writes the labels, `batch` items per
    prompt, all prompts at once. Where the host's sub-model takes grammars (local models), each reply is
    held to one numbered allowed label per item. Returns a list as long as `items`: a label, or
    None where the sub-model's reply named none. Items a batch reply skipped are asked again in
    batches of 3 when they are at most half of all items (a sub-model that ignores the format
    would otherwise spend the whole sub-call budget on retries)."""
    head = (str(instruction).strip() + "\n") if instruction else ""
    allowed = "Allowed labels: " + "; ".join(labels) + "."

    def prompt(group):
        # The labels before the items and no example reply: with the old two-line example reply
        # shown, the 0.5B model gave 91 of 120 TREC questions one of the example's labels; this way
        # its labels spread like the true ones (by hand, under the grammar: 29% right against 28%
        # with the example; docs/results.md).
        body = "\n".join("%d. %s" % (j + 1, " ".join(t.split())[:600]) for j, t in enumerate(group))
        return (
            head + allowed + "\nGive each numbered item below the allowed label that fits it best. Do not answer or explain the items.\n\nItems:\n"
            + body + "\n\nReply with one line per item: the item's number, a period, and its label.\n"
        )

    def grammar(n):
        # One numbered line per item, each an allowed label: the 0.5B model, left free, named no
        # allowed label for 101 of 120 TREC questions (it answered them, or wrote its own labels).
        lines = " ".join('"%d. " label "\\n"' % (j + 1) for j in range(n))
        return "root ::= %s\nlabel ::= %s\n" % (lines, " | ".join(_gbnf_literal(l) for l in labels))

    def ask(indices, size):
        groups = [indices[k:k + size] for k in range(0, len(indices), size)]
        replies = _batched([prompt([items[i] for i in g]) for g in groups], grammars=[grammar(len(g)) for g in groups]) if groups else []
        for g, reply in zip(groups, replies):
            for line in str(reply).splitlines():
                m = re.match(r"\s*\**\s*(\d+)\s*[.):\-]\s*(.+)", line)
                if m and 0 < int(m.group(1)) <= len(g) and out[g[int(m.group(1)) - 1]] is None:
                    out[g[int(m.group(1)) - 1]] = _match_label(m.group(2), labels)

    out = [None] * len(items)
    ask(list(range(len(items))), batch)
    missing = [i for i, v in enumerate(out) if v is None]
    if missing and len(missing) * 2 <= len(items):
        ask(missing, 3)
    return out


# --- Python source structure ---------------------------------------------------------------
#
# Questions about a codebase ("how many subclasses of X", "which files import Y") have exact
# answers a regex written by a small model gets wrong (it counts mentions, not definitions).
# `ast` knows: strings, comments and line continuations never count.

# Strategies: whole tasks the root calls in one line instead of writing the loop itself. The
# 1.5B root writes a call far more reliably than an algorithm: asked to count unlabelled records
# it loaded them, printed two and answered from the row count (issue 16, 3 of 3 runs with no
# sub-call). Each strategy prints what it did (so the run shows evidence even when the model
# prints nothing) and returns its evidence with sources.
_labelled = {}  # (labels, instruction, text) -> label: a second strategy call labels nothing twice


def _norm_field(name):
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def _field(rows, name):
    """The field of `rows` called `name`, matched as people write it ('user' finds 'User' and
    'user_id'; 'author id' finds 'author_id')."""
    fields = list(dict.fromkeys(k for r in rows[:50] for k in r))
    if name in fields:
        return name
    want = _norm_field(name)
    for k in fields:
        if _norm_field(k) == want:
            return k
    for k in fields:
        if _norm_field(k).startswith(want) or want.startswith(_norm_field(k)):
            return k
    raise KeyError("%r is not a field of these records; their fields are %s" % (name, ", ".join(repr(k) for k in fields)))


def _text_field(rows):
    """The field that holds each record's text: the string field with the longest values."""
    lengths = collections.Counter()
    for r in rows[:200]:
        for k, v in r.items():
            if isinstance(v, str):
                lengths[k] += len(v)
    if not lengths:
        raise ValueError("these records have no text field to label; name one with field=")
    return lengths.most_common(1)[0][0]


_question_labels = []  # the labels the question itself lists, set by the host (_set_question_labels)


def _set_question_labels(labels):
    """The host parses the labels a question lists ("decide which of these it is: a, b, c") and
    sets them here before the first turn: `label_records()` and `count_labels()` default to them,
    and a list the root model miswrote is put right (see `_label_set`)."""
    global _question_labels
    _question_labels = [str(l) for l in labels]


def _label_set(labels):
    """The labels to judge among, in order, each once, at least two. The 1.5B passes only the
    label asked about (count_labels(["entity"])): one label would be given to every record, and
    judged against "other" instead it gave 324 of 327 TREC questions "entity" (oolong-8k-000).

    Where the question lists its labels, a list whose every label is part of one of those (or
    the whole of one) stands for the question's list: the 1.5B split "description and abstract
    concept" into two labels, wrote "entity" twice, or passed one label, and each of these
    changes what every record is judged against (stop 23, docs/results.md)."""
    if labels is None:
        labels = list(_question_labels)
    if isinstance(labels, str):
        labels = [labels]
    labels = list(dict.fromkeys(str(l).strip() for l in labels))
    asked = [q.lower() for q in _question_labels]
    given = [l.lower() for l in labels]
    if asked and given != asked and all(any(g in q for q in asked) for g in given if g):
        print("(judged against the question's own labels: %s)" % ", ".join(_question_labels))
        labels = list(_question_labels)
    if len(labels) < 2:
        raise ValueError(
            "label_records()/count_labels() need every label an item could have (at least two), "
            "not only the one asked about: pass all the labels the question lists")
    return labels


def label_records(labels=None, field=None, where=None, instruction=None):
    """Every record of the documents (`records()`), each judged by the sub model as one of
    `labels` (default: the labels the question lists) and returned with its label under "label"
    (None where none fits). `field` is the field holding the text to judge (default: the longest
    text field); `where` a function record -> bool to label only some. Count the result in
    Python."""
    rows = records()
    if where is not None:
        rows = [r for r in rows if where(r)]
        if not rows:
            raise ValueError("label_records(): no record passes `where`")
    field = _text_field(rows) if field is None else _field(rows, field)
    labels = _label_set(labels)
    key = (tuple(labels), instruction)
    texts = [str(r.get(field, "")) for r in rows]
    todo = list(dict.fromkeys(t for t in texts if key + (t,) not in _labelled))
    for t, l in zip(todo, llm_classify(todo, labels, instruction)):
        _labelled[key + (t,)] = l
    out = RecordList()
    for r, t in zip(rows, texts):
        c = Record(r)
        c.path, c.line = r.path, r.line
        c["label"] = _labelled[key + (t,)]
        out.append(c)
    counts = collections.Counter(c["label"] for c in out)
    print("label_records: %d records labelled by their %r field (%s); fields: %s" % (
        len(out), field, ", ".join("%s %d" % (l, counts[l]) for l in labels),
        ", ".join(repr(k) for k in out[0])))
    return out


def count_labels(labels=None, by=None, where=None, field=None, instruction=None):
    """Label every record (as `label_records`) and count the labels: {label: count}, every label
    listed; with `by` (a field such as "user"), {value of that field: {label: count}}."""
    labels = _label_set(labels)
    rows = label_records(labels, field=field, where=where, instruction=instruction)

    def tally(group):
        n = collections.Counter(r["label"] for r in group)
        return {l: n[l] for l in labels}

    if by is None:
        return tally(rows)
    name = _field(rows, by)
    groups = {}
    for r in rows:
        groups.setdefault(r[name], []).append(r)
    return {k: tally(v) for k, v in sorted(groups.items(), key=lambda kv: str(kv[0]))}


def _yes_scores(question, parts):
    """Per piece of text, the sub model's log-odds of "yes" over "no" as the answer to
    `question` about it. Not calibrated as llm_classify is: a content-free input ("N/A") is a
    strong "no" to any question about it, so against that prior most real pieces would read as
    a yes (reasoned, not measured on a real model yet)."""
    head = "Question: %s\nAnswer from the text below only. Reply yes or no.\n\nText:\n" % " ".join(str(question).split())
    prompts = [head + str(p) for p in parts]
    try:
        logp = _label_logprobs(prompts, ["yes", "no"])
    except HostError as e:
        if not _cannot_score(e):
            raise
        replies = _batched(prompts, grammars=['root ::= "yes" | "no"'] * len(prompts))
        return [1.0 if str(a).strip().lower().startswith("yes") else -1.0 for a in replies]
    return [row[0] - row[1] for row in logp]


def files_where(question, glob="*", max_chars=4000):
    """The documents for which the sub model answers yes to `question` ("Does this contract
    require the supplier to keep insurance?"), read piece by piece: a list of dicts with "path"
    and "lines" (the piece that said yes, as 'start-end'), most certain first."""
    context = _reserved.get("context")
    if context is None:
        raise ValueError("files_where(): there is no context loaded")
    docs = context
    if isinstance(context, Documents):
        wanted = None if glob == "*" else set(files(glob))
        docs = [d for d in context if wanted is None or d.path in wanted]
        if not docs:
            raise ValueError("files_where(): no document matches %r" % glob)
    parts = chunks(docs, max_chars)
    best = {}
    for p, s in zip(parts, _yes_scores(question, parts)):
        if s > 0 and (p.path not in best or s > best[p.path][0]):
            best[p.path] = (s, p)
    found = [{"path": path, "lines": "%d-%d" % (p.line_start, p.line_end), "score": round(s, 2)}
             for path, (s, p) in sorted(best.items(), key=lambda kv: -kv[1][0])]
    print("files_where: %d of %d documents (%d pieces read): %s" % (
        len(found), len(docs) if isinstance(docs, list) else 1, len(parts), ", ".join("%s:%s" % (f["path"], f["lines"]) for f in found[:20]) or "none"))
    return found


def find_passage(what, k=5):
    """The passages that state `what`: candidates from `search`, each checked by the sub model;
    a list of the confirmed ones (dicts with "path", "line", "line_end", "text"), most certain
    first."""
    hits = search(what, k=max(3 * int(k), 10))
    if not hits:
        print("find_passage: search found nothing for %r" % what)
        return []
    scores = _yes_scores("Does this text state " + str(what) + "?", [h["text"] for h in hits])
    found = [h for s, h in sorted(zip(scores, hits), key=lambda sh: -sh[0]) if s > 0][:int(k)]
    print("find_passage: %d of %d candidates confirmed" % (len(found), len(hits)))
    for h in found:
        print("  %s:%s %s" % (h["path"], h["line"], " ".join(h["text"].split())[:200]))
    return found


_PY_SUFFIXES = (".py", ".pyi", ".pyw")
_index = None  # (symbols, imports, unparsed paths), built once: the documents never change


def _python_index():
    """Every definition and import in the context's Python source, parsed once per context."""
    global _index
    if _index is None:
        ctx = _reserved.get("context")
        if isinstance(ctx, Documents):
            sources = [(d.path, d.text) for d in ctx if d.path.lower().endswith(_PY_SUFFIXES)]
        elif isinstance(ctx, str):
            sources = [("context", ctx)]
        else:
            sources = []
        symbols_found, imports_found, failed = [], [], []
        for path, text in sources:
            try:
                tree = ast.parse(text, path)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                failed.append(path)
                continue
            _collect_symbols(tree, path, None, False, symbols_found)
            _collect_imports(tree, path, imports_found)
        imports_found.sort(key=lambda r: (r["path"], r["line"]))
        _index = (symbols_found, imports_found, failed)
    symbols_found, imports_found, failed = _index
    if failed:
        # Said on every call: an exact count over files that did not parse is not exact.
        print("note: %d file(s) are not valid Python and were skipped: %s"
              % (len(failed), ", ".join(failed[:5]) + (", ..." if len(failed) > 5 else "")),
              file=sys.stderr)
    return symbols_found, imports_found


def _collect_symbols(node, path, parent, in_class, out):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef):
            out.append({"path": path, "line": child.lineno, "kind": "class", "name": child.name,
                        "parent": parent, "bases": [ast.unparse(b) for b in child.bases],
                        "async": False})
            _collect_symbols(child, path, child.name, True, out)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.append({"path": path, "line": child.lineno,
                        "kind": "method" if in_class else "function", "name": child.name,
                        "parent": parent, "bases": [],
                        "async": isinstance(child, ast.AsyncFunctionDef)})
            _collect_symbols(child, path, child.name, False, out)
        else:
            # if/try/with bodies: a def inside them belongs to the same scope.
            _collect_symbols(child, path, parent, in_class, out)


def _package_of(path):
    """`pkg/sub/mod.py` -> ["pkg", "sub"]; `pkg/__init__.py` -> ["pkg"] too."""
    return path.replace("\\", "/").split("/")[:-1]


def _collect_imports(tree, path, out):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append({"path": path, "line": node.lineno, "module": alias.name, "names": []})
        elif isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:
                base = _package_of(path)
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                name = ".".join(p for p in base + ([name] if name else []) if p)
            out.append({"path": path, "line": node.lineno, "module": name,
                        "names": [a.name for a in node.names]})


def _derives(record, base):
    """The class lists `base` among its bases, as written or as `module.base`."""
    return any(b == base or b.endswith("." + base) for b in record["bases"])


def symbols(name=None, kind=None, parent=None, base=None, **unknown):
    """Every class, function and method defined in the folder's Python files, found by parsing
    them (not by grep). A list of dicts: "path", "line", "kind" ("class", "function" or
    "method": a def directly in a class body), "name", "parent" (the enclosing class or
    function, or None), "bases" (a class's base classes as written, e.g. "unittest.TestCase"),
    "async" (an `async def`). Filters: `name` is a regular expression the name must match from
    its start; `kind` keeps one kind; `parent` keeps what is defined directly in that class or
    function; `base` keeps classes listing that base class (`base="TestCase"` matches
    `TestCase` and `unittest.TestCase`)."""
    # Small models guess at arguments; the error says what to call instead.
    if unknown:
        hint = " (imports are listed by imports(module=...))" if "module" in unknown else ""
        raise TypeError("symbols() takes name, kind, parent and base, not %s%s"
                        % (", ".join(sorted(unknown)), hint))
    if kind is not None and kind not in ("class", "function", "method"):
        hint = "; imports are listed by imports(module=...)" if str(kind).startswith("import") else ""
        raise ValueError("symbols: kind must be 'class', 'function' or 'method', not %r%s" % (kind, hint))
    pattern = re.compile(name) if name is not None else None
    everything, _ = _python_index()
    found = [r for r in everything
             if (kind is None or r["kind"] == kind) and (pattern is None or pattern.match(r["name"]))
             and (parent is None or r["parent"] == parent) and (base is None or _derives(r, base))]
    if not found:
        _explain_nothing(everything, name, pattern, kind, parent, base)
    # Copies: model code may edit what it gets, and the index serves every later call.
    return [dict(r, bases=list(r["bases"])) for r in found]


def _explain_nothing(everything, name, pattern, kind, parent, base):
    """Says on stderr which other argument would have matched: small models mix them up."""
    def note(text):
        print("note: " + text, file=sys.stderr)
    # The 1.5B model asked for classes "inside" TestCase when it meant derived from it.
    if parent is not None and base is None:
        derived = sum(1 for r in everything if r["kind"] == "class" and _derives(r, parent))
        if derived:
            note("nothing is defined inside %r, but %d classes derive from it: use base=%r"
                 % (parent, derived, parent))
    # The class's name given as the method's name: symbols("Parser", kind="method").
    if name is not None and kind in ("method", "function"):
        owners = [r for r in everything if r["kind"] == "class" and pattern.match(r["name"])]
        if owners:
            c = owners[0]["name"]
            n = sum(1 for r in everything if r["parent"] == c and r["kind"] == "method")
            note("no %s is named %r, but %r is a class with %d methods: use parent=%r"
                 % (kind, name, c, n, c))
    if parent is not None and not any(r["name"] == parent for r in everything):
        note("nothing in these files is named %r, so nothing can be inside it" % (parent,))
    if base is not None and parent is None:
        inside = sum(1 for r in everything if r["parent"] == base)
        if inside:
            note("no class derives from %r, but %d things are defined inside it: use parent=%r"
                 % (base, inside, base))


def imports(module=None):
    """Every import statement in the folder's Python files, found by parsing them. A list of
    dicts: "path", "line", "module" (the module imported, relative imports resolved against the
    file's folder: `from . import x` in pkg/a.py is "pkg"), "names" (what `from ... import`
    takes from it; empty for `import m`). With `module`, only imports of that module or of a
    submodule of it (`imports("os")` finds `import os.path` and `from os import sep`)."""
    _, everything = _python_index()
    found = everything
    if module is not None:
        module = str(module)
        found = [r for r in found if r["module"] == module or r["module"].startswith(module + ".")]
    return [dict(r, names=list(r["names"])) for r in found]

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
    # Not reserved: `records` is what models name their own list of records (the prompt's old
    # example did), and a reserved name would turn it back into this function after the cell.
    _namespace["records"] = records
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths.update(p for p in sys.path if p)
    return json.dumps({"main_ident": _main_ident, "python": sys.version, "paths": sorted(paths)})


def _hinted(exc):
    """`exc`, marked as saying what to change: its message becomes the result's `hint`."""
    exc._quarry_hint = True
    return exc


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
    global _cell, _final
    _cell += 1
    _final = None
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
        "final_answer": _final,
    }
    if hint is not None:
        result["hint"] = _truncate(hint)
    return json.dumps(result)


def load_context(spec_json):
    global _index
    _index = None
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
