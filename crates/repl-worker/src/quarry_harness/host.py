"""The host functions model code calls (llm_query, grep, search, read, files, FINAL): each is a JSON
round trip to Rust through `_host_call`."""

import json

from quarry_harness.errors import HostError
from quarry_harness import state
from quarry_harness.state import _namespace
from quarry_harness.provenance import _provenance

_host_call = None
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
    state._final = str(answer)
    return None


def FINAL_VAR(name):
    """Declare the value of the variable `name` the final answer."""
    name = str(name).strip().strip("'\"")
    if name not in _namespace:
        raise NameError("FINAL_VAR: there is no variable named %r" % name)
    state._final = str(_namespace[name])
    return None
