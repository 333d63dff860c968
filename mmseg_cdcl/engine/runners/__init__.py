from .quiet_console_runner import QuietConsoleRunner

__all__ = ['QuietConsoleRunner']
