"""RLIPv2 (Relational Language-Image Pre-training v2) on Detectron2.

Importing the package registers its datasets in Detectron2's catalogs (lazily: nothing is read
until a dataset is used) and its modules in Detectron2's registries.
"""
__version__ = "0.1.0"

# Detectron2 commit this project is developed and tested against (see docs/INSTALL.md).
DETECTRON2_COMMIT = "a59f05630a8f205756064244bf5beb8661f96180"


def _register_all() -> None:
    import importlib

    for mod in ("rlipv2.data", "rlipv2.modeling"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # a sub-package not written yet
            if e.name != mod:
                raise


_register_all()
