"""Load scenarios from YAML files or mappings, apply overrides, explain bad input.

Every failure raises :class:`~mmsim.errors.ScenarioError` whose text is one line: the
source (a file, ``<mapping>``, ``<scenario>`` or ``<overrides>``), the 1-based line in
the file, the field path (``dealers[0].band``) and a short reason with the bad value.
YAML is read with ``yaml.safe_load`` semantics plus one YAML 1.2 extension: plain
scalars such as ``1e-4`` are floats (PyYAML alone reads them as strings).
"""

from __future__ import annotations

import difflib
import os
import re
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from mmsim.errors import ScenarioError
from mmsim.paths import read_regular
from mmsim.schema import Scenario

__all__ = [
    "dump_scenario_yaml",
    "first_duplicate",
    "load_scenario",
    "parse_override",
    "scenario_json_schema",
    "scenario_to_dict",
]

OVERRIDES = "<overrides>"


MAX_ALIASES = 100
"""Aliases (``*name``) a scenario file may use."""
MAX_NODES = 100_000
"""Nodes of a scenario file once aliases are expanded (an alias bomb expands to 1e9)."""
MAX_DEPTH = 64
"""Nesting depth of a scenario file."""
MAX_FILE = 16 << 20
"""Largest scenario file read, bytes."""
MAX_ERRORS = 100
"""Validation errors examined for the message (the rest are only counted)."""
_STANDARD_TAGS = {None, "!", "tag:yaml.org,2002:str"}


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-4`` as a float and rejects a mapping's repeated keys,
    explicit tags other than ``!!str``, more than :data:`MAX_ALIASES` aliases, recursive
    aliases, nesting deeper than :data:`MAX_DEPTH` and documents that expand to more
    than :data:`MAX_NODES` nodes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._open: list[str | None] = []

    def _refuse(self, problem: str, event: yaml.Event) -> None:
        raise yaml.composer.ComposerError(None, None, problem, event.start_mark)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                self._refuse(f"more than {MAX_ALIASES} aliases", event)
            if event.anchor in self._open:
                self._refuse(f"recursive alias *{event.anchor}", event)
            return super().compose_node(parent, index)
        tag = getattr(event, "tag", None)
        if tag not in _STANDARD_TAGS:
            self._refuse(f"tag {tag!r} is not allowed (plain values only)", event)
        if len(self._open) >= MAX_DEPTH:
            self._refuse(f"nested deeper than {MAX_DEPTH} levels", event)
        self._open.append(getattr(event, "anchor", None))
        try:
            return super().compose_node(parent, index)
        finally:
            self._open.pop()

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if key.value in seen:  # PyYAML would silently keep the last one
                    problem = f"duplicate key {key.value!r}"
                    raise yaml.constructor.ConstructorError(None, None, problem, key.start_mark)
                seen.add(key.value)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root: yaml.Node) -> int:
    """Nodes of the document with every alias expanded (shared nodes counted per use)."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) not in sizes:
            if isinstance(node, yaml.MappingNode):
                kids = [n for pair in node.value for n in pair]
            elif isinstance(node, yaml.SequenceNode):
                kids = node.value
            else:
                kids = []
            sizes[id(node)] = min(1 + sum(size(k) for k in kids), MAX_NODES + 1)
        return sizes[id(node)]

    return size(root)


def _check_text(data: Any, source: str, path: str = "") -> None:
    """Reject strings that cannot be written back as UTF-8 (lone surrogates)."""
    if isinstance(data, str):
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            raise ScenarioError("text is not valid Unicode", source=source, field=path) from None
    elif isinstance(data, Mapping):
        for k, v in data.items():
            _check_text(k, source, path)
            _check_text(v, source, f"{path}.{k}" if path else str(k))
    elif isinstance(data, list | tuple):
        for i, v in enumerate(data):
            _check_text(v, source, f"{path}[{i}]")


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes the strings :class:`_Loader` would read as floats."""


for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
        list("-+0123456789."),
    )


