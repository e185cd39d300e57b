"""Find and load the project's LazyConfigs by name, from anywhere (as ``detectron2.model_zoo``).

A config name is a path relative to one of the two config trees of the repository:

* ``configs/``: the shared building blocks, e.g. ``"common/models/rlipv2_parseda_r50.py"``,
  ``"common/data/hico_det.py"``, ``"common/train.py"``;
* ``projects/RLIPv2/configs/``: the experiments, e.g. ``"hico/rlipv2_parseda_r50_hico.py"``,
  ``"custom/rlipv2_parseda_r50_custom_hoi.py"``.

Configs import each other through :func:`get_config` instead of relative imports reaching out of
their folder (``from .....configs.common ...``), so a config copied anywhere (your own project
folder, a temporary directory) keeps working::

    from rlipv2.model_zoo import get_config

    model = get_config("common/models/rlipv2_parseda_r50.py").model
    train = get_config("common/train.py").train
    use_world = get_config("common/data/synthetic.py", "use_world")   # a function defined there

In a source checkout (``pip install -e .``, what ``make setup`` does) the files are read from the
checkout itself. A regular (non-editable) install carries a copy of both trees under
``rlipv2/model_zoo/configs/`` (``setup.py`` puts it there); that copy is used when present.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

__all__ = ["get_config", "get_config_file", "list_configs", "config_roots"]

_PACKAGED = Path(__file__).resolve().parent / "configs"
_CHECKOUT = Path(__file__).resolve().parents[2]
#: The repository's config trees, relative to the checkout root, in lookup order.
CHECKOUT_TREES = ("configs", os.path.join("projects", "RLIPv2", "configs"))


def config_roots() -> list[Path]:
    """The directories config names are resolved against, in lookup order."""
    if _PACKAGED.is_dir():
        return [_PACKAGED]
    return [_CHECKOUT / tree for tree in CHECKOUT_TREES if (_CHECKOUT / tree).is_dir()]


def list_configs() -> list[str]:
    """Every config name (``"common/train.py"``, ``"hico/rlipv2_parseda_r50_hico.py"``, ...), sorted."""
    names = set()
    for root in config_roots():
        for path in root.rglob("*.py"):
            if "__pycache__" not in path.parts:
                names.add(path.relative_to(root).as_posix())
    return sorted(names)


def get_config_file(config_path: str) -> str:
    """The absolute path of the config named ``config_path`` (see the module docstring).

    Raises:
        FileNotFoundError: no such config; the message lists the closest names.
    """
    name = Path(config_path).as_posix().lstrip("/")
    if name.startswith("./"):
        name = name[2:]
    roots = config_roots()
    found = [root / name for root in roots if (root / name).is_file()]
    if len(found) > 1:
        raise ValueError(f"config name {config_path!r} is ambiguous: {', '.join(map(str, found))}")
    if not found:
        close = difflib.get_close_matches(name, list_configs(), n=3, cutoff=0.5)
        hint = f"; closest: {', '.join(close)}" if close else ""
        where = ", ".join(str(r) for r in roots) or "(no config tree found next to the rlipv2 package)"
        raise FileNotFoundError(f"no config named {config_path!r} under {where}{hint}")
    return str(found[0])


def get_config(config_path: str, keys: str | tuple[str, ...] | None = None) -> Any:
    """Load the config named ``config_path`` (see the module docstring) with ``LazyConfig.load``.

    Args:
        config_path: e.g. ``"common/models/rlipv2_parseda_r50.py"`` or ``"hico/rlipv2_parseda_r50_hico.py"``.
        keys: as ``LazyConfig.load``: ``None`` returns every config object of the file (a
            ``DictConfig``: ``get_config(...).model``); a name returns that one object, which may
            also be a function the file defines; a tuple of names returns a tuple.

    Every call loads the file afresh, so changing the returned objects never affects another
    config that loads the same file.
    """
    from detectron2.config import LazyConfig

    return LazyConfig.load(get_config_file(config_path), keys)
