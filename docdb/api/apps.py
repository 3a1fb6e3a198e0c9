from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "docdb.api"
    label = "docdb_api"
    default_auto_field = "django.db.models.BigAutoField"
