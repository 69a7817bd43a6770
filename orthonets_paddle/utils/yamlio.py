"""The package's one YAML reader (``load_yaml``, ``loads_yaml``; ``check_yaml`` for files
another library parses) and ``apply_override`` for ``-o a.b[0]=v``.

PyYAML's ``safe_load`` shares aliased nodes (a 2 KB file of nested anchors can expand to
GBs when walked) and lets a repeated key replace the first; here the expanded size is
bounded on the node graph before anything is built, and a repeated key is an error.
"""
from __future__ import annotations

import os
import re
from typing import Any, Callable, Dict, List

import yaml

from .schema import ConfigError

__all__ = ["load_yaml", "loads_yaml", "check_yaml", "YamlError", "apply_override", "parse_value",
           "MAX_NODES", "MAX_DEPTH", "MAX_BYTES"]

MAX_NODES = 100_000  # nodes after alias expansion; the shipped configs have a few hundred
MAX_DEPTH = 100
MAX_BYTES = 1 << 20  # the shipped configs: < 4 KB; ImageNet-21k's class names inline: ~0.5 MB


class YamlError(ValueError):
    """A YAML file cannot be read as a config (the message names the file and line)."""


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: Dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: PyYAML reports it itself
                    continue
                line = key_node.start_mark.line + 1
                if first is not None:
                    raise YamlError(f"{self.name}:{line}: duplicate key {str(key)[:80]!r} (first at "
                                    f"line {first}); a repeated key or section would silently "
                                    "replace the first: merge them into one")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root) -> int:
    """Nodes of ``root`` with every alias expanded, counted once per distinct node."""
    sizes: Dict[int, int] = {}
    stack = [(root, False, 0)]
    while stack:
        node, ready, depth = stack.pop()
        if id(node) in sizes:
            continue
        if depth > MAX_DEPTH:
            raise YamlError(f"nested more than {MAX_DEPTH} levels deep")
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        if ready or not children:
            total = 1 + sum(sizes.get(id(c), 0) for c in children)
            sizes[id(node)] = min(total, MAX_NODES + 1)
            if total > MAX_NODES:
                raise YamlError(f"its aliases (*name) expand to more than {MAX_NODES:,} values "
                                f"(line {node.start_mark.line + 1}); a config is never that big: "
                                "write the values out instead of nesting anchors")
            continue
        stack.append((node, True, depth))
        stack.extend((c, False, depth + 1) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _read_text(path: str) -> str:
    with open(path, "rb") as f:
        data = f.read(MAX_BYTES + 1)  # composing nodes costs memory before they are counted
    if len(data) > MAX_BYTES:
        raise YamlError(f"{path} is larger than {MAX_BYTES >> 20} MB; a config is never that "
                        "big (is it the right file?)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save "
                        "it with UTF-8 encoding") from None


def _parse(text: str, name: str, construct: bool = True) -> Any:
    """The document in ``text`` (``name`` in messages), its expanded size checked before
    anything is built; with ``construct=False`` the checked node graph (any tags)."""
    loader = _Loader(text)
    loader.name = name
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node)
        return loader.construct_document(node) if construct else node
    except YamlError as exc:
        msg = str(exc)
        raise YamlError(msg if msg.startswith(name) else f"{name}: {msg}") from None
    except yaml.YAMLError as exc:
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None) or exc
        where = f":{mark.line + 1}" if mark is not None else ""
        raise YamlError(f"{name}{where} is not valid YAML: {str(problem)[:200]}") from None
    except RecursionError:
        raise YamlError(f"{name}: nested too deeply to be a config") from None
    finally:
        loader.dispose()


def load_yaml(path: str) -> Any:
    """Read ``path`` as YAML in bounded memory and time; YamlError (with the file and line)
    for text that is not UTF-8, not YAML, too deep or too big, or a duplicate key."""
    return _parse(_read_text(path), path)


def loads_yaml(text: str, name: str = "the value") -> Any:
    """``load_yaml`` for text (an override's value, ``name`` in messages)."""
    return _parse(text, name)


def check_yaml(path: str, follow: str = "_BASE_", _depth: int = 0) -> None:
    """Check that a YAML file read by another library (PaddleDetection's, with its own tags)
    stays within the bounds, and so do the files its ``follow`` key lists (relative paths)."""
    node = _parse(_read_text(path), path, construct=False)
    for key, value in node.value if isinstance(node, yaml.MappingNode) else []:
        if key.value == follow and _depth < 10:
            for item in value.value if isinstance(value, yaml.SequenceNode) else [value]:
                if isinstance(item, yaml.ScalarNode):
                    base = os.path.join(os.path.dirname(path), os.path.expanduser(item.value))
                    if os.path.isfile(base):  # a missing one is the library's to report
                        check_yaml(base, follow, _depth + 1)


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")  # 5e-4: text to PyYAML


def parse_value(text: str) -> Any:
    """Typed override values: ints, floats (``5e-4`` too), bools, lists, null/None."""
    text = text.strip()
    if text in ("None", "none", "null", "Null", "~", ""):
        return None
    try:
        value = loads_yaml(text, f"the value {text[:40]!r}")
    except YamlError as exc:
        if "not valid YAML" in str(exc):
            return text  # e.g. a path with ': ' in it
        raise ConfigError(str(exc)) from None
    return float(value) if isinstance(value, str) and _NUMBER.match(value) else value


def apply_override(tree: Dict[str, Any], override: str,
                   keep_text: Callable[[List[Any]], bool] = lambda path: False) -> None:
    """Set ``a.b[0].c=value`` (or ``a.b.0.c``) in ``tree``, in place: missing mappings are
    created (the caller validates), a list index must exist; the value is
    ``parse_value(text)``, or the text itself where ``keep_text(path)`` and it is not null."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like Section.key=value, "
                          "e.g. -o Global.epochs=1")
    key, text = override.split("=", 1)
    path = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", key.strip())]
    if not path:
        raise ConfigError(f"override {override!r} names no key; e.g. -o Global.epochs=1")
    node: Any = tree
    for i, part in enumerate(path):
        where = ".".join(map(str, path[:i]))
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"override {key!r}: {where} holds a value, not a section")
        if isinstance(node, list) and not (isinstance(part, int) and part < len(node)):
            raise ConfigError(f"override {key!r}: {where} has no item {part} (a list of "
                              f"{len(node)} items)")
        if i < len(path) - 1:
            if isinstance(node, dict) and node.get(part) is None:
                node[part] = {}
            node = node[part]
    value = parse_value(text)
    keep = value is not None and not isinstance(value, str) and keep_text(path)
    node[path[-1]] = text.strip() if keep else value
