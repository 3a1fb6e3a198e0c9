from django.urls import path

from docdb.ops import views

app_name = "ops"

urlpatterns = [
    path("", views.operations, name="operations"),
    path("repair/", views.operations_repair, name="repair"),
]