def load_scenario(
    source: str | os.PathLike | Mapping | Scenario,
    *,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
) -> Scenario:
    """Validate a scenario given as a YAML file path, a mapping or a Scenario.

    ``overrides`` maps dotted paths to values (``{"dealers.0.band": 2000}``) or lists
    ``"path=value"`` strings whose values are parsed as YAML (:func:`parse_override`).
    Integer parts index lists; absent blocks (``noise.rate`` with no ``noise`` block) are
    created. A file without ``name`` is named after the file's stem. The input is never
    mutated. Raises :class:`ScenarioError` on any bad input.
    """
    root: yaml.Node | None = None
    if isinstance(source, Scenario):
        name, data = "<scenario>", _copy_tree(source.model_dump(exclude_unset=True))
    elif isinstance(source, Mapping):
        name, data = "<mapping>", _copy_tree(source)
    elif isinstance(source, str | os.PathLike):
        name = str(os.fspath(source))
        data, root = _read_yaml(name)
        if isinstance(data, dict):
            data.setdefault("name", Path(name).stem)
    else:
        raise ScenarioError(f"expected a YAML path, a mapping or a Scenario, got {_short(source)}")
    if not isinstance(data, dict):
        what = "the file is empty" if data is None else f"got {_short(data)}"
        line = None if root is None else root.start_mark.line + 1
        raise ScenarioError(f"top level must be a mapping; {what}", source=name, line=line)
    overridden = []
    for path, value in _override_items(overrides):
        _set_path(data, path, value)
        overridden.append(path.split("."))
    if isinstance(data.get("book"), dict):  # a real chain: path relative to the file, S0
        from mmsim.chains import resolve_book_block

        from_file = isinstance(source, str | os.PathLike)
        resolve_book_block(data, Path(name).parent if from_file else None, name)
    _check_text(data, name)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, name, root, overridden) from None
    if scenario.sweep is not None and not isinstance(source, Scenario):
        _check_sweep(data, scenario.sweep, name, root)
    return scenario


def _norm(value: Any) -> Any:
    """A hashable form of a value in which ``0`` and ``0.0`` are the same."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _norm(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_norm(v) for v in value)
    return repr(value)


def first_duplicate(values: Sequence[Any]) -> int | None:
    """Index of the first value equal to an earlier one (``0 == 0.0``), or None."""
    seen = set()
    for i, v in enumerate(values):
        key = _norm(v)
        if key in seen:
            return i
        seen.add(key)
    return None


def _check_sweep(data: dict, block: Any, name: str, root: yaml.Node | None) -> None:
    """Validate a sweep block as fully as the runs it describes: each path exists in the
    schema and each value validates there; no value or seed is repeated; zipped lists
    have equal lengths."""
    base = {k: v for k, v in data.items() if k != "sweep"}

    def fail(reason: str, loc: list) -> ScenarioError:
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)[1:]
        return ScenarioError(reason, source=name, field=field, line=_line(root, loc))

    if isinstance(block.seeds, list) and (i := first_duplicate(block.seeds)) is not None:
        raise fail(f"seed {block.seeds[i]} is repeated", ["sweep", "seeds", i])
    lengths = {len(v) for v in block.zip.values()}
    if len(lengths) > 1:
        raise fail(f"zipped value lists differ in length: {sorted(lengths)}", ["sweep", "zip"])
    for kind in ("grid", "zip"):
        for path, values in getattr(block, kind).items():
            if not values:
                raise fail("needs a non-empty list of values", ["sweep", kind, path])
            if (i := first_duplicate(values)) is not None:
                raise fail(f"value {_short(values[i])} is repeated", ["sweep", kind, path, i])
            for i, value in enumerate(values):
                try:
                    load_scenario(base, overrides={path: value})
                except ScenarioError as err:
                    why = err.reason if err.source == OVERRIDES else f"{err.field}: {err.reason}"
                    raise fail(why, ["sweep", kind, path, i]) from None


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``"a.b.0.c=value"`` into ``("a.b.0.c", value)``, the value parsed as YAML.

    ``2000`` -> int, ``1e-4`` -> float, ``true`` -> bool, ``[1, 2]`` -> list; text that
    is not valid YAML is kept as a string.
    """
    path, sep, raw = text.partition("=")
    if not sep or not path.strip():
        raise ScenarioError(f"expected path=value, got {text!r}", source=OVERRIDES)
    try:
        value = yaml.load(raw, Loader=_Loader)  # a SafeLoader subclass
    except (yaml.YAMLError, ValueError, TypeError, KeyError, RecursionError):
        value = raw.strip()
    return path.strip(), value


