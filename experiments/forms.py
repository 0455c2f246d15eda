"""The experiment form of the pages: settings, up to four variants, and what higher layers
attach to an experiment (experiments.extensions: evaluations' evaluators)."""

import json

from django import forms

from experiments import extensions
from experiments.models import Dataset
from promptlab.errors import Invalid
from promptlab.llm.models import ModelEndpoint
from prompts.models import Prompt
from prompts.versions import version_or_label

MAX_VARIANTS = 4


class ExperimentForm(forms.Form):
    name = forms.CharField(max_length=200)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none())
    repeats = forms.IntegerField(min_value=1, max_value=100, initial=1)
    concurrency = forms.IntegerField(min_value=1, max_value=256, initial=8, help_text="Runs in flight at once.")
    cache_responses = forms.BooleanField(
        required=False, label="Reuse cached answers",
        help_text="At temperature 0, answer from stored answers to identical calls (free); each repeat keeps its own answer.",
    )  # fmt: skip
    budget_usd = forms.DecimalField(required=False, min_value=0, decimal_places=8, max_digits=14, label="Budget (USD)",
                                    help_text="Optional hard limit: no call starts beyond it.")  # fmt: skip
    start = forms.BooleanField(required=False, initial=True, label="Start it now")

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = Dataset.objects.filter(project=project).order_by("name")
        for attachment in extensions.attachments():
            self.fields[attachment.name] = forms.ModelMultipleChoiceField(
                queryset=attachment.choices(project), required=False, widget=forms.CheckboxSelectMultiple,
                label=attachment.label, help_text=attachment.help_text,
            )  # fmt: skip
        prompts = Prompt.objects.filter(project=project).order_by("name")
        endpoints = ModelEndpoint.objects.filter(enabled=True).order_by("display_name")
        for n in range(MAX_VARIANTS):
            self.fields[f"variant{n}_prompt"] = forms.ModelChoiceField(queryset=prompts, required=n == 0, label="Prompt")
            self.fields[f"variant{n}_at"] = forms.CharField(
                required=False, initial="production", label="Label or version", help_text="A label (production) or a version (v3 or 3)."
            )
            self.fields[f"variant{n}_endpoint"] = forms.ModelChoiceField(
                queryset=endpoints, required=False, label="Model", empty_label="the version's model"
            )
            self.fields[f"variant{n}_params"] = forms.CharField(required=False, label="Parameter overrides (JSON)")

    def settings_fields(self):
        return [self[name] for name in ("name", "dataset", "repeats", "concurrency", "cache_responses", "budget_usd")]

    def attachment_fields(self):
        return [self[attachment.name] for attachment in extensions.attachments()]

    def attached(self) -> dict[str, list]:
        """What experiment_create attaches, by attachment name (of a half-filled form, what is valid)."""
        return {attachment.name: list(self.cleaned_data.get(attachment.name) or []) for attachment in extensions.attachments()}

    def variant_rows(self):
        return [[self[f"variant{n}_{part}"] for part in ("prompt", "at", "endpoint", "params")] for n in range(MAX_VARIANTS)]

    def clean(self):
        cleaned = super().clean()
        try:
            self.specs = self._specs()
        except forms.ValidationError as exc:
            self.specs = []
            self.add_error(None, exc)
        return cleaned

    def _specs(self) -> list[dict]:
        """The filled-in rows as experiment_create's variant specs, named after prompt and version."""
        specs = []
        for n in range(MAX_VARIANTS):
            prompt = self.cleaned_data.get(f"variant{n}_prompt")
            if prompt is None:
                continue
            at = (self.cleaned_data.get(f"variant{n}_at") or "production").strip()
            spec = {"prompt": prompt, "endpoint": self.cleaned_data.get(f"variant{n}_endpoint"), "params": self._params(n)}
            try:
                spec |= version_or_label(at)
            except Invalid as exc:
                raise forms.ValidationError(f"Variant {n + 1}: {exc.message}") from None
            pin = spec["label"] if "label" in spec else f"v{spec['version']}"
            endpoint = f" on {spec['endpoint'].display_name}" if spec["endpoint"] else ""
            spec["name"] = f"{prompt.name} {pin}{endpoint}"
            specs.append(spec)
        names = [spec["name"] for spec in specs]
        for index, spec in enumerate(specs):
            if names.count(spec["name"]) > 1:
                spec["name"] += f" #{index + 1}"
        return specs

    def _params(self, n: int) -> dict:
        text = (self.cleaned_data.get(f"variant{n}_params") or "").strip()
        if not text:
            return {}
        try:
            params = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Variant {n + 1}: the parameter overrides are not JSON ({exc.msg}).") from None
        if not isinstance(params, dict):
            raise forms.ValidationError(f"Variant {n + 1}: the parameter overrides must be a JSON object.")
        return params
