"""Amounts of money as people read them. A cost promptlab does not know (a model without a
price answered the call) reads "unknown", never "$0.0000": a guess shown as a fact would make
a dear variant look free. Sums that include an unknown cost are unknown too, never partial
(see promptlab.llm.models.COST_UNKNOWN for when a call's cost is unknown)."""

from decimal import Decimal


def usd(value: Decimal | float | None, places: int = 4) -> str:
    """The amount as "$0.0123" (to `places` decimals), or "unknown" for None."""
    return "unknown" if value is None else f"${Decimal(value):.{places}f}"
