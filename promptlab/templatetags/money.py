"""`{{ cost|usd }}` and `{{ cost|usd:8 }}`: promptlab.money.usd in templates, so pages show an
unknown cost as "unknown" the way the exports and commands do."""

from django import template

from promptlab import money

register = template.Library()


@register.filter
def usd(value, places: int = 4) -> str:
    return money.usd(value, int(places))
