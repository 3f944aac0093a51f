"""pytest for the REPL harness's pure helpers (crates/repl-worker/src/quarry_harness/).

The worker loads the same modules from the binary; here they are imported from their files.
The Rust tests (crates/repl-worker/tests/it) cover the harness inside the confined worker; these cover
the helpers' edge cases, which are cheaper to state in Python.
"""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "src"))


@pytest.fixture
def repl():
    """`quarry_harness.core` initialised with a host that answers from a dict of functions; the
    streams `init` and `execute` replace are put back afterwards, so pytest keeps its output."""
    import json

    from quarry_harness import core, state

    answers = {}

    def host_call(request):
        args = json.loads(request)
        name = args.pop("function")
        if name not in answers:
            return json.dumps({"error": "no host function %r in this test" % name})
        return json.dumps({"value": answers[name](**args)})

    saved = sys.stdout, sys.stderr, sys.stdin
    core.init(host_call, 8000)
    try:
        yield core, answers
    finally:
        sys.stdout, sys.stderr, sys.stdin = saved
        state._namespace.clear()
        state._reserved.clear()
