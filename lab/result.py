"""What a lab command returns: its stdout, stderr and exit status."""


class Result:
    __slots__ = ("stdout", "stderr", "status")

    def __init__(self, stdout: str = "", stderr: str = "", status: int = 0):
        self.stdout, self.stderr, self.status = stdout, stderr, status
