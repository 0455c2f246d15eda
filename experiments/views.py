import io
import json
import tempfile
import uuid

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, push_url, reswap, retarget

from experiments import datasets, extensions, playground, selectors, services
from experiments.forms import ExperimentForm
from experiments.models import Dataset, ExperimentStatus, PlaygroundCallStatus, Variant
from promptlab.accounts import selectors as account_selectors
from promptlab.accounts.access import Action, role_allows
from promptlab.errors import DomainError, Invalid, NotFound
from promptlab.htmx import page_or_fragment
from promptlab.llm.models import ModelEndpoint
from prompts import selectors as prompt_selectors
from prompts.validation import variable_type_errors
from prompts.versions import version_or_label


@require_GET
@login_required
def experiment_detail(request, pk: int):
    """The experiment's progress, calls then scores; for htmx only the fragment, which polls
    until it is over (finished or cancelled)."""
    experiment = selectors.experiment_for(user=request.user, pk=pk)
    active = experiment.status in (ExperimentStatus.RUNNING, ExperimentStatus.SCORING)
    counts = services.experiment_counts(experiment)
    finished = counts["done"] + counts["failed"] + counts["skipped"] + counts["cancelled"]
    eta = None
    if experiment.status == ExperimentStatus.RUNNING and experiment.started_at and finished:
        elapsed = (timezone.now() - experiment.started_at).total_seconds()
        eta = round(elapsed / finished * (counts["total"] - finished))
    context = {
        "experiment": experiment, "counts": counts, "finished": finished, "eta_seconds": eta,
        "percent": round(100 * finished / counts["total"]) if counts["total"] else 0,
        "polling": active, "variants": selectors.variant_list(experiment=experiment),
        "scoring": extensions.scoring_progress(experiment) if active else None,
    }  # fmt: skip
    return page_or_fragment(
        request, "experiments/experiment_detail.html", context, fragment_template="experiments/partials/experiment-progress.html"
    )  # fmt: skip


# --- Playground ------------------------------------------------------------------------------


