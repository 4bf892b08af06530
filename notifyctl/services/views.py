"""The public shapes of stored things: what the REST API returns and ``--json`` prints."""

from collections.abc import Callable
from typing import TypeVar

from notifyctl.models import (
    Attempt,
    AttemptPublic,
    Audit,
    AuditPublic,
    Client,
    ClientPublic,
    CostEstimatePublic,
    DryRunPublic,
    MailingCostPublic,
    MailingStatsDetail,
    MailingStatsPublic,
    Message,
    MessageDetail,
    MessagePublic,
    Page,
    PagePublic,
)
from notifyctl.services.cost import MailingCost, Plan
from notifyctl.services.counts import MailingStats
from notifyctl.services.mailings import segments_public
from notifyctl.services.mailings import to_public as mailing_public

T = TypeVar("T")
U = TypeVar("U")

__all__ = ["mailing_public"]


def client_public(client: Client) -> ClientPublic:
    return ClientPublic.model_validate(client, from_attributes=True)


def audit_public(entry: Audit) -> AuditPublic:
    return AuditPublic.model_validate(entry, from_attributes=True)


def message_public(message: Message) -> MessagePublic:
    return MessagePublic.model_validate(message, from_attributes=True)


def stats_public(stats: MailingStats) -> MailingStatsPublic:
    return MailingStatsPublic(
        mailing_id=stats.mailing_id,
        state=stats.state,
        total=stats.total,
        by_status=stats.by_status,
        pruned_at=stats.pruned_at,
    )


def stats_detail(
    stats: MailingStats, messages: Page[Message], cost: MailingCost | None = None
) -> MailingStatsDetail:
    return MailingStatsDetail(
        **stats_public(stats).model_dump(),
        cost=cost_public(cost) if cost else None,
        messages=[message_public(m) for m in messages.items],
        messages_total=messages.total,
        limit=messages.limit,
        offset=messages.offset,
    )


def cost_public(cost: MailingCost) -> MailingCostPublic:
    return MailingCostPublic(
        price_per_segment=str(cost.price),
        estimated=str(cost.estimated),
        segments=cost.segments,
        audience=cost.audience,
        spent=str(cost.spent),
    )


def dry_run_public(plan: Plan) -> DryRunPublic:
    cost = None
    if plan.price is not None and plan.estimated is not None:
        cost = CostEstimatePublic(price_per_segment=str(plan.price), estimated=str(plan.estimated))
    return DryRunPublic(audience=plan.audience, segments=segments_public(plan.segments), cost=cost)


def message_detail(message: Message, attempts: list[Attempt]) -> MessageDetail:
    return MessageDetail(
        **message_public(message).model_dump(),
        attempt_history=[AttemptPublic.model_validate(a, from_attributes=True) for a in attempts],
    )


def page_public(page: Page[T], convert: Callable[[T], U]) -> PagePublic[U]:
    return PagePublic(
        total=page.total,
        limit=page.limit,
        offset=page.offset,
        items=[convert(i) for i in page.items],
    )
