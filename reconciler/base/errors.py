"""One exception root; each class knows the exit code the CLI maps it to.

    ReconcilerError                 exit 1, the message is shown as is
    ├── ConfigError                 the config is invalid: carries every Problem found
    ├── LockfileError               finetunes.lock is corrupt, of an unknown version, or foreign
    ├── LockHeldError               another apply holds the apply lock
    ├── PlanError                   the plan cannot be made or carried out as declared
    │   ├── PlanFileError           a saved plan file is missing, foreign or damaged
    │   └── StalePlanError          a saved plan's inputs changed since it was made
    ├── EnvError                    a setting in the environment is malformed (named, not shown)
    │   └── CredentialsError        a token or an endpoint URL is missing or malformed
    ├── AssetChangedError           a file changed while it was being uploaded
    ├── OutputsError                an outputs: file could not be written after an apply
    └── ProviderError               a remote call failed
        ├── OutcomeUnknown          a change was sent but its answer lost: look before retrying
        ├── PartialApply            done in part (a fleet where some servers failed): what
        │                           was made is recorded, the rest fails the step
        ├── AuthError               the API rejected the token
        └── EndpointError           the endpoint is unreachable or did not answer the API's shape

Messages never contain secrets: no exception here is built from request headers or from an
httpx error's text where that could hold one (providers/http.py), a malformed credential is
refused by name before any request (credentials.py), logs.py redacts every secret value from
every log line, and commands/common.py from every message it prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ReconcilerError(Exception):
    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One finding in a file: where it is and what was expected."""

    file: str
    line: int | None
    column: int | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: error: {self.message}"


class ConfigError(ReconcilerError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        lines = [str(p) for p in problems]
        super().__init__("\n".join([*lines, f"{count} {noun} found; nothing was changed."]))


class LockfileError(ReconcilerError):
    pass


class PlanError(ReconcilerError):
    pass


class PlanFileError(PlanError):
    pass


class StalePlanError(PlanError):
    pass


class LockHeldError(ReconcilerError):
    pass


class EnvError(ReconcilerError):
    pass


class CredentialsError(EnvError):
    pass


class AssetChangedError(ReconcilerError):
    pass


class OutputsError(ReconcilerError):
    pass


class ProviderError(ReconcilerError):
    pass


class OutcomeUnknown(ProviderError):
    pass


class PartialApply(ProviderError):
    """A create or update done in part: `made` is what exists now (recorded by apply), the
    message says what failed (the step fails, so the apply exits 1 and the next one goes on)."""

    def __init__(self, message: str, made: Any) -> None:
        super().__init__(message)
        self.made = made  # a RemoteFinetune: base/model.py, typed loosely to keep this floor flat


class AuthError(ProviderError):
    pass


class EndpointError(ProviderError):
    pass
