from django.urls import path

from docdb.search import views

app_name = "search"

urlpatterns = [
    path("", views.search, name="search"),
    path("image/", views.image_search, name="image_search"),
    path("image/<uuid:image_id>.jpg", views.query_image, name="query_image"),
    path("pages/<uuid:document_id>/<int:number>/similar/", views.page_similar, name="page_similar"),
    path("pages/<uuid:document_id>/<int:number>/maps/", views.page_maps, name="page_maps"),
]
