from django.apps import AppConfig


class BalsamCoreConfig(AppConfig):
    name = "balsam.core"
    label = "balsam"
    verbose_name = "Balsam"
    default_auto_field = "django.db.models.BigAutoField"
