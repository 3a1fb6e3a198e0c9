import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "First start: create an `admin` superuser when there is no user yet, and say how."

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        if user_model.objects.exists():
            return
        password = secrets.token_urlsafe(12)
        user_model.objects.create_superuser("admin", password=password)
        credentials = settings.DATA_DIR / "admin-password.txt"
        credentials.write_text(f"username: admin\npassword: {password}\n")
        credentials.chmod(0o600)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created the first user: admin / {password}  (also saved in {credentials}). "
                "Change it in the admin, or add users with `python manage.py createsuperuser`."
            )
        )
