"""The README's commands, run as a newcomer would: every `bash` block carries a marker, and the
`run` ones are executed in order in a fresh copy of this checkout, on a free port."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.support.prefect_server import free_port

README = (REPO_ROOT / "README.md").read_text()
BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<marker>[^>]*?) -->\n\s*)?```bash\n(?P<body>.*?)```", re.S
)
BLOCKS = [(m["marker"] or "", m["body"]) for m in BLOCK.finditer(README)]
RUN_BLOCKS = [body for marker, body in BLOCKS if marker == "run"]


def test_every_bash_block_in_the_readme_says_how_it_is_exercised() -> None:
    assert BLOCKS, "the README has no bash blocks"
    unmarked = [body for marker, body in BLOCKS if not marker]
    assert unmarked == [], "mark each bash block: run / ci / covered by <test> / production"
    for marker, _ in BLOCKS:
        named = re.findall(r"tests/[\w/]+\.py", marker)
        assert all((REPO_ROOT / path).exists() for path in named), marker
        assert marker == "run" or marker.startswith(("ci", "covered by", "production")), marker


def test_the_ci_block_is_what_ci_runs() -> None:
    ci_blocks = [body for marker, body in BLOCKS if marker.startswith("ci")]
    ci_script = (REPO_ROOT / ".ci/run").read_text()
    for body in ci_blocks:
        for line in body.splitlines():
            command = line.split("#", 1)[0].strip()
            assert command in ci_script, f"{command!r} is not in .ci/run"


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """This checkout's files (tracked and new, as git sees them) in a fresh folder, no state."""
    root = tmp_path_factory.mktemp("readme") / "prefect-elt"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    # The private uv is a tool, not state: reuse it instead of downloading it again.
    if (REPO_ROOT / ".tools").exists():
        (root / ".tools").symlink_to(REPO_ROOT / ".tools")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "VIRTUAL_ENV"))}
    env["PORT"] = str(free_port())
    try:
        yield root, env
    finally:
        subprocess.run(["make", "stop"], cwd=root, env=env, capture_output=True, timeout=60)


def run_block(body: str, cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", body],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"README block failed:\n{body}\n---\n{output[-5000:]}"
    return output


@pytest.mark.server  # `make demo` starts a Prefect server of its own
@pytest.mark.timeout(1500)
def test_the_readme_run_blocks_work_in_a_fresh_checkout_and_a_second_demo_is_incremental(
    checkout: tuple[Path, dict[str, str]],
) -> None:
    root, env = checkout
    outputs = [run_block(body, root, env) for body in RUN_BLOCKS]
    demo = outputs[0]
    assert "Run: Completed" in demo, demo[-3000:]
    assert "from scratch" in demo and "Top customers" in demo
    links = re.findall(r"View at (\S+)", demo)
    assert links and len(links) == len(set(links)), links  # a line per run, not two
    # Nothing at exit (DuckDB's extension once listed ~40 "leaked" objects after the last line).
    assert "nanobind" not in demo, demo[-3000:]
    assert "Deployed: local-daily, local-hourly, local-on-demand, local-window" in "".join(outputs)
    again = run_block(RUN_BLOCKS[0], root, env)
    assert "incrementally (only the new rows)" in again, again[-3000:]
    assert "built only what changed" in again and "left the rest as built" in again
    assert "nanobind" not in again, again[-3000:]
