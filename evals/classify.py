#!/usr/bin/env python3
"""How well, and how fast, `llm_classify` labels text through a served model, method by method.

Runs the REPL's own labelling code (imported from crates/repl-worker/src/quarry_harness/,
with `_host_call` answering its host calls over HTTP) on held-out data from ../shared/corpora:

- trec: TREC's *test* questions, six coarse classes (OOLONG's records come from the training file);
- polarity: sentence_polarity (positive / negative movie-review snippets);
- subjectivity: subjective review quotes / objective plot sentences;
- pros_cons: the pros and cons of product reviews.

Methods: `generate` (the sub model writes one numbered label per item under a grammar, ten items
a prompt: the path for endpoints that cannot score), and the likelihood methods (`POST /v1/score`,
one prompt per item): `full` (the whole label's log-probability), `first` (its first token's),
each raw or `+cal` (contextual calibration on content-free inputs, Zhao et al. 2021).

    quarry serve --model qwen2.5-coder-0.5b-instruct-q4_k_m --port 8123 &
    python3 evals/classify.py --base-url http://127.0.0.1:8123/v1 --corpora $QUARRY_CORPORA \\
        [--sets trec,polarity,subjectivity,pros_cons] [--methods generate,full,full+cal,first,first+cal] [--n 200]

Prints one JSON line per (set, method): accuracy, items per second, the labels given.
"""

import argparse
import collections
import concurrent.futures
import importlib.util
import json
import pathlib
import random
import re
import sys
import time
import urllib.error
import urllib.request

REPO = pathlib.Path(__file__).resolve().parent.parent
TREC = {"ABBR": "abbreviation", "DESC": "description and abstract concept", "ENTY": "entity",
        "HUM": "human being", "LOC": "location", "NUM": "numeric value"}
# What a user (or the root model) would write to ask for each set's labels.
INSTRUCTIONS = {
    "trec": "Classify the question by the type of answer it asks for.",
    "polarity": "Classify the sentiment of the movie review snippet.",
    "subjectivity": "Classify whether the sentence states an opinion (subjective) or describes plot facts (objective).",
    "pros_cons": "Classify whether the product review fragment names an advantage (pro) or a disadvantage (con).",
}


def load_harness(where, host_call):
    """The REPL's labelling code with its host calls answered by `host_call`: the `classify`
    module of the harness package in the folder `where`, or a single-file harness.py (before the
    package split)."""
    where = pathlib.Path(where)
    if where.suffix == ".py":
        spec = importlib.util.spec_from_file_location("harness", where)
        harness = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(harness)
        harness._host_call = host_call
        return harness
    sys.path.insert(0, str(where))
    import quarry_harness.core  # noqa: F401  (imports every module, in the worker's order)
    from quarry_harness import classify, host

    host._host_call = host_call
    return classify


