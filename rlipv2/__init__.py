"""RLIPv2 (Relational Language-Image Pre-training v2) on Detectron2.

``import rlipv2`` is cheap (it does not import torch): the package registers its datasets in
Detectron2's catalogs and its models in Detectron2's registries as soon as Detectron2's ``data`` or
``modeling`` package is imported (or right away if it already is). Registration itself is lazy:
no annotation file is read until a dataset is used. Importing ``rlipv2.data`` or
``rlipv2.modeling`` directly registers them too.

This keeps the standalone tools (``python -m rlipv2.evaluation.hico``, ``python -m
rlipv2.collect_env``) fast, since they need neither torch nor Detectron2.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import threading

__version__ = "0.1.0"

# Detectron2 commit this project is developed and tested against (see README, "Install").
DETECTRON2_COMMIT = "a59f05630a8f205756064244bf5beb8661f96180"

# Detectron2 package -> our package that registers into it.
_REGISTRATIONS = {"detectron2.data": "rlipv2.data", "detectron2.modeling": "rlipv2.modeling"}


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Import hook: once a Detectron2 package in ``_REGISTRATIONS`` has executed, import ours."""

    def __init__(self) -> None:
        self._busy = threading.local()

    def find_spec(self, name, path=None, target=None):
        if name not in _REGISTRATIONS or getattr(self._busy, name.replace(".", "_"), False):
            return None
        setattr(self._busy, name.replace(".", "_"), True)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            setattr(self._busy, name.replace(".", "_"), False)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module, _exec=exec_module, _ours=_REGISTRATIONS[name]):
            _exec(module)
            importlib.import_module(_ours)

        spec.loader.exec_module = exec_then_register
        return spec


def _install_registration() -> None:
    if not any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
    for theirs, ours in _REGISTRATIONS.items():
        if theirs in sys.modules:
            importlib.import_module(ours)


_install_registration()
