"""Config checks at the bottom layer: a value's type and range (``Typed``) and a builder's
config keys (``builder_keys``: every layer reads its keys from the code that uses them)."""
from __future__ import annotations

import inspect
import math
import numbers
import re
from typing import Any, Callable, Dict, Optional, Sequence

__all__ = ["ConfigError", "SchemaError", "Typed", "POSITIVE_INT", "NON_NEGATIVE_INT", "BOOL",
           "PATH", "SEED", "EPOCHS", "CLASS_NUM", "WIDTH", "CHANNELS_MAX", "IMAGE_SIDE",
           "BATCH_SIZE", "NUM_WORKERS", "NUM_SAMPLES", "builder_keys"]

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class ConfigError(ValueError):
    """A config key or value the code does not accept (the message names the key)."""


SchemaError = ConfigError  # the name deploy.infer catches


def builder_keys(fn: Callable) -> Dict[str, bool]:
    """The config keys of builder ``fn``: its keyword-only parameters (the positional ones
    are what the code passes), each mapped to whether it is required (has no default)."""
    return {p.name: p.default is p.empty for p in inspect.signature(fn).parameters.values()
            if p.kind is p.KEYWORD_ONLY}


class Typed:
    """A value's type and allowed range; ``spec(key, value)`` checks and returns it.

    Args:
        kind: ``int``, ``number`` (int or float), ``bool``, ``str``, ``path`` (a non-empty
            string without NUL), ``choice`` or ``list``.
        min, max: bounds for numbers (inclusive unless ``min_open`` / ``max_open``).
        choices: allowed values for ``choice``.
        null: ``None`` is allowed too.
        item: the spec of each item of a ``list``.
        length: the exact length of a ``list``.
        why: the reason for ``max``, added to the error of a value above it.
    """

    def __init__(self, kind: str, min: Optional[float] = None, max: Optional[float] = None,
                 min_open: bool = False, max_open: bool = False, choices: Sequence[Any] = (),
                 null: bool = False, item: Optional["Typed"] = None, length: Optional[int] = None,
                 why: str = ""):
        if kind not in ("int", "number", "bool", "str", "path", "choice", "list"):
            raise ValueError(f"Typed: unknown kind {kind!r}")
        self.kind, self.min, self.max = kind, min, max
        self.min_open, self.max_open = min_open, max_open
        self.choices, self.null, self.item, self.length = tuple(choices), null, item, length
        self.why = why

    def describe(self) -> str:
        """What is allowed, in words (``a positive integer``)."""
        if self.kind == "list":
            text = (f"a list of {self.length} items" if self.length else "a list") + (
                f", each {self.item.describe()}" if self.item is not None else "")
        elif self.kind == "int" and (self.min, self.min_open, self.max) == (1, False, None):
            text = "a positive integer"
        elif self.kind in ("int", "number"):
            text = " ".join(["an integer" if self.kind == "int" else "a number", " and ".join(
                f"{o} {b if self.kind == 'int' else format(b, 'g')}"
                for o, b in ((">" if self.min_open else ">=", self.min),
                             ("<" if self.max_open else "<=", self.max)) if b is not None)]).strip()
        else:
            text = {"choice": "one of " + ", ".join(map(str, self.choices)),
                    "bool": "true or false", "str": "a string",
                    "path": "a path (non-empty text)"}[self.kind]
        return text + (" or null" if self.null else "")

    def __call__(self, key: str, value: Any) -> Any:
        return self.check(key, value)

    def check(self, key: str, value: Any) -> Any:
        """Return ``value`` (a number written as text, e.g. YAML's ``5e-4``, as a float) or
        raise ``SchemaError`` naming ``key`` and what is allowed."""
        if value is None:
            return None if self.null else self._fail(key, value)
        if self.kind in ("bool", "str", "path"):
            if not isinstance(value, bool if self.kind == "bool" else str) or (
                    self.kind == "path" and (not value.strip() or "\0" in value)):
                self._fail(key, value)
        elif self.kind == "choice":
            if isinstance(value, bool) or value not in self.choices:
                self._fail(key, value)
        elif self.kind == "list":
            if not isinstance(value, (list, tuple)) or self.length not in (None, len(value)):
                self._fail(key, value)
            if self.item is not None:
                value = [self.item.check(f"{key}[{i}]", v) for i, v in enumerate(value)]
        else:
            if isinstance(value, str) and self.kind == "number" and _NUMBER.match(value.strip()):
                value = float(value)  # PyYAML reads 5e-4 (no dot) as text
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                self._fail(key, value)
            if self.kind == "int":
                if not isinstance(value, numbers.Integral) and not float(value).is_integer():
                    self._fail(key, value)
                value = int(value)
            if not math.isfinite(value) or (self.min is not None and (
                    value < self.min or (self.min_open and value == self.min))) or (
                    self.max is not None and (value > self.max or (self.max_open and value == self.max))):
                self._fail(key, value)
        return value

    def _fail(self, key: str, value: Any) -> None:
        above = isinstance(value, numbers.Real) and self.max is not None and value > self.max
        raise SchemaError(f"{key} must be {self.describe()}, got {value!r}"
                          + (f" (the bound: {self.why})" if self.why and above else ""))


POSITIVE_INT = Typed("int", min=1)
NON_NEGATIVE_INT = Typed("int", min=0)
BOOL = Typed("bool")
PATH = Typed("path")
# Upper bounds no real use reaches, so that a typo (1e8 for 8) ends here in one line
# instead of allocating gigabytes or overflowing a counter later (docs/DESIGN.md).
SEED = Typed("int", min=0, max=2**32 - 1, why="NumPy's seed range")
EPOCHS = Typed("int", min=1, max=10**6, why="far beyond any schedule (ImageNet trains "
               "90-600 epochs)")
CLASS_NUM = Typed("int", min=1, max=10**6, why="above every public label set (ImageNet-21k "
                  "has 21,841 classes); the classifier alone would hold 10**6 x its width")
WIDTH = Typed("int", min=1, max=1024, why="16x ResNet's 64; parameters grow with its square")
CHANNELS_MAX = Typed("int", min=1, max=1024, why="above hyperspectral images' few hundred bands")
IMAGE_SIDE = Typed("int", min=1, max=8192, why="8K images; a batch of larger ones does not "
                   "fit in memory")
BATCH_SIZE = Typed("int", min=1, max=65536, why="per process; larger batches do not fit in "
                   "any device's memory")
NUM_WORKERS = Typed("int", min=0, max=256, why="each worker is a process; more than any "
                    "machine's cores")
NUM_SAMPLES = Typed("int", min=1, max=2**31 - 1, null=True, why="more images than any dataset")
