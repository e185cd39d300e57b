"""Test-wide settings: offline Hugging Face, deterministic seeds, and the `gpu` marker's skip."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def tiny_model_files(tmp_path_factory):
    """(config, weights) of the tiny RLIPv2-ParSeDA with random weights, written once per session."""
    from rlipv2.utils.testing import write_tiny_model_files

    return write_tiny_model_files(tmp_path_factory.mktemp("tiny_model_files"))
