"""The documentation site: its code comes from checked files, its reference is the public API."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from graphql import build_schema, parse, validate

import channels_graphql_typed as cgt

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
INCLUDE = re.compile(r'^--8<-- "([^"]+)"$', re.MULTILINE)
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
REFERENCE = re.compile(r"^::: (\S+)$", re.MULTILINE)
GRAPHQL_BLOCK = re.compile(r"```graphql\n(.*?)```", re.DOTALL)
OPERATION_PAGES = {Path("guides/chat-example.md")}
"""Pages whose GraphQL blocks are operations run against the chat example's schema."""
SDL_PAGES = {Path("guides/model-subscriptions.md")}
"""Pages whose GraphQL blocks are excerpts of the guide schema's SDL."""


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


def chat_example_sdl(tmp_path: Path) -> str:
    """The SDL of the chat example's schema, printed by the example's own Django."""
    environment = {**os.environ, "CHAT_DATABASE": str(tmp_path / "chat.sqlite3")}
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    printed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "chat" / "manage.py"),
            "shell",
            "--no-imports",
            "-c",
            "from chat.schema import schema; print(schema.as_str())",
        ],
        cwd=ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return printed.stdout


def graphql_blocks() -> dict[Path, list[str]]:
    found = {}
    for path, text in pages().items():
        blocks = [unindented(block) for block in GRAPHQL_BLOCK.findall(text)]
        if blocks:
            found[path.relative_to(DOCS)] = blocks
    return found


def unindented(block: str) -> str:
    return "\n".join(line.strip() for line in block.strip().splitlines())


def collapsed(text: str) -> str:
    return " ".join(text.split())


def test_every_graphql_block_is_checked() -> None:
    assert set(graphql_blocks()) == OPERATION_PAGES | SDL_PAGES


def test_the_operations_of_the_guides_are_valid_against_their_schema(tmp_path: Path) -> None:
    schema = build_schema(chat_example_sdl(tmp_path))
    blocks = graphql_blocks()
    operations = [block for page in OPERATION_PAGES for block in blocks[page]]
    assert operations
    for operation in operations:
        assert validate(schema, parse(operation)) == [], operation


def test_the_sdl_excerpts_are_what_the_schema_prints() -> None:
    from examples.guide.chat import schema

    printed = collapsed(schema.as_str())
    for page in SDL_PAGES:
        for block in graphql_blocks()[page]:
            for line in filter(None, block.splitlines()):
                assert collapsed(line.replace("{", "{ ").replace("}", " }")) in printed, line
