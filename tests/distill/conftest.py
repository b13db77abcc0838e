import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks: one intra-op thread is much faster than two on a shared 2-core box."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
