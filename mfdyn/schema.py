"""The config schema toolkit: a key's rule, written once, and sections that validate themselves.

A config section (and every problem's [problem] parameters) is a frozen dataclass subclassing
Section, whose fields are declared with rule(default, kind, check, allowed, doc). The rule is the
single source of validation, conversion (TOML list → tuple), the "allowed" words of error
messages, the canonical TOML dump and the README's config table. A Section checks every field on
construction, so `InitConfig(kappa=-1)` raises ConfigError("init.kappa: must be > 0, got -1"),
and reports all bad keys at once.

This module imports nothing from the project: the config loader, the problems and the CLI all
build on it.
"""
from __future__ import annotations

import dataclasses
import datetime
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar


class ConfigError(ValueError):
    """Invalid configuration; the message names every bad dotted key and what is allowed."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()      # the default of a key that has none


def _number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float))


def _numbers(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) > 0 and all(_number(x) for x in v)


# kind → (convert or raise TypeError, the kind in words)
def _convert_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError
    return v


def _convert_float(v: Any) -> float:
    if not _number(v):
        raise TypeError
    return float(v)


def _convert_str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError
    return v


def _convert_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError
    return v


def _convert_floats(v: Any) -> tuple[float, ...]:
    if not _numbers(v):
        raise TypeError
    return tuple(float(x) for x in v)


def _convert_strings(v: Any) -> tuple[str, ...]:
    if not isinstance(v, (list, tuple)) or any(not isinstance(x, str) for x in v):
        raise TypeError
    return tuple(v)


def _convert_ints(v: Any) -> tuple[int, ...]:
    items = v if isinstance(v, (list, tuple)) else [v]
    if not items or any(isinstance(x, bool) or not isinstance(x, int) for x in items):
        raise TypeError
    return tuple(items)


def _convert_bounds(v: Any) -> tuple[tuple[float, float], ...]:
    if not isinstance(v, (list, tuple)) or not v or any(not _numbers(p) or len(p) != 2 for p in v):
        raise TypeError
    return tuple((float(p[0]), float(p[1])) for p in v)


def _convert_teacher(v: Any) -> tuple[tuple[float, ...], ...]:
    if not isinstance(v, (list, tuple)) or not v or any(not _numbers(n) or len(n) not in (2, 3) for n in v):
        raise TypeError
    return tuple(tuple(float(c) for c in n) for n in v)


KINDS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "int": (_convert_int, "an integer"),
    "float": (_convert_float, "a number"),
    "str": (_convert_str, "a string"),
    "bool": (_convert_bool, "true or false"),
    "floats": (_convert_floats, "a list of numbers"),
    "strings": (_convert_strings, "a list of strings"),
    "ints": (_convert_ints, "an integer or a list of integers"),
    "bounds": (_convert_bounds, "a list of [lower, upper] pairs"),
    "teacher": (_convert_teacher, "a list of neurons [a, w] or [a, w, b]"),
}


def _always(v: Any) -> bool:
    return True


def shown(value: Any) -> str:
    """A given value as an error message quotes it, on one line: TOML dates and times as TOML writes them,
    anything else as its repr (which escapes newlines)."""
    if isinstance(value, (datetime.date, datetime.time)):      # datetime is a date
        return value.isoformat()
    return repr(value)


def key_name(key: Any) -> str:
    """A table or key name as an error message quotes it: as it is if printable, else as its repr (a TOML
    quoted key may hold a newline)."""
    return key if isinstance(key, str) and key.isprintable() else repr(key)


@dataclass(frozen=True)
class Rule:
    """What one config key accepts: a kind (a key of KINDS), a check on the converted value, and its words."""

    kind: str
    check: Callable[[Any], bool] = _always
    allowed: str = ""

    def convert(self, value: Any) -> Any:
        """value converted to the rule's kind; TypeError if it is not of that kind."""
        return KINDS[self.kind][0](value)

    def accepts(self, value: Any) -> tuple[bool, Any]:
        """(valid, converted value)."""
        try:
            converted = self.convert(value)
            return bool(self.check(converted)), converted
        except (TypeError, ValueError, OverflowError):
            return False, value

    def describe(self) -> str:
        """The allowed values in words."""
        if self.allowed.startswith("one of"):
            return self.allowed
        return f"{KINDS[self.kind][1]} {self.allowed}".strip()


