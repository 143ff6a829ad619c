"""Domain errors raised by the store; the server maps them to status codes in one table."""


class StoreError(Exception):
    """Base class for storage errors."""


class InvalidInput(StoreError, ValueError):
    """A request field is malformed. The message names the field."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class UnknownItem(StoreError, KeyError):
    def __init__(self, item_id: str, field: str = "item_id"):
        self.item_id = item_id
        self.field = field
        super().__init__(f"{field}: unknown item {item_id!r}")

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return self.args[0]


class UnknownUser(StoreError, KeyError):
    def __init__(self, user_id: str, field: str = "user_id"):
        self.user_id = user_id
        self.field = field
        super().__init__(f"{field}: unknown user {user_id!r}")

    def __str__(self) -> str:
        return self.args[0]


class IngestError(StoreError, ValueError):
    """A bad input row: names the file, the line and the field."""

    def __init__(self, path: str, line: int, field: str, message: str):
        self.path, self.line, self.field = str(path), line, field
        super().__init__(f"{path}:{line}: field {field!r}: {message}")
