"""Imports aiogram so that its ~400 Telegram types are built when first used, not all at import.

Importing this module imports aiogram; `channels/telegram_bot.py` imports it before any aiogram name.

Why: aiogram's types ask pydantic to defer building their validators (`defer_build=True`), but
`aiogram/types/__init__.py` then calls `model_rebuild()` on every one of them to resolve the forward
references its modules import only for type checkers. That builds each type's validator with its own
copy of every type it nests (an Update holds a Message, which holds most of the others): about 100 MB
of resident memory and 1 to 3 s of start-up, for a process that uses a dozen types (aiogram issue
1513, open). Here, while aiogram is imported, that one call keeps the namespace it was given instead of
building; then each types module gets the names it imported only for type checkers, so pydantic
resolves a type's references from its module, whichever model it builds first and from wherever:
an Update at the first webhook, a sendMessage and the `Response[Message]` it returns at the first send.

`tests/test_telegram_models.py` builds every aiogram type and method this way, so an aiogram or pydantic
release that breaks it fails there rather than at a recipient's first message.
"""

from __future__ import annotations

import sys
from typing import Any

from pydantic import BaseModel

AIOGRAM_PACKAGES = ("aiogram.types.", "aiogram.methods.")


def import_with_deferred_models() -> None:
    if "aiogram" in sys.modules:
        return  # imported already, as aiogram builds it (a test importing aiogram first, say)
    names: dict[str, Any] = {}
    rebuild = BaseModel.__dict__["model_rebuild"]

    def keep_namespace(cls: type[BaseModel], /, **options: Any) -> bool | None:
        namespace = options.get("_types_namespace")
        if namespace is None or not cls.model_config.get("defer_build") or options.get("force"):
            return rebuild.__func__(cls, **options)  # type: ignore[no-any-return]
        names.update(namespace)
        return None

    BaseModel.model_rebuild = classmethod(keep_namespace)  # type: ignore[method-assign,assignment]
    try:
        import aiogram  # noqa: F401 - the import this module exists for
    finally:
        BaseModel.model_rebuild = rebuild  # type: ignore[method-assign]
    for name, module in list(sys.modules.items()):
        if name.startswith(AIOGRAM_PACKAGES) and module is not None:
            for type_name, value in names.items():
                module.__dict__.setdefault(type_name, value)


import_with_deferred_models()
