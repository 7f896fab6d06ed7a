"""Package exports that load on first use (PEP 562), so that importing a package costs nothing.

    # minift/finetune/__init__.py
    lazy_exports(globals(), {"finetune": "minift.finetune.run", "FinetuneConfig": "minift.finetune.config"})

`from minift.finetune import finetune` then imports minift/finetune/run.py at that moment, and only then. Why:
`minift --help` must answer in a fraction of a second, and torch takes seconds to import; the command-line parser
reads a few pure-data modules (the task list, the templates, the configs' defaults) inside packages whose other
modules need torch. With eager package `__init__`s, touching one of those modules would import everything.
"""

from __future__ import annotations

import importlib


def lazy_exports(namespace: dict, exports: dict[str, str]) -> None:
    """Give the package whose globals() is `namespace` the public names in `exports` (name → module that defines
    it), imported on first access; also sets `__all__` and `__dir__`."""
    package = namespace["__name__"]

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        namespace[name] = value  # cached: the next access is a plain global
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    namespace["__getattr__"] = __getattr__
    namespace["__dir__"] = __dir__
    namespace["__all__"] = sorted(exports)
