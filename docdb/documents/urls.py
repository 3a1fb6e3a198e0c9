from django.urls import path

from docdb.documents import views

app_name = "documents"

urlpatterns = [
    path("", views.document_list, name="list"),
    path("upload/", views.document_upload_view, name="upload"),
    path("upload/file/", views.document_upload_file, name="upload_file"),
    path("status/", views.document_statuses, name="statuses"),
    path("checksum/", views.document_checksum, name="checksum"),
    path("suggest/", views.document_suggest, name="suggest"),
    path("bulk/", views.document_bulk_view, name="bulk"),
    path("<uuid:document_id>/", views.document_detail, name="detail"),
    path("<uuid:document_id>/retry/", views.document_retry_view, name="retry"),
    path("<uuid:document_id>/unlock/", views.document_unlock_view, name="unlock"),
    path("<uuid:document_id>/cancel/", views.document_cancel_view, name="cancel"),
    path("<uuid:document_id>/rename/", views.document_rename_view, name="rename"),
    path("<uuid:document_id>/delete/", views.document_delete_view, name="delete"),
    path("<uuid:document_id>/tags/add/", views.document_tag_add_view, name="tag_add"),
    path("<uuid:document_id>/tags/remove/", views.document_tag_remove_view, name="tag_remove"),
    path("<uuid:document_id>/file/", views.document_file, name="file"),
    path("<uuid:document_id>/pages/", views.page_jump, name="page_jump"),
    path("<uuid:document_id>/pages/<int:number>/", views.page_detail, name="page"),
    path("<uuid:document_id>/pages/<int:number>/image/", views.page_image, name="page_image"),
    path(
        "<uuid:document_id>/pages/<int:number>/thumbnail/",
        views.page_thumbnail,
        name="page_thumbnail",
    ),
]
