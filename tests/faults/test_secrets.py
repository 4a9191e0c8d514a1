"""The secret canary across every tracker (W&B offline, MLflow, none) with the
S3 remote on the host runtime: secrets in the environment, a git remote URL and
a stage's argv reach no written file, no object in the remote.

The canary itself lives with the tracker tests; here it is counted. A failing
run counts as one leak found.

TODO: the container (marker `engine`) and Nix (marker `nix`) runtimes and the
local store are not in the matrix yet; add them with a stage that dumps its
environment into an output, so a leak into the sealed runtime is seen too.
"""

from __future__ import annotations

import pytest

from tests.functional.test_repro_trackers import (
    test_secret_canary_reaches_no_written_file as test_secret_canary,
)

pytestmark = pytest.mark.secrets

__all__ = ["test_secret_canary"]
