"""aiogram imported through channels/aiogram_models.py: its types wait to be used, and all of them build.

Each check runs in a fresh interpreter, because the pytest process may have imported aiogram already.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_fresh(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_types_are_built_when_first_used_not_at_import() -> None:
    out = run_fresh(
        """
        import channels.telegram_bot
        from aiogram import types

        models = [getattr(types, name) for name in types.__all__]
        models = [m for m in models if isinstance(m, type) and hasattr(m, "__pydantic_complete__")]
        print(len(models), sum(m.__pydantic_complete__ for m in models))
        update = types.Update.model_validate(
            {
                "update_id": 7,
                "message": {
                    "message_id": 1, "date": 1764000000, "text": "where is my parcel?",
                    "chat": {"id": 42, "type": "private"},
                    "from": {"id": 42, "is_bot": False, "first_name": "Ana"},
                    "photo": [{"file_id": "p1", "file_unique_id": "u1", "width": 40, "height": 30}],
                },
            }
        )
        print(update.message.text, update.message.photo[0].width, types.Update.__pydantic_complete__)
        """
    )
    counts, used = out.splitlines()
    models, built_at_import = map(int, counts.split())
    assert models > 300
    assert built_at_import == 0
    assert used == "where is my parcel? 40 True"


def test_every_aiogram_type_and_method_builds_from_its_module() -> None:
    """What aiogram's own eager rebuild guaranteed: no model has a reference left unresolved."""
    out = run_fresh(
        """
        import channels.telegram_bot
        from aiogram import methods, types
        from aiogram.methods.base import Response

        built = 0
        for package in (types, methods):
            for name in package.__all__:
                model = getattr(package, name)
                if isinstance(model, type) and hasattr(model, "model_rebuild"):
                    model.model_rebuild(force=True)
                    built += 1
        reply = Response[types.Message].model_validate(
            {
                "ok": True,
                "result": {
                    "message_id": 9, "date": 1764000000, "text": "Your parcel arrives today",
                    "chat": {"id": 42, "type": "private"},
                    "reply_markup": {"inline_keyboard": [[{"text": "Change", "callback_data": "m:1"}]]},
                },
            }
        )
        send = methods.SendMessage(
            chat_id=42, text="Hi", reply_markup={"inline_keyboard": [[{"text": "1", "callback_data": "o:1"}]]}
        )
        print(built, reply.result.reply_markup.inline_keyboard[0][0].text, type(send.reply_markup).__name__)
        """
    )
    built, button, markup = out.split()
    assert int(built) > 500
    assert (button, markup) == ("Change", "InlineKeyboardMarkup")
