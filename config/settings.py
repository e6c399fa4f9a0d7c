"""Settings for the Mutant project.

SQLite (a file in the project folder) unless DATABASE_URL names another
database; secrets and hosts come from the environment with development
defaults that are only safe on a developer's machine.
"""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = os.environ.get("DJANGO_DEBUG", "1").lower() in {"1", "true", "yes", "on"}
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-insecure-key-change-me" if DEBUG else "")
if not SECRET_KEY:
    raise RuntimeError("Set DJANGO_SECRET_KEY when DJANGO_DEBUG is off.")
ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get(
        "DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver"
    ).split(",")
    if host.strip()
]

INSTALLED_APPS = [
    "grappelli",
    "builder.apps.MutantAdminConfig",  # django.contrib.admin, with every user table
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "builder",  # before import_export: its import/export commands know user tables
    "import_export",
    "crispy_forms",
    "crispy_bootstrap5",
    "django_htmx",
    "mutant",
    "mutant.tables",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, so that its process_view runs right before the view.
    "builder.middleware.TableSubscriptionMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

SQLITE_PATH = BASE_DIR / "db.sqlite3"


def _database() -> dict:
    url = os.environ.get("DATABASE_URL")
    if url:
        config = dj_database_url.parse(url, conn_max_age=0)
    else:
        config = {"ENGINE": "django.db.backends.sqlite3", "NAME": SQLITE_PATH}
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Several processes write to one file: immediate transactions, a
        # busy timeout and WAL, so writers queue instead of failing.
        config.setdefault("OPTIONS", {}).update(
            {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            }
        )
        # Tests start real processes: the test database must be a file.
        config.setdefault("TEST", {})["NAME"] = str(
            Path(config["NAME"]).with_name("test-" + Path(config["NAME"]).name)
        )
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "/"

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

GRAPPELLI_ADMIN_TITLE = "Mutant"

# The engine: how long a schema change or a reader waits for a table that is
# busy before giving up with DefinitionBusy, and how long DDL may wait for a
# database lock (PostgreSQL lock_timeout).
MUTANT_LOCK_TIMEOUT = float(os.environ.get("MUTANT_LOCK_TIMEOUT", "10"))
MUTANT_DDL_LOCK_TIMEOUT = float(os.environ.get("MUTANT_DDL_LOCK_TIMEOUT", "5"))

# Uploaded files larger than this (bytes) are checked and imported in a
# background thread, with a progress page, so no request waits past its timeout.
MUTANT_IMPORT_BACKGROUND_BYTES = int(os.environ.get("MUTANT_IMPORT_BACKGROUND_BYTES", "1000000"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
