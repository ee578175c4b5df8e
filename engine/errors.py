"""Errors the CLI and the app show as one clear line (never a traceback)."""


class UserError(Exception):
    """A user mistake: the CLI prints str(e) on one line and exits 2."""
