#!/usr/bin/env python
"""Build and install RLIPv2 for Detectron2.

``pip install -e . --no-build-isolation`` compiles the C++ extension ``rlipv2._C`` (CPU kernels).
The CUDA kernels are added when CUDA is available at build time or ``FORCE_CUDA=1`` is set
(``make build-cuda``). The package works without the extension: every op has a pure-PyTorch path.
"""
import glob
import os
import shutil
import subprocess

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


def _cuda_home_from_nvcc():
    """The toolkit directory of the `nvcc` on PATH, as nvcc itself reports it (its TOP directory).

    torch guesses CUDA_HOME as the parent of nvcc's directory, which is wrong when `nvcc` is a wrapper
    script or a symlink outside the toolkit (e.g. /usr/local/bin/nvcc), and then cudart fails to link.
    """
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    try:
        out = subprocess.run([nvcc, "--dryrun", "-c", "-x", "cu", os.devnull, "-o", os.devnull],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith("#$ TOP="):
            top = os.path.realpath(line[len("#$ TOP="):].strip())
            return top if os.path.isfile(os.path.join(top, "bin", "nvcc")) else None
    return None


if "CUDA_HOME" not in os.environ and "CUDA_PATH" not in os.environ:
    _home = _cuda_home_from_nvcc()
    if _home is not None:
        os.environ["CUDA_HOME"] = _home  # read by torch.utils.cpp_extension at import

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError as e:  # pragma: no cover - setup.py is only useful with torch installed
    raise SystemExit(
        "torch must be installed before building rlipv2 (use `make setup`, or "
        "`pip install -r requirements/torch.txt` then `pip install -e . --no-build-isolation`)"
    ) from e

HERE = os.path.dirname(os.path.abspath(__file__))
# The config trees that rlipv2.model_zoo.get_config resolves names against (see rlipv2/model_zoo/model_zoo.py).
CONFIG_TREES = ("configs", os.path.join("projects", "RLIPv2", "configs"))


class BuildPyWithConfigs(build_py):
    """``build_py`` that also copies the config trees into ``rlipv2/model_zoo/configs/`` of the build.

    A regular install then carries the configs, as detectron2's ``model_zoo`` does. Editable installs
    (``make setup``) skip the copy: ``get_config`` reads the checkout's own trees.
    """

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = os.path.join(self.build_lib, "rlipv2", "model_zoo", "configs")
        for tree in CONFIG_TREES:
            shutil.copytree(os.path.join(HERE, tree), target, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def read_requirements(name):
    """The pinned requirements of requirements/<name> (comments and `-r` includes left out)."""
    with open(os.path.join(HERE, "requirements", name)) as f:
        lines = (line.split("#", 1)[0].strip() for line in f)
        return [line for line in lines if line and not line.startswith("-")]


def get_extensions():
    if os.environ.get("RLIPV2_NO_EXT", "0") == "1":
        return []
    csrc = os.path.join(HERE, "rlipv2", "csrc")
    sources = sorted(glob.glob(os.path.join(csrc, "*.cpp")) + glob.glob(os.path.join(csrc, "cpu", "*.cpp")))
    cuda_sources = sorted(glob.glob(os.path.join(csrc, "cuda", "*.cu")))
    extra_compile_args = {"cxx": ["-O3", "-fopenmp"]}
    extra_link_args = ["-fopenmp"]
    define_macros = []
    force_cuda = os.environ.get("FORCE_CUDA", "0") == "1"
    use_cuda = cuda_sources and CUDA_HOME is not None and (torch.cuda.is_available() or force_cuda)
    if use_cuda:
        ext_cls = CUDAExtension
        sources += cuda_sources
        define_macros += [("WITH_CUDA", None)]
        extra_compile_args["nvcc"] = [
            "-O3",
            "-DCUDA_HAS_FP16=1",
            "-D__CUDA_NO_HALF_OPERATORS__",
            "-D__CUDA_NO_HALF_CONVERSIONS__",
            "-D__CUDA_NO_HALF2_OPERATORS__",
        ] + os.environ.get("NVCC_FLAGS", "").split()
    else:
        ext_cls = CppExtension
    sources = [os.path.relpath(s, HERE) for s in sources]
    return [
        ext_cls(
            "rlipv2._C",
            sources,
            include_dirs=[csrc],
            define_macros=define_macros,
            extra_compile_args=extra_compile_args,
            extra_link_args=extra_link_args,
        )
    ]


setup(
    name="rlipv2",
    version="0.1.0",
    description="RLIPv2 (relational language-image pre-training) for HOI detection and scene-graph "
    "generation, on Detectron2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(exclude=("tests", "tests.*", "tools", "tools.*", "configs", "projects")),
    package_data={"rlipv2": ["data/metadata/*", "data/metadata/**/*"]},
    # requirements/*.txt pin everything (`make setup`); listed here: what `import rlipv2.schemas` needs
    install_requires=["pydantic>=2.7,<3", "numpy>=1.24"],
    # optional: the web demo (tools/web_demo.py) and its browser test
    extras_require={"web": read_requirements("web.txt"),
                    "web-test": read_requirements("web.txt") + read_requirements("web-test.txt")},
    ext_modules=get_extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True), "build_py": BuildPyWithConfigs},
    zip_safe=False,
)
