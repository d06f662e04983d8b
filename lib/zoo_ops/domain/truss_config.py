"""A truss's ``config.yaml`` and ``examples.yaml``, parsed from already-loaded YAML values.

Pure: the caller reads and YAML-loads the files; this module validates the values and
turns them into frozen dataclasses. Every error is a :class:`~zoo_ops.errors.TrussError`
of one line naming the file and the key, e.g.
``truss_models/iris/config.yaml: resources.memory "12Q": unknown unit; use k, M, G, Ki, Mi or Gi``.

The keys, types and defaults are truss's own (``truss.base.truss_config``, truss 0.18):
a config truss accepts parses here to the same resources, accelerator, GPU count, secret
names and model class, and a config truss refuses is refused here too
(``tests/test_truss_vs_truss.py`` checks both against the ``truss`` package). Keys this
tool does not use, at the top level and inside ``resources``, are ignored as truss's
config model ignores them (it allows extra keys) and kept in :attr:`TrussConfig.raw`
(which the runtime hands to the model as ``config``).

Where zoo-ops is stricter than truss it is on purpose, for values truss accepts but no
deploy can serve: a CPU or memory amount that is not a positive whole number of
millicores or bytes (truss takes ``"-1"``, ``"0"``, ``"inf"``), an accelerator count of
0 in the mapping form, a ``TYPE:COUNT:EXTRA`` spec (truss silently reads the count as 1),
a secret name a Kubernetes Secret key cannot hold, a model class name that is not a
Python identifier, a path leaving the truss folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from zoo_ops.errors import TrussError

# Truss's defaults (truss_config.py) for what a config.yaml may leave out.
DEFAULT_CPU = "1"
DEFAULT_MEMORY = "2Gi"
DEFAULT_MODEL_MODULE_DIR = "model"
DEFAULT_MODEL_CLASS_FILENAME = "model.py"
DEFAULT_MODEL_CLASS_NAME = "Model"
DEFAULT_DATA_DIR = "data"
DEFAULT_EXAMPLES_FILENAME = "examples.yaml"

# The one list of GPU types in zoo-ops: the values of truss's ``Accelerator`` enum
# (truss/base/truss_config.py, truss 0.18.36; ``B10`` is its hidden member, accepted
# all the same). Names are case-sensitive, as truss's enum lookup is. Anything else is a
# typo a deploy would only reject much later.
TRUSS_ACCELERATORS = (
    "B10",
    "T4",
    "L4",
    "A10G",
    "V100",
    "A100",
    "A100_40GB",
    "H100",
    "H200",
    "H100_40GB",
    "B200",
    "L40S",
    "RTX_PRO_6000",
    "B300",
    "GB300",
)

# Kubernetes quantity suffixes truss accepts for memory (``Resources._MEMORY_UNITS``),
# and their multipliers.
MEMORY_UNITS: dict[str, int] = {
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_MEMORY_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")
_CPU_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(m?)\s*$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_VCS_RE = re.compile(r"^(?:git|hg|svn|bzr)\+")


@dataclass(frozen=True)
class Accelerator:
    """A GPU request: ``type`` is a truss accelerator name (``"T4"``), ``count`` >= 1.

    ``type`` may be ``""`` (a GPU of any type) only where a legacy version's footprint is
    reported so; a truss config always names its type (truss ignores ``use_gpu``)."""

    type: str
    count: int

    def __str__(self) -> str:
        name = self.type or "GPU"
        return name if self.count == 1 else f"{name}:{self.count}"


@dataclass(frozen=True)
class Resources:
    """What one replica of the model needs."""

    cpu_millicores: int
    memory_bytes: int
    accelerator: Accelerator | None
    use_gpu: bool

    @property
    def gpu_count(self) -> int:
        return self.accelerator.count if self.accelerator else 0

    def to_kubernetes_resources(self) -> dict[str, dict[str, str]]:
        """The container ``resources`` block: requests equal limits (a model server that
        bursts past its request is evicted first), and GPUs as ``nvidia.com/gpu``, which
        Kubernetes only allows as equal requests and limits."""
        amounts = {
            "cpu": format_cpu(self.cpu_millicores),
            "memory": format_memory(self.memory_bytes),
        }
        if self.gpu_count:
            amounts["nvidia.com/gpu"] = str(self.gpu_count)
        return {"requests": dict(amounts), "limits": dict(amounts)}


@dataclass(frozen=True)
class TrussConfig:
    """The parts of a truss ``config.yaml`` zoo-ops acts on.

    ``secrets`` holds the declared secret *names* only; a value written in config.yaml
    (truss writes ``null`` placeholders) is never kept, not even in ``raw``.
    """

    model_name: str
    python_version: str
    requirements: tuple[str, ...]
    secrets: tuple[str, ...]
    resources: Resources
    model_module_dir: str = DEFAULT_MODEL_MODULE_DIR
    model_class_filename: str = DEFAULT_MODEL_CLASS_FILENAME
    model_class_name: str = DEFAULT_MODEL_CLASS_NAME
    data_dir: str = DEFAULT_DATA_DIR
    examples_filename: str = DEFAULT_EXAMPLES_FILENAME
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def to_kubernetes_resources(self) -> dict[str, dict[str, str]]:
        return self.resources.to_kubernetes_resources()


@dataclass(frozen=True)
class Example:
    """One entry of ``examples.yaml``: a named request to send to the model."""

    name: str
    input: Any


# --- parsing -------------------------------------------------------------------------------


def parse_truss_config(data: Any, source: str) -> TrussConfig:
    """Validate a YAML-loaded ``config.yaml`` (``source`` names the file in errors).

    Algorithm: the top level must be a mapping; each known key is checked for truss's
    type (a key present with ``null`` is refused where truss refuses it: ``resources``,
    ``secrets``) and filled with truss's default when absent; ``resources`` is parsed into
    exact integers (millicores, bytes); ``secrets`` keeps names only. Unknown keys pass
    through in ``raw``, as truss's config model allows extra keys.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise TrussError(f"{source}: expected a mapping of config keys, got {_kind(data)}")
    model_name = _optional_str(data, "model_name", source) or ""
    python_version = _optional_str(data, "python_version", source) or "py39"
    requirements = parse_requirements(data.get("requirements"), source)
    for key in ("resources", "secrets"):
        if key in data and data[key] is None:
            raise TrussError(
                f"{source}: {key} is empty (null), which truss refuses; "
                f"remove the key or write {key}: {{}}"
            )
    secrets = parse_secret_names(data.get("secrets"), source)
    resources = parse_resources(data.get("resources"), source)
    module_dir = _relative_name(data, "model_module_dir", DEFAULT_MODEL_MODULE_DIR, source)
    class_filename = _relative_name(
        data, "model_class_filename", DEFAULT_MODEL_CLASS_FILENAME, source
    )
    if not class_filename.endswith(".py"):
        raise TrussError(f'{source}: model_class_filename "{class_filename}" must name a .py file')
    class_name = _optional_str(data, "model_class_name", source) or DEFAULT_MODEL_CLASS_NAME
    if not class_name.isidentifier():
        raise TrussError(f'{source}: model_class_name "{class_name}" is not a Python class name')
    raw = dict(data)
    if "secrets" in raw and isinstance(raw["secrets"], Mapping):
        raw["secrets"] = {name: None for name in secrets}
    return TrussConfig(
        model_name=model_name,
        python_version=python_version,
        requirements=requirements,
        secrets=secrets,
        resources=resources,
        model_module_dir=module_dir,
        model_class_filename=class_filename,
        model_class_name=class_name,
        data_dir=_relative_name(data, "data_dir", DEFAULT_DATA_DIR, source),
        examples_filename=_relative_name(
            data, "examples_filename", DEFAULT_EXAMPLES_FILENAME, source
        ),
        raw=raw,
    )


