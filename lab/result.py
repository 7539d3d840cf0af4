"""What a lab command returns: its stdout, stderr and exit status, and the code page its bytes go out in."""


def console_bytes(text: str, code_page: int) -> bytes:
    """Text as a console program writes it to a pipe in ``code_page`` (65001: UTF-8); characters the code page
    lacks become their best-fit ASCII ('’' -> "'") or '?', as WideCharToMultiByte does."""
    if code_page == 65001:
        return text.encode("utf-8")
    return text.replace("\u2019", "'").encode(f"cp{code_page}", errors="replace")


class Result:
    __slots__ = ("stdout", "stderr", "status", "code_page")

    def __init__(self, stdout: str = "", stderr: str = "", status: int = 0, code_page: int = 65001):
        self.stdout, self.stderr, self.status = stdout, stderr, status
        # how the bytes go on the wire: a Windows console program writes its console's code page
        # (lab/model.py OEM_CODE_PAGE); everything else UTF-8
        self.code_page = code_page

    def stdout_bytes(self) -> bytes:
        return console_bytes(self.stdout, self.code_page)

    def stderr_bytes(self) -> bytes:
        return console_bytes(self.stderr, self.code_page)
