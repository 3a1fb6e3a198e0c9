from django.urls import path

from docdb.ops import views

app_name = "ops"

urlpatterns = [
    path("", views.operations, name="operations"),
    path("check/", views.operations_check, name="check"),
    path("repair/", views.operations_repair, name="repair"),
]