def parse_secret_names(value: Any, source: str) -> tuple[str, ...]:
    """``secrets`` as truss reads it: a mapping of name -> ``null`` placeholder (or a
    string, which truss accepts and zoo-ops drops unread); returns the sorted names.
    A list of names, or a placeholder that is neither null nor a string, is refused as
    truss refuses it; a value is never quoted in the message."""
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise TrussError(
            f"{source}: secrets must be a mapping of secret names to null "
            f"(e.g. hf_access_token: null), got {_kind(value)}"
        )
    names = list(value.keys())
    for name in names:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise TrussError(
                f"{source}: secrets: {name!r} is not a valid secret name "
                "(letters, digits, '_', '-', '.')"
            )
        if value[name] is not None and not isinstance(value[name], str):
            raise TrussError(
                f"{source}: secrets.{name}: the placeholder must be null "
                "(store the value in the secret store, not in config.yaml)"
            )
    return tuple(sorted(set(names)))


def parse_requirements(value: Any, source: str) -> tuple[str, ...]:
    """``requirements``: a list of pip requirement lines, as truss writes them to the
    image's requirements.txt. Each must be one non-empty line without control
    characters, and either a PEP 508 requirement (``numpy>=1.26``, checked with
    ``packaging``, as pip parses it), a URL or VCS reference (``git+https://...``), or a
    pip option line (``--extra-index-url ...``): what pip would reject at image build
    time is refused now, naming the entry."""
    lines = _string_list(value, "requirements", source)
    for index, line in enumerate(lines):
        where = f"{source}: requirements #{index + 1} {line!r}"
        if not line.strip():
            raise TrussError(f"{where}: empty; remove it")
        if any(ord(c) < 32 or ord(c) == 127 for c in line):
            raise TrussError(f"{where}: has a line break or control character; one per entry")
        text = line.strip()
        if text.startswith(("-", "#")) or "://" in text or _VCS_RE.match(text):
            continue
        try:
            Requirement(text)
        except InvalidRequirement as exc:
            problem = str(exc).splitlines()[0]
            raise TrussError(
                f"{where}: not a pip requirement ({problem}); write it as e.g. numpy>=1.26"
            ) from None
    return lines


