"""A whole project, as a user writes it, that must pass ``mypy --strict`` with the Django
plugin, django-stubs and types-channels, and without a single ignore comment
(``tests/test_typing.py`` checks it)."""
