"""Provenance: the chunks cut in the current context, looked up in every prompt, so a sub-call's
answer carries the sources its prompt was built from."""

import collections
import itertools
import threading

from quarry_harness.chunk import Chunk

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
