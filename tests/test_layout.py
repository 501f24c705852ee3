"""The layout a newcomer reads from the folder names holds: flows apart from the library."""

from __future__ import annotations

import ast
import re

from tests.conftest import REPO_ROOT

PACKAGES = sorted(path.parent.name for path in REPO_ROOT.glob("*/__init__.py"))


def test_no_package_is_named_like_a_flow_module() -> None:
    # Prefect loads a flow file with its folder first on sys.path: a package named like one of
    # the flow modules would be shadowed by it inside every flow run.
    flow_modules = {path.stem for path in (REPO_ROOT / "flows").glob("*.py")}
    assert not flow_modules & set(PACKAGES)


def test_flows_hold_only_flow_definitions_and_read_in_a_screen() -> None:
    for path in (REPO_ROOT / "flows").glob("*.py"):
        if path.name == "__init__.py":
            continue
        assert len(path.read_text().splitlines()) <= 100, path.name
        tree = ast.parse(path.read_text())
        decorated = [
            node.name
            for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and any("flow" in ast.unparse(d) for d in node.decorator_list)
        ]
        assert decorated, f"{path.name} defines no flow"


def test_the_readme_layout_names_every_package_and_top_level_folder() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([\w.-]+)/`", layout, flags=re.MULTILINE))
    folders = {
        path.name
        for path in REPO_ROOT.iterdir()
        if path.is_dir() and not path.name.startswith((".", "_")) and path.name != "data"
    }
    assert set(PACKAGES) <= listed
    assert folders <= listed


def test_the_image_holds_every_package_the_wheel_ships_and_the_dbt_project() -> None:
    # The image copies what .dockerignore lets through (`COPY . .`); the wheel's package list
    # decides what the project is.
    import tomllib

    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    shipped = set(pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    let_through = {line.removeprefix("!") for line in lines if line.startswith("!")}
    assert "*" in lines and set(PACKAGES) - {"tests"} == shipped
    assert let_through == shipped | {"dbt", "pyproject.toml", "uv.lock", "README.md"}
