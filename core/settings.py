"""The one config mechanism: a typed dataclass whose fields carry their help text, from which
command-line flags, environment variables and a TOML file all derive. Strict: an unknown key, a
value of the wrong type or an unparsable string is an error naming the field, never a silent default.

    @dataclass
    class MyConfig(Settings):
        ENV_PREFIX: ClassVar[str] = "EXPLAINREC_MY_"
        TOML_TABLE: ClassVar[str] = "my"
        size: int = setting(4, "how many")

    MyConfig.load(file, env, **overrides)       # defaults < TOML < env < overrides (None ignored)
    MyConfig.add_arguments(parser)             # one --flag per field, help from the field
    MyConfig.from_args(args, file)             # flags given on the command line win
    MyConfig.documentation()                   # a Markdown table of every field

Supported field types: bool, int, float, str, Path, an Enum, `X | None` of those, tuple[str, ...].
Validation of values (ranges) stays in each class's `__post_init__`.
"""
from __future__ import annotations

import argparse
import dataclasses
import enum
import logging
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Mapping

_MISSING: Any = dataclasses.MISSING
log = logging.getLogger(__name__)


def setting(default: Any = _MISSING, help: str = "", *, default_factory: Any = _MISSING,
            flag: bool = True) -> Any:
    """A config field with its help text (`flag=False`: no command-line flag, env and TOML only)."""
    if not help:
        raise ValueError("every setting needs a help text")
    meta = {"help": " ".join(help.split()), "flag": flag}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _truthy(raw: str, name: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be a boolean: true/false, yes/no, on/off or 1/0 (got {raw!r})")


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def parse_value(tp: Any, raw: str, name: str) -> Any:
    """A string (environment variable, command line) as a value of type `tp`; ValueError naming `name`."""
    inner, optional = _unwrap_optional(tp)
    if optional and raw.strip().lower() in ("", "none", "null"):
        return None
    if inner is bool:
        return _truthy(raw, name)
    if typing.get_origin(inner) is tuple:
        return tuple(p.strip() for p in raw.split(",") if p.strip())
    if isinstance(inner, type) and issubclass(inner, enum.Enum):
        try:
            return inner(raw.strip())
        except ValueError:
            raise ValueError(f"{name} must be one of {[m.value for m in inner]} (got {raw!r})") from None
    if inner in (int, float, str, Path):
        try:
            return inner(raw)
        except ValueError:
            raise ValueError(f"{name} must be {inner.__name__} (got {raw!r})") from None
    raise TypeError(f"{name}: unsupported setting type {tp!r}")


def check_value(tp: Any, value: Any, name: str) -> Any:
    """A value from a TOML file or a Python caller, checked against `tp` (ints are accepted as floats,
    strings as Paths, enum values as enums); TypeError naming `name` otherwise."""
    inner, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise ValueError(f"{name} must not be None")
    if inner is bool:
        ok = isinstance(value, bool)
    elif inner is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif inner is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif inner is Path:
        ok = isinstance(value, (str, Path))
        value = Path(value) if ok else value
    elif typing.get_origin(inner) is tuple:
        if isinstance(value, str):
            value = tuple(p.strip() for p in value.split(",") if p.strip())
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    elif isinstance(inner, type) and issubclass(inner, enum.Enum):
        try:
            value, ok = inner(value), True
        except ValueError:
            raise ValueError(f"{name} must be one of {[m.value for m in inner]} (got {value!r})") from None
    elif inner is str:
        ok = isinstance(value, str)
    else:
        raise TypeError(f"{name}: unsupported setting type {tp!r}")
    if not ok:
        raise ValueError(f"{name} must be {getattr(inner, '__name__', inner)} (got {value!r})")
    return value


class Settings:
    """Mixin for a config dataclass. Subclasses set ENV_PREFIX and TOML_TABLE."""

    ENV_PREFIX: ClassVar[str] = ""
    TOML_TABLE: ClassVar[str] = ""

    def check_types(self) -> None:
        """Call first in __post_init__: every field's value has the declared type (converted where
        lossless: int -> float, str -> Path, value -> Enum)."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            object.__setattr__(self, f.name, check_value(hints[f.name], getattr(self, f.name), f.name))  # frozen too

    @classmethod
    def _fields(cls) -> list[dataclasses.Field]:
        return list(dataclasses.fields(cls))  # type: ignore[arg-type]

    @classmethod
    def field_type(cls, name: str) -> Any:
        return typing.get_type_hints(cls)[name]

    @classmethod
    def env_name(cls, name: str) -> str:
        return cls.ENV_PREFIX + name.upper()

    @classmethod
    def read_toml(cls, file: str | Path) -> dict[str, Any]:
        with open(file, "rb") as fh:
            data = tomllib.load(fh)
        if cls.TOML_TABLE and isinstance(data.get(cls.TOML_TABLE), dict):
            data = data[cls.TOML_TABLE]
        unknown = set(data) - {f.name for f in cls._fields()}
        if unknown:
            raise ValueError(f"{file}: unknown config keys {sorted(unknown)}")
        return {k: check_value(cls.field_type(k), v, f"{file}: {k}") for k, v in data.items()}

    @classmethod
    def read_env(cls, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        env = os.environ if env is None else env
        known = {cls.env_name(f.name) for f in cls._fields()}
        unknown = sorted(k for k in env if k.startswith(cls.ENV_PREFIX) and k not in known) if cls.ENV_PREFIX else []
        if unknown:   # a typo'd name would otherwise be ignored without a word
            log.warning("ignoring unknown environment variables %s (known: %s)", unknown, sorted(known))
        values: dict[str, Any] = {}
        for f in cls._fields():
            raw = env.get(cls.env_name(f.name))
            if raw is not None:
                values[f.name] = parse_value(cls.field_type(f.name), raw, cls.env_name(f.name))
        return values

    @classmethod
    def load(cls, file: str | Path | None = None, env: Mapping[str, str] | None = None, **overrides: Any) -> Any:
        """Defaults < TOML file < environment < overrides (None values in overrides are ignored)."""
        values: dict[str, Any] = {}
        if file:
            values.update(cls.read_toml(file))
        values.update(cls.read_env(env))
        unknown = set(overrides) - {f.name for f in cls._fields()}
        if unknown:
            raise ValueError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
        """One flag per field, defaulting to None so that the file and the environment still apply."""
        for f in cls._fields():
            if f.name in skip or not f.metadata.get("flag", True):
                continue
            flag = "--" + f.name.replace("_", "-")
            default = _default(f)
            env = f"; env {cls.env_name(f.name)}" if cls.ENV_PREFIX else ""
            help_text = f"{f.metadata.get('help', '')} (default: {_show(default)}{env})"
            tp = cls.field_type(f.name)
            if _unwrap_optional(tp)[0] is bool:
                parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                    help=help_text)
            else:
                def convert(raw: str, tp: Any = tp, flag: str = flag) -> Any:
                    try:
                        return parse_value(tp, raw, flag)
                    except ValueError as exc:
                        raise argparse.ArgumentTypeError(str(exc)) from None
                convert.__name__ = getattr(_unwrap_optional(tp)[0], "__name__", "value")
                parser.add_argument(flag, dest=f.name, type=convert, default=None, help=help_text)

    @classmethod
    def from_args(cls, args: argparse.Namespace, file: str | Path | None = None,
                  env: Mapping[str, str] | None = None, **overrides: Any) -> Any:
        """Defaults < file < environment < the flags given < overrides."""
        values = {f.name: getattr(args, f.name, None) for f in cls._fields()}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.load(file, env, **values)

    @classmethod
    def documentation(cls) -> str:
        """A Markdown table of every setting (the README's settings table is this, verbatim)."""
        head = "| setting | env | default | meaning |" if cls.ENV_PREFIX else "| setting | default | meaning |"
        lines = [head, "|---|---|---|---|" if cls.ENV_PREFIX else "|---|---|---|"]
        for f in cls._fields():
            default = _default(f)
            env = f" `{cls.env_name(f.name)}` |" if cls.ENV_PREFIX else ""
            lines.append(f"| `{f.name}` |{env} `{_show(default)}` | {f.metadata.get('help', '')} |")
        return "\n".join(lines)


def _default(f: dataclasses.Field) -> Any:
    factory: Any = f.default_factory
    return f.default if f.default is not _MISSING else factory()


def _show(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return repr(value.value)
    if isinstance(value, tuple):
        return repr(",".join(value))
    return repr(value)
