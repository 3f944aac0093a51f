"""The documents as the model sees them (`context`): Document, Documents, and `chunks`, which cuts
them at line boundaries and registers each piece for provenance."""

import operator

from quarry_harness.errors import _hinted
from quarry_harness.chunk import Chunk, _page_starts
from quarry_harness.provenance import _register

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
