"""Command-line overrides (``key=value``) that refuse keys the config does not have.

Detectron2's ``LazyConfig.apply_overrides`` creates any key it is given, so a typo such as
``train.max_iters=5`` is accepted and the run silently uses the default. :func:`apply_overrides`
checks every key first:

* a key that exists (whatever its value, ``None`` included) is overridden;
* a new argument of a ``LazyCall`` node (``dataloader.train.num_workers``) is accepted when the
  node's target takes an argument of that name (or ``**kwargs``);
* anything else is an error naming the key and the closest existing keys (``difflib``); prefix the
  key with ``+`` (``+train.my_new_key=1``) to add a key on purpose.

:func:`load_config` is ``LazyConfig.load`` + :func:`apply_overrides`; every tool that takes
``--config-file ... key=value`` uses it.
"""
from __future__ import annotations

import difflib
import inspect
from collections.abc import Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf

__all__ = ["ConfigKeyError", "apply_overrides", "check_override_keys", "load_config"]


class ConfigKeyError(ValueError):
    """An override names a key that the config does not have."""


def _locate(target):
    if isinstance(target, str):
        from detectron2.utils.registry import locate

        try:
            return locate(target)
        except Exception:
            return None  # instantiate() will report the bad target
    return target


def _accepts_argument(target, name: str) -> bool:
    """Whether the callable ``target`` takes a keyword argument ``name`` (True when it cannot be told)."""
    if target is None:
        return True
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return True
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return True
    return name in params


def _child(node, part: str):
    """``node[part]`` without resolving interpolations; ``None`` if absent."""
    if isinstance(node, DictConfig):
        if part not in node.keys():
            return None
        return node._get_node(part)
    if isinstance(node, ListConfig):
        try:
            index = int(part)
        except ValueError:
            return None
        return node._get_node(index) if -len(node) <= index < len(node) else None
    return None


def _parameters(target) -> list[str]:
    """The keyword-argument names of ``target`` (empty when unknown)."""
    try:
        return [n for n, p in inspect.signature(target).parameters.items()
                if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return []


def _suggestions(node, part: str, prefix: str, extra: Sequence[str] = ()) -> str:
    keys = [str(k) for k in node.keys() if str(k) != "_target_"] if isinstance(node, DictConfig) else []
    keys += [k for k in extra if k not in keys]
    close = difflib.get_close_matches(part, keys, n=3, cutoff=0.6)
    if close:
        return "closest: " + ", ".join(f"{prefix}{k}" for k in close)
    if keys:
        shown = ", ".join(f"{prefix}{k}" for k in sorted(keys)[:12])
        return f"'{prefix.rstrip('.') or '<top level>'}' has: {shown}" + (", ..." if len(keys) > 12 else "")
    return f"'{prefix.rstrip('.')}' holds no keys"


def check_override_keys(cfg: DictConfig, key: str) -> None:
    """Raise :class:`ConfigKeyError` unless ``key`` exists in ``cfg`` or may be created there (see module doc)."""
    parts = key.split(".")
    node = cfg
    for i, part in enumerate(parts):
        prefix = ".".join(parts[:i]) + ("." if i else "")
        child = _child(node, part)
        if child is not None:
            if OmegaConf.is_config(child) and not child._is_interpolation():
                node = child
                continue
            # a value (or an interpolation): the rest of the key must not go deeper into it
            if i < len(parts) - 1 and not child._is_interpolation():
                raise ConfigKeyError(
                    f"unknown config key '{key}': '{prefix}{part}' is a value ({child._value()!r}), not a section"
                )
            return
        if isinstance(node, DictConfig) and "_target_" in node.keys():
            raw = node._get_node("_target_")._value()
            target = _locate(raw)
            if _accepts_argument(target, part):
                return  # a new argument of the call (nested values below it are the caller's business)
            what = raw if isinstance(raw, str) else getattr(raw, "__qualname__", repr(raw))
            hint = _suggestions(node, part, prefix, _parameters(target))
            raise ConfigKeyError(f"unknown config key '{key}': {what} takes no argument '{part}'; {hint}")
        raise ConfigKeyError(
            f"unknown config key '{key}'; {_suggestions(node, part, prefix)} "
            f"(write '+{key}=...' to add a new key on purpose)"
        )


def _parse(overrides: Sequence[str]) -> list[tuple[str, bool]]:
    """``[(key, is_addition)]`` of ``key=value`` / ``+key=value`` overrides (Hydra's grammar)."""
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser
    except ImportError:  # pragma: no cover - hydra-core is a dependency of detectron2's LazyConfig
        out = []
        for o in overrides:
            key = o.split("=", 1)[0]
            out.append((key.lstrip("+~"), key.startswith("+")))
        return out
    from hydra.core.override_parser.types import OverrideType

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return [(o.key_or_group, o.type in (OverrideType.ADD, OverrideType.FORCE_ADD)) for o in parsed]


def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """``LazyConfig.apply_overrides`` after checking every key (see module doc). Modifies ``cfg`` in place.

    Raises:
        ConfigKeyError: an override names an unknown key; nothing has been changed then.
    """
    from detectron2.config import LazyConfig

    overrides = list(overrides)
    for key, adding in _parse(overrides):
        if not adding:
            check_override_keys(cfg, key)
    return LazyConfig.apply_overrides(cfg, overrides)


def load_config(config_file: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Load a LazyConfig (``.py`` or a saved ``config.yaml``) and apply ``key=value`` overrides strictly.

    Args:
        config_file: a ``.py`` LazyConfig or a saved ``config.yaml``.
        overrides: ``key=value`` strings (Hydra syntax; ``+key=value`` adds a key).
    """
    import os

    from detectron2.config import LazyConfig

    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"config file not found: {config_file}")
    return apply_overrides(LazyConfig.load(config_file), overrides)
