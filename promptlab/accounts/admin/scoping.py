"""The admin base for everything that belongs to a project."""

from django.contrib import admin

from promptlab.accounts import selectors
from promptlab.accounts.access import Action, can
from promptlab.accounts.models import Project


class ScopedChoices:
    """Foreign-key choices limited to the projects the user may edit: the project itself, or
    anything that belongs to one (a dataset, a prompt), so no other project's names show."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.related_model
        if related is Project or any(field.name == "project" for field in related._meta.fields):
            editable = [p.pk for p in selectors.project_list_for(user=request.user) if can(request.user, p, Action.EDIT)]
            lookup = "pk__in" if related is Project else "project__in"
            kwargs["queryset"] = related._default_manager.filter(**{lookup: editable})
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ProjectScoped(ScopedChoices, admin.ModelAdmin):
    """Only the user's projects; viewers read, editors write."""

    list_filter = [("project", admin.RelatedOnlyFieldListFilter)]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(project__in=selectors.project_list_for(user=request.user).values("pk"))

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request) and (obj is None or can(request.user, obj.project, Action.VIEW))

    def has_add_permission(self, request):
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None):
        return self.has_module_permission(request) and (obj is None or can(request.user, obj.project, Action.EDIT))

    def has_delete_permission(self, request, obj=None):
        return obj is not None and can(request.user, obj.project, Action.MANAGE)