def scenario_to_dict(s: Scenario) -> dict:
    """JSON-compatible dict of every field, defaults included; loads back equal."""
    return s.model_dump(mode="json")


def dump_scenario_yaml(s: Scenario) -> str:
    """YAML text of the fully resolved scenario in schema field order; loads back equal."""
    return yaml.dump(scenario_to_dict(s), Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def scenario_json_schema() -> dict:
    """The JSON Schema of scenario files (for editors and outside tools)."""
    return Scenario.model_json_schema()


def _read_yaml(name: str) -> tuple[Any, yaml.Node | None]:
    """Read and parse a YAML file; return the data and its node tree (for line numbers)."""
    try:
        raw = read_regular(Path(name), MAX_FILE)
    except OSError as exc:
        why = {FileNotFoundError: "no such file", IsADirectoryError: "is a directory"}
        msg = why.get(type(exc), f"cannot read: {exc.strerror or exc}")
        if Path(name).is_dir():
            msg = "is a directory"
        raise ScenarioError(msg, source=name) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        msg = f"not UTF-8 text (byte 0x{raw[exc.start]:02x})"
        raise ScenarioError(msg, source=name, line=line) from None
    loader = None
    try:
        loader = _Loader(text)
        root = loader.get_single_node()
        if root is None:
            return None, None
        if _expanded_size(root) > MAX_NODES:
            msg = f"more than {MAX_NODES:,} values once aliases are expanded"
            raise ScenarioError(msg, source=name, line=root.start_mark.line + 1)
        return loader.construct_document(root), root
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        why = ", ".join(str(x) for x in (exc.context, exc.problem) if x) or "syntax error"
        msg = f"malformed YAML: {why}"
        raise ScenarioError(" ".join(msg.split()), source=name, line=line) from None
    except ScenarioError:
        raise
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError) as exc:
        # a standard tag with a value it cannot hold (already refused above), a bad date
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ScenarioError(f"malformed YAML: {why}", source=name) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        msg = f"malformed YAML: unacceptable character #x{exc.character:04x}"
        raise ScenarioError(msg, source=name, line=line) from None
    finally:
        if loader is not None:
            loader.dispose()


