"""Errors of the platform's settings (below every module that reads them: no import circles)."""


class SettingError(ValueError):
    """An environment variable with a value admf cannot use; the message names it (one line)."""
