from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from docdb.api.models import ApiToken


class Command(BaseCommand):
    help = "Revoke a user's API tokens (all, or those with the given name)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", help="Only the tokens with this label.")

    def handle(self, *args: Any, **options: Any) -> None:
        tokens = ApiToken.objects.filter(
            user__username=options["username"], revoked_at__isnull=True
        )
        if options["name"]:
            tokens = tokens.filter(name=options["name"])
        revoked = tokens.update(revoked_at=timezone.now())
        if not revoked:
            raise CommandError("No active token matched.")
        self.stdout.write(f"Revoked {revoked} token(s).")
