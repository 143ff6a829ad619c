"""The store's own errors. The domain errors it raises (unknown item / user, invalid input) live
in `core.errors`, shared by every layer; they are re-exported here for older imports."""
from core.errors import DomainError, InvalidInput, UnknownItem, UnknownUser

StoreError = DomainError   # the base class `except StoreError` has always caught

__all__ = ["DomainError", "IngestError", "InvalidInput", "StoreError", "UnknownItem", "UnknownUser"]


class IngestError(DomainError, ValueError):
    """A bad input row: names the file, the line and the field."""

    def __init__(self, path: str, line: int, field: str, message: str):
        self.path, self.line, self.field = str(path), line, field
        super().__init__(f"{path}:{line}: field {field!r}: {message}")
