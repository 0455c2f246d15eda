from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from prompts import selectors


@require_GET
@login_required
def home(request):
    """The projects the user belongs to, with their role in each."""
    projects = selectors.project_list_for(user=request.user)
    return render(request, "prompts/home.html", {"projects": projects})
