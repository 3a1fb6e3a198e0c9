from django.contrib import admin

from docdb.documents.models import Document, Page


class PageInline(admin.TabularInline):
    model = Page
    fields = ("number", "width", "height", "indexed_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "status", "pages_done", "pages_total", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("title", "original_name", "sha256")
    readonly_fields = (
        "id",
        "sha256",
        "size_bytes",
        "status",
        "pages_total",
        "pages_done",
        "error",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
    )
    inlines = [PageInline]


@admin.register(Page)
class PageAdmin(admin.ModelAdmin):
    list_display = ("document", "number", "width", "height", "indexed_at")
    list_select_related = ("document",)
    search_fields = ("document__title", "text")
    readonly_fields = ("document", "number", "width", "height", "indexed_at")