class PlaygroundForm(forms.Form):
    """The run form: one field per variable of the version, the models, and overrides."""

    endpoints = forms.ModelMultipleChoiceField(
        queryset=ModelEndpoint.objects.none(), widget=forms.CheckboxSelectMultiple, label="Models",
        error_messages={"required": "Pick at least one model.", "invalid_choice": "%(value)s is not an enabled model."},
    )  # fmt: skip
    temperature = forms.FloatField(required=False, min_value=0, max_value=2, widget=forms.NumberInput(attrs={"step": "0.1"}))
    max_tokens = forms.IntegerField(required=False, min_value=1, label="Max tokens")

    def __init__(self, *args, variables: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["endpoints"].queryset = playground.playground_endpoints()
        self.variables = variables
        for variable in variables:
            self.fields[f"var_{variable.name}"] = _variable_field(variable)

    def variable_fields(self):
        return [self[f"var_{variable.name}"] for variable in self.variables]

    def values(self) -> dict:
        """The variables that were filled in; a blank one is left out, so its default applies."""
        return {
            variable.name: self.cleaned_data[f"var_{variable.name}"]
            for variable in self.variables
            if self.cleaned_data.get(f"var_{variable.name}") is not None
        }

    def params(self) -> dict:
        return {name: self.cleaned_data[name] for name in ("temperature", "max_tokens") if self.cleaned_data[name] is not None}


class VariableField(forms.CharField):
    """A variable's value: text as typed for strings, a JSON value (42, 3.5, true, [...]) otherwise."""

    def __init__(self, *, variable, **kwargs):
        super().__init__(strip=variable.type != "string", **kwargs)
        self.variable = variable

    def prepare_value(self, value):
        return value if isinstance(value, str) or value is None else json.dumps(value, ensure_ascii=False)

    def to_python(self, value):
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        if self.variable.type == "string":
            return text
        try:
            parsed = json.loads(text)
        except ValueError:
            raise forms.ValidationError(f"Enter {VARIABLE_TYPE_WORDS[self.variable.type]}.") from None
        if variable_type_errors([{"name": self.variable.name, "type": self.variable.type}], {self.variable.name: parsed}):
            raise forms.ValidationError(f"Enter {VARIABLE_TYPE_WORDS[self.variable.type]}.")
        return parsed


VARIABLE_TYPE_WORDS = {
    "number": "a number", "integer": "a whole number", "boolean": "true or false",
    "list": 'a JSON list, e.g. ["a", "b"]', "object": 'a JSON object, e.g. {"key": "value"}',
}  # fmt: skip


def _variable_field(variable) -> VariableField:
    if variable.type == "boolean":
        widget = forms.Select(choices=[("", "—"), ("true", "true"), ("false", "false")])
    elif variable.type in ("number", "integer"):
        widget = forms.NumberInput(attrs={"step": "1" if variable.type == "integer" else "any"})
    else:
        widget = forms.Textarea(attrs={"rows": 2 if variable.type == "string" else 3})
    if variable.default is not None:
        widget.attrs["placeholder"] = f"default: {variable.default}"
    help_text = " ".join(filter(None, [variable.description, "" if variable.declared else "Used by the template but not declared."]))
    return VariableField(variable=variable, required=variable.required, label=variable.name, help_text=help_text, widget=widget)


def _playground_context(project, *, prompt_id=None, version=None, batch=None, data=None) -> dict:
    """What the page and its fragments show: the picked prompt and version, the run form
    (bound to `data`, or filled in from `batch`), and the batch's results."""
    prompts = list(prompt_selectors.prompt_list(project=project))
    calls = playground.playground_calls(project=project, batch=batch) if batch else []
    if batch and not calls:
        raise Http404("No such playground run in this project.")
    if calls and prompt_id is None:
        prompt_id, version = calls[0].prompt_id, calls[0].version
    context = {
        "project": project, "prompts": prompts, "can_run": role_allows(project.role, Action.EDIT),
        "max_endpoints": playground.MAX_ENDPOINTS, **_results_context(project, batch, calls),
    }  # fmt: skip
    if not prompts:
        return context
    try:
        prompt = next(p for p in prompts if p.pk == int(prompt_id)) if prompt_id else prompts[0]
        record = playground.playground_version(prompt=prompt, **(version_or_label(str(version)) if version else {}))
    except (StopIteration, ValueError, NotFound, Invalid):
        record = None
    if record is None:
        raise Http404("No such prompt version in this project.")
    variables = playground.playground_variables(record)
    if data is not None:
        form = PlaygroundForm(data, variables=variables)
    else:
        initial = {"endpoints": [call.endpoint_id for call in calls] or [record.endpoint_id]}
        if calls:
            initial.update({f"var_{name}": value for name, value in calls[0].vars.items()})
            initial.update({name: calls[0].params.get(name) for name in ("temperature", "max_tokens")})
        form = PlaygroundForm(initial=initial, variables=variables)
    versions = playground.playground_versions(prompt=prompt)
    return {**context, "prompt": prompt, "record": record, "versions": versions, "form": form}


def _results_context(project, batch, calls) -> dict:
    polling = any(not call.finished and not call.stale for call in calls)
    saveable = any(call.status == PlaygroundCallStatus.DONE for call in calls)
    datasets = list(selectors.dataset_list(project=project)) if saveable else []
    return {"batch": batch, "calls": calls, "polling": polling, "datasets": datasets,
            "deadline_minutes": round(playground.CALL_DEADLINE.total_seconds() / 60)}  # fmt: skip


@require_http_methods(["GET", "POST"])
@login_required
def playground_page(request, slug: str):
    """The playground. GET: the page, or for htmx the form of another prompt or version.
    POST: run the form; for htmx the results fragment, which polls until every call is in."""
    project = account_selectors.project_for(user=request.user, slug=slug)
    if request.method == "GET":
        context = _playground_context(
            project, prompt_id=request.GET.get("prompt"), version=request.GET.get("version"),
            batch=_uuid_or_404(request.GET.get("batch")),
        )  # fmt: skip
        return page_or_fragment(request, "experiments/playground.html", context, fragment_template="experiments/partials/playground-form.html")

    if not role_allows(project.role, Action.EDIT):
        raise PermissionDenied("Viewers cannot run the playground.")
    context = _playground_context(project, prompt_id=request.POST.get("prompt"), version=request.POST.get("version"), data=request.POST)
    form = context.get("form")
    if form is None:
        raise Http404("This project has no prompts.")
    if form.is_valid():
        try:
            batch = playground.playground_run(
                prompt=context["prompt"], actor=request.user, version=context["record"].version,
                variables=form.values(), endpoints=list(form.cleaned_data["endpoints"]), params=form.params(),
            )  # fmt: skip
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            url = f"{reverse('playground', args=[project.slug])}?batch={batch}"
            if not request.htmx:
                return redirect(url)
            results = _results_context(project, batch, playground.playground_calls(project=project, batch=batch))
            response = render(request, "experiments/partials/playground-results.html", {**context, **results})
            return push_url(response, url)
    if request.htmx:  # the form goes back in place of itself, with the errors
        response = render(request, "experiments/partials/playground-form.html", context)
        return reswap(retarget(response, "#playground-form"), "outerHTML")
    return render(request, "experiments/playground.html", context)


def _uuid_or_404(value):
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Http404("No such playground run.") from None


@require_GET
@login_required
def playground_results(request, slug: str, batch: uuid.UUID):
    """One batch's results: for htmx the fragment that polls, else the playground showing it."""
    project = account_selectors.project_for(user=request.user, slug=slug)
    if not request.htmx:
        return redirect(f"{reverse('playground', args=[project.slug])}?batch={batch}")
    calls = playground.playground_calls(project=project, batch=batch)
    if not calls:
        raise Http404("No such playground run in this project.")
    context = {"project": project, "can_run": role_allows(project.role, Action.EDIT), **_results_context(project, batch, calls)}
    return render(request, "experiments/partials/playground-results.html", context)


@require_POST
@login_required
def playground_save(request, slug: str, pk: int):
    """Save one call's variables and answer as the next item of a dataset of the project."""
    project = account_selectors.project_for(user=request.user, slug=slug)
    if not role_allows(project.role, Action.EDIT):
        raise PermissionDenied("Viewers cannot save dataset items.")
    call = playground.playground_call_get(project=project, pk=pk)
    dataset_id = request.POST.get("dataset", "")
    dataset = selectors.dataset_list(project=project).filter(pk=dataset_id).first() if dataset_id.isdigit() else None
    context = {"project": project, "call": call, "datasets": selectors.dataset_list(project=project)}
    try:
        if dataset is None:
            raise Invalid("Pick a dataset of this project.")
        context["saved"] = playground.playground_save_item(call=call, actor=request.user, dataset=dataset)
    except DomainError as exc:
        context["save_error"] = exc.message
    if request.htmx:
        return render(request, "experiments/partials/playground-save.html", context)
    if "saved" in context:
        messages.success(request, f"Saved as row {context['saved'].row} of the dataset {dataset.name}.")
    else:
        messages.error(request, context["save_error"])
    return redirect(f"{reverse('playground', args=[project.slug])}?batch={call.batch}")


# --- Datasets --------------------------------------------------------------------------------

ITEMS_PER_PAGE = 50
# An export is written to this much memory, then to a temporary file, and sent from there.
EXPORT_SPOOL_BYTES = 8 * 1024 * 1024
EXPORT_CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/jsonl; charset=utf-8"}


class DatasetCreateForm(forms.Form):
    name = forms.SlugField(
        max_length=Dataset._meta.get_field("name").max_length,
        help_text="Letters, numbers, hyphens and underscores; unique in the project.",
        error_messages={"invalid": "Use only letters, numbers, hyphens and underscores."},
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class DatasetUploadForm(forms.Form):
    """A CSV or JSONL file (the format from its extension), the column mapping as
    `COLUMN=TARGET` lines like `import_dataset --map`, and whether to replace the items."""

    file = forms.FileField(
        label="CSV or JSONL file", widget=forms.FileInput(attrs={"accept": ".csv,.jsonl,.ndjson"}),
        error_messages={"required": "Choose a CSV or JSONL file to upload.", "empty": "The file is empty."},
    )  # fmt: skip
    mapping = forms.CharField(
        required=False, label="Column mapping (optional)",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "question=vars.q\nanswer=expected\nsource=meta.source\nnotes="}),
        help_text=f"One COLUMN=TARGET a line; TARGET is {datasets.TARGETS_HELP}. Other columns follow the default rules.",
    )  # fmt: skip
    replace = forms.BooleanField(required=False, label="Replace existing items")

    def clean_file(self):
        file = self.cleaned_data["file"]
        self.format = datasets.format_from_name(file.name)
        if self.format is None:
            raise forms.ValidationError(f"{file.name} is not a .csv or .jsonl file: the name must end in .csv, .jsonl or .ndjson.")
        return file

    def clean_mapping(self):
        lines = [line for line in self.cleaned_data["mapping"].splitlines() if line.strip()]
        try:
            return datasets.mapping_from_lines(lines)
        except Invalid as exc:
            raise forms.ValidationError(exc.message) from None


