# The Python half of the REPL worker (crates/repl-worker/src/lib.rs is the Rust half).
#
# Rust initialises the interpreter, confines the process, and calls `init`, `execute` and
# `load_context` with the GIL held; each returns a JSON string that Rust forwards to the host
# unchanged. Host functions reach Rust through `_host_call(name, args_json) -> reply_json`.
#
# Everything here runs inside the sandbox, so nothing in it is a security boundary: it only gives
# the model a REPL it can work with (persistent namespace, captured output, trimmed tracebacks,
# reserved names that survive assignment).
#
# The modules, in the order the worker loads them (crates/repl-worker/src/lib.rs, HARNESS); each
# imports only those before it:
#   errors      ExecutionTimeout, HostError, the mark that an error names its fix
#   state       the model's namespace, the reserved names, the final answer
#   capture     output kept within the budget
#   chunk       Chunk, a str that knows its source, and the page map of paged documents
#   provenance  which chunks a prompt was built from, so sub-call answers carry sources
#   host        the host functions: llm_query, grep, search, read, files, FINAL
#   documents   context (Document, Documents) and chunks()
#   records     records(): line-structured data parsed into dicts
#   classify    llm_classify, by likelihood or by grammar-held generation
#   strategies  label_records, count_labels, files_where, find_passage
#   pysource    symbols and imports, read with ast
#   core        init, execute, load_context: what Rust calls
