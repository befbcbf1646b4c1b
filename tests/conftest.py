import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# A stream that stops moving fails after 5 minutes, not Ray Data's 30: no test's batch takes
# that long, and a hang then costs CI minutes, not half its budget. (Read when ray.data loads.)
os.environ.setdefault("RAY_DATA_EXECUTION_NO_PROGRESS_TIMEOUT_S", "300")

import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

import pytest

from quasar_dist.model.folder import SHIPPED

HAS_TINY = (SHIPPED["tiny"] / "config.json").is_file()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    """The model the job-layer tests run: the shipped one, or a small random one where it is
    absent. (Test files that need another `model` define their own, which takes precedence.)"""
    if HAS_TINY:
        return "tiny"
    from quasar_dist.parallel.toy_model import write_toy_model

    return str(write_toy_model(tmp_path_factory.mktemp("toy")))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and the machine is shared: a module that runs
    them marks itself `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
