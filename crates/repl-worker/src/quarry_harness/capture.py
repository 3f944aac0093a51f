"""Captured output within the budget: the head and a rolling tail of what a cell prints, never more."""

import io

_budget = 8000
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
