"""Patches as the apiserver applies them: RFC 7386 JSON merge patch, strategic merge patch
(with the patch-merge keys of the served kinds and kubectl's ``$patch``, ``$setElementOrder``,
``$deleteFromPrimitiveList`` and ``$retainKeys`` directives) and RFC 6902 JSON patch."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from zoo_ops.testing.kube_api.resource_types import Obj


class PatchError(Exception):
    """A JSON patch that does not apply (the apiserver answers 422)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: a patch object merges key by key into the target (``null`` deletes a key);
    anything else, lists included, replaces the target."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# patchMergeKey of the list fields of the served kinds (k8s.io/api struct tags); ``ports`` is
# keyed by containerPort in a container and by port in a Service, told apart by the elements.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "ownerReferences": "uid",
    "taints": "key",
    "addresses": "type",
    "resourceClaims": "name",
    "ports": "containerPort|port",
}
_PRIMITIVE_MERGE_LISTS = {"finalizers"}


def _merge_key(field_name: str, items: list[Any]) -> str | None:
    key = _MERGE_KEYS.get(field_name)
    if key == "containerPort|port":
        has_container_port = any(isinstance(i, dict) and "containerPort" in i for i in items)
        return "containerPort" if has_container_port else "port"
    return key


def strategic_merge_patch(original: Any, patch: Any) -> Any:
    """Strategic merge patch for the served kinds: as a merge patch, except that lists with a
    patch-merge key (containers by name, env by name, ports by port, ...) merge element by
    element, ``finalizers`` merges as a set, and the directives ``$patch`` (replace, delete),
    ``$setElementOrder/<list>``, ``$deleteFromPrimitiveList/<list>`` and ``$retainKeys`` act
    as kubectl's computed patches expect."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result: Obj = copy.deepcopy(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            list_name = key.split("/", 1)[1]
            result[list_name] = [x for x in result.get(list_name) or [] if x not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            order = patch.get(f"$setElementOrder/{key}")
            result[key] = _merge_list(key, result.get(key), value, order)
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = copy.deepcopy(value)
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(name: str, original: Any, patch: list[Any], order: list[Any] | None) -> list[Any]:
    """One list of a strategic merge patch: merge by key, union a primitive merge list, or
    replace (lists without a merge key, or ``{"$patch": "replace"}`` among the elements)."""
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if not isinstance(original, list):
        original = []
    if name in _PRIMITIVE_MERGE_LISTS:
        merged = list(original)
        merged.extend(x for x in patch if x not in merged)
        return merged
    key = _merge_key(name, original + patch)
    if key is None:
        return copy.deepcopy(patch)
    result = copy.deepcopy(original)
    for element in patch:
        if not isinstance(element, dict) or key not in element:
            result.append(copy.deepcopy(element))
            continue
        index = next(
            (i for i, e in enumerate(result) if isinstance(e, dict) and e.get(key) == element[key]),
            None,
        )
        if element.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
            continue
        if index is None:
            result.append(strategic_merge_patch({}, element))
        else:
            result[index] = strategic_merge_patch(result[index], element)
    if order:
        rank = {
            json.dumps(o.get(key) if isinstance(o, dict) else o): i for i, o in enumerate(order)
        }
        result.sort(
            key=lambda e: rank.get(json.dumps(e.get(key) if isinstance(e, dict) else e), len(rank))
        )
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer must be empty or start with '/': {path!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _list_index(token: str, length: int, allow_end: bool) -> int:
    if allow_end and token == "-":
        return length
    if not re.fullmatch(r"0|[1-9][0-9]*", token):
        raise PatchError(f"invalid array index {token!r}")
    index = int(token)
    if index > length or (index == length and not allow_end):
        raise PatchError(f"array index {index} out of bounds")
    return index


def _get(doc: Any, tokens: list[str]) -> Any:
    for token in tokens:
        if isinstance(doc, dict):
            if token not in doc:
                raise PatchError("doc is missing path")
            doc = doc[token]
        elif isinstance(doc, list):
            doc = doc[_list_index(token, len(doc), allow_end=False)]
        else:
            raise PatchError("doc is missing path")
    return doc


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python's ``==``, ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b or (_is_number(a) and _is_number(b) and a == b)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _get(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(last, len(parent), allow_end=True), value)
    else:
        raise PatchError("doc is missing path")
    return doc


def _remove(doc: Any, tokens: list[str]) -> tuple[Any, Any]:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _get(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"unable to remove nonexistent key: {last}: missing value")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_list_index(last, len(parent), allow_end=False))
    raise PatchError("doc is missing path")


def json_patch(document: Any, operations: Any) -> Any:
    """RFC 6902: apply add, remove, replace, move, copy and test in order to a copy of the
    document; any operation that does not apply (a missing path, a failed test) fails all."""
    if not isinstance(operations, list):
        raise ValueError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(document)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ValueError(f"invalid JSON patch operation: {json.dumps(op)}")
        kind, tokens = op["op"], _pointer(op["path"])
        if kind in ("add", "replace", "test") and "value" not in op:
            raise ValueError(f"missing value in {kind} operation")
        if kind == "add":
            doc = _add(doc, tokens, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc, _ = _remove(doc, tokens)
        elif kind == "replace":
            _get(doc, tokens)  # must exist
            if tokens:
                doc, _ = _remove(doc, tokens)
            doc = _add(doc, tokens, copy.deepcopy(op["value"]))
        elif kind == "move":
            source = _pointer(op.get("from", ""))
            if tokens[: len(source)] == source and len(tokens) > len(source):
                raise PatchError("cannot move a value into one of its children")
            doc, value = _remove(doc, source)
            doc = _add(doc, tokens, value)
        elif kind == "copy":
            doc = _add(doc, tokens, copy.deepcopy(_get(doc, _pointer(op.get("from", "")))))
        elif kind == "test":
            if not _json_equal(_get(doc, tokens), op["value"]):
                raise PatchError(f"testing value {op['path']} failed: test failed")
        else:
            raise ValueError(f"unexpected kind: {kind}")
    return doc
