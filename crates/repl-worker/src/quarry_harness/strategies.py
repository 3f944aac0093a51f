"""Strategies: whole tasks the root calls in one line (`label_records`, `count_labels`,
`files_where`, `find_passage`), each printing what it did and returning its evidence with sources."""

import collections
import re

from quarry_harness.errors import HostError
from quarry_harness.state import _reserved
from quarry_harness.host import _batched, files, search
from quarry_harness.documents import Documents, chunks
from quarry_harness.records import Record, RecordList, records
from quarry_harness.classify import _cannot_score, _label_logprobs, llm_classify

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
