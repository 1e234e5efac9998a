"""channels_graphql_typed.testing without daphne names the extra that installs it."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_a_missing_daphne_names_the_testing_extra() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["daphne"] = None  # as if it were not installed
        try:
            import channels_graphql_typed.testing
        except ModuleNotFoundError as exc:
            print(exc.name, exc)
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert completed.stdout.startswith("daphne "), completed.stdout + completed.stderr
    assert "pip install 'channels-graphql-typed[testing]'" in completed.stdout
