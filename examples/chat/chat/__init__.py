"""The chat example: a Django project and app served by Channels (see ../README.md)."""
