"""Settings files: the presets and the user's `--config FILE.yaml`, YAML mappings of flag names to values.

Each key must be a `TrainConfig` field (or one of its alias flags without the dashes) and each value is checked
against the field's type, so a typo in a file fails as clearly as one on the command line. A list may stand for a
`tuple` field, one value for a `tuple[X, ...]` field (`logger: wandb`). `hf_sprites.training.config` reads presets
and `--config` files through `read_settings`; every error here is a `ValueError` that names the file and the fix.

Example:
    >>> from typing import Literal, Optional
    >>> checked_value("learning_rate", float, 1)
    1.0
    >>> checked_value("logger", tuple[Literal["tensorboard", "wandb"], ...], "wandb")
    ('wandb',)
    >>> checked_value("seed", Optional[int], "zero")
    Traceback (most recent call last):
    ...
    ValueError: the settings: seed must be a whole number, got 'zero'
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Literal

import yaml


def unwrap_optional(kind):
    """`Optional[T]` -> `T`; anything else as it is."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        (kind,) = [arg for arg in typing.get_args(kind) if arg is not type(None)]
    return kind


def read_settings(path: Path, what: str, config_class: type) -> dict:
    """A settings file's mapping of field names to values, each checked against its `config_class` field.

    `what` names the file in errors ("Preset 'sprites'", "--config my.yaml").
    """
    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{what} is not valid YAML ({' '.join(str(err).split())}); fix the file") from None
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise ValueError(f"{what} must be a YAML mapping of flag names to values (e.g. `learning_rate: 1.0e-3`), not "
                         f"a {type(values).__name__}")
    names = field_names(config_class)
    unknown = sorted(str(key) for key in values if key not in names)
    if unknown:
        raise ValueError(f"{what} has unknown keys {unknown}; every key must be a TrainConfig field (a flag name "
                         "without --)")
    kinds = typing.get_type_hints(config_class)
    return {names[key]: checked_value(names[key], kinds[names[key]], value, what) for key, value in values.items()}


def field_names(config_class: type) -> dict:
    """Every name a settings file may use (field names and their alias flags without dashes) -> the field's name."""
    names = {}
    for spec in dataclasses.fields(config_class):
        names.update({alias.lstrip("-"): spec.name for alias in spec.metadata.get("aliases", ())})
        names[spec.name] = spec.name
    return names


def checked_value(name: str, kind, value, what: str = "the settings"):
    """`value` of field `name` as its type `kind` asks (a float field takes whole numbers too), or a `ValueError`."""
    if value is None and typing.get_origin(kind) in (typing.Union, types.UnionType):
        return None
    kind = unwrap_optional(kind)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is tuple:
        return _checked_tuple(name, args, value, what)
    expected = tuple({type(arg) for arg in args}) if origin is Literal else _PLAIN_TYPES.get(kind, (object,))
    wrong_type = (isinstance(value, bool) and bool not in expected) or not isinstance(value, expected)
    if wrong_type or (origin is Literal and value not in args):
        raise ValueError(f"{what}: {name} must be {_kind_name(kind)}, got {value!r}")
    return float(value) if kind is float else value


_PLAIN_TYPES = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}


def _checked_tuple(name: str, args: tuple, value, what: str) -> tuple:
    any_length = args[-1] is Ellipsis
    items = [value] if any_length and not isinstance(value, (list, tuple)) else value
    if not isinstance(items, (list, tuple)) or not items or (not any_length and len(items) != len(args)):
        count = "one or more" if any_length else len(args)
        raise ValueError(f"{what}: {name} must be a list of {count} values, got {value!r}")
    return tuple(checked_value(name, args[0], item, what) for item in items)


def _kind_name(kind) -> str:
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(kind)))
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(kind, str(kind))
