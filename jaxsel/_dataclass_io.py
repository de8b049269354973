"""One dict <-> frozen-dataclass conversion for every jaxsel config.

Model, training, MEI and run configs are frozen dataclasses; they are read from plain data
(parsed TOML or JSON) with :func:`from_dict` and written back with :func:`to_dict`. Reading
is strict: an unknown key is a :class:`~jaxsel.ConfigError` naming the closest valid
key, and every value is checked against the field's annotation (nested dataclasses, tuples,
unions, typed dicts), with the dotted key path in the message.

Two message styles exist because two kinds of users read them:

- ``style="python"`` (model / training / MEI configs, built from Python dicts):
  ``unknown config key 'model.gamma_readot' for ModelConfig; did you mean
  'model.gamma_readout'? (valid keys: ...)`` and ``model.layers must be an integer (got
  'four')``.
- ``style="toml"`` (the run config, edited as ``[section]`` tables): ``unknown key
  'train.model' in [train] (did you mean 'models'?)`` and ``key 'run.seed' must be integer,
  got float 1.5``.

This module sits at the bottom of the stack: it imports nothing from jaxsel but the errors.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import types
import typing
from typing import Any

from jaxsel._errors import ConfigError

STYLES = ("python", "toml")


def close_key(key: str, valid) -> str:
    """`` (did you mean 'x'?)`` for the closest valid key, or a list of the valid keys."""
    valid = sorted(valid)
    near = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if near:
        return f" (did you mean '{near[0]}'?)"
    return f" (valid keys: {', '.join(valid)})"


def type_name(tp) -> str:
    """A readable name of a type annotation (``'array of 2 (float, float)'``)."""
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return f"table [{tp.__name__}]"
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"array of {type_name(args[0])}"
        return f"array of {len(args)} ({', '.join(type_name(a) for a in args)})"
    if origin is list:
        return f"array of {type_name(typing.get_args(tp)[0])}"
    if origin in (dict, collections.abc.Mapping):
        return f"table of {' -> '.join(type_name(a) for a in typing.get_args(tp))}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    return {
        int: "integer",
        float: "float",
        str: "string",
        bool: "boolean",
        dict: "table",
        type(None): "nothing",
    }.get(tp, getattr(tp, "__name__", str(tp)))


def describe(value) -> str:
    """``'float 1.5'``: the kind and (shortened) repr of a value, for messages."""
    kind = {
        bool: "boolean",
        int: "integer",
        float: "float",
        str: "string",
        list: "array",
        dict: "table",
    }.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{kind} {text if len(text) < 40 else text[:37] + '...'}"


_PY_EXPECT = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _bad_type(value, tp, key: str, style: str) -> ConfigError:
    if style == "python":
        if dataclasses.is_dataclass(tp) or typing.get_origin(tp) is dict:
            return ConfigError(f"{key} must be a mapping (got {type(value).__name__})")
        if typing.get_origin(tp) is tuple:
            return ConfigError(f"{key} must be a list (got {value!r})")
        expect = _PY_EXPECT.get(tp, type_name(tp))
        return ConfigError(f"{key} must be {expect} (got {value!r})")
    return ConfigError(f"key '{key}' must be {type_name(tp)}, got {describe(value)}")


def convert(value, tp, key: str, *, style: str = "toml"):
    """Check ``value`` against the annotation ``tp`` and return it in the field's form.

    Lists become tuples where the field is a tuple, integers become floats for float fields
    (and integral floats integers for int fields), tables become nested dataclasses.

    Raises:
      ConfigError: the value does not fit ``tp`` (the message names ``key``).
    """
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise _bad_type(value, tp, key, style)
        return from_dict(tp, value, where=key, style=style)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return convert(value, arg, key, style=style)
            except ConfigError:
                if len([a for a in args if a is not type(None)]) == 1:
                    raise
        raise _bad_type(value, tp, key, style)
    if tp is type(None):
        if value is not None:
            raise _bad_type(value, tp, key, style)
        return None
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _bad_type(value, tp, key, style)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(
                convert(v, args[0], f"{key}[{i}]", style=style) for i, v in enumerate(value)
            )
        if len(value) != len(args):
            raise ConfigError(f"key '{key}' must be {type_name(tp)}, got an array of {len(value)}")
        return tuple(
            convert(v, a, f"{key}[{i}]", style=style)
            for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if origin in (collections.abc.Mapping, dict) and args:
        if not isinstance(value, dict):
            raise _bad_type(value, tp, key, style)
        kt, vt = args
        return {
            convert(k, kt, key, style=style): convert(v, vt, f"{key}.{k}", style=style)
            for k, v in value.items()
        }
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _bad_type(value, tp, key, style)
        return [convert(v, args[0], f"{key}[{i}]", style=style) for i, v in enumerate(value)]
    return _convert_scalar(value, tp, key, style)


def _convert_scalar(value, tp, key: str, style: str):
    if tp is dict:
        if not isinstance(value, dict):
            raise _bad_type(value, tp, key, style)
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise _bad_type(value, tp, key, style)
        return value
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad_type(value, tp, key, style)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad_type(value, tp, key, style)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _bad_type(value, tp, key, style)
        return value
    if tp is Any:
        return value
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _bad_type(value, tp, key, style)


def _unknown_key(cls, key: str, names, where: str, style: str) -> ConfigError:
    dotted = f"{where}.{key}" if where else str(key)
    if style == "python":
        prefix = f"{where}." if where else ""
        close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.5)
        hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
        return ConfigError(
            f"unknown config key '{dotted}' for {cls.__name__}{hint} "
            f"(valid keys: {', '.join(names)})"
        )
    table = f" in [{where}]" if where else ""
    return ConfigError(f"unknown key '{dotted}'{table}{close_key(str(key), names)}")


def from_dict(cls, data, *, where: str = "", style: str = "python"):
    """Build the frozen dataclass ``cls`` from a plain dict, strictly.

    Args:
      cls: a dataclass type.
      data: the dict (``None``: all defaults; an instance of ``cls`` is returned as is).
        Missing keys keep their defaults.
      where: the dotted key path of this table, used in messages (e.g. ``"model"``).
      style: ``"python"`` or ``"toml"`` message phrasing (see the module docstring).

    Returns:
      An instance of ``cls``.

    Raises:
      ConfigError: an unknown key (naming the closest valid key), a value of the wrong type
        (naming the key path and the expected type) or a value ``cls`` rejects.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    where = where or ""
    if isinstance(data, cls):
        return data
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__} must be a mapping (got {type(data).__name__})")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for key, value in (data or {}).items():
        if key not in names:
            raise _unknown_key(cls, key, names, where, style)
        dotted = f"{where}.{key}" if where else key
        kwargs[key] = convert(value, hints[key], dotted, style=style)
    # python style: the class's own ConfigError passes unchanged; toml style: any TypeError
    # or ValueError (ConfigError included) is prefixed with the table it came from
    caught = (TypeError,) if style == "python" else (TypeError, ValueError)
    try:
        return cls(**kwargs)
    except caught as err:
        raise ConfigError(f"[{where or cls.__name__}]: {err}") from None


