"""The documentation site: its code comes from checked files, its reference is the public API."""

from __future__ import annotations

import re
from pathlib import Path

import channels_graphql_typed as cgt

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
INCLUDE = re.compile(r'^--8<-- "([^"]+)"$', re.MULTILINE)
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
REFERENCE = re.compile(r"^::: (\S+)$", re.MULTILINE)


def pages() -> dict[Path, str]:
    return {path: path.read_text() for path in DOCS.rglob("*.md")}


def test_every_python_sample_is_included_not_pasted() -> None:
    for path, text in pages().items():
        for block in PYTHON_BLOCK.findall(text):
            assert INCLUDE.fullmatch(block.strip()), f"{path}: a Python sample pasted: {block}"


def test_every_included_file_exists_and_is_checked() -> None:
    for path, text in pages().items():
        for include in INCLUDE.findall(text):
            name, _, section = include.partition(":")
            source = ROOT / name
            assert source.is_file(), f"{path}: {name} does not exist"
            if section:
                content = source.read_text()
                assert f"--8<-- [start:{section}]" in content, f"{path}: {include}"
                assert f"--8<-- [end:{section}]" in content, f"{path}: {include}"
            if source.suffix == ".py":
                # mypy.ini checks examples/ and tests/.
                assert source.relative_to(ROOT).parts[0] in {"examples", "tests"}, include


def test_the_reference_documents_the_public_api_only() -> None:
    documented = REFERENCE.findall((DOCS / "reference" / "api.md").read_text())
    assert sorted(documented) == sorted(f"channels_graphql_typed.{name}" for name in cgt.__all__)
    testing = REFERENCE.findall((DOCS / "reference" / "testing.md").read_text())
    assert testing == ["channels_graphql_typed.testing"]


async def test_the_quick_start_serves_its_schema() -> None:
    from channels_graphql_typed.testing import graphql_ws_client
    from examples.minimal.schema import MinimalConsumer

    async with graphql_ws_client(MinimalConsumer.as_asgi()) as client:
        result = await client.execute('query { hello(name: "docs") }')
        assert result.data == {"hello": "Hello, docs!"}
        async with client.subscribe("subscription { count(to: 2) }") as stream:
            assert [item.data async for item in stream] == [{"count": 1}, {"count": 2}]
