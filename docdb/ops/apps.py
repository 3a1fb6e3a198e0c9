from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "docdb.ops"
    label = "ops"
    verbose_name = "Operations"
