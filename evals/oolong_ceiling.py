#!/usr/bin/env python3
"""What a perfect root program would score on OOLONG and OOLONG-Pairs with a given sub model.

An OOLONG question is answered by labelling every record and counting; the labelling is the sub
model's, the program around it the root model's. This runs the best program by hand: it parses
every record of a task's folder, labels the questions with the REPL's own `llm_classify`
(imported from crates/repl-worker/src/quarry_harness/, its `llm_query_batched` calls answered over
HTTP by a `quarry serve`), computes the task's answer from those labels exactly as evalkit computed
the gold one from the true labels, and scores it with evalkit. With `--oracle` the true TREC
labels are used instead (every task must then score 1.0: a check of the program itself).

    quarry serve --model qwen2.5-coder-0.5b-instruct-q4_k_m --port 8123 &
    python3 evals/oolong_ceiling.py --tasks DEV/tasks.jsonl --sizes 32k \\
        --base-url http://127.0.0.1:8123/v1 [--kinds oolong,pairs] [--batch 10] [--out PRED.jsonl]

So a loop's score on these kinds can be read against what its sub model allows.
"""

import argparse
import collections
import datetime as dt
import importlib.util
import json
import os
import pathlib
import re
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
RECORD = re.compile(r"Date: (.+?) \|\| User: (\d+) \|\| Instance: (.*)$")


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def records(folder):
    out = []
    for f in sorted(pathlib.Path(folder).glob("*.txt")):
        for line in f.read_text(encoding="utf-8").splitlines():
            m = RECORD.match(line.strip())
            if m:
                date = dt.datetime.strptime(m[1], "%b %d, %Y").date()
                out.append({"date": date, "user": int(m[2]), "text": m[3]})
    return out


def answer(task, recs, kit):
    """The task's answer from labelled records (each with "label", a TREC key), as evalkit's
    generator computed the gold one."""
    meta, names = task["meta"], kit.OOLONG_LABELS
    key = {v: k for k, v in names.items()}
    c = collections.Counter(r["label"] for r in recs)
    q = meta["qtype"]
    if task["kind"] == "pairs":
        pairs = kit.pair_gold(kit.user_stats(recs), meta["spec"])
        return "Answer:\n" + "\n".join(f"({a}, {b})" for a, b in pairs)
    if q == "count_label":
        return f"Answer: {c[key[meta['label']]]}"
    if q in ("most_freq", "least_freq"):
        opts = [key[o] for o in meta["options"]]
        pick = max if q == "most_freq" else min
        return "Answer: " + names[pick(sorted(opts), key=lambda k: c[k])]
    if q == "user_count":
        users = set(meta["users"])
        return f"Answer: {sum(1 for r in recs if r['user'] in users and r['label'] == key[meta['label']])}"
    if q == "month_most":
        months = collections.Counter(kit.month_name(r["date"]) for r in recs if r["label"] == key[meta["label"]])
        return "Answer: " + (months.most_common(1)[0][0] if months else "none")
    if q == "month_count":
        n = sum(1 for r in recs if r["label"] == key[meta["label"]] and kit.month_name(r["date"]) == meta["month"])
        return f"Answer: {n}"
    raise ValueError(f"unknown qtype {q!r} in task {task['id']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", required=True, help="an evalkit tasks.jsonl")
    ap.add_argument("--kinds", default="oolong,pairs")
    ap.add_argument("--sizes", default="8k,32k")
    ap.add_argument("--ids", default="", help="comma-separated task ids (default: all that match)")
    ap.add_argument("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8123/v1")
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct-q4_k_m")
    ap.add_argument("--batch", type=int, default=10, help="items per prompt (llm_classify's `batch`)")
    ap.add_argument("--oracle", action="store_true", help="use the true TREC labels (checks the program)")
    ap.add_argument("--evalkit", default=os.environ.get("EVALKIT", "evalkit") + "/evalkit.py", help="evalkit.py (default: $EVALKIT/evalkit.py)")
    ap.add_argument("--trec", default=os.environ.get("QUARRY_CORPORA", "corpora") + "/trec_qc/train.txt", help="TREC training questions (default: $QUARRY_CORPORA/trec_qc/train.txt)")
    ap.add_argument("--out", help="write predictions here (evalkit's format)")
    args = ap.parse_args()
    if not args.oracle and not args.base_url:
        ap.error("--base-url is required unless --oracle")

    kit = load(args.evalkit, "evalkit")
    names = kit.OOLONG_LABELS
    key = {v: k for k, v in names.items()}
    truth = {" ".join(q.split()): lab for q, lab in kit.load_trec(args.trec)}

    served = load(REPO / "evals/classify.py", "classify")
    host_call = None if args.oracle else served.served_host_call(args.base_url, args.model, timeout=900)
    harness = served.load_harness(REPO / "crates/repl-worker/src", host_call)
    tasks = [json.loads(line) for line in open(args.tasks)]
    ids = set(filter(None, args.ids.split(",")))
    tasks = [t for t in tasks if t["kind"] in args.kinds.split(",") and t["meta"].get("size") in args.sizes.split(",")
             and (not ids or t["id"] in ids)]
    base = pathlib.Path(args.tasks).parent
    out = open(args.out, "w") if args.out else None
    total = 0.0
    for task in tasks:
        recs = records(base / task["context_dir"])
        started = time.time()
        if args.oracle:
            labels = [truth.get(" ".join(r["text"].split())) for r in recs]
        else:
            given = harness.llm_classify([r["text"] for r in recs], [names[k] for k in kit.OOLONG_LABEL_ORDER],
                                         batch=args.batch)
            labels = [key.get(g) for g in given]
        for r, lab in zip(recs, labels):
            r["label"] = lab
        right = sum(lab == truth.get(" ".join(r["text"].split())) for r, lab in zip(recs, labels))
        pred = answer(task, recs, kit)
        score = kit.score_task(task, pred)
        total += score
        print(json.dumps({"id": task["id"], "score": round(score, 3), "records": len(recs),
                          "labelled_right": round(right / max(1, len(recs)), 3), "unlabelled": labels.count(None),
                          "seconds": round(time.time() - started, 1), "answer": pred[:80], "gold": str(task["answer"])[:80]}),
              flush=True)
        if out:
            out.write(json.dumps({"id": task["id"], "answer": pred}) + "\n")
            out.flush()
    print(json.dumps({"tasks": len(tasks), "mean_score": round(100 * total / max(1, len(tasks)), 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
