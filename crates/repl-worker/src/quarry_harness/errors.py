"""The exceptions the harness raises into model code, and the mark that says an error names its fix."""


class ExecutionTimeout(BaseException):
    """Raised asynchronously in the main thread when an execution runs out of time.

    A BaseException, so `except Exception:` in model code does not swallow it.
    """


class HostError(Exception):
    """A host function (llm_query, read, ...) failed on the host's side."""

def _hinted(exc):
    """`exc`, marked as saying what to change: its message becomes the result's `hint`."""
    exc._quarry_hint = True
    return exc
