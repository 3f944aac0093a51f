#!/usr/bin/env python3
"""The paraphrase suite: the dev suite's question types, worded and stored in ways nobody tuned to.

The evalkit dev suite has one wording per question type, one record format and TREC labels only,
so a prompt or a helper shaped around it can look better than it is (issue 16: on five unseen
wordings plain BM25 retrieval beat the loop, 0.44 to 0.26). This generator keeps evalkit's gold
computation and scorers (every answer still comes from the data by code) and changes everything a
model reads:

- 3-4 paraphrases of every question type, none with an "Answer:" hint;
- records as JSON Lines, CSV, log lines (`[date] key=value :: text`) and Markdown tables;
- labels from pros_cons, sentence_polarity and subjectivity as well as TREC (TREC's *test* split:
  the dev suite draws from train);
- needles worded as access codes, passcodes and reference numbers, in inaugural addresses (the dev
  suite hides them in noise and State of the Union addresses);
- the odd half of CUAD (the dev suite uses the even half), ContractNLI's test split, and other
  standard-library packages for codeqa.

    python3 evals/paraphrase.py --out /tmp/evals/para --sizes 8k,32k --n 4
    quarry eval /tmp/evals/para/tasks.jsonl --mode rlm --out runs/para-rlm.jsonl

Task ids are `para-<kind>-<size>-<nnn>`, so runs on both suites can sit side by side.
"""

import argparse
import csv
import datetime as dt
import io
import json
import os
import pathlib
import re
import sys
import uuid

HERE = pathlib.Path(__file__).resolve().parent


def load_evalkit(path):
    sys.path.insert(0, str(path))
    import evalkit  # noqa: E402  (the kit is a single stdlib module outside this repository)

    return evalkit


# ---------------------------------------------------------------------------------------------- labels
# Display names are what the model must answer with; they are also the scorer's options.
TREC_NAMES = {"ABBR": "abbreviation", "DESC": "description", "ENTY": "entity", "HUM": "person",
              "LOC": "place", "NUM": "number"}
BINARY_SETS = {
    "pros_cons": dict(files={"PRO": "pros_cons/IntegratedPros.txt", "CON": "pros_cons/IntegratedCons.txt"},
                      names={"PRO": "pro", "CON": "con"}, who="reviewer", item="review fragment",
                      what="a fragment of a product review that names either an advantage (pro) or a "
                           "disadvantage (con) of the product"),
    "polarity": dict(files={"POS": "sentence_polarity/rt-polarity.pos", "NEG": "sentence_polarity/rt-polarity.neg"},
                     names={"POS": "positive", "NEG": "negative"}, who="critic", item="snippet",
                     what="a snippet of a movie review whose sentiment is either positive or negative"),
    "subjectivity": dict(files={"SUBJ": "subjectivity/quote.tok.gt9.5000", "OBJ": "subjectivity/plot.tok.gt9.5000"},
                         names={"SUBJ": "subjective", "OBJ": "objective"}, who="author", item="sentence",
                         what="a sentence about a film that either states an opinion (subjective) or describes "
                              "the plot (objective)"),
}


def binary_pool(kit, name):
    spec = BINARY_SETS[name]

    def load(env):
        def read():
            rows = []
            for key, rel in spec["files"].items():
                with open(os.path.join(env["corpora"], rel), encoding="latin-1") as f:
                    for line in f:
                        text = " ".join(re.sub(r"</?(Pros|Cons)>", "", line).split())
                        if len(text) > 3:
                            rows.append((text, key))
            return rows

        return kit.cached(("para", name, env["corpora"]), read)

    return load


# --------------------------------------------------------------------------------------------- formats
# Each format says how one record is written and how the folder is described to the model. `who`
# and `item` are filled per label set ("reviewer"/"review fragment", "user"/"question").
def _csv_line(values):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(values)
    return buf.getvalue()


def _when(r):
    return dt.datetime.combine(r["date"], dt.time()) + dt.timedelta(seconds=r["sec"])


