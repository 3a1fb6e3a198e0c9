from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from docdb.api.views import api_urls
from docdb.healthz import health

admin.site.site_header = "DocDB administration"
admin.site.site_title = "DocDB admin"
admin.site.index_title = "Documents, pages, pipeline runs and API tokens"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="search:search", permanent=False)),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", include("docdb.api.account")),
    path("documents/", include("docdb.documents.urls")),
    path("libraries/", include("docdb.documents.library_urls")),
    path("search/", include("docdb.search.urls")),
    path("api/", api_urls()),
    # Before the admin's own URLs, which would otherwise answer this prefix with a 404.
    path("admin/operations/", include("docdb.ops.urls")),
    path("admin/", admin.site.urls),
    # Named for reverse(); HealthzMiddleware answers it before the host check.
    path("healthz", health, name="health"),
]
