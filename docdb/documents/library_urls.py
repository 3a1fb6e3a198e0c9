from django.urls import path

from docdb.documents import library_views as views

app_name = "libraries"

urlpatterns = [
    path("", views.library_list, name="list"),
    path("new/", views.library_create_view, name="create"),
    path("<int:library_id>/", views.library_detail, name="detail"),
    path("<int:library_id>/rename/", views.library_rename_view, name="rename"),
    path("<int:library_id>/delete/", views.library_delete_view, name="delete"),
    path("<int:library_id>/leave/", views.library_leave_view, name="leave"),
    path("<int:library_id>/members/", views.member_add_view, name="member_add"),
    path(
        "<int:library_id>/members/<int:user_id>/role/",
        views.member_role_view,
        name="member_role",
    ),
    path(
        "<int:library_id>/members/<int:user_id>/remove/",
        views.member_remove_view,
        name="member_remove",
    ),
]
