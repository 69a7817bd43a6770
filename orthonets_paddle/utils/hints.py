"""The one nearest-name hint used by every error that lists valid names."""
import difflib
from typing import Any, Iterable, Mapping


def did_you_mean(name: object, valid: Iterable[object], n: int = 1, cutoff: float = 0.4,
                 quote: bool = True) -> str:
    """``"did you mean 'x'? "`` (up to ``n`` names joined by "or"), or ``""``.

    Args:
        name: the name that was not found.
        valid: the names that exist.
        n: how many close names to offer.
        cutoff: similarity threshold of ``difflib.get_close_matches`` (0-1).
        quote: show the names as ``'x'`` (``repr``) rather than bare.
    """
    near = difflib.get_close_matches(str(name), [str(v) for v in valid], n=n, cutoff=cutoff)
    if not near:
        return ""
    return f"did you mean {' or '.join(repr(s) if quote else s for s in near)}? "


def lookup(registry: Mapping[str, Any], name: object, what: str) -> Any:
    """``registry[name]``, or a ``ValueError`` naming the nearest and the valid names."""
    if not isinstance(name, str) or name not in registry:
        raise ValueError(f"unknown {what} {name!r}; {did_you_mean(name, registry)}valid: "
                         f"{', '.join(registry)}")
    return registry[name]
