"""Session-wide test settings."""
import pytest


@pytest.fixture(scope="session", autouse=True)
def private_reference_cache(tmp_path_factory):
    """References computed by the tests go to a temporary cache, never the user's
    (``PINN_LAM_CACHE`` is inherited by the subprocesses the tests start)."""
    folder = tmp_path_factory.mktemp("reference-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PINN_LAM_CACHE", str(folder))
        yield folder