def rule(default: Any, kind: str, check: Callable[[Any], bool] = _always, allowed: str = "", doc: str = "") -> Any:
    """A dataclass field with its validation rule and documentation; default=REQUIRED makes the key mandatory."""
    if kind not in KINDS:
        raise ValueError(f"rule: unknown kind {kind!r}; allowed: {', '.join(KINDS)}")
    return field(default=default, metadata={"rule": Rule(kind, check, allowed), "doc": doc})


def positive(v: float) -> bool:
    """v > 0 and finite."""
    return v > 0 and math.isfinite(v)


def finite(v: float) -> bool:
    return math.isfinite(v)


def choice(*options: str) -> tuple[Callable[[Any], bool], str]:
    """Check and words for a string that must be one of options."""
    return (lambda v: v in options), "one of " + ", ".join(repr(o) for o in options)


# TOML keys that are Python keywords
TOML_NAME = {"lam": "lambda"}
FIELD_NAME = {v: k for k, v in TOML_NAME.items()}


def toml_key(field_name: str) -> str:
    """The TOML key of a dataclass field (lam → lambda)."""
    return TOML_NAME.get(field_name, field_name)


@dataclass(frozen=True)
class Section:
    """Base of every config section: validates and converts each field on construction.

    Subclasses set `section` (the TOML table name used in messages) and declare fields with rule().
    Construction with any bad value raises ConfigError naming every bad key ('init.kappa: …').
    """

    section: ClassVar[str] = "?"

    def __post_init__(self) -> None:
        errors = []
        for f in dataclasses.fields(self):
            r: Rule | None = f.metadata.get("rule")
            value = getattr(self, f.name)
            key = f"{self.section}.{toml_key(f.name)}"
            if value is REQUIRED:
                errors.append(f"{key}: missing; must be {r.describe() if r else 'given'}")
                continue
            if r is None or (value is None and f.default is None):
                continue
            ok, converted = r.accepts(value)
            if not ok:
                errors.append(f"{key}: must be {r.describe()}, got {shown(value)}")
            else:
                object.__setattr__(self, f.name, converted)
        if errors:
            raise ConfigError(errors)

    @classmethod
    def from_table(cls, table: Any, errors: list[str], section: str | None = None) -> Any:
        """An instance from a TOML table (TOML key names), or None with 'section.key: …' errors appended."""
        section = section or cls.section
        if not isinstance(table, dict):
            errors.append(f"{section}: must be a table, got {shown(table)}")
            return None
        fields = {f.name for f in dataclasses.fields(cls)}
        values, unknown = {}, []
        for key, raw in table.items():
            name = FIELD_NAME.get(key, key)
            if name in fields:
                values[name] = raw
            else:
                unknown.append(f"{section}.{key_name(key)}: unknown key; allowed keys: "
                               + ", ".join(sorted(toml_key(n) for n in fields)))
        try:
            instance = cls(**values)
        except ConfigError as exc:
            errors += unknown + exc.problems
            return None
        errors += unknown
        return None if unknown else instance

    def toml_lines(self) -> list[str]:
        """'key = value' lines of the fields that are set."""
        return [f"{toml_key(f.name)} = {toml_value(getattr(self, f.name))}"
                for f in dataclasses.fields(self) if getattr(self, f.name) is not None]


def toml_value(v: Any) -> str:
    """A Python value as a TOML literal (inf, lists, strings with escapes)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if hasattr(v, "item") and callable(v.item) and getattr(v, "ndim", 1) == 0:   # NumPy scalars
        return toml_value(v.item())
    if isinstance(v, float):
        return "inf" if v == math.inf else "-inf" if v == -math.inf else "nan" if v != v else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML literal for {type(v).__name__}")


def parse_toml_value(raw: str) -> Any:
    """A command-line value read as TOML (2, 1e-3, inf, [1, 2], true, "x"), else as a bare string."""
    try:
        return tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return raw.strip()


__all__ = ["ConfigError", "KINDS", "REQUIRED", "Rule", "Section", "choice", "finite", "key_name", "parse_toml_value",
           "positive", "rule", "shown", "toml_key", "toml_value"]