def plain(value):
    """A value as plain JSON/TOML-able data: dataclasses become dicts (recursively), tuples
    lists, dict keys strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [plain(x) for x in value]
    if isinstance(value, dict):
        return {str(k): plain(x) for k, x in value.items()}
    return value


def to_dict(obj) -> dict:
    """A dataclass (nested ones too) as plain JSON/TOML-able data (tuples become lists)."""
    return typing.cast(dict, plain(obj))  # a dataclass becomes a dict


def check_keys(classes, data: dict, where: str, *, style: str = "toml") -> None:
    """Check a table of field overrides against the fields (and types) of dataclasses.

    Args:
      classes: dataclass types whose fields may appear (the first that has a name wins).
      data: the overrides.
      where: the dotted key path of the table, for messages.

    Raises:
      ConfigError: an unknown key (closest valid key) or a value of the wrong type.
    """
    hints: dict = {}
    for cls in classes:
        for name, tp in typing.get_type_hints(cls).items():
            hints.setdefault(name, tp)
    for key, value in data.items():
        if key not in hints:
            raise ConfigError(f"unknown key '{where}.{key}'{close_key(key, hints)}")
        convert(value, hints[key], f"{where}.{key}", style=style)


# ------------------------------------------------------------------ static vs traced fields
# A config field is *static* by default: it decides the structure of a compiled program and
# is part of the compile-cache key. A field declared with :func:`traced` only enters the
# arithmetic: it travels into the program as an array argument, so changing it reuses the
# compiled program.


def traced(default, **kwargs):
    """A dataclass field whose value is a traced hyperparameter (not part of the program).

    Example::

        @dataclass(frozen=True)
        class Opt:
            steps: int = 100            # static: the program's loop length
            lr: float = traced(0.01)    # traced: a new lr reuses the compiled program
    """
    metadata = {**kwargs.pop("metadata", {}), "traced": True}
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


def traced_fields(cls) -> tuple[str, ...]:
    """The names of the fields of dataclass ``cls`` (or instance) declared :func:`traced`,
    in declaration order."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("traced"))


__all__ = [
    "check_keys",
    "close_key",
    "convert",
    "describe",
    "from_dict",
    "plain",
    "to_dict",
    "traced",
    "traced_fields",
    "type_name",
]
