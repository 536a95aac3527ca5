"""`${VAR}` / `${VAR:-default}` in configuration files (profiles, sources), so one file serves
laptops, CI and production."""

import os
import re
from collections.abc import Mapping

_ENV_REFERENCE = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


class MissingVariableError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"${{{name}}} is used but {name} is not set")
        self.name = name


def expand_env(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace `${VAR}` / `${VAR:-default}`; an unset variable without default is an error.
    Other `$` text (lower-case names, prices) is left alone."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is None:
            raise MissingVariableError(name)
        return default

    return _ENV_REFERENCE.sub(substitute, text)
