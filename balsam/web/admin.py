"""Django admin pages for jobs, applications and batch launches.

Every change a page makes goes through the write path: the models' routed
``save()``/``delete()`` and ``core.write_client`` (directly, or through the
dbserver when one is posted), so the operations' checks and the state machine
apply as for any other caller. A refused write is a message on the page.

Two things Django's admin does by default are switched off here:
- ``transaction.atomic()`` around saves and deletes: a deferred SQLite
  transaction that reads and then writes fails with "database is locked" when
  another writer got in between; the write path makes its own transaction.
- the admin's change log (``django_admin_log``): a write outside the write
  path. A job's history is its event table, which names the web user.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import csrf_protect_m
from django.contrib.auth.models import Group, User
from django.db import models
from django.http import Http404, HttpResponseRedirect
from django.utils.html import format_html

from balsam.core import states
from balsam.core.models import ApplicationDefinition, BalsamJob, QueuedLaunch
from balsam.core.operations.validation import JOB_UPDATE_FIELDS, clean_fields
from balsam.exceptions import BalsamError
from balsam.web import job_actions, job_page
from balsam.web.list_filters import ApplicationFilter, WorkflowFilter

admin.site.site_header = "Balsam"
admin.site.site_title = "Balsam"
admin.site.index_title = "Browse and change this DB"
admin.site.site_url = "/"  # "View site": the dashboard
# Logins are managed with `balsam web adduser` / `passwd` (see accounts.py), not from a browser.
admin.site.unregister(User)
admin.site.unregister(Group)


def _one_line(exc):
    return " ".join(str(exc).split())


class _Refused(Exception):
    """A write the write path refused; the view shows it as a message."""


class WritePathAdmin(admin.ModelAdmin):
    show_facets = admin.ShowFacets.NEVER  # facet counts would count millions of rows per page
    formfield_overrides = {models.TextField: {"widget": forms.Textarea(attrs={"rows": 2, "cols": 90})}}

    @csrf_protect_m
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return self._changeform_view(request, object_id, form_url, extra_context)
        except _Refused:
            return HttpResponseRedirect(request.get_full_path())

    @csrf_protect_m
    def delete_view(self, request, object_id, extra_context=None):
        try:
            return self._delete_view(request, object_id, extra_context)
        except _Refused:
            return HttpResponseRedirect(request.get_full_path())

    def history_view(self, request, object_id, extra_context=None):
        # Django's change log is not kept (see above); a job's page shows its events.
        return HttpResponseRedirect("../change/")

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        raise Http404(f"no {opts.verbose_name} with id {object_id!r} (it may have been removed)")

    def save_model(self, request, obj, form, change):
        try:
            obj.save()  # routed: only the changed fields travel, checked by the operation
        except BalsamError as exc:
            messages.error(request, f"Not saved: {_one_line(exc)}")
            raise _Refused() from exc

    def delete_model(self, request, obj):
        try:
            obj.delete()
        except BalsamError as exc:
            messages.error(request, f"Not deleted: {_one_line(exc)}")
            raise _Refused() from exc

    def delete_queryset(self, request, queryset):
        queryset.delete()  # routed: one delete request for the ids

    def log_addition(self, request, obj, message):
        pass

    def log_change(self, request, obj, message):
        pass

    def log_deletion(self, request, obj, object_repr):
        pass

    def log_deletions(self, request, queryset):
        pass


class JobForm(forms.ModelForm):
    """The editable fields of a job, checked like any write (the operations'
    own rules); ``state`` offers only the moves the state machine allows from
    the stored state."""

    state = forms.ChoiceField(help_text="Only the moves the state machine allows from the current state.")

    class Meta:
        model = BalsamJob
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = self.instance.state
        choices = [current] + sorted(states.TRANSITIONS.get(current, ()))
        self.fields["state"].choices = [(s, s) for s in choices]

    def clean(self):
        cleaned = super().clean()
        changed = {name: cleaned[name] for name in self.changed_data if name in cleaned and name != "state"}
        try:
            clean_fields(BalsamJob, changed, JOB_UPDATE_FIELDS)
        except BalsamError as exc:
            raise forms.ValidationError(_one_line(exc)) from None
        return cleaned


def _action(function, description):
    """An admin action running ``job_actions.function`` and reporting its outcome."""

    def run(modeladmin, request, queryset):
        try:
            outcome = function(job_actions.rows(queryset), request.user.get_username())
        except BalsamError as exc:
            modeladmin.message_user(request, f"Nothing changed: {_one_line(exc)}", messages.ERROR)
            return None
        level = messages.SUCCESS if not outcome.skipped else (messages.WARNING if outcome.changed else messages.ERROR)
        text = outcome.message()
        modeladmin.message_user(request, text[0].upper() + text[1:], level)
        return None

    run.__name__ = f"{function.__name__}_selected"
    run.short_description = description
    run.allowed_permissions = ("change",)
    return run


@admin.register(BalsamJob)
class BalsamJobAdmin(WritePathAdmin):
    form = JobForm
    list_display = ("short_id", "name", "workflow", "application", "state", "state_changed_at")
    list_filter = ("state", WorkflowFilter, ApplicationFilter)
    search_fields = ("name", "job_id")
    ordering = ("-state_changed_at",)
    list_per_page = 100
    show_full_result_count = False  # COUNT(*) over millions of rows on every page is slow
    readonly_fields = ("job_id", "workdir", "state_changed_at", "created_at", "runtime_seconds", "lease_owner",
                       "lease_heartbeat", "lease_expires_at", "queued_launch", "parents_links", "children_links",
                       "history", "output_tail")
    fieldsets = (
        (None, {"fields": ("job_id", "name", "workflow", "description", "application", "args")}),
        ("State", {"fields": ("state", "state_changed_at", "created_at", "runtime_seconds", "timeout_retries",
                              "lease_owner", "lease_heartbeat", "lease_expires_at", "queued_launch")}),
        ("Dependencies", {"fields": ("parents_links", "children_links", "wait_for_parents", "input_files")}),
        ("History", {"fields": ("history",)}),
        ("Output", {"fields": ("output_tail",)}),
        ("Directories and data movement", {"classes": ("collapse",), "fields": (
            "workdir", "user_workdir", "stage_in_url", "stage_out_files", "stage_out_url")}),
        ("Processing", {"classes": ("collapse",), "fields": (
            "preprocess", "postprocess", "post_error_handler", "post_timeout_handler", "auto_timeout_retry",
            "environ_vars", "data")}),
        ("Resources", {"classes": ("collapse",), "fields": (
            "wall_time_minutes", "num_nodes", "ranks_per_node", "threads_per_rank", "threads_per_core",
            "node_packing_count")}),
    )
    actions = [
        _action(job_actions.kill, "Kill selected jobs (and their unfinished descendants)"),
        _action(job_actions.retry, "Retry selected FAILED, RUN_ERROR and RUN_TIMEOUT jobs"),
        _action(job_actions.reset_ready, "Reset selected waiting jobs to READY (parents done)"),
    ]

    def has_add_permission(self, request):
        return False  # jobs are added with `balsam job`, the dag API or make_dummies

    def get_actions(self, request):
        actions = super().get_actions(request)
        # Django's bulk delete, with the write path's delete and a report of what was skipped.
        actions["delete_selected"] = (self.delete_selected, "delete_selected", "Delete selected jobs")
        return actions

    @staticmethod
    def delete_selected(modeladmin, request, queryset):
        from django.contrib.admin.actions import delete_selected as confirm_page

        if not request.POST.get("post"):
            return confirm_page(modeladmin, request, queryset)
        return _action(job_actions.delete, "")(modeladmin, request, queryset)

    def get_deleted_objects(self, objs, request):
        """What the delete confirmation lists: the jobs (bounded), not every
        event row Django's collector would walk."""
        jobs = list(objs[:101]) if hasattr(objs, "model") else list(objs)[:101]
        shown = [format_html('<a href="{}">{}</a>', job_page.job_url(job.pk), str(job)) for job in jobs[:100]]
        if len(jobs) > 100:
            shown.append("and more; with their events and dependency edges")
        return shown, {"jobs": len(jobs) if len(jobs) <= 100 else "100+"}, set(), []

    def delete_model(self, request, obj):
        outcome = job_actions.delete(job_actions.rows(BalsamJob.objects.filter(pk=obj.pk)),
                                     request.user.get_username())
        if outcome.skipped:
            messages.error(request, f"Not deleted: {outcome.skipped[0][1]}")
            raise _Refused()

    @admin.display(description="id", ordering="job_id")
    def short_id(self, job):
        return job.short_id

    @admin.display(description="parents")
    def parents_links(self, job):
        return job_page.relatives(job)[0]

    @admin.display(description="children")
    def children_links(self, job):
        return job_page.relatives(job)[1]

    @admin.display(description="state changes")
    def history(self, job):
        return job_page.history(job)

    @admin.display(description="output (last lines)")
    def output_tail(self, job):
        return job_page.output_tail(job)

    def get_search_results(self, request, queryset, search_term):
        # Ids are stored as 32 hex digits; accept them with dashes too.
        term = search_term.strip()
        if term.count("-") and all(c in "0123456789abcdefABCDEF-" for c in term):
            term = term.replace("-", "")
        return super().get_search_results(request, queryset, term)


@admin.register(ApplicationDefinition)
class ApplicationDefinitionAdmin(WritePathAdmin):
    list_display = ("name", "executable", "description")
    search_fields = ("name", "description")


@admin.register(QueuedLaunch)
class QueuedLaunchAdmin(admin.ModelAdmin):
    """Batch launches are the service's: shown, never changed here."""

    list_display = ("id", "scheduler", "scheduler_id", "queue", "nodes", "wall_minutes", "job_mode", "state",
                    "submit_time", "end_time")
    list_filter = ("state", "scheduler")
    show_facets = admin.ShowFacets.NEVER

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