def _compact(values) -> list[tuple[str, str]]:
    """(key, value) pairs to show a JSON object in one cell; a value that is not a string as JSON."""
    def text(value):
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    return [(key, text(value)) for key, value in values.items()] if isinstance(values, dict) else [("", text(values))]


def _items_context(dataset, page_number, *, editing: dict | None = None) -> dict:
    """One page of the items; a malformed page number shows the first page, one past the end the
    last. `editing`: the row of the page whose checks' editor shows what was refused."""
    page = Paginator(selectors.dataset_items(dataset=dataset), ITEMS_PER_PAGE).get_page(page_number)
    return {
        "page_obj": page,
        "page_range": page.paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1),
        "rows": [editing if editing and editing["item"].pk == item.pk else _item_row(item) for item in page],
    }


def _item_row(item, *, assertions: str | None = None, threshold: str | None = None, error: str = "", saved: bool = False) -> dict:
    """What the items table shows of an item, with its checks' editor: the item's own, or the
    text that was refused (`error`)."""
    if assertions is None:
        assertions = json.dumps(item.assertions, indent=2, ensure_ascii=False) if item.assertions else ""
    if threshold is None:
        threshold = "" if item.threshold is None else str(item.threshold)
    return {"item": item, "vars": _compact(item.vars), "metadata": _compact(item.metadata), "checks": _checks_label(item),
            "assertions": assertions, "threshold": threshold, "error": error, "saved": saved}  # fmt: skip


