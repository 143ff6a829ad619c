"""Domain errors, raised by the store, the ranker, the explainer and the server alike.

The server maps them to status codes in one table (`server/errors.py`); the batch job turns
them into rejected rows. Each names the request field it is about, by its proto name.
"""
from __future__ import annotations


class DomainError(Exception):
    """Base class: the request cannot be served as asked (not a fault of the service)."""


class InvalidInput(DomainError, ValueError):
    """A request field is malformed. The message names the field."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class UnknownItem(DomainError, KeyError):
    def __init__(self, item_id: str, field: str = "item_id"):
        self.item_id = item_id
        self.field = field
        super().__init__(f"{field}: unknown item {item_id!r}")

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


class UnknownUser(DomainError, KeyError):
    def __init__(self, user_id: str, field: str = "user_id"):
        self.user_id = user_id
        self.field = field
        super().__init__(f"{field}: unknown user {user_id!r}")

    def __str__(self) -> str:
        return str(self.args[0])
