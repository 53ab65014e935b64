"""Paged reads end: a server that ignores `offset` or pages without end is stopped with a clear
error, its pages held within a bound, rather than read until the memory runs out."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli
from test_cohere import cohere, config  # noqa: F401 (fixtures)
from test_hostile_api import (  # noqa: F401 (hostile: a fixture)
    PUBLIC,
    Honest,
    Lying,
    envelope,
    hostile,
    lying,
)
from werkzeug.wrappers import Request

from reconciler.providers.cloudflare import api as cloudflare
from reconciler.providers.cohere import api as cohere_api
from reconciler.sandbox.server import SandboxServer

MODEL = "@cf/google/gemma-2b-it-lora"


def finetune(n: int) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "name": f"public-{n}",
        "model": MODEL,
        "description": "",
        "public": True,
        "created_at": "2026-01-01T00:00:00Z",
        "modified_at": "2026-01-01T00:00:00Z",
    }


def test_public_stops_when_the_server_ignores_offset(
    cli: Cli,
    hostile: Lying,  # noqa: F811
    project: Path,
) -> None:
    same = envelope([finetune(n) for n in range(2)])
    hostile.lie("GET", PUBLIC, lambda request, honest: (200, same))
    started = time.monotonic()
    result = cli("public", "-c", project, "--page-size", "2")
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        "Error: list public finetunes (offset 2): the API answered the finetunes it had "
        "already given (public-0, public-1): it ignores `offset`, so the list cannot be read to "
        "its end\n"
    )
    assert len(hostile.seen) == 2 and time.monotonic() - started < 5


def test_public_stops_at_its_bound_when_the_pages_never_end(
    cli: Cli,
    hostile: Lying,  # noqa: F811
    project: Path,
) -> None:
    numbers = itertools.count()

    def forever(request: Request, honest: Honest) -> tuple[int, Any]:
        size = int(request.args["limit"])
        return 200, envelope([finetune(next(numbers)) for _ in range(size)])

    hostile.lie("GET", PUBLIC, forever)
    result = cli("public", "-c", project, "--page-size", "1000")
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"Error: list public finetunes (offset {cloudflare.MAX_PUBLIC - 1000:,}): more than "
        f"{cloudflare.MAX_PUBLIC:,} public finetunes, and the pages go on; stopped (does the "
        "API honour `offset`?)\n"
    )
    assert len(hostile.seen) == cloudflare.MAX_PUBLIC // 1000


def test_public_stops_after_its_most_pages(
    cli: Cli,
    hostile: Lying,  # noqa: F811
    project: Path,
) -> None:
    numbers = itertools.count()
    hostile.lie("GET", PUBLIC, lambda request, honest: (200, envelope([finetune(next(numbers))])))
    result = cli("public", "-c", project, "--page-size", "1")
    assert result.exit_code == 1, result.output
    assert result.stderr.endswith(
        f"read {cloudflare.MAX_PUBLIC_PAGES:,} pages and the pages go on; stopped (does the API "
        "honour `offset`?)\n"
    )
    assert len(hostile.seen) == cloudflare.MAX_PUBLIC_PAGES


def test_a_catalogue_without_end_is_left_for_the_snapshot(
    cli: Cli,
    hostile: Lying,  # noqa: F811
    project: Path,
) -> None:
    numbers = itertools.count()

    first: list[Any] = []

    def forever(request: Request, honest: Honest) -> tuple[int, Any]:
        if not first:  # the real catalogue's first page, then pages of new models made of it
            first.append(honest()[1]["result"])
            return 200, envelope(first[0] + [dict(first[0][0], name="@cf/x/model")] * 50)
        made = [dict(first[0][0], name=f"@cf/x/model-{next(numbers)}") for _ in range(50)]
        return 200, envelope(made)

    hostile.lie("GET", r"/accounts/[^/]+/ai/models/search", forever)
    result = cli("plan", "-c", project)
    assert result.exit_code == 0, result.output
    assert (
        f"could not be read (read the model catalogue of account "
        f"0123456789abcdef0123456789abcdef (page {cloudflare.MAX_CATALOGUE_PAGES}): read "
        f"{cloudflare.MAX_CATALOGUE_PAGES} pages and the pages go on; stopped)"
    ) in result.stdout
    assert len(hostile.seen) == cloudflare.MAX_CATALOGUE_PAGES + 1  # and one list


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (
            (f"t{n}" for n in itertools.count()),
            f"read {cohere_api.MAX_PAGES} pages and the pages go on; stopped",
        ),
        (itertools.cycle(["a", "b", "c"]), 'page token "a" came back twice'),
        (itertools.repeat("t" * 5000), "a page token of 5,000 characters"),
    ],
    ids=["endless", "circle", "huge-token"],
)
def test_cohere_pages_end(
    cli: Cli,
    cohere: SandboxServer,  # noqa: F811
    config: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    tokens: Iterator[str],
    expected: str,
) -> None:
    with lying(cohere.url) as (double, url):
        monkeypatch.setenv("CO_API_URL", url)
        double.lie(
            "GET",
            cohere_api.MODELS,
            lambda request, honest: (
                200,
                {"finetuned_models": [], "next_page_token": next(tokens)},
            ),
        )
        result = cli("plan", "-c", config)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: list finetuned models: "), result.stderr
    assert expected in result.stderr
