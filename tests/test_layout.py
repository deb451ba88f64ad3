"""The layout DESIGN.md asks for, read by the `wmfm.*` import names (relative and function-level
imports included, which a file-path reading misses): no cycle between the packages, the
service apart from its tools, and docs that stay inside the repository."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"wmfm": "wmfm", "sim": "wmfm.sim", "model": "wmfm.model", "xapp": "wmfm.xapp", "proto": "wmfm.proto"}


def modules() -> dict[str, Path]:
    out = {}
    for folder, pkg in FOLDERS.items():
        for f in (ROOT / folder).rglob("*.py"):
            if f.name == "__main__.py":                  # `python -m ...` entry points: nothing imports them
                continue
            parts = list(f.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([pkg, *parts])] = f
    return out


def _is_main_guard(node) -> bool:
    return isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)


def imports(name: str, path: Path) -> set[str]:
    """Every wmfm.* module `name` imports, anywhere in the file except under `if __name__ ==
    "__main__":` (a script's entry point, e.g. `python sim/replay.py`: it runs, nothing imports it)."""
    is_pkg = path.name == "__init__.py"
    found = set()
    tree = ast.parse(path.read_text())
    tree.body = [n for n in tree.body if not _is_main_guard(n)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("wmfm")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("wmfm"):
                found.add(mod)
                found |= {f"{mod}.{a.name}" for a in node.names}      # `from pkg import module`
    return found


def unit(mod: str) -> str:
    """The node of the dependency graph: a package (sim, model, xapp, proto) or a top-level module."""
    parts = mod.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else mod


def graph() -> dict[str, set[str]]:
    mods = modules()
    g: dict[str, set[str]] = {}
    for name, path in mods.items():
        for dep in imports(name, path):
            while dep not in mods and "." in dep:                   # `from wmfm.x import name` -> wmfm.x
                dep = dep.rsplit(".", 1)[0]
            if dep in mods and unit(dep) != unit(name):
                g.setdefault(unit(name), set()).add(unit(dep))
    return g


def test_the_import_graph_has_no_cycle():
    g = graph()
    state: dict[str, int] = {}

    def visit(n, path):
        state[n] = 1
        for d in sorted(g.get(n, ())):
            assert state.get(d) != 1, "import cycle: " + " -> ".join([*path, n, d])
            if d not in state:
                visit(d, [*path, n])
        state[n] = 2
    for n in sorted(g):
        if n not in state:
            visit(n, [])
    assert {"wmfm.sim", "wmfm.model", "wmfm.xapp"} <= set(g)


def test_the_service_imports_no_tool_and_the_model_only_in_its_torch_backend():
    mods = modules()
    for name, path in mods.items():
        deps = imports(name, path)
        if name.startswith("wmfm.xapp"):
            assert not any(d.startswith("wmfm.sim") for d in deps), name
            model = {d for d in deps if d.startswith("wmfm.model")}
            allowed = {"wmfm.model.checkpoint", "wmfm.model.checkpoint.load_graphs"}
            assert model <= allowed and (not model or name == "wmfm.xapp.inference.torch_backend"), (name, model)
        if name.startswith("wmfm.model"):
            assert not any(d.startswith(("wmfm.sim", "wmfm.xapp")) for d in deps), name
        if name.startswith("wmfm.sim"):                     # the xApp's public pieces only
            xapp = {d.split(".")[2] for d in deps if d.startswith("wmfm.xapp.")}
            assert xapp <= {"codec", "e2ap", "inference", "redis_server", "records"}, (name, xapp)


def test_the_service_folder_holds_no_benchmark_load_generator_or_process_spawning():
    names = {p.stem for p in (ROOT / "xapp").rglob("*.py")}
    assert not names & {"bench", "bench_xapp", "loadgen", "spawn", "replay"}
    assert len([p for p in ROOT.glob("*/**/metrics.py") if ".venv" not in p.parts]) == 1
    assert len([p for p in ROOT.glob("*/**/config.py") if ".venv" not in p.parts]) == 1


def test_docstrings_describe_the_present():
    for path in modules().values():
        text = path.read_text()
        assert not re.search(r"built by the \w+ issue|no longer", text), path


LINK = re.compile(r"\]\(([^)#\s]*)(?:#([^)]*))?\)")


def anchors(md: Path) -> set[str]:
    """The heading anchors of a Markdown page, as GitHub writes them."""
    out = set()
    for h in re.findall(r"^#+\s+(.*)$", md.read_text(), re.M):
        out.add(re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-"))
    return out


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_every_link_in_the_docs_stays_in_the_repository_and_exists():
    for md in markdown_files():
        for target, anchor in LINK.findall(md.read_text()):
            assert "://" not in target and not target.startswith("mailto:"), f"{md.name}: external link {target}"
            dest = (md.parent / target).resolve() if target else md
            assert dest.is_relative_to(ROOT) and dest.exists(), f"{md.relative_to(ROOT)}: {target} does not exist"
            if anchor and dest.suffix == ".md":
                assert anchor in anchors(dest), f"{md.relative_to(ROOT)}: {target}#{anchor}: no such heading"
        assert "../shared" not in md.read_text(), md


def test_the_readme_is_a_short_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    for command in ("make demo", "make test"):
        assert command in text


def test_the_reference_pages_are_current():
    from wmfm.reference import PAGES
    for name, make in PAGES.items():
        assert (ROOT / "docs" / "reference" / name).read_text() == make(), \
            f"docs/reference/{name} is stale: run `make reference`"


def doc_commands() -> list[tuple[str, str]]:
    """(file, command) of every `wmfm ...` line in the docs' bash blocks (continuations joined)."""
    out = []
    for md in markdown_files():
        for block in re.findall(r"```bash\n(.*?)```", md.read_text(), re.S):
            for cmd in block.replace("\\\n", " ").splitlines():
                cmd = re.sub(r"\s+#.*$", "", cmd).split(" > ")[0].strip().rstrip("&").strip()
                if cmd.startswith("wmfm ") and "[" not in cmd and "|" not in cmd:
                    out.append((md.name, cmd))
    return out


def test_every_command_in_the_docs_parses_with_the_real_command_line():
    import shlex

    from wmfm.cli import build_parser
    cmds = doc_commands()
    assert len(cmds) >= 8 and any(f == "README.md" for f, _ in cmds)
    for f, cmd in cmds:
        try:
            build_parser().parse_args(shlex.split(cmd)[1:])
        except Exception as exc:  # noqa: BLE001 - the message names the command
            raise AssertionError(f"{f}: {cmd}: {exc}") from None
