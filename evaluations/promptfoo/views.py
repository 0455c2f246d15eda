"""The page that imports a promptfoo suite into a project: upload promptfooconfig.yaml alone, or a
zip holding it and the files it refers to; the answer is the import's report or its error."""

from pathlib import PurePath

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from evaluations.promptfoo.files import MAX_FILE_BYTES, ConfigOnly, SuiteFiles, ZipFiles
from evaluations.promptfoo.importer import MAX_SUITE_NAME, promptfoo_suite_import
from promptlab.accounts import selectors as account_selectors
from promptlab.accounts.access import Action, role_allows
from promptlab.errors import DomainError

SUFFIXES = (".yaml", ".yml", ".zip")


class SuiteUploadForm(forms.Form):
    file = forms.FileField(label="promptfooconfig.yaml, or a .zip of it with the files it refers to")
    name = forms.SlugField(
        required=False, max_length=MAX_SUITE_NAME, label="Suite name",
        help_text="Names the dataset and prefixes the prompts and evaluators. Default: from the config's description.",
    )  # fmt: skip

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if PurePath(upload.name).suffix.lower() not in SUFFIXES:
            raise forms.ValidationError("Upload a .yaml config, or a .zip holding promptfooconfig.yaml and its files.")
        if upload.size > MAX_FILE_BYTES:
            raise forms.ValidationError(f"The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB.")
        return upload

    def suite_files(self) -> SuiteFiles:
        upload = self.cleaned_data["file"]
        data = upload.read()
        return ZipFiles(data, name=upload.name) if upload.name.lower().endswith(".zip") else ConfigOnly(data, name=upload.name)


@require_http_methods(["GET", "POST"])
@login_required
def promptfoo_import(request, slug: str):
    """The upload form; POST imports the suite (editors), all or nothing, and shows the report."""
    project = account_selectors.project_for(user=request.user, slug=slug)
    context = {"project": project, "can_edit": role_allows(project.role, Action.EDIT), "form": SuiteUploadForm()}
    if request.method == "GET":
        return render(request, "promptfoo/import.html", context)
    if not context["can_edit"]:
        raise PermissionDenied("Importing a suite needs the editor role.")
    form = context["form"] = SuiteUploadForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            context["report"] = promptfoo_suite_import(
                project=project, actor=request.user, files=form.suite_files(), name=form.cleaned_data["name"] or None
            )
            context["form"] = SuiteUploadForm()
        except DomainError as exc:
            context["import_error"] = exc.message
    status = 200 if "report" in context else 400
    return render(request, "promptfoo/import.html", context, status=status)
