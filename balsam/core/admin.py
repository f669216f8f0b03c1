"""Django admin pages for applications and jobs (browsing; writes go through the write path)."""

from django.contrib import admin

from balsam.core.models import ApplicationDefinition, BalsamJob, JobEvent


class JobEventInline(admin.TabularInline):
    model = JobEvent
    fields = ("timestamp", "from_state", "to_state", "message")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("id",)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(BalsamJob)
class BalsamJobAdmin(admin.ModelAdmin):
    list_display = ("short_id", "name", "workflow", "application", "state", "state_changed_at")
    list_filter = ("state", "workflow", "application")
    search_fields = ("name", "job_id")
    ordering = ("-state_changed_at",)
    readonly_fields = ("job_id", "workdir", "state", "state_changed_at", "created_at", "lease_owner", "lease_heartbeat", "lease_expires_at")
    inlines = [JobEventInline]
    list_per_page = 100
    show_full_result_count = False  # COUNT(*) over millions of rows on every page is slow

    @admin.display(description="id", ordering="job_id")
    def short_id(self, job):
        return job.short_id

    def get_search_results(self, request, queryset, search_term):
        # Ids are stored as 32 hex digits; accept them with dashes too.
        term = search_term.strip()
        if term.count("-") and all(c in "0123456789abcdefABCDEF-" for c in term):
            term = term.replace("-", "")
        return super().get_search_results(request, queryset, term)


@admin.register(ApplicationDefinition)
class ApplicationDefinitionAdmin(admin.ModelAdmin):
    list_display = ("name", "executable", "description")
    search_fields = ("name", "description")
