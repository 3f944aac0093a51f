"""Python source structure: `symbols` and `imports` read with `ast`, so definitions and imports
are counted exactly where a regex would count mentions."""

import ast
import re
import sys

from quarry_harness.state import _reserved
from quarry_harness.documents import Documents

# --- Python source structure ---------------------------------------------------------------
#
# Questions about a codebase ("how many subclasses of X", "which files import Y") have exact
# answers a regex written by a small model gets wrong (it counts mentions, not definitions).
# `ast` knows: strings, comments and line continuations never count.

_PY_SUFFIXES = (".py", ".pyi", ".pyw")
_index = None  # (symbols, imports, unparsed paths), built once: the documents never change


def _python_index():
    """Every definition and import in the context's Python source, parsed once per context."""
    global _index
    if _index is None:
        ctx = _reserved.get("context")
        if isinstance(ctx, Documents):
            sources = [(d.path, d.text) for d in ctx if d.path.lower().endswith(_PY_SUFFIXES)]
        elif isinstance(ctx, str):
            sources = [("context", ctx)]
        else:
            sources = []
        symbols_found, imports_found, failed = [], [], []
        for path, text in sources:
            try:
                tree = ast.parse(text, path)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                failed.append(path)
                continue
            _collect_symbols(tree, path, None, False, symbols_found)
            _collect_imports(tree, path, imports_found)
        imports_found.sort(key=lambda r: (r["path"], r["line"]))
        _index = (symbols_found, imports_found, failed)
    symbols_found, imports_found, failed = _index
    if failed:
        # Said on every call: an exact count over files that did not parse is not exact.
        print("note: %d file(s) are not valid Python and were skipped: %s"
              % (len(failed), ", ".join(failed[:5]) + (", ..." if len(failed) > 5 else "")),
              file=sys.stderr)
    return symbols_found, imports_found


def _collect_symbols(node, path, parent, in_class, out):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef):
            out.append({"path": path, "line": child.lineno, "kind": "class", "name": child.name,
                        "parent": parent, "bases": [ast.unparse(b) for b in child.bases],
                        "async": False})
            _collect_symbols(child, path, child.name, True, out)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.append({"path": path, "line": child.lineno,
                        "kind": "method" if in_class else "function", "name": child.name,
                        "parent": parent, "bases": [],
                        "async": isinstance(child, ast.AsyncFunctionDef)})
            _collect_symbols(child, path, child.name, False, out)
        else:
            # if/try/with bodies: a def inside them belongs to the same scope.
            _collect_symbols(child, path, parent, in_class, out)


def _package_of(path):
    """`pkg/sub/mod.py` -> ["pkg", "sub"]; `pkg/__init__.py` -> ["pkg"] too."""
    return path.replace("\\", "/").split("/")[:-1]


def _collect_imports(tree, path, out):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append({"path": path, "line": node.lineno, "module": alias.name, "names": []})
        elif isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:
                base = _package_of(path)
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                name = ".".join(p for p in base + ([name] if name else []) if p)
            out.append({"path": path, "line": node.lineno, "module": name,
                        "names": [a.name for a in node.names]})


def _derives(record, base):
    """The class lists `base` among its bases, as written or as `module.base`."""
    return any(b == base or b.endswith("." + base) for b in record["bases"])


def symbols(name=None, kind=None, parent=None, base=None, **unknown):
    """Every class, function and method defined in the folder's Python files, found by parsing
    them (not by grep). A list of dicts: "path", "line", "kind" ("class", "function" or
    "method": a def directly in a class body), "name", "parent" (the enclosing class or
    function, or None), "bases" (a class's base classes as written, e.g. "unittest.TestCase"),
    "async" (an `async def`). Filters: `name` is a regular expression the name must match from
    its start; `kind` keeps one kind; `parent` keeps what is defined directly in that class or
    function; `base` keeps classes listing that base class (`base="TestCase"` matches
    `TestCase` and `unittest.TestCase`)."""
    # Small models guess at arguments; the error says what to call instead.
    if unknown:
        hint = " (imports are listed by imports(module=...))" if "module" in unknown else ""
        raise TypeError("symbols() takes name, kind, parent and base, not %s%s"
                        % (", ".join(sorted(unknown)), hint))
    if kind is not None and kind not in ("class", "function", "method"):
        hint = "; imports are listed by imports(module=...)" if str(kind).startswith("import") else ""
        raise ValueError("symbols: kind must be 'class', 'function' or 'method', not %r%s" % (kind, hint))
    pattern = re.compile(name) if name is not None else None
    everything, _ = _python_index()
    found = [r for r in everything
             if (kind is None or r["kind"] == kind) and (pattern is None or pattern.match(r["name"]))
             and (parent is None or r["parent"] == parent) and (base is None or _derives(r, base))]
    if not found:
        _explain_nothing(everything, name, pattern, kind, parent, base)
    # Copies: model code may edit what it gets, and the index serves every later call.
    return [dict(r, bases=list(r["bases"])) for r in found]


def _explain_nothing(everything, name, pattern, kind, parent, base):
    """Says on stderr which other argument would have matched: small models mix them up."""
    def note(text):
        print("note: " + text, file=sys.stderr)
    # The 1.5B model asked for classes "inside" TestCase when it meant derived from it.
    if parent is not None and base is None:
        derived = sum(1 for r in everything if r["kind"] == "class" and _derives(r, parent))
        if derived:
            note("nothing is defined inside %r, but %d classes derive from it: use base=%r"
                 % (parent, derived, parent))
    # The class's name given as the method's name: symbols("Parser", kind="method").
    if name is not None and kind in ("method", "function"):
        owners = [r for r in everything if r["kind"] == "class" and pattern.match(r["name"])]
        if owners:
            c = owners[0]["name"]
            n = sum(1 for r in everything if r["parent"] == c and r["kind"] == "method")
            note("no %s is named %r, but %r is a class with %d methods: use parent=%r"
                 % (kind, name, c, n, c))
    if parent is not None and not any(r["name"] == parent for r in everything):
        note("nothing in these files is named %r, so nothing can be inside it" % (parent,))
    if base is not None and parent is None:
        inside = sum(1 for r in everything if r["parent"] == base)
        if inside:
            note("no class derives from %r, but %d things are defined inside it: use parent=%r"
                 % (base, inside, base))


def imports(module=None):
    """Every import statement in the folder's Python files, found by parsing them. A list of
    dicts: "path", "line", "module" (the module imported, relative imports resolved against the
    file's folder: `from . import x` in pkg/a.py is "pkg"), "names" (what `from ... import`
    takes from it; empty for `import m`). With `module`, only imports of that module or of a
    submodule of it (`imports("os")` finds `import os.path` and `from os import sep`)."""
    _, everything = _python_index()
    found = everything
    if module is not None:
        module = str(module)
        found = [r for r in found if r["module"] == module or r["module"].startswith(module + ".")]
    return [dict(r, names=list(r["names"])) for r in found]
