"""The one exception type users see: the CLI prints its message as a single line and exits."""


class ChexbalError(Exception):
    """A problem with the user's input or files, explained in one line.

    exit_code 2 means the command line itself was impossible (bad option values);
    exit_code 1 means the inputs on disk were missing, corrupt or inconsistent.
    """

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code
