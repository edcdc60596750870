"""A sender guessing tracking numbers is rate-limited and learns nothing.

Wrong tracking/postal-code pairs count per sender (channel and address), across conversations,
dialog resets and, with Redis, processes. Past TRACKING_GUESS_LIMIT the sender gets the answer of a
wrong pair even for a right one; other senders are not affected.
"""

from __future__ import annotations

from sqlmodel import select

from bot.engine import ConversationEngine
from bot.state import reset_dialog
from core.models import Channel, Conversation
from core.ratelimit import sender_key, tracking_guess_limiter
from tests.engine_support import Chat, ScriptedUnderstanding, load_small_plan, understood

RIGHT = "T003 M5V 2A1"


def guesses() -> ScriptedUnderstanding:
    answers = {
        f"T9{i:02d} M5V 2A1": understood(tracking=f"T9{i:02d}", postal_code="M5V2A1") for i in range(20)
    }
    answers[RIGHT] = understood(tracking="T003", postal_code="M5V2A1")
    answers["T003 M5V 9Z9"] = understood(tracking="T003", postal_code="M5V9Z9")
    return ScriptedUnderstanding(answers)


async def forget_dialog(ctx, sender: str) -> None:
    """What closing the conversation does: the per-conversation attempt counter starts again."""
    async with ctx.uow() as uow:
        conversation = (
            await uow.session.exec(select(Conversation).where(Conversation.address == sender))
        ).one()
        reset_dialog(conversation)
        uow.session.add(conversation)
        await uow.commit()


class TestGuessingTrackingNumbers:
    async def test_after_five_wrong_pairs_even_the_right_pair_gets_the_wrong_pair_answer(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        engine = ConversationEngine(ctx, understand=guesses())
        guesser = Chat(engine, Channel.telegram, "880001")
        wrong_answers = set()
        for i in range(5):
            if i == 3:
                await forget_dialog(ctx, "880001")
            text = await guesser.say("T003 M5V 9Z9" if i == 0 else f"T9{i:02d} M5V 2A1")
            wrong_answers.add(text)
        assert len(wrong_answers) == 1 and "couldn't find" in next(iter(wrong_answers))
        assert await tracking_guess_limiter(ctx).blocked(sender_key("telegram", "880001"))

        await forget_dialog(ctx, "880001")
        text = await guesser.say(RIGHT)
        assert text in wrong_answers, "a blocked sender cannot tell a right pair from a wrong one"
        assert "Dec" not in text

        honest = Chat(engine, Channel.telegram, "880002")
        text = await honest.say(RIGHT)
        assert "T003" in text and "Dec 3" in text, "another sender is not affected"

    async def test_a_right_pair_before_the_limit_still_works(self, ctx, acme):
        await load_small_plan(ctx, acme.retailer_id)
        engine = ConversationEngine(ctx, understand=guesses())
        chat = Chat(engine, Channel.telegram, "880003")
        assert "couldn't find" in await chat.say("T901 M5V 2A1")
        assert "Dec 3" in await chat.say(RIGHT)
        assert await tracking_guess_limiter(ctx).failures(sender_key("telegram", "880003")) == 1
