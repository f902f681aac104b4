"""What the exporter adds to msgspec's JSON Schema so that other tools read all of it.

msgspec exports a struct's docstring but not its fields' (attribute docstrings are not
kept at run time), writes a datetime as a bare string (it may be naive in general; every
timestamp in these contracts is timezone-aware), and copies each ``pattern`` as Python
wrote it. The contracts stay the one source: field docstrings are read from the source
code, datetimes found by type, and each Python-only whole-string anchor (``\\Z``) is written
as ``$``, which means the end of the string in JSON Schema's ECMAScript dialect, RE2 and
Rust's ``regex``.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import textwrap
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

PYTHON_END = "\\Z"
PORTABLE_END = "$"


def enrich(components: dict[str, Any], types: Iterable[Any]) -> dict[str, Any]:
    """``components`` (msgspec's, by struct name) with field descriptions, ``date-time``
    formats and portable patterns; changed in place and returned."""
    for cls in _structs(types):
        schema = components.get(cls.__name__)
        if schema is None:
            continue
        if schema.get("description"):
            schema["description"] = inspect.cleandoc(schema["description"])
        properties: dict[str, Any] = schema.get("properties", {})
        docs = field_docs(cls)
        info = msgspec.inspect.type_info(cls)
        assert isinstance(info, msgspec.inspect.StructType)
        for field in info.fields:
            prop = properties.get(field.encode_name)
            if prop is None:
                continue
            _mark_datetimes(prop, field.type)
            doc = docs.get(field.name)
            if doc:
                own = prop.get("description")
                prop["description"] = f"{doc}\n\n{own}" if own and own != doc else doc
    for schema in components.values():
        portable_patterns(schema)
    return components


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each annotated field of ``cls`` and its bases, by field name."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not issubclass(klass, msgspec.Struct) or klass is msgspec.Struct:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        tree = ast.parse(source)
        node = tree.body[0]
        if not isinstance(node, ast.ClassDef):
            continue
        for stmt, nxt in itertools.pairwise(node.body):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[stmt.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


def portable_patterns(schema: Any) -> None:
    """Rewrite every ``pattern`` that ends in Python's ``\\Z`` to end in ``$``."""
    if isinstance(schema, dict):
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and pattern.endswith(PYTHON_END):
            schema["pattern"] = pattern[: -len(PYTHON_END)] + PORTABLE_END
        for value in schema.values():
            portable_patterns(value)
    elif isinstance(schema, list):
        for value in schema:
            portable_patterns(value)


def _mark_datetimes(schema: dict[str, Any], t: msgspec.inspect.Type) -> None:
    if isinstance(t, msgspec.inspect.DateTimeType):
        schema["format"] = "date-time"
    elif isinstance(t, msgspec.inspect.Metadata):
        _mark_datetimes(schema, t.type)
    elif isinstance(t, msgspec.inspect.UnionType):
        # msgspec allows one string-like type per union, so the string branch is the datetime.
        if any(isinstance(x, msgspec.inspect.DateTimeType) for x in t.types):
            for alt in schema.get("anyOf", []):
                if alt.get("type") == "string":
                    alt["format"] = "date-time"
    elif isinstance(t, msgspec.inspect.ListType) and "items" in schema:
        _mark_datetimes(schema["items"], t.item_type)


def _structs(types: Iterable[Any]) -> Iterator[type]:
    """Every struct class reachable from ``types``, each once."""
    seen: set[type] = set()
    stack = list(msgspec.inspect.multi_type_info(list(types)))
    while stack:
        t = stack.pop()
        if isinstance(t, msgspec.inspect.StructType):
            if t.cls in seen:
                continue
            seen.add(t.cls)
            yield t.cls
            stack.extend(f.type for f in t.fields)
        elif isinstance(t, msgspec.inspect.Metadata):
            stack.append(t.type)
        elif isinstance(t, msgspec.inspect.UnionType):
            stack.extend(t.types)
        elif isinstance(t, msgspec.inspect.ListType | msgspec.inspect.SetType):
            stack.append(t.item_type)
        elif isinstance(t, msgspec.inspect.DictType):
            stack.append(t.value_type)
