"""Migrations for the "models" app, written by `python -m tortoise ... makemigrations` (see mlxui.db)."""
