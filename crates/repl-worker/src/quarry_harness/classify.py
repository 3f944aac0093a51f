"""`llm_classify`: labels by likelihood where the sub model can score, by a grammar-held generation
where it cannot."""

import math
import re

from quarry_harness.errors import HostError
from quarry_harness.host import _batched, _call

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