FORMATS = {
    "jsonl": dict(
        name="records_{:02d}.jsonl",
        render=lambda r: json.dumps({"ts": _when(r).isoformat(), "user": r["user"], "text": r["text"]},
                                    ensure_ascii=False),
        intro=("The .jsonl files here are JSON Lines: each line is one {item} as an object with its time ('ts'), "
               "the {who}'s ID ('user') and the {item} itself ('text').",
               "Every line of the JSON Lines files in this folder is a {item}: a JSON object with keys ts, user "
               "(the {who} ID) and text.",
               "This folder is an export of {item}s in JSON Lines form, one object per line with the keys ts, "
               "user and text."),
    ),
    "csv": dict(
        name="export_{:02d}.csv",
        header="date,user_id,text\n",
        render=lambda r: _csv_line([r["date"].isoformat(), r["user"], r["text"]]),
        intro=("The CSV files in this folder list {item}s with the columns date, user_id (the {who}) and text.",
               "Each row of these CSV exports is one {item}: its date, the {who}'s user_id and its text.",
               "This folder holds spreadsheet exports (CSV, with a header row) of {item}s by date and {who}."),
    ),
    "log": dict(
        name="activity_{:02d}.log",
        render=lambda r: f"[{_when(r).strftime('%Y-%m-%d %H:%M:%S')}] user={r['user']} :: {r['text']}",
        intro=("The .log files in this folder record one {item} per line: `[date time] user=<{who} id> :: <text>`.",
               "These logs hold a line per {item}, stamped with its date and the {who} (user=...), the text after "
               "'::'.",
               "Each log line here is `[timestamp] user=ID :: text`, where the text is one {item} and ID the {who}."),
    ),
    "markdown": dict(
        name="table_{:02d}.md",
        header="| date | user | text |\n|---|---|---|\n",
        render=lambda r: f"| {r['date'].strftime('%d %b %Y')} | {r['user']} | {r['text'].replace('|', '/')} |",
        intro=("The Markdown files in this folder hold tables of {item}s with the columns date, user (the {who}) "
               "and text.",
               "Every row of the Markdown tables in these .md files is one {item}: date, {who} id, text.",
               "This folder contains notes with Markdown tables, one {item} per row (date | user | text)."),
    ),
}

JUDGE = ("No file stores a label: read each {item} and decide which of these it is: {{labels}}.",
         "The labels are not in the data; each {item} has to be judged by its meaning as one of {{labels}}.",
         "Nothing in the files says which kind each {item} is. The possible kinds are {{labels}}.")


def record_pools(kit):
    """Label set × format combinations, interleaved so that consecutive tasks differ in both."""
    sets = [dict(name="trec_test", load=kit._trec_pool("test.txt"), labels=TREC_NAMES,
                 label_order=["DESC", "ENTY", "HUM", "NUM", "LOC", "ABBR"], who="user", item="question",
                 paper_specs=True,
                 what="a general-knowledge question, to be labelled by the kind of answer it asks for")]
    for name, spec in BINARY_SETS.items():
        sets.append(dict(name=name, load=binary_pool(kit, name), labels=spec["names"],
                         label_order=sorted(spec["names"]), who=spec["who"], item=spec["item"], what=spec["what"]))
    formats = list(FORMATS)
    pools = []
    for shift in range(len(formats)):
        for k, s in enumerate(sets):
            fmt_name = formats[(k + shift) % len(formats)]
            fmt = FORMATS[fmt_name]
            words = dict(who=s["who"], item=s["item"])
            intro = tuple(f"{a.format(**words)} Each {s['item']} is {s['what']}. {j.format(**words)}"
                          for a in fmt["intro"] for j in JUDGE)
            pools.append(dict(s, name=f"{s['name']}/{fmt_name}", intro=intro,
                              format=dict(name=fmt["name"], render=fmt["render"], header=fmt.get("header", ""))))
    return pools


# ----------------------------------------------------------------------------------------- questions
OOLONG_TEMPLATES = {
    "count_label": ("How many {item}s would you label '{label}'?",
                    "Count the {item}s that are '{label}'. What is the total?",
                    "What is the number of {item}s in this folder that fall under '{label}'?",
                    "Across every file, how many {item}s belong to the '{label}' kind?"),
    "most_freq": ("Which label applies to the largest number of {item}s?",
                  "What is the most frequent kind among all the {item}s?",
                  "If you labelled every {item}, which label would come up most often?"),
    "least_freq": ("Of {options}, which label is given to the fewest {item}s?",
                   "Which of these labels is the rarest across the {item}s: {options}?",
                   "Among {options}, which kind has the smallest number of {item}s?"),
    "user_count": ("Looking only at {who}s {users}: how many of their {item}s are '{label}'?",
                   "Take the {who}s with IDs {users} together. How many of their {item}s should be labelled "
                   "'{label}'?",
                   "How many '{label}' {item}s were written by {who}s {users}?"),
    "month_most": ("Which month had the most '{label}' {item}s? Name the month and the year.",
                   "In what month and year do '{label}' {item}s peak?",
                   "During which calendar month were '{label}' {item}s most numerous?"),
    "month_count": ("How many {item}s from {month} are '{label}'?",
                    "Count the '{label}' {item}s dated within {month}.",
                    "In {month}, how many {item}s fall under '{label}'?"),
}

