"""The job list's workflow and application filters.

Django's default filter for a text column runs ``SELECT DISTINCT`` over the
whole job table on every page; these take their choices from cheap reads
instead (the workflow index, the small application table).
"""

from django.contrib import admin, messages

from balsam import api

MAX_CHOICES = 200


class _ExactFilter(admin.SimpleListFilter):
    field = None

    def choices_from_db(self):
        raise NotImplementedError

    def lookups(self, request, model_admin):
        names = self.choices_from_db()[:MAX_CHOICES]
        return [(name, name or "(none)") for name in names]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if value not in self.choices_from_db():
            shown = value if len(value) <= 60 else value[:60] + "..."
            messages.warning(request, f"no {self.title} named {shown!r}: no jobs shown")
            return queryset.none()
        return queryset.filter(**{self.field: value})


class WorkflowFilter(_ExactFilter):
    title = "workflow"
    parameter_name = "workflow"
    field = "workflow"

    def choices_from_db(self):
        from balsam import analytics

        return analytics.workflows()


class ApplicationFilter(_ExactFilter):
    title = "application"
    parameter_name = "application"
    field = "application"

    def choices_from_db(self):
        return [app.name for app in api.find_apps()]
