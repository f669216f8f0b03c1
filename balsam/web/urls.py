"""The site: the dashboard at ``/``, its data and plots, and the Django admin under ``/admin/``."""

from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path

from balsam.web import views

dashboard_patterns = [
    path("", views.dashboard, name="dashboard"),
    path("dashboard.json", views.dashboard_json, name="dashboard_json"),
    path("plots/<str:name>.<str:fmt>", views.plot, name="plot"),
]

urlpatterns = [
    path("", include((dashboard_patterns, "balsam_web"))),
    # Before the admin's own: passwords change with `balsam web passwd` (see accounts.py).
    path("admin/password_change/", views.password_change, name="password_change_info"),
    path("admin/", admin.site.urls),
    # Browsers ask for it on every first visit; a 404 would be logged each time.
    path("favicon.ico", lambda request: HttpResponse(status=204)),
]
