from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import transaction

from promptlab.accounts import selectors, services
from promptlab.accounts.access import Action, can
from promptlab.accounts.models import Membership, Project
from promptlab.errors import DomainError


class MembershipForm(forms.ModelForm):
    email = forms.EmailField(help_text="Someone without an account gets an email invitation.")

    class Meta:
        model = Membership
        fields = ["role"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["email"].initial = self.instance.user.email
            self.fields["email"].disabled = True
            self.fields["email"].help_text = ""


class _DryRun(Exception):
    pass


class MembershipFormSet(forms.BaseInlineFormSet):
    """Applies the changes through the services; `clean` applies them once in a rolled-back
    savepoint so that a refused change shows on the form and saves nothing."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        try:
            with transaction.atomic():
                self.apply(actor=self.actor)
                raise _DryRun
        except _DryRun:
            pass
        except DomainError as exc:
            raise ValidationError(exc.message) from None

    def apply(self, *, actor):
        """Write the changes through the services, recording them as formset.save() would
        so that the admin's history names them."""
        project = self.instance
        self.new_objects, self.changed_objects, self.deleted_objects = [], [], []
        for form in self.initial_forms:
            if self._should_delete_form(form):
                services.membership_remove(project=project, user=form.instance.user, actor=actor)
                self.deleted_objects.append(form.instance)
            elif form.has_changed():
                membership = services.membership_set(
                    project=project, user=form.instance.user, role=form.cleaned_data["role"], actor=actor
                )
                self.changed_objects.append((membership, form.changed_data))
        for form in self.extra_forms:
            if form.has_changed() and not self._should_delete_form(form):
                user, _ = services.user_invite(email=form.cleaned_data["email"])
                membership = services.membership_set(
                    project=project, user=user, role=form.cleaned_data["role"], actor=actor
                )
                self.new_objects.append(membership)


class MembershipInline(admin.TabularInline):
    model = Membership
    form = MembershipForm
    formset = MembershipFormSet
    fields = ["email", "role"]
    extra = 1

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.actor = request.user
        return formset

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")

    # `obj` is the project; without one (the inline's queryset) the project admin has
    # already decided what the user may see.
    def has_view_permission(self, request, obj=None):
        return obj is None or can(request.user, obj, Action.VIEW)

    def has_change_permission(self, request, obj=None):
        return obj is None or can(request.user, obj, Action.MANAGE)

    has_add_permission = has_change_permission
    has_delete_permission = has_change_permission


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    """Members see their own projects only; what they may change follows their role."""

    list_display = ["name", "slug", "role", "member_count", "created_at"]
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]

    def get_queryset(self, request):
        return selectors.project_list_for(user=request.user)

    def get_inlines(self, request, obj):
        # On creation the creator becomes the owner; members are added afterwards.
        return self.inlines if obj is not None else []

    def get_readonly_fields(self, request, obj=None):
        return ["slug"] if obj is not None else []

    def get_prepopulated_fields(self, request, obj=None):
        return {"slug": ["name"]} if obj is None else {}

    @admin.display(description="your role")
    def role(self, project):
        return project.role

    @admin.display(description="members")
    def member_count(self, project):
        return project.member_count

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request) and (obj is None or can(request.user, obj, Action.VIEW))

    def has_add_permission(self, request):
        # Projects are made by superusers here, or by the operator (create_project); members
        # manage the projects they are in (docs/operator-guide/people-and-projects.md).
        return self.has_module_permission(request) and request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return self.has_module_permission(request) and (obj is None or can(request.user, obj, Action.MANAGE))

    def has_delete_permission(self, request, obj=None):
        return obj is not None and can(request.user, obj, Action.OWN)

    def save_model(self, request, obj, form, change):
        if change:
            services.project_rename(project=obj, name=obj.name, actor=request.user)
            return
        project = services.project_create(slug=obj.slug, name=obj.name, actor=request.user)
        obj.pk, obj.created_at = project.pk, project.created_at
        obj._state.adding = False

    def delete_model(self, request, obj):
        services.project_delete(project=obj, actor=request.user)

    def save_formset(self, request, form, formset, change):
        formset.apply(actor=request.user)