def load(name, corpora, n, seed):
    """(label, text) rows of one set, `n` drawn with `seed`, balanced for the binary sets."""
    c = pathlib.Path(corpora)
    rows = []
    if name == "trec":
        for line in open(c / "trec_qc/test.txt", encoding="latin-1"):
            label, question = line.split(" ", 1)
            rows.append((TREC[label.split(":")[0]], " ".join(question.split())))
        labels = list(TREC.values())
    else:
        files = {
            "polarity": [("positive", "sentence_polarity/rt-polarity.pos"), ("negative", "sentence_polarity/rt-polarity.neg")],
            "subjectivity": [("subjective", "subjectivity/quote.tok.gt9.5000"), ("objective", "subjectivity/plot.tok.gt9.5000")],
            "pros_cons": [("pro", "pros_cons/IntegratedPros.txt"), ("con", "pros_cons/IntegratedCons.txt")],
        }[name]
        labels = [label for label, _ in files]
        per = []
        for label, path in files:
            lines = [re.sub(r"</?(Pros|Cons)>", "", l).strip() for l in open(c / path, encoding="latin-1")]
            lines = [l for l in lines if len(l) > 3]
            random.Random(seed).shuffle(lines)
            per.append([(label, l) for l in lines[: (n + 1) // 2]])
        rows = [r for group in per for r in group]
    random.Random(seed).shuffle(rows)
    return rows[:n], labels


def served_host_call(base_url, model, grammars=True, timeout=600, concurrency=4):
    """A `_host_call` for the harness: `llm_query_batched` through chat completions (greedy, the
    grammars sent unless told not to) and `llm_score` through `/v1/score`, `concurrency` requests
    at a time, as the RLM host sends them."""
    base = base_url.rstrip("/")

    def post(route, body):
        req = urllib.request.Request(base + route, json.dumps(body).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.load(resp)

    def chat(prompt, grammar):
        body = {"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0, "max_tokens": 512}
        if grammar and grammars:
            body["grammar"] = grammar
        return post("/chat/completions", body)["choices"][0]["message"]["content"]

    def score(prompt, candidates):
        body = {"model": model, "messages": [{"role": "user", "content": prompt}], "candidates": candidates}
        return post("/score", body)["scores"]

    def host_call(request):
        call = json.loads(request)
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            if call["function"] == "llm_query_batched":
                sent = call.get("grammars") or [None] * len(call["prompts"])
                return json.dumps({"value": list(pool.map(chat, call["prompts"], sent))})
            if call["function"] == "llm_score":
                try:
                    return json.dumps({"value": list(pool.map(lambda p: score(p, call["candidates"]), call["prompts"]))})
                except urllib.error.HTTPError as e:
                    if e.code == 404:
                        return json.dumps({"error": "the sub model does not score continuations"})
                    raise
        return json.dumps({"error": "not available here"})

    return host_call


def run(harness, method, texts, labels, instruction):
    if method == "generate":
        return harness._classify_generated(texts, labels, instruction)
    field = {"full": "logprob", "first": "first_logprob"}[method.split("+")[0]]
    return harness._classify_scored(texts, labels, instruction, calibrate=method.endswith("+cal"), field=field)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-url", required=True, help="OpenAI-compatible server, e.g. http://127.0.0.1:8123/v1")
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct-q4_k_m")
    ap.add_argument("--corpora", required=True, help="the shared corpora folder (trec_qc, sentence_polarity, ...)")
    ap.add_argument("--sets", default="trec,polarity,subjectivity,pros_cons")
    ap.add_argument("--methods", default="generate,full,full+cal,first,first+cal")
    ap.add_argument("--n", type=int, default=200, help="items per set")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-grammar", action="store_true", help="generate without grammars, as for a hosted sub model")
    ap.add_argument("--no-instruction", action="store_true", help="give llm_classify no instruction, only the labels")
    ap.add_argument("--harness", default=str(REPO / "crates/repl-worker/src"),
                    help="the worker folder holding quarry_harness/, or an older checkout's harness.py, to take "
                         "llm_classify from (for comparison)")
    args = ap.parse_args()

    harness = load_harness(args.harness, served_host_call(args.base_url, args.model, grammars=not args.no_grammar))

    for name in args.sets.split(","):
        rows, labels = load(name, args.corpora, args.n, args.seed)
        texts = [t for _, t in rows]
        instruction = None if args.no_instruction else INSTRUCTIONS[name]
        for method in args.methods.split(","):
            started = time.time()
            got = run(harness, method, texts, labels, instruction)
            seconds = time.time() - started
            right = sum(g == p for (g, _), p in zip(rows, got))
            print(json.dumps({
                "set": name, "method": method, "model": args.model, "n": len(rows),
                "accuracy": round(right / len(rows), 3), "items_per_s": round(len(rows) / seconds, 2),
                "seconds": round(seconds, 1), "unlabelled": got.count(None),
                "given": collections.Counter(got).most_common(), "true": collections.Counter(g for g, _ in rows).most_common(),
            }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
