"""Every error Aeromancy raises on purpose.

The tree::

    AeromancyError                  root; anything else escaping is a bug
    └── UserError                   one line for the user, exit code 1
        ├── ConfigError             pyproject.toml or [tool.aeromancy] is wrong
        ├── ProjectError            not inside a project, or the project is broken
        ├── DirtyTreeError          a tracked run met uncommitted changes; names them
        ├── ScaffoldError           `aero init` cannot render or adopt
        ├── RemoteError             the DVC remote is malformed or unreachable
        ├── PipelineError           DVC refused the pipeline (unknown stage...)
        ├── RerunDivergedError      a rerun's outputs differ from the run's; exit code 3
        └── StageFailedError        a stage's command exited non-zero; carries its code
            └── StageAbortedError   a stage was interrupted; exit code 130

Runtimes add their own, next to the code that raises them: `EngineError` (no
container engine answers; `runtime/engine.py`), `ImageBuildError` (the runtime
image does not build; `runtime/docker.py`), both `UserError`s, and
`ContainerStoppedError` (a `StageAbortedError`, exit code 137: the container
died under a stage; `runtime/container.py`).

The CLI turns a `UserError` into one red line on stderr and its `exit_code`;
the traceback is shown only with `-v` or `AERO_DEBUG=1`.
"""

from __future__ import annotations

__all__ = [
    "AeromancyError",
    "ConfigError",
    "DirtyTreeError",
    "PipelineError",
    "ProjectError",
    "RemoteError",
    "RerunDivergedError",
    "ScaffoldError",
    "StageAbortedError",
    "StageFailedError",
    "UserError",
]


class AeromancyError(Exception):
    """Root of every error Aeromancy raises on purpose."""


class UserError(AeromancyError):
    """Something the user can fix; the message is one line and says how."""

    exit_code: int = 1
    #: The process must end without waiting for its threads: work was
    #: abandoned in one that may not return for minutes (see `_stall.py`).
    exit_now: bool = False

    def __init__(self, message: str) -> None:
        # A message is one line: the CLI prints it as it is.
        super().__init__(" ".join(message.split("\n")))

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigError(UserError):
    """The project's pyproject.toml or its `[tool.aeromancy]` table is wrong."""


class ProjectError(UserError):
    """Not inside an Aeromancy project, or the project is incomplete."""


class DirtyTreeError(UserError):
    """The work tree has changes a tracked run cannot record; the message names
    each path with its state and says how to make the tree clean."""


class ScaffoldError(UserError):
    """`aero init` cannot render a new project or adopt an existing one."""


class RemoteError(UserError):
    """The DVC remote is malformed, unreachable or refuses access."""


class PipelineError(UserError):
    """DVC refused the pipeline: an unknown stage, a broken dvc.yaml."""


class RerunDivergedError(UserError):
    """A rerun made outputs (or read inputs) that differ from the recorded run's;
    the message names them."""

    exit_code = 3


class StageFailedError(UserError):
    """A stage's command exited non-zero; the CLI exits with the same code."""

    def __init__(self, stage: str, returncode: int) -> None:
        super().__init__(f"stage '{stage}' failed with exit code {returncode}")
        self.stage = stage
        self.exit_code = returncode if 0 < returncode < 256 else 1


class StageAbortedError(StageFailedError):
    """A stage was interrupted (Ctrl-C); the CLI exits with 130."""

    def __init__(self, stage: str) -> None:
        UserError.__init__(self, f"stage '{stage}' was interrupted")
        self.stage = stage
        self.exit_code = 130
