"""YAML that zoo-ops did not write, loaded so that it cannot crash or exhaust the process.

One loader for every document from outside (the local settings file, a 02_verify inputs
file): PyYAML's SafeLoader (no Python objects) plus four rules, each refused with
:class:`DocumentRefused` whose message is one line:

- **aliases bounded**: the document as it would be with every alias written out may hold
  at most ``max_nodes`` nodes (an anchor bomb — "billion laughs" — is ten aliases of ten
  aliases of ...; PyYAML shares the nodes, but the first ``repr``, ``json.dumps`` or walk
  of the value expands them); a recursive alias (``&a [*a]``) is refused too;
- **nesting bounded**: deeper than PyYAML's recursive composer can go is refused, not a
  RecursionError;
- **numbers finite**: ``.inf`` and ``.nan`` are refused, as are integers too long to
  convert and impossible dates;
- **strings are text**: a lone surrogate (``"\\ud800"`` is valid YAML escape syntax but
  not UTF-8) is refused, anywhere, key or value;

and duplicate mapping keys are refused (PyYAML keeps the last one silently).

Pure: text in, values out.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

DEFAULT_MAX_NODES = 100_000


class DocumentRefused(ValueError):
    """A YAML document that is not loaded; ``str()`` is one line saying why."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML keeps the last silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    """A mapping whose own keys are unique; keys merged in with ``<<`` may be overridden."""
    own = [pair for pair in node.value if pair[0].tag != "tag:yaml.org,2002:merge"]
    seen: set[Any] = set()
    for key_node, _ in own:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    loader.flatten_mapping(node)  # merged pairs first, then the mapping's own: own wins
    return {
        loader.construct_object(k, deep=True): loader.construct_object(v, deep=True)
        for k, v in node.value
    }


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def expanded_size(root: yaml.Node, limit: int) -> float:
    """How many nodes ``root`` holds with every alias written out; stops past ``limit``.

    Rule: size(node) = 1 + the sizes of its children, a shared (aliased) node counted
    every time it is used — computed once per node (the graph is walked, never expanded),
    iteratively (no recursion limit). A cycle (a recursive alias) is infinitely large.
    """
    sizes: dict[int, float] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(node))
            if sizes[key] > limit:
                return sizes[key]
            continue
        if key in sizes:
            continue
        if key in on_path:
            return math.inf
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                return math.inf
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def value_problem(value: Any, path: str = "") -> str | None:
    """Why a loaded value is refused (a non-finite number, a string that is not text), or None.

    Walks iteratively; shared values (from aliases) are checked once.
    """
    seen: set[int] = set()
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        at = f" at {where}" if where else ""
        if isinstance(item, float) and not math.isfinite(item):
            return f"number {item}{at} is not finite (numbers must be)"
        if isinstance(item, str) and not _is_text(item):
            return f"string {item!r}{at} is not valid UTF-8 text (a lone surrogate)"
        if isinstance(item, dict | list) and id(item) not in seen:
            seen.add(id(item))
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for k, v in pairs:
                stack.append((k, where))
                stack.append((v, f"{where}.{k}" if where else str(k)))
    return None


def one_line(message: str) -> str:
    """``message`` on one line and printable anywhere: whitespace runs become one space,
    a lone surrogate its ``\\udXXX`` escape (printing one raises UnicodeEncodeError)."""
    return " ".join(message.encode("utf-8", "backslashreplace").decode("utf-8").split())


def _is_text(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def load_bounded(text: str | bytes, *, max_nodes: int = DEFAULT_MAX_NODES) -> Any:
    """Load one YAML document under the rules above; :class:`DocumentRefused` if it breaks one.

    Bytes must be UTF-8. The document is composed (nodes, aliases shared), measured with
    :func:`expanded_size`, only then constructed, then checked with :func:`value_problem`.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DocumentRefused(f"not UTF-8 text (byte {exc.start})") from None
    try:
        loader = _StrictLoader(text)  # the reader refuses control characters here already
    except yaml.YAMLError as exc:
        raise DocumentRefused(f"not valid YAML ({one_line(str(exc))})") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = expanded_size(node, max_nodes)
        if size > max_nodes:
            shown = (
                "endlessly (a recursive alias)" if math.isinf(size) else f"past {max_nodes} nodes"
            )
            raise DocumentRefused(
                f"its YAML aliases expand {shown}, an anchor bomb; write the values out"
            )
        value = loader.construct_document(node)
    except DocumentRefused:
        raise
    except yaml.YAMLError as exc:
        raise DocumentRefused(f"not valid YAML ({one_line(str(exc))})") from None
    except RecursionError:
        raise DocumentRefused("nested too deeply") from None
    except ValueError as exc:  # an int too long to convert, a date like 2026-13-99
        raise DocumentRefused(f"a value cannot be read ({one_line(str(exc))})") from None
    finally:
        loader.dispose()
    problem = value_problem(value)
    if problem is not None:
        raise DocumentRefused(problem)
    return value