def parse_resources(value: Any, source: str) -> Resources:
    """``resources`` as truss reads it: cpu, memory and accelerator, with truss's
    defaults (1 CPU, 2Gi, no GPU); other keys are ignored.

    ``cpu`` and ``memory`` must be strings (truss's fields are ``str`` and refuse a YAML
    number: write ``cpu: "1"``). ``use_gpu`` is ignored, as truss drops it before
    validating: whether a GPU is used follows from ``accelerator`` alone, so
    ``use_gpu: true`` without an accelerator is no GPU (a truss deploy gets none).
    """
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise TrussError(f"{source}: resources must be a mapping, got {_kind(value)}")
    for key, default in (("cpu", DEFAULT_CPU), ("memory", DEFAULT_MEMORY)):
        given = value.get(key, default)
        if not isinstance(given, str | bool):  # a bool gets its own message below
            raise TrussError(
                f'{source}: resources.{key} "{given}": truss reads {key} only as a string; '
                f"quote it in config.yaml"
            )
    cpu = parse_cpu(value.get("cpu", DEFAULT_CPU), source)
    memory = parse_memory(value.get("memory", DEFAULT_MEMORY), source)
    accelerator = parse_accelerator(value.get("accelerator"), source)
    return Resources(
        cpu_millicores=cpu,
        memory_bytes=memory,
        accelerator=accelerator,
        use_gpu=accelerator is not None,
    )