PAIRS_TEMPLATES = {
    "sym": ("Which pairs of {who}s both have {p}?",
            "Find every pair of {who} IDs where each of the two has {p}.",
            "List the pairs of {who}s such that both of them have {p}."),
    "asym": ("Which pairs of {who}s are such that one has {p} and the other has {q}?",
             "Find every pair of {who} IDs where one {who} has {p} while the other has {q}.",
             "List the {who} pairs in which one side has {p} and the other side has {q}."),
    "format": ("Write each pair once as (smaller ID, larger ID), one pair per line.",
               "Give each pair on its own line as (lower ID, higher ID), without repeats.",
               "Each pair once, lower ID first, one pair per line."),
}

PAIRS_PHRASES = [
    {"any": "at least one {item} that is {a} or {b}", "ge1": "at least one {item} that is {l}",
     "ge": "{kw} or more {item}s that are {l}", "eq1": "exactly one {item} that is {l}",
     "eq": "exactly {kw} {item}s that are {l}", "after": "every {l} {item} dated after {date}",
     "before": "every {l} {item} dated before {date}"},
    {"any": "a {item} labelled {a} or one labelled {b}", "ge1": "a {item} labelled {l}",
     "ge": "no fewer than {k} {item}s labelled {l}", "eq1": "a single {item} labelled {l}",
     "eq": "precisely {k} {item}s labelled {l}", "after": "only {l} {item}s later than {date}",
     "before": "only {l} {item}s earlier than {date}"},
]

SNIAH_NEEDLES = {
    "number": ("The access code for the {key} vault is {value}.",
               "Note for the archive: the {key} reference number reads {value}.",
               "Remember this, {key} team: your passcode is {value}."),
    "uuid": ("The {key} deployment token is {value}.",
             "Registry entry: {key} was assigned the identifier {value}.",
             "For the record, the {key} ticket carries the id {value}."),
}
SNIAH_QUESTIONS = ("Somewhere in these documents the {what} for {key} is written down. What is it?",
                   "What {what} is given for {key} in this folder?",
                   "I need the {what} that belongs to {key}; find it in the files.",
                   "Which {what} do the documents give for {key}?")

CODEQA_TEMPLATES = {
    "locate_class": ("Where is the class `{name}` defined? Give the file's path from the folder root.",
                     "Which module file holds the definition of `{name}`?",
                     "Find the file in which `class {name}` is declared."),
    "count_prefix": ("How many functions or methods (def or async def, nested ones included) have names beginning "
                     "with `{prefix}`?",
                     "Count every def whose name starts with `{prefix}`, at any depth.",
                     "What is the number of function and method definitions named `{prefix}...`?"),
    "count_subclass": ("How many classes are declared with `{base}` (or `something.{base}`) as a direct base?",
                       "Count the class statements that inherit directly from `{base}`.",
                       "How many class definitions name `{base}` among their immediate base classes?"),
    "list_importers": ("Which files import the module `{module}` (import {module}, import {module}.x or from "
                       "{module}... import)? Give their paths from the folder root.",
                       "List every source file that has an absolute import of `{module}` or one of its submodules.",
                       "Name all files containing `import {module}` or `from {module}` statements."),
    "count_methods": ("How many methods does `{name}` define in its own class body (inherited ones excluded)?",
                      "Count the def statements directly inside `class {name}`.",
                      "What is the number of methods written directly in the body of `{name}`?"),
}

CONTRACT_TEMPLATES = {
    "law_which": ("Which one of these contracts is governed by {law} law?",
                  "Only one agreement here chooses the law of {law}. Which file is it?",
                  "Name the contract whose governing law is that of {law}."),
    "clause_count": ("In how many of these contracts is there {clause}? ({definition})",
                     "Count the agreements that include {clause}. Meaning: {definition}",
                     "How many contracts in the folder have {clause}? (What counts: {definition})"),
    "clause_list": ("Which contracts contain {clause}? ({definition}) Name the files.",
                    "List every agreement that includes {clause}. Meaning: {definition}",
                    "Give the file names of all contracts with {clause}. (What counts: {definition})"),
    "nli_choice": ("Read {doc}. With respect to the statement \"{hyp}\", does the agreement support it, contradict "
                   "it, or not address it? Options: {options}.",
                   "Does {doc} entail, contradict or stay silent on this: \"{hyp}\"? Choose from {options}.",
                   "Compare \"{hyp}\" with what {doc} says. Which is it: {options}?"),
    "nli_count": ("How many of these NDAs support the statement \"{hyp}\"?",
                  "Count the agreements that entail: \"{hyp}\".",
                  "In how many documents does it follow that \"{hyp}\"?"),
}


