"""Print the environment RLIPv2 runs in: ``python -m rlipv2.collect_env``.

Paste its output into bug reports.
"""
from __future__ import annotations

import importlib
import os
import platform
import sys


def _version(module: str) -> str:
    try:
        mod = importlib.import_module(module)
    except Exception as e:  # report, never fail
        return f"not available ({type(e).__name__}: {e})"
    return str(getattr(mod, "__version__", "unknown"))


def _detectron2_info() -> tuple[str, str]:
    try:
        import detectron2
    except Exception as e:
        return f"not available ({type(e).__name__}: {e})", "-"
    from importlib import metadata

    dist = "from source"
    for name in ("sal-detectron2", "detectron2"):
        try:
            dist = f"{name} {metadata.version(name)}"
            break
        except metadata.PackageNotFoundError:
            continue
    path = os.path.dirname(detectron2.__file__)
    return f"{detectron2.__version__} ({dist}) @ {path}", _d2_commit()


def _d2_commit() -> str:
    import rlipv2

    return f"{rlipv2.DETECTRON2_COMMIT} (pinned)"


def collect_env_info() -> list[tuple[str, str]]:
    """Return (name, value) rows describing the environment."""
    rows: list[tuple[str, str]] = [
        ("sys.platform", sys.platform),
        ("Python", sys.version.replace("\n", " ")),
        ("machine", platform.machine()),
    ]
    import numpy

    rows.append(("numpy", numpy.__version__))
    import torch

    rows.append(("torch", f"{torch.__version__} @ {os.path.dirname(torch.__file__)}"))
    rows.append(("torch built with CUDA", str(torch.version.cuda)))
    rows.append(("torchvision", _version("torchvision")))
    d2, commit = _detectron2_info()
    rows.append(("detectron2", d2))
    rows.append(("detectron2 commit", commit))
    rows.append(("transformers", _version("transformers")))
    rows.append(("tokenizers", _version("tokenizers")))
    import rlipv2
    from rlipv2.utils.extension import extension_info

    rows.append(("rlipv2", f"{rlipv2.__version__} @ {os.path.dirname(rlipv2.__file__)}"))
    info = extension_info()
    rows.append(("rlipv2._C built", "yes" if info["built"] else "no (pure-PyTorch ops in use)"))
    rows.append(("rlipv2._C with CUDA", "yes" if info["cuda"] else "no"))
    cuda = torch.cuda.is_available()
    rows.append(("GPU available", "yes" if cuda else "no"))
    if cuda:
        for i in range(torch.cuda.device_count()):
            rows.append((f"GPU {i}", torch.cuda.get_device_name(i)))
    rows.append(("CPU threads (torch)", str(torch.get_num_threads())))
    rows.append(("DETECTRON2_DATASETS", os.environ.get("DETECTRON2_DATASETS", "(unset: ./datasets)")))
    hf_home = os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface"))
    rows.append(("Hugging Face cache", os.environ.get("HF_HUB_CACHE", os.path.join(hf_home, "hub"))))
    offline = [k for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if os.environ.get(k, "0") not in ("", "0")]
    rows.append(("Hugging Face offline", ", ".join(offline) if offline else "no"))
    return rows


def main() -> None:
    rows = collect_env_info()
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))


if __name__ == "__main__":
    main()
