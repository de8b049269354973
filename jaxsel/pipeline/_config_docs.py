"""The run configuration as TOML text: :func:`to_toml` (every key spelled out, optionally
with its documentation), :func:`defaults_toml` and :func:`field_docs`."""

from __future__ import annotations

import dataclasses
import json
import re

from jaxsel._dataclass_io import plain
from jaxsel._errors import ConfigError
from jaxsel.pipeline._config_schema import Config


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise ConfigError(f"cannot write {v!r} as TOML")


def to_toml(cfg, *, docs: bool = False) -> str:
    """The config as TOML text (every key spelled out; ``docs`` adds each key's comment)."""
    lines: list[str] = []

    def table(obj, name: str):
        scalars, subs = [], []
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            (subs if dataclasses.is_dataclass(v) else scalars).append((f, v))
        if name:
            if lines:
                lines.append("")
            doc = (obj.__doc__ or "").strip().splitlines()[0] if docs and obj.__doc__ else ""
            lines.append(f"[{name}]" + (f"  # {doc}" if doc and name.count(".") == 0 else ""))
        for f, v in scalars:
            if v is None:  # TOML has no null: leave the key out
                lines.append(f"# {f.name} = (unset)")
                continue
            line = f"{f.name} = {_toml_value(plain(v))}"
            doc = f.metadata.get("doc") or field_docs(type(obj)).get(f.name)
            if docs and doc:
                line += f"  # {doc}"
            lines.append(line)
        for f, v in subs:
            table(v, f"{name}.{f.name}" if name else f.name)

    table(cfg, "")
    return "\n".join(lines) + "\n"


def field_docs(cls) -> dict[str, str]:
    """Per-field documentation: ``doc`` metadata, else the ``Attributes:`` of the docstring
    of the class or of the dataclass it extends."""
    out: dict[str, str] = {}
    for base in reversed(cls.__mro__[1:]):
        if dataclasses.is_dataclass(base):
            out.update(field_docs(base))
    text = cls.__doc__ or ""
    if "Attributes:" in text:
        body = text.split("Attributes:", 1)[1]
        cur = None
        for line in body.splitlines():
            m = re.match(r"^\s{4,6}([a-z_][a-z_0-9, ]*):\s*(.*)$", line)
            if m:
                cur = [n.strip() for n in m.group(1).split(",")]
                for n in cur:
                    out[n] = m.group(2).strip()
            elif cur and line.strip():
                for n in cur:
                    out[n] += " " + line.strip()
            elif not line.strip() and cur:
                cur = None
    for f in dataclasses.fields(cls):
        if f.metadata.get("doc"):
            out[f.name] = f.metadata["doc"]
    return out


def defaults_toml() -> str:
    """Every key with its default and documentation, as TOML."""
    return to_toml(Config(), docs=True)


__all__ = ["defaults_toml", "field_docs", "to_toml"]
