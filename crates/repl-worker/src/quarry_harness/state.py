"""The REPL session's state the other modules share: the model's namespace, the names reserved in
it, and the final answer once FINAL is called."""


_namespace = {}
_reserved = {}
_final = None