def parse_cpu(value: Any, source: str) -> int:
    """CPU as a Kubernetes quantity -> millicores: ``1`` / ``"1"`` -> 1000, ``"500m"`` -> 500,
    ``"0.5"`` -> 500. Must be positive and a whole number of millicores."""
    key = "resources.cpu"
    if isinstance(value, bool):
        raise TrussError(f'{source}: {key} {value!r}: expected a CPU count like "1" or "500m"')
    text = str(value)
    match = _CPU_RE.match(text)
    if not match:
        raise TrussError(
            f'{source}: {key} "{text}": expected a CPU count like "1", "0.5" or "500m"'
        )
    number, milli = Decimal(match.group(1)), match.group(2) == "m"
    if milli and any(c.isspace() for c in text):  # truss: a plain number only may be padded
        raise TrussError(
            f'{source}: {key} "{text}": no spaces around millicores; write e.g. "500m"'
        )
    millicores = number if milli else number * 1000
    if millicores != millicores.to_integral_value() or millicores <= 0:
        raise TrussError(f'{source}: {key} "{text}": must be a positive whole number of millicores')
    return int(millicores)


def parse_memory(value: Any, source: str) -> int:
    """Memory as a Kubernetes quantity -> bytes: plain bytes, or a number with one of
    k, M, G (powers of 1000) or Ki, Mi, Gi (powers of 1024); ``"1.5Gi"`` is allowed when
    it comes to whole bytes."""
    key = "resources.memory"
    if isinstance(value, bool):
        raise TrussError(f'{source}: {key} {value!r}: expected a size like "2Gi"')
    text = str(value)
    match = _MEMORY_RE.match(text)
    if not match:
        raise TrussError(f'{source}: {key} "{text}": expected a size like "512Mi" or "2Gi"')
    number_text, unit = match.groups()
    if unit and any(c.isspace() for c in text):  # truss: a plain number only may be padded
        raise TrussError(f'{source}: {key} "{text}": no spaces in a size; write e.g. "2Gi"')
    if unit and unit not in MEMORY_UNITS:
        raise TrussError(
            f'{source}: {key} "{text}": unknown unit; use k, M, G, Ki, Mi or Gi '
            "(or T, P, E, Ti, Pi, Ei)"
        )
    try:
        amount = Decimal(number_text) * MEMORY_UNITS.get(unit, 1)
    except InvalidOperation:  # pragma: no cover - the regex admits only decimals
        raise TrussError(f'{source}: {key} "{text}": not a number') from None
    if amount != amount.to_integral_value() or amount <= 0:
        raise TrussError(f'{source}: {key} "{text}": must be a positive whole number of bytes')
    return int(amount)


def parse_accelerator(value: Any, source: str) -> Accelerator | None:
    """``resources.accelerator`` as truss's ``AcceleratorSpec`` reads it.

    Algorithm: null (or absent) is no GPU. A string is stripped and split on ``:``; the
    first part must be one of :data:`TRUSS_ACCELERATORS` exactly (case-sensitive, no
    inner spaces), and a second part, when present, a count of ASCII digits >= 1
    (``"A10G:2"``, ``"H100:8"``); without one the count is 1. A mapping
    ``{accelerator: TYPE, count: N}`` (truss's own serialised form) is read the same way;
    with ``accelerator: null`` it is no GPU. Anything else is refused, naming the value.
    Stricter than truss: a third part (``"A10G:2:3"``, which truss reads as one GPU) and a
    count of 0 in the mapping form are refused.
    """
    key = "resources.accelerator"
    form = '"TYPE" or "TYPE:COUNT", e.g. "A10G:2"'
    if value is None:
        return None
    if isinstance(value, Mapping):
        return _accelerator_from_mapping(value, source)
    if not isinstance(value, str):
        raise TrussError(f"{source}: {key} {value!r}: expected {form}")
    parts = value.strip().split(":")
    gpu_type = parts[0]
    if not gpu_type:
        raise TrussError(f'{source}: {key} "{value}": no GPU type; expected {form}')
    if len(parts) > 2:
        raise TrussError(f'{source}: {key} "{value}": expected {form}')
    _check_accelerator_type(gpu_type, f'{source}: {key} "{value}"')
    count = 1
    if len(parts) == 2:
        count_text = parts[1]
        if not (count_text.isascii() and count_text.isdigit()):
            raise TrussError(
                f'{source}: {key} "{value}": the GPU count must be a whole number, e.g. "{gpu_type}:2"'
            )
        count = int(count_text)
        if count < 1:
            raise TrussError(f'{source}: {key} "{value}": the GPU count must be at least 1')
    return Accelerator(type=gpu_type, count=count)


