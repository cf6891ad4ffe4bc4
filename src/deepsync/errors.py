"""The one exception type a user sees: a problem they can fix, said in one line."""


class DeepSyncError(Exception):
    """A user-facing problem (bad data, missing credentials, bad config).

    The CLI prints ``str(error)`` as a single line and exits non-zero; the message
    must say what went wrong and what to do about it.
    """
