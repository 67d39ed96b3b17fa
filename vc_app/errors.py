"""The one exception type whose message is meant for a user.

Anything a user can get wrong (a missing file, a clip that is not audio, a
checkpoint that does not fit) raises `VcAppError` with one clear sentence;
the CLI prints it and exits non-zero, the UI shows it as a message.
"""


class VcAppError(Exception):
    """A problem the user can fix, described in one sentence."""
