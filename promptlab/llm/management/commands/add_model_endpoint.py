from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from promptlab.errors import DomainError
from promptlab.llm import services


def price(value: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None


class Command(BaseCommand):
    help = (
        "Add a model endpoint to the catalog, or update the options given for an existing one. "
        "The API key itself is never stored: pass the NAME of the variable that holds it."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="Stable identifier, e.g. gpt-4o-mini.")
        parser.add_argument("--model", help="LiteLLM model string, e.g. openai/gpt-4o-mini (required for a new endpoint).")
        parser.add_argument("--display-name")
        parser.add_argument("--api-base", help="Base URL; its host must be in PROMPTLAB_API_BASE_HOSTS.")
        parser.add_argument("--api-key-env", help="Environment variable holding the key; it must start with PROMPTLAB_KEY_, e.g. PROMPTLAB_KEY_OPENAI.")
        parser.add_argument("--input-cost-per-token", type=price, help="USD; default: LiteLLM's price list.")
        parser.add_argument("--output-cost-per-token", type=price, help="USD; default: LiteLLM's price list.")
        parser.add_argument("--timeout", type=float, dest="timeout_seconds", help="Seconds per attempt (default 60).")
        parser.add_argument("--max-retries", type=int, help="Retries after a transient failure (default 2).")
        parser.add_argument("--rpm", type=int, dest="requests_per_minute", help="Requests per minute, all workers together.")
        parser.add_argument("--max-concurrency", type=int, help="Calls in flight at once, all workers together.")
        state = parser.add_mutually_exclusive_group()
        state.add_argument("--enabled", action="store_true", default=None)
        state.add_argument("--disabled", action="store_false", dest="enabled")

    def handle(self, *args, name, **options):
        fields = {
            field: options[field]
            for field in services.ENDPOINT_FIELDS
            if options.get(field) is not None
        }
        try:
            endpoint, created = services.endpoint_save(name=name, **fields)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(self.style.SUCCESS(f"{'Added' if created else 'Updated'} model endpoint {endpoint.name}: {endpoint} ({endpoint.model})."))
