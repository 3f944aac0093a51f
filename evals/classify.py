#!/usr/bin/env python3
"""How well `llm_classify` labels TREC questions through a served sub model.

OOLONG and OOLONG-Pairs need every record labelled (TREC's six coarse classes) before anything
can be counted, and the label is the sub model's to give. This runs the REPL's own
`llm_classify` (imported from crates/repl/src/worker/harness.py, with `_host_call` answering its
`llm_query_batched` calls over HTTP) on questions from TREC's test file, which the evaluation's
records (drawn from the training file) do not contain, and prints the share labelled right, the
share left unlabelled and the labels given.

    quarry serve --model qwen2.5-coder-0.5b-instruct-q4_k_m --port 8123 &
    python3 evals/classify.py --base-url http://127.0.0.1:8123/v1 \\
        --trec $QUARRY_CORPORA/trec_qc/test.txt [--no-grammar] [--n 120] [--harness OLD.py]

`--no-grammar` drops the grammars, as for a sub model that takes none (a hosted API).
"""

import argparse
import collections
import concurrent.futures
import importlib.util
import json
import pathlib
import random
import sys
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parent.parent
LABELS = {"ABBR": "abbreviation", "DESC": "description and abstract concept", "ENTY": "entity",
          "HUM": "human being", "LOC": "location", "NUM": "numeric value"}


def served_host_call(base_url, model, grammars=True, timeout=600):
    """A `_host_call` for harness.py that answers `llm_query_batched` through an OpenAI-compatible
    server, four prompts at a time, greedily; each prompt's grammar is sent unless `grammars` is
    false. Other host functions are refused."""

    def chat(prompt, grammar):
        body = {"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0,
                "max_tokens": 512}
        if grammar and grammars:
            body["grammar"] = grammar
        req = urllib.request.Request(base_url.rstrip("/") + "/chat/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.load(resp)["choices"][0]["message"]["content"]

    def host_call(request):
        call = json.loads(request)
        if call["function"] != "llm_query_batched":
            return json.dumps({"error": "not available here"})
        sent = call.get("grammars") or [None] * len(call["prompts"])
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            return json.dumps({"value": list(pool.map(chat, call["prompts"], sent))})

    return host_call


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-url", required=True, help="OpenAI-compatible server, e.g. http://127.0.0.1:8123/v1")
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct-q4_k_m")
    ap.add_argument("--trec", required=True, help="TREC question file (LABEL:fine question per line)")
    ap.add_argument("--n", type=int, default=120, help="questions, drawn with --seed")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-grammar", action="store_true", help="send no grammars")
    ap.add_argument("--batch", type=int, default=10, help="items per prompt (llm_classify's `batch`)")
    ap.add_argument("--harness", default=str(REPO / "crates/repl/src/worker/harness.py"),
                    help="the harness.py to take llm_classify from (e.g. an older version, for comparison)")
    args = ap.parse_args()

    rows = []
    for line in open(args.trec, encoding="latin-1"):
        label, question = line.split(" ", 1)
        rows.append((LABELS[label.split(":")[0]], " ".join(question.split())))
    random.Random(args.seed).shuffle(rows)
    rows = rows[:args.n]

    spec = importlib.util.spec_from_file_location("harness", args.harness)
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)

    harness._host_call = served_host_call(args.base_url, args.model, grammars=not args.no_grammar)
    started = time.time()
    got = harness.llm_classify([q for _, q in rows], list(LABELS.values()), batch=args.batch)
    seconds = time.time() - started
    right = sum(g == p for (g, _), p in zip(rows, got))
    print(json.dumps({
        "model": args.model, "grammar": not args.no_grammar, "batch": args.batch, "n": len(rows),
        "accuracy": round(right / len(rows), 3), "unlabelled": got.count(None), "seconds": round(seconds, 1),
        "given": collections.Counter(got).most_common(), "true": collections.Counter(g for g, _ in rows).most_common(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