def _accelerator_from_mapping(value: Mapping[Any, Any], source: str) -> Accelerator | None:
    key = "resources.accelerator"
    gpu_type, count = value.get("accelerator"), value.get("count", 1)
    if gpu_type is None:
        return None
    if not isinstance(gpu_type, str):
        raise TrussError(f"{source}: {key}.accelerator {gpu_type!r}: expected a GPU type name")
    _check_accelerator_type(gpu_type, f'{source}: {key}.accelerator "{gpu_type}"')
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise TrussError(f"{source}: {key}.count {count!r}: the GPU count must be at least 1")
    return Accelerator(type=gpu_type, count=count)


def _check_accelerator_type(gpu_type: str, where: str) -> None:
    """Refuse a GPU type truss does not know, with the list (and the capitals, if that
    is all that is wrong)."""
    if gpu_type in TRUSS_ACCELERATORS:
        return
    if gpu_type.upper() in TRUSS_ACCELERATORS:
        raise TrussError(f"{where}: GPU types are case-sensitive; write {gpu_type.upper()}")
    raise TrussError(f"{where}: unknown GPU type; use one of {', '.join(TRUSS_ACCELERATORS)}")


def parse_examples(data: Any, source: str) -> list[Example]:
    """``examples.yaml`` in truss's format: a list of ``{name, input}``; an empty file is
    no examples. Names must be unique, since comparisons are reported by name."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise TrussError(
            f"{source}: expected a list of {{name, input}} examples, got {_kind(data)}"
        )
    examples: list[Example] = []
    seen: set[str] = set()
    for index, entry in enumerate(data):
        where = f"{source}: example #{index + 1}"
        if not isinstance(entry, Mapping):
            raise TrussError(f"{where}: expected a mapping with name and input, got {_kind(entry)}")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise TrussError(f"{where}: name must be a non-empty string")
        if "input" not in entry:
            raise TrussError(f'{where} "{name}": has no input')
        if name in seen:
            raise TrussError(f'{where}: duplicate name "{name}"')
        seen.add(name)
        examples.append(Example(name=name, input=entry["input"]))
    return examples


# --- formatting ----------------------------------------------------------------------------


def format_cpu(millicores: int) -> str:
    """Millicores as the shortest exact Kubernetes quantity: 2000 -> "2", 500 -> "500m"."""
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def format_memory(size: int) -> str:
    """Bytes as the largest binary unit that divides them exactly: 8 GiB -> "8Gi"."""
    for unit in ("Gi", "Mi", "Ki"):
        if size % MEMORY_UNITS[unit] == 0:
            return f"{size // MEMORY_UNITS[unit]}{unit}"
    return str(size)


# --- helpers -------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _optional_str(data: Mapping[str, Any], key: str, source: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise TrussError(f"{source}: {key} {value!r}: expected a string")
    return value


def _relative_name(data: Mapping[str, Any], key: str, default: str, source: str) -> str:
    """A path inside the truss: relative, no ``..`` (the truss must be self-contained)."""
    value = _optional_str(data, key, source) or default
    parts = value.replace("\\", "/").split("/")
    if value.startswith("/") or ".." in parts:
        raise TrussError(f'{source}: {key} "{value}": must be a path inside the truss folder')
    return value


def _string_list(value: Any, key: str, source: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TrussError(f"{source}: {key} must be a list of strings")
    return tuple(value)
