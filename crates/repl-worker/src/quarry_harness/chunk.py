"""A piece of text that knows where it came from (`Chunk`), and the page map of paged documents it
reads its page from."""

import bisect

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
