#!/usr/bin/env python3
"""Tabulate evaluation runs for docs/results.md.

    python3 evals/results.py --tasks TASKS.jsonl rlm=PRED.jsonl direct=PRED.jsonl ... [--evalkit PATH]

Each NAME=PRED.jsonl is scored with evalkit (`score --json`, so the scores are evalkit's own),
restricted to the task ids present in every file given, so every row compares the same tasks.
Prints one Markdown table: per kind and size, per run, the mean score (0-100), the
format-success rate (runs that ended with an answer the model chose to give, not one forced by a
limit: `format_ok` in Quarry's predictions, `finished` in the reference script's) and the median
seconds per task.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", required=True)
    ap.add_argument("--evalkit", default=os.environ.get("EVALKIT", "evalkit") + "/evalkit.py", help="evalkit.py (default: $EVALKIT/evalkit.py)")
    ap.add_argument("runs", nargs="+", help="NAME=PRED.jsonl")
    a = ap.parse_args()
    runs = [r.split("=", 1) for r in a.runs]
    preds = {name: load(path) for name, path in runs}
    # Only tasks every run answered, so each row compares the same tasks.
    ids = [i for i in preds[runs[0][0]] if all(i in p for p in preds.values())]
    tasks = {}
    for line in open(a.tasks):
        t = json.loads(line)
        if t["id"] in ids:
            tasks[t["id"]] = t
    with tempfile.TemporaryDirectory() as tmp:
        sub = os.path.join(tmp, "tasks.jsonl")
        with open(sub, "w") as f:
            for line in open(a.tasks):
                if json.loads(line)["id"] in ids:
                    f.write(line)
        # evalkit resolves context_dir against the tasks file's folder, which scoring never reads.
        scores = {}
        for name, path in runs:
            out = subprocess.run([sys.executable, a.evalkit, "score", "--tasks", sub, "--pred", path, "--json"],
                                 capture_output=True, text=True, check=True)
            scores[name] = {t["id"]: t for t in json.loads(out.stdout)["tasks"]}
    groups = []
    for tid in ids:
        t = tasks[tid]
        g = (t["kind"], t["meta"]["size"])
        if g not in groups:
            groups.append(g)
    names = [n for n, _ in runs]
    print("| kind | size | n | " + " | ".join(f"{n} score | {n} format | {n} median s" for n in names) + " |")
    print("|---|---|---|" + "---|---|---|" * len(names))
    for kind, size in groups + [("all", "")]:
        members = [i for i in ids if kind == "all" or (tasks[i]["kind"], tasks[i]["meta"]["size"]) == (kind, size)]
        cells = []
        for n in names:
            sc = [scores[n][i]["score"] for i in members if i in scores[n]]
            got = [preds[n][i] for i in members if i in preds[n]]
            ok = [p.get("format_ok", p.get("finished")) for p in got]
            ok = [bool(x) for x in ok if x is not None]
            secs = [p["seconds"] for p in got if isinstance(p.get("seconds"), (int, float))]
            cells.append(f"{100 * sum(sc) / len(members):.1f}" if members else "-")
            cells.append(f"{100 * sum(ok) / len(ok):.0f}%" if ok else "-")
            cells.append(f"{statistics.median(secs):.0f}" if secs else "-")
        print(f"| {kind} | {size} | {len(members)} | " + " | ".join(cells) + " |")


def load(path):
    out = {}
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line:
                p = json.loads(line)
                out[p["id"]] = p
    return out


if __name__ == "__main__":
    main()
