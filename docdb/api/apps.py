from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "docdb.api"
    label = "docdb_api"
    verbose_name = "API"
    default_auto_field = "django.db.models.BigAutoField"
