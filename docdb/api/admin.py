from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from docdb.api.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("user", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("user__username", "name")
    list_select_related = ("user",)
    fields = ("user", "name", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("user", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A token is shown once, when made: `manage.py create_api_token USERNAME`.
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            token.revoke()
        self.message_user(request, f"{len(queryset)} token(s) revoked.")