def _copy_tree(obj: Any) -> Any:
    """Copy nested mappings and sequences into new dicts and lists."""
    if isinstance(obj, Mapping):
        return {k: _copy_tree(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_copy_tree(v) for v in obj]
    return obj


def _override_items(overrides: Mapping[str, Any] | Sequence[str] | None) -> list[tuple[str, Any]]:
    """Normalize overrides to ``(dotted path, value)`` pairs."""
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        texts = [overrides] if isinstance(overrides, str) else overrides or ()
        items = [parse_override(str(text)) for text in texts]
    for path, _ in items:
        if not isinstance(path, str) or not path:
            raise ScenarioError(f"bad override path {path!r}", source=OVERRIDES)
    return items


def _core(tp: Any) -> Any:
    """Strip ``Annotated[...]`` and ``X | None`` down to the type that holds children."""
    while get_origin(tp) in (Annotated, Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if get_origin(tp) is not Annotated and len(args) != 1:
            return tp
        tp = args[0]
    return tp


def _fields(tp: Any) -> list[str]:
    """Field names of a schema model type (``[]`` for anything else)."""
    tp = _core(tp)
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _child(tp: Any, part: str | int) -> Any:
    """Schema type of ``part`` (a field name or a list index) inside ``tp``; None if none."""
    tp = _core(tp)
    if str(part) in _fields(tp):
        return tp.model_fields[str(part)].annotation
    if get_origin(tp) in (list, tuple) and str(part).isdecimal():
        args = get_args(tp)
        return args[0] if get_origin(tp) is list else args[min(int(part), len(args) - 1)]
    return None


def _hint(name: Any, tp: Any) -> str:
    fields = _fields(tp)
    near = difflib.get_close_matches(str(name), fields, n=1)
    if near:
        return f" (did you mean {near[0]!r}?)"
    return f" (known: {', '.join(fields)})" if fields else ""


def _set_path(data: dict, path: str, value: Any) -> None:
    """Set the value at a dotted ``path`` of ``data``; the path must exist in the schema."""
    parts, node, tp = path.split("."), data, Scenario

    def fail(reason: str) -> ScenarioError:
        return ScenarioError(reason, source=OVERRIDES, field=path)

    for depth, part in enumerate(parts):
        where, child_tp = ".".join(parts[:depth]) or "the top level", _child(tp, part)
        if get_origin(_core(tp)) in (list, tuple):
            size = len(node) if isinstance(node, list) else 0
            if child_tp is None or int(part) >= size:
                prev = parts[depth - 1]  # dealers -> dealer, moneyness -> moneyness item
                noun = prev[:-1] if re.search(r"[^s]s$", prev) else f"{prev} item"
                raise fail(f"no {noun} {part} ({size} defined)")
            key: str | int = int(part)
        elif child_tp is None:
            raise fail(f"no field {part!r} in {where}{_hint(part, tp)}")
        elif not isinstance(node, dict):
            raise fail(f"{where} is {_short(node)}, not a mapping")
        else:
            key = part
        if depth == len(parts) - 1:
            node[key] = _copy_tree(value)  # later overrides must not reach the caller's value
            return
        child = node[key] if isinstance(node, list) else node.get(key)
        if child is None:  # an absent block: create it
            child = node[key] = [] if get_origin(_core(child_tp)) in (list, tuple) else {}
        node, tp = child, child_tp


def _fmt_loc(loc: Sequence[Any]) -> str:
    """``('dealers', 0, 'band')`` -> ``dealers[0].band``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _line(root: yaml.Node | None, loc: Sequence[Any]) -> int | None:
    """1-based line of the node at ``loc`` (of its key, for a mapping value) or, when the
    path ends early (a missing field), of the deepest node that exists."""
    if root is None:
        return None
    node, mark = root, root.start_mark
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pairs = [(k, v) for k, v in node.value if getattr(k, "value", None) == str(part)]
            if not pairs:
                break
            key, node = pairs[-1]  # the last of merged keys wins, as in the data
            mark = key.start_mark
        elif isinstance(node, yaml.SequenceNode) and part in range(len(node.value)):
            node = node.value[part]
            mark = node.start_mark
        else:
            break
    return mark.line + 1


def _reason(err: Any) -> str:
    """A short reason for one pydantic error, with the bad value."""
    kind, loc = err["type"], err["loc"]
    if kind == "extra_forbidden":
        parent: Any = Scenario
        for part in loc[:-1]:
            parent = _child(parent, part)
        return f"unknown key {loc[-1]!r}{_hint(loc[-1], parent)}"
    if kind == "missing":
        return "required field missing"
    if kind in ("value_error", "assertion_error") and "ctx" in err:
        return str(err["ctx"]["error"])
    return f"{err['msg']}, got {_short(err['input'])}"


def _explain(
    exc: ValidationError, name: str, root: yaml.Node | None, overridden: list[list[str]]
) -> ScenarioError:
    """One ScenarioError for a ValidationError: its first error by line, and a count."""
    found = []
    errors = exc.errors(include_url=False)
    for err in errors[:MAX_ERRORS]:
        loc, reason = list(err["loc"]), _reason(err)
        if not loc and (m := re.match(r"(\w+)\[(\d+)\](?:\.(\w+))?(: )?", reason)):
            loc = [m[1], int(m[2]), *([m[3]] if m[3] else [])]  # a cross-check naming a field
            if m[4]:
                reason = reason[m.end() :]
        parts = [str(p) for p in loc]
        source, line = name, _line(root, loc)
        if any(parts[: len(o)] == o for o in overridden):
            source, line = OVERRIDES, None
        elif any(o[: len(parts)] == parts for o in overridden):
            reason += " (after overrides)"
        # by line; a missing field's line is only its block's, so its typo'd key goes first
        rank = (line is None, err["type"] == "missing", line or 0)
        found.append((rank, line, source, _fmt_loc(loc), reason))
    found.sort(key=lambda f: f[0])
    _, line, source, field, reason = found[0]
    if len(errors) > 1:
        reason += f" (and {len(errors) - 1} more)"
    return ScenarioError(" ".join(reason.split()), source=source, field=field, line=line)
