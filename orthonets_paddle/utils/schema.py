"""One typed check for config values: ``Typed("int", min=1).check("Global.epochs", v)``.

Every value a user writes goes through a ``Typed`` spec, so a wrong type or range is one
error naming the full key and what is allowed, before anything runs.
"""
from __future__ import annotations

import math
import numbers
import re
from typing import Any, Optional, Sequence

__all__ = ["Typed", "SchemaError", "POSITIVE_INT", "NON_NEGATIVE_INT", "BOOL"]

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class SchemaError(ValueError):
    """A value has the wrong type or is out of range (the message names its key)."""


class Typed:
    """A value's type and allowed range.

    Args:
        kind: ``int``, ``number`` (int or float), ``bool``, ``str``, ``choice`` or ``list``.
        min, max: bounds for numbers (inclusive unless ``min_open`` / ``max_open``).
        choices: allowed values for ``choice``.
        null: ``None`` is allowed too.
        item: the spec of each item of a ``list``.
        length: the exact length of a ``list``.
    """

    def __init__(self, kind: str, min: Optional[float] = None, max: Optional[float] = None,
                 min_open: bool = False, max_open: bool = False,
                 choices: Sequence[Any] = (), null: bool = False,
                 item: Optional["Typed"] = None, length: Optional[int] = None):
        if kind not in ("int", "number", "bool", "str", "choice", "list"):
            raise ValueError(f"Typed: unknown kind {kind!r}")
        self.kind, self.min, self.max = kind, min, max
        self.min_open, self.max_open = min_open, max_open
        self.choices, self.null, self.item, self.length = tuple(choices), null, item, length

    def describe(self) -> str:
        """What is allowed, in words (``an integer >= 1``)."""
        if self.kind == "choice":
            text = "one of " + ", ".join(map(str, self.choices))
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind == "str":
            text = "a string"
        elif self.kind == "list":
            text = f"a list of {self.length} items" if self.length else "a list"
            if self.item is not None:
                text += f", each {self.item.describe()}"
        elif self.kind == "int" and self.min == 1 and not self.min_open and self.max is None:
            text = "a positive integer"
        else:
            text = "an integer" if self.kind == "int" else "a number"
            bounds = []
            if self.min is not None:
                bounds.append(f"{'>' if self.min_open else '>='} {self.min:g}")
            if self.max is not None:
                bounds.append(f"{'<' if self.max_open else '<='} {self.max:g}")
            if bounds:
                text += " " + " and ".join(bounds)
        return text + (" or null" if self.null else "")

    def __call__(self, key: str, value: Any) -> Any:
        return self.check(key, value)

    def check(self, key: str, value: Any) -> Any:
        """Return ``value`` (a number written as text, e.g. YAML's ``5e-4``, as a float) or
        raise ``SchemaError`` naming ``key`` and what is allowed."""
        if value is None:
            if self.null:
                return None
            self._fail(key, value)
        if self.kind == "bool":
            if not isinstance(value, bool):
                self._fail(key, value)
        elif self.kind == "str":
            if not isinstance(value, str):
                self._fail(key, value)
        elif self.kind == "choice":
            if isinstance(value, bool) or value not in self.choices:
                self._fail(key, value)
        elif self.kind == "list":
            if not isinstance(value, (list, tuple)) or (
                    self.length is not None and len(value) != self.length):
                self._fail(key, value)
            if self.item is not None:
                value = [self.item.check(f"{key}[{i}]", v) for i, v in enumerate(value)]
        else:
            if isinstance(value, str) and self.kind == "number" and _NUMBER.match(value.strip()):
                value = float(value)  # PyYAML reads 5e-4 (no dot) as text
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                self._fail(key, value)
            if self.kind == "int":
                if not isinstance(value, numbers.Integral):
                    if not float(value).is_integer():
                        self._fail(key, value)
                value = int(value)
            if not math.isfinite(value):
                self._fail(key, value)
            if self.min is not None and (value < self.min or (self.min_open and value == self.min)):
                self._fail(key, value)
            if self.max is not None and (value > self.max or (self.max_open and value == self.max)):
                self._fail(key, value)
        return value

    def _fail(self, key: str, value: Any) -> None:
        raise SchemaError(f"{key} must be {self.describe()}, got {value!r}")


POSITIVE_INT = Typed("int", min=1)
NON_NEGATIVE_INT = Typed("int", min=0)
BOOL = Typed("bool")
