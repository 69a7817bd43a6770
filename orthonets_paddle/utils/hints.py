"""The nearest-name hint of the data package's errors."""
import difflib
from typing import Iterable


def did_you_mean(name: object, valid: Iterable[str]) -> str:
    """``"did you mean 'x'? "`` for the closest valid name, or ``""``."""
    near = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.4)
    return f"did you mean {near[0]!r}? " if near else ""
