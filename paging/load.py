"""Reading the paging file: YAML validated by paging.model, errors naming the file and field."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from paging.config import PagingSettings
from paging.model import PagingConfig

DEFAULT_NAME = "paging/defaults/paging.yaml"


class PagingError(Exception):
    """An invalid paging file or a missing secret; `problems` has one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_paging(text: str, name: str) -> PagingConfig:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PagingError([f"{name}: not YAML: {exc}"]) from None
    if not isinstance(document, dict):
        raise PagingError([f"{name}: expected a mapping (receivers, routes, ...)"])
    try:
        return PagingConfig.model_validate(document)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(file)"
            message = err["msg"].removeprefix("Value error, ")
            problems += [f"{name}: {where}: {part}" for part in message.split("; ")]
        raise PagingError(problems) from None


def paging_source(settings: PagingSettings) -> tuple[str, str]:
    """The paging file in use, as (name, text): the city's file, or the shipped example."""
    if settings.file is not None:
        if not settings.file.is_file():
            raise PagingError([f"{settings.file}: no such file (IOC_PAGING__FILE)"])
        return str(settings.file), settings.file.read_text()
    return DEFAULT_NAME, (resources.files("paging") / "defaults" / "paging.yaml").read_text()


def load_paging(settings: PagingSettings, *, need_secrets: bool = True) -> PagingConfig:
    """The paging file in use, validated; with `need_secrets`, every secret it names must be set."""
    name, text = paging_source(settings)
    config = parse_paging(text, name)
    if need_secrets:
        missing = sorted(config.secret_names() - settings.secrets.keys())
        if missing:
            raise PagingError([
                f"{name}: secret {secret!r} is not set (IOC_PAGING__SECRETS__{secret.upper()})"
                for secret in missing
            ])  # fmt: skip
    return config


def check_file(path: Path) -> PagingConfig:
    """Validate one paging file without secrets (`ioc paging check`)."""
    return parse_paging(path.read_text(), str(path))