def _checks_label(item) -> str:
    """An item's own checks in a few words: "contains: Paris · not is_json · threshold 0.5"."""
    labels = []
    for assertion in item.assertions or []:
        config = assertion.get("config") or {}
        label = f"{'not ' if assertion.get('inverted') else ''}{assertion.get('kind')}"
        if "value" in config:
            value = config["value"] if isinstance(config["value"], str) else json.dumps(config["value"], ensure_ascii=False)
            label += f": {value if len(value) <= 40 else value[:40] + '…'}"
        if assertion.get("weight", 1) != 1:
            label += f" (weight {assertion['weight']:g})"
        labels.append(label)
    if item.threshold is not None:
        labels.append(f"threshold {item.threshold:g}")
    return " · ".join(labels)


@require_http_methods(["GET", "POST"])
@login_required
def datasets_page(request, slug: str):
    """The project's datasets. POST creates one (editors) and goes to its page; for htmx a
    refused name comes back as the form fragment with the error."""
    project = account_selectors.project_for(user=request.user, slug=slug)
    can_edit = role_allows(project.role, Action.EDIT)
    form = DatasetCreateForm()
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied("Viewers cannot create datasets.")
        form = DatasetCreateForm(request.POST)
        if form.is_valid():
            try:
                dataset = datasets.dataset_create(project=project, actor=request.user, **form.cleaned_data)
            except DomainError as exc:
                form.add_error("name" if "name" in exc.details else None, exc.message)
            else:
                messages.success(request, f"Created the dataset {dataset.name}. Upload its items here.")
                url = reverse("dataset_detail", args=[project.slug, dataset.name])
                return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
        if request.htmx:
            return render(request, "experiments/partials/dataset-create.html", {"project": project, "form": form})
    context = {"project": project, "can_edit": can_edit, "form": form, "datasets": selectors.dataset_list(project=project)}
    return render(request, "experiments/datasets.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def dataset_page(request, slug: str, name: str):
    """A dataset's items, 50 a page (for htmx only the items fragment). POST imports a file
    (editors), all or nothing; for htmx the upload fragment with the outcome, and on success
    the items from the page where the new ones start."""
    project = account_selectors.project_for(user=request.user, slug=slug)
    dataset = selectors.dataset_get(project=project, name=name)
    context = {"project": project, "dataset": dataset, "can_edit": role_allows(project.role, Action.EDIT)}
    if request.method == "GET":
        context.update(_items_context(dataset, request.GET.get("page")), form=DatasetUploadForm())
        return page_or_fragment(request, "experiments/dataset_detail.html", context, fragment_template="experiments/partials/dataset-items.html")

    if not context["can_edit"]:
        raise PermissionDenied("Viewers cannot import dataset items.")
    form = DatasetUploadForm(request.POST, request.FILES)
    context["form"] = form
    if form.is_valid():
        replace = form.cleaned_data["replace"]
        first_new = 0 if replace else selectors.dataset_items(dataset=dataset).count()
        try:
            imported = datasets.dataset_import(
                dataset=dataset, actor=request.user, file=form.cleaned_data["file"], format=form.format,
                mapping=form.cleaned_data["mapping"], replace=replace,
            )  # fmt: skip
        except DomainError as exc:
            context.update(_import_error(exc))
        else:
            page = first_new // ITEMS_PER_PAGE + 1
            url = reverse("dataset_detail", args=[project.slug, dataset.name]) + (f"?page={page}" if page > 1 else "")
            outcome = f"Imported {imported} item{'s' * (imported != 1)}{' in place of the old ones' if replace else ''}."
            if not request.htmx:
                messages.success(request, outcome)
                return redirect(url)
            context.update(_items_context(dataset, page), form=DatasetUploadForm(), imported=outcome, oob=True)
            response = render(request, "experiments/partials/dataset-upload.html", context)
            response.write(render_to_string("experiments/partials/dataset-items.html", context, request))
            return push_url(response, url)
    if request.htmx:
        return render(request, "experiments/partials/dataset-upload.html", context)
    context.update(_items_context(dataset, request.GET.get("page")))
    return render(request, "experiments/dataset_detail.html", context)


def _import_error(exc: DomainError) -> dict:
    """What the upload fragment shows of a refused import: a headline, and the file's problems."""
    problems = exc.details.get("problems") or []
    if not problems:
        return {"import_error": exc.message}
    count = f"{len(problems)} problem{'s' * (len(problems) != 1)}"
    if len(problems) >= datasets.MAX_PROBLEMS:
        count = f"stopped after {count}"
    return {"import_error": f"Nothing was imported: {count}. Fix the file and upload it again.", "problems": problems}


@require_POST
@login_required
def dataset_item_checks(request, slug: str, name: str, row: int):
    """Save an item's own assertions (JSON, promptlab's shape) and threshold (editors). For htmx
    the item's table row, its editor left open with the problem when they are refused; without
    htmx back to the item's page of the dataset."""
    project = account_selectors.project_for(user=request.user, slug=slug)
    dataset = selectors.dataset_get(project=project, name=name)
    if not role_allows(project.role, Action.EDIT):
        raise PermissionDenied("Viewers cannot change dataset items.")
    item = selectors.dataset_item(dataset=dataset, row=row)
    text, threshold = request.POST.get("assertions", ""), request.POST.get("threshold", "")
    try:
        assertions = datasets.assertions_from_json(text)
        item = datasets.dataset_item_update(item=item, actor=request.user, assertions=assertions, threshold=threshold)
    except DomainError as exc:
        entry = _item_row(item, assertions=text, threshold=threshold, error=exc.message)
    else:
        entry = _item_row(item, saved=True)
    context = {"project": project, "dataset": dataset, "can_edit": True, "entry": entry}
    if request.htmx:
        return render(request, "experiments/partials/dataset-item.html", context)
    page = selectors.dataset_items(dataset=dataset).filter(row__lt=item.row).count() // ITEMS_PER_PAGE + 1
    if not entry["error"]:
        messages.success(request, f"Saved the checks of row {item.row}.")
        url = reverse("dataset_detail", args=[project.slug, dataset.name]) + (f"?page={page}" if page > 1 else "")
        return redirect(f"{url}#dataset-item-{item.row}")
    context.update(_items_context(dataset, page, editing=entry), form=DatasetUploadForm())
    return render(request, "experiments/dataset_detail.html", context)


@require_GET
@login_required
def dataset_download(request, slug: str, name: str, format: str):
    """The items as a CSV or JSONL attachment. The export is spooled to a temporary file and
    sent from there: memory stays bounded and the database is read inside the request."""
    project = account_selectors.project_for(user=request.user, slug=slug)
    dataset = selectors.dataset_get(project=project, name=name)
    if format not in datasets.FORMATS:
        raise Http404("Download a dataset as csv or jsonl.")
    spool = tempfile.SpooledTemporaryFile(max_size=EXPORT_SPOOL_BYTES)  # noqa: SIM115 (FileResponse closes it)
    text = io.TextIOWrapper(spool, encoding="utf-8", newline="")  # newline="": the csv module ends its own lines
    datasets.dataset_export(dataset=dataset, format=format, out=text)
    text.flush()
    text.detach()  # so the wrapper, when collected, does not close the file being sent
    spool.seek(0)
    filename = f"{project.slug}-{dataset.name}.{format}"
    return FileResponse(spool, as_attachment=True, filename=filename, content_type=EXPORT_CONTENT_TYPES[format])


# --- Experiments: the list and the create form ---------------------------------------------


@require_GET
@login_required
def experiments_page(request, slug: str):
    """The project's experiments with their progress, and a way to start a new one for editors."""
    project = account_selectors.project_for(user=request.user, slug=slug)
    context = {"project": project, "experiments": selectors.experiment_list(project=project),
               "can_edit": role_allows(project.role, Action.EDIT)}  # fmt: skip
    return render(request, "experiments/experiments.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def experiment_new(request, slug: str):
    """Create an experiment (and start it, if asked): settings, up to four variants, and what
    higher layers attach (evaluators).
    The #forecast fragment beside the form follows what is filled in."""
    project = _editable_project(request, slug)
    form = ExperimentForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        try:
            data = form.cleaned_data
            experiment = services.experiment_create(
                project=project, actor=request.user, name=data["name"], dataset=data["dataset"], variants=form.specs,
                repeats=data["repeats"], concurrency=data["concurrency"], cache_responses=data["cache_responses"],
                budget_usd=data["budget_usd"], attach=form.attached(), start=data["start"],
            )  # fmt: skip
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("experiment_detail", experiment.pk)
    return render(request, "experiments/experiment_new.html", {"project": project, "form": form}, status=400 if form.errors else 200)


@require_POST
@login_required
def experiment_forecast(request, slug: str):
    """The #forecast fragment: calls, tokens and estimated cost of the form as filled in so far."""
    project = _editable_project(request, slug)
    form = ExperimentForm(request.POST, project=project)
    form.is_valid()  # a half-filled form still forecasts what it can
    dataset, repeats = form.cleaned_data.get("dataset"), form.cleaned_data.get("repeats")
    context = {"forecast": None, "problem": ""}
    if dataset is None or not repeats or not form.specs:
        context["problem"] = "Pick a dataset and at least one prompt to see the forecast."
    else:
        variants = [
            Variant(name=spec["name"], prompt=spec["prompt"], version=spec.get("version"), label=spec.get("label", ""),
                    endpoint=spec["endpoint"], params=spec["params"])
            for spec in form.specs
        ]  # fmt: skip
        try:
            context["forecast"] = services.variants_forecast(dataset=dataset, variants=variants, repeats=repeats, attach=form.attached())
        except DomainError as exc:
            context["problem"] = exc.message
    return render(request, "experiments/partials/forecast.html", context)


def _editable_project(request, slug: str):
    project = account_selectors.project_for(user=request.user, slug=slug)
    if not role_allows(project.role, Action.EDIT):
        raise PermissionDenied("Creating experiments needs the editor role.")
    return project
