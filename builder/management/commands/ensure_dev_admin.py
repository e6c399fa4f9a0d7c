"""Create the development login admin/admin when DEBUG is on and no superuser exists."""

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a development superuser (admin/admin) if there is none. DEBUG only."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            self.stdout.write("DEBUG is off: create a superuser with createsuperuser.")
            return
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("A superuser exists already.")
            return
        password = os.environ.get("MUTANT_DEV_PASSWORD", "admin")
        User.objects.create_superuser("admin", "admin@example.com", password)
        self.stdout.write(f"Log in as admin / {password}")
