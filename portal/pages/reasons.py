"""Why a job stands where it does, in the viewer's language.

The core keeps the cause as data (``quotas.causes``) with an English sentence, which the API and
the CLI show. In English a page shows that same sentence; in Korean it writes the cause's facts
into the catalogue's Korean messages (``cause.*``). A cause the catalogue does not cover yet, or
a job stored before causes were kept, shows its English sentence.
"""

from __future__ import annotations

from jobs.model import Job
from portal.pages.i18n import Language, Words
from quotas.causes import (
    BooksMoved,
    BorrowingLimit,
    DispatchRetry,
    Ended,
    Invalid,
    Lost,
    NoCapacity,
    NoFlavor,
    NoOpenCluster,
    NoSite,
    OverBudget,
    OverShare,
    OverWholeBudget,
    Requeued,
    Reserved,
    Stopping,
    TooLarge,
    Unprovisioned,
)


def reason(t: Words, job: Job) -> str:
    if t.language is Language.EN or job.cause is None:
        return job.reason
    return _korean(t, job.cause) or job.reason


def _level(t: Words, level: str) -> str:
    key = f"level.{level}"
    return t(key) if level in ("program", "organization", "project", "pool") else level


def _over_share(t: Words, cause: OverShare) -> str:
    return t(
        "cause.over_share",
        level=_level(t, cause.level),
        account=cause.account,
        usage=cause.usage_percent,
        share=cause.share_percent,
    )


def _korean(t: Words, cause: object) -> str | None:
    match cause:
        case NoCapacity():
            parts = [
                t(
                    "cause.no_capacity",
                    flavors=", ".join(cause.flavors),
                    gpus=cause.gpus,
                    ahead=cause.ahead,
                )
            ]
            if cause.over_share:
                parts.insert(0, _over_share(t, cause.over_share))
            if cause.unprovisioned:
                parts.append(
                    t("cause.unprovisioned_targets", targets=", ".join(cause.unprovisioned))
                )
            if cause.burst_budget_spent:
                targets = ", ".join(cause.burst_budget_spent)
                parts.append(t("cause.burst_budget_spent", targets=targets))
            if cause.burst_from:
                parts.append(t("cause.burst_from", when=t.when(cause.burst_from)))
            if cause.passed_by:
                parts.append(t("cause.passed_by", count=cause.passed_by))
            if cause.instead:
                parts.append(
                    t("cause.free_instead", free=cause.instead.free, flavor=cause.instead.flavor)
                )
            return "; ".join(parts)
        case Reserved():
            return t(
                "cause.reserved",
                flavor=cause.flavor,
                cluster=cause.cluster,
                start=t.when(cause.start),
            )
        case OverBudget():
            return t(
                "cause.over_budget",
                needs=t.credits(cause.needs),
                left=t.credits(cause.left),
                level=_level(t, cause.level),
                account=cause.account,
            )
        case BorrowingLimit():
            return t(
                "cause.borrowing_limit",
                level=_level(t, cause.level),
                account=cause.account,
                running=cause.running,
                guaranteed=cause.guaranteed,
                borrowable=cause.borrowable,
            )
        case BooksMoved():
            return t("cause.books_moved")
        case Requeued():
            before = _korean(t, cause.why)
            return f"{before}; {t('cause.requeued')}" if before else t("cause.requeued")
        case DispatchRetry():
            return t("cause.dispatch_retry", delay=t.duration(cause.delay_seconds))
        case NoFlavor():
            return t("cause.no_flavor")
        case NoOpenCluster():
            return t(
                "cause.no_open_cluster", project=cause.project, flavors=", ".join(cause.flavors)
            )
        case NoSite():
            return t(
                "cause.no_site",
                data_class=t(f"data_class.{cause.data_class}"),
                flavors=", ".join(cause.flavors),
            )
        case TooLarge():
            return t("cause.too_large", gpus=cause.gpus, largest=cause.largest)
        case OverWholeBudget():
            return t(
                "cause.over_whole_budget",
                level=_level(t, cause.level),
                account=cause.account,
                needs=t.credits(cause.needs),
                budget=t.credits(cause.budget),
            )
        case Stopping():
            return f"{t('cause.stopping')}: {cause.detail}"
        case Lost():
            return t("cause.lost", cluster=cause.cluster)
        case Unprovisioned():
            return t("cause.unprovisioned", cluster=cause.cluster)
        case Ended():
            text = t(f"outcome.{cause.outcome.value}")
            if cause.exit_code is not None:
                text += f" ({t('outcome.exit_code', code=cause.exit_code)})"
            if cause.detail and cause.outcome.value not in ("succeeded",):
                text += f": {cause.detail}"
            if cause.refunded:
                text += f"; {t('outcome.refunded', amount=t.credits(cause.refunded))}"
            return text
        case Invalid():
            return None
    return None
