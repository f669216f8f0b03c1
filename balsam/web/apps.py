from django.apps import AppConfig


class BalsamWebConfig(AppConfig):
    name = "balsam.web"
    label = "balsam_web"
    verbose_name = "Balsam web"

    def ready(self):
        # Django stamps last_login on every login, a write to the auth table
        # outside Balsam's write path. A page view, login included, writes
        # nothing here (sessions are signed cookies). This app is listed after
        # django.contrib.auth, whose ready() connects the receiver.
        from django.contrib.auth.models import update_last_login
        from django.contrib.auth.signals import user_logged_in

        user_logged_in.disconnect(update_last_login, dispatch_uid="update_last_login")
