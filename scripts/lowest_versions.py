"""Prints a pip constraints file pinning every runtime dependency to its floor.

The floors are the lower bounds that ``pyproject.toml`` gives the package's dependencies
and its ``redis`` and ``testing`` extras: the versions users may install, which
``scripts/test-lowest`` installs and tests. A runtime dependency without a lower bound
is an error: it would claim support for every version ever released.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

EXTRAS = ("redis", "testing")
NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
FLOOR = re.compile(r">=\s*([^,;\s]+)")


def floors(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in EXTRAS:
        requirements += project["optional-dependencies"][extra]
    pins = []
    for requirement in requirements:
        name, floor = NAME.match(requirement), FLOOR.search(requirement)
        if name is None or floor is None:
            raise SystemExit(f"pyproject.toml: {requirement!r} has no lower bound (>=)")
        pins.append(f"{name.group(1)}=={floor.group(1)}")
    return pins


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    sys.stdout.write("".join(f"{pin}\n" for pin in floors(root / "pyproject.toml")))
