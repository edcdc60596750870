"""Opt-outs are per channel and survive a round trip through the database."""

from datetime import UTC, datetime

from sqlmodel import select

from core.consent import opted_out, set_opt_out
from core.models import Channel, Recipient


class TestConsent:
    async def test_stop_on_sms_leaves_whatsapp_alone_and_start_undoes_it(self, ctx, acme):
        now = datetime(2026, 12, 1, 15, tzinfo=UTC)
        async with ctx.uow() as uow:
            recipient = Recipient(retailer_id=acme.retailer_id, phone="+14165550111")
            set_opt_out(recipient, Channel.sms, True, now)
            uow.session.add(recipient)
            await uow.commit()
        async with ctx.uow() as uow:
            recipient = (await uow.session.exec(select(Recipient))).one()
            assert opted_out(recipient, Channel.sms) and not opted_out(recipient, Channel.whatsapp)
            set_opt_out(recipient, "sms", False, now)
            uow.session.add(recipient)
            await uow.commit()
        async with ctx.uow() as uow:
            recipient = (await uow.session.exec(select(Recipient))).one()
            assert not opted_out(recipient, Channel.sms)