def para_suite(kit):
    pools = record_pools(kit)
    sniah = dict(kit.DEV_SNIAH)
    sniah.update(
        haystacks=[{"dir": "{corpora}/inaugural", "pattern": r"^\d{4}-.*\.txt$"}, "noise"],
        values=["number", "uuid"],
        value_fns={"number": lambda rng: str(rng.randint(10 ** 6, 10 ** 7 - 1)),
                   "uuid": lambda rng: str(uuid.UUID(int=rng.getrandbits(128), version=4))},
        value_words={"number": "number", "uuid": "identifier"},
        needles=SNIAH_NEEDLES, questions=SNIAH_QUESTIONS)
    oolong = dict(kit.DEV_OOLONG, pools=pools, templates=OOLONG_TEMPLATES)
    pairs = dict(kit.DEV_PAIRS, pools=pools, templates=PAIRS_TEMPLATES, phrases=[
        dict(p, date_fmt=kit.long_date, join=kit.DEV_PAIRS["phrases"]["join"]) for p in PAIRS_PHRASES])
    codeqa = dict(kit.DEV_CODEQA, templates=CODEQA_TEMPLATES,
                  packages=["logging", "xml", "unittest", "multiprocessing", "importlib", "sqlite3", "curses",
                            "dbm", "venv", "ensurepip", "collections", "re"],
                  intro=("This folder is part of the Python standard library's source.",
                         "The files here are Python modules from CPython's standard library.",
                         "A Python code base (taken from the standard library) is in this folder."))
    contracts = dict(kit.DEV_CONTRACTS, templates=CONTRACT_TEMPLATES, cuad_half="odd", cnli_split="test",
                     intro_cuad=("The files in this folder are commercial agreements, one per file.",
                                 "Each .txt file here is one contract.",
                                 "This is a data room of contracts, a file per agreement."),
                     intro_nli=("The files in this folder are non-disclosure agreements.",
                                "Each file here is one NDA.",
                                "This folder holds confidentiality agreements, one per file."))
    return dict(name="para", id_prefix="para-",
                kinds={"sniah": (sniah, ["8k", "32k", "128k", "1m"]), "oolong": (oolong, ["8k", "32k", "128k"]),
                       "pairs": (pairs, ["8k", "32k", "128k"]), "codeqa": (codeqa, ["8k", "32k", "128k"]),
                       "contracts": (contracts, ["8k", "32k", "128k"])})


def check(tasks, out):
    """The promises above, checked on what was written: no 'Answer:' hint in any question, and
    every record folder parses back to the number of records its gold was computed from."""
    hinted = [t["id"] for t in tasks if re.search(r"answer\s*:", t["question"], re.I)]
    if hinted:
        raise SystemExit(f"error: questions still carry an 'Answer:' hint: {', '.join(hinted[:5])}")
    for t in tasks:
        if t["kind"] not in ("oolong", "pairs"):
            continue
        rows = 0
        for f in sorted(pathlib.Path(out, t["context_dir"]).iterdir()):
            text = f.read_text(encoding="utf-8")
            if f.suffix == ".csv":
                rows += sum(1 for _ in csv.reader(io.StringIO(text))) - 1
            elif f.suffix == ".md":
                rows += sum(1 for line in text.splitlines() if line.startswith("| ")) - 1
            else:
                rows += sum(1 for line in text.splitlines() if line.strip())
        if rows != t["meta"]["n_records"]:
            raise SystemExit(f"error: {t['id']} holds {rows} records but its gold counts {t['meta']['n_records']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--evalkit", default=os.environ.get("EVALKIT", str(HERE.parent.parent / "shared" / "evalkit")))
    ap.add_argument("--corpora", default=os.environ.get("QUARRY_CORPORA"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sizes", help="comma-separated, e.g. 8k,32k (default: each kind's own)")
    ap.add_argument("--kinds", help="comma-separated (default: all)")
    ap.add_argument("--n", type=int, default=4, help="tasks per kind and size")
    ap.add_argument("--force", action="store_true", help="replace tasks already generated in --out")
    a = ap.parse_args()
    kit = load_evalkit(a.evalkit)
    corpora = a.corpora or kit.DEFAULT_CORPORA
    tasks = kit.generate(para_suite(kit), a.out, seed=a.seed, sizes=a.sizes.split(",") if a.sizes else None,
                         kinds=a.kinds.split(",") if a.kinds else None, n=a.n, corpora=corpora, force=a.force)
    check(tasks, a.out)
    print(f"{len(tasks)} tasks in {a.out}/tasks.jsonl", file=sys.stderr)


if __name__ == "__main__":
    main()
