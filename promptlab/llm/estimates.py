"""The most a model call can cost, known before it is made: its prompt counted with LiteLLM's
token counter, its answer at its cap (max_tokens, else the model's longest answer).

An experiment's forecast, the budget held before each of its runs and the budget held before
each judge or embedding call all count with these, so what is forecast and what is held never
disagree. The cap, never an average, is what is held: a call cannot cost more than its hold.
"""

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from promptlab.llm import catalog, gateway
from promptlab.llm.models import ModelEndpoint

USD_STEP = Decimal("0.00000001")  # amounts of USD are stored with 8 decimals


def prompt_tokens(endpoint: ModelEndpoint, *, messages: list[dict] | None = None, text: str | None = None) -> int:
    """Prompt tokens of the messages (or of a text, as an embedding sends it), by LiteLLM's token counter."""
    model = endpoint.model.split("/", 1)[-1]
    counter = gateway.prepared_litellm().token_counter
    return counter(model=model, messages=messages) if messages is not None else counter(model=model, text=text or "")


def answer_tokens(endpoint: ModelEndpoint, params: dict | None) -> int | None:
    """The most completion tokens a call can be billed for: its max_tokens, else the model's longest
    answer in LiteLLM's model info (its bundled list, read offline); None when neither is known."""
    if (params or {}).get("max_tokens") is not None:
        return params["max_tokens"]
    known = gateway.prepared_litellm().model_cost
    for key in (endpoint.model, endpoint.model.split("/", 1)[-1]):
        entry = known.get(key) or {}
        # max_tokens is LiteLLM's older name; where max_output_tokens is missing it is never below it.
        if longest := entry.get("max_output_tokens") or entry.get("max_tokens"):
            return int(longest)
    return None


@dataclass(frozen=True)
class CallEstimate:
    """One call (or, summed, many calls) on an endpoint: its prompt tokens, and its answer's cap."""

    endpoint: ModelEndpoint
    prompt_tokens: int
    answer_tokens: int | None  # None when the cap is unknown (see answer_tokens)

    @property
    def problem(self) -> str | None:
        """Why no budget can hold this call, or None when one can."""
        prices = catalog.prices_per_token(self.endpoint)
        if prices is None:
            return (f"the model endpoint {self.endpoint.name!r} has no price, so a budget cannot hold its calls: "
                    "set its prices per token in the model catalog")  # fmt: skip
        if self.answer_tokens is None and prices[1]:
            return (f"LiteLLM does not know the longest answer of {self.endpoint.model!r}, so a budget cannot hold "
                    "its calls: set max_tokens")  # fmt: skip
        return None

    @property
    def usd(self) -> Decimal | None:
        """The most it can cost, rounded up to the 8 decimals amounts are stored with; None when
        that is unknown (see problem)."""
        if self.problem:
            return None
        most = catalog.cost_usd(self.endpoint, self.prompt_tokens, self.answer_tokens or 0)
        return most.quantize(USD_STEP, rounding=ROUND_CEILING)


def chat_call(endpoint: ModelEndpoint, messages: list[dict], params: dict | None) -> CallEstimate:
    """The estimate of one chat call: a run's, or a judge's."""
    return CallEstimate(endpoint, prompt_tokens(endpoint, messages=messages), answer_tokens(endpoint, params))
