"""`records()`: line-structured data (key: value lines, CSV and TSV, JSON Lines, log lines,
Markdown tables) parsed into dicts, one per record, each knowing its file and line."""

import io
import json
import os
import re

from quarry_harness.errors import _hinted
from quarry_harness.state import _reserved
from quarry_harness.documents import _chunk_inputs

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
