"""ARCHITECTURE.md stays true: its layers hold (no module imports from a layer above its own), no modules import
each other in a circle, and every file it links to exists."""

import ast
import re
from pathlib import Path

from conftest import REPO

# The layers of ARCHITECTURE.md, bottom first: module prefixes (the longest matching prefix decides).
LAYERS = {
    "base": ["vc_app.config", "vc_app.errors", "vc_app.paths", "vc_app.devices"],
    "signal": ["vc_app.mel", "vc_app.audio", "vc_app.features", "vc_app.corpus"],
    "vocoders / model": ["vc_app.models", "vc_app.vocoders", "vc_app.bundle", "vc_app.state_dicts", "vc_app.hub"],
    "orchestration": ["vc_app.converter", "vc_app.batch", "vc_app.ui_service", "vc_app.ui_limits", "vc_app.resynth",
                      "vc_app.evaluate", "vc_app.train", "vc_app.pairs", "vc_app.voice", "vc_app.voice_library",
                      "vc_app.targets", "vc_app.streaming"],
    "entry points": ["vc_app.cli", "vc_app.commands", "vc_app.ui", "vc_app.recipe", "vc_app.examples",
                     "vc_app.__main__", "vc_app.train.__main__", "vc_app"],
}
ORDER = list(LAYERS)


def layer_of(module: str) -> str:
    matches = [(len(p), name) for name, prefixes in LAYERS.items() for p in prefixes
               if module == p or module.startswith(p + ".")]
    return max(matches)[1]


def package_modules(root: Path) -> dict[str, Path]:
    """Every module of the vc_app package under `root`: dotted name -> file (a package is its __init__.py)."""
    modules = {}
    for path in sorted((root / "vc_app").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The vc_app modules a file imports anywhere (top level, inside functions, under TYPE_CHECKING):
    `import vc_app.x`, `import vc_app`, `from vc_app.x import y` and `from vc_app import x` (the module
    vc_app.x when it is one, else the package vc_app itself)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                      for a in node.names}
    return {name for name in found if name in known}


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the vc_app modules it imports (a module importing itself is not an arrow)."""
    modules = package_modules(root)
    return {name: imported_modules(path, set(modules)) - {name} for name, path in modules.items()}


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other in a circle (strongly connected components of more than
    one module), each sorted; Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
            if len(group) > 1:
                circles.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return circles


def test_no_module_imports_from_a_layer_above_its_own():
    upward = [f"{module} ({layer_of(module)}) imports {name} ({layer_of(name)})"
              for module, names in import_graph(REPO).items() for name in sorted(names)
              if ORDER.index(layer_of(name)) > ORDER.index(layer_of(module))]
    assert upward == []


def test_no_modules_import_each_other_in_a_circle():
    assert import_circles(import_graph(REPO)) == []


def test_the_checks_see_bare_package_imports_and_circles_inside_a_layer(tmp_path):
    """The two holes the layer test once had: `from vc_app import x` / `import vc_app` were not read, and two
    modules of one layer importing each other (lazily, inside functions) passed."""
    package = tmp_path / "vc_app"
    (package / "evaluate").mkdir(parents=True)
    (package / "__init__.py").write_text("__version__ = '0'\n")
    (package / "evaluate" / "__init__.py").write_text("")
    (package / "voice.py").write_text("def version():\n    from vc_app import __version__\n    return __version__\n\n"
                                      "def hook():\n    from vc_app.evaluate.similarity import embed\n")
    (package / "evaluate" / "similarity.py").write_text("def embed():\n    from vc_app import voice\n")
    graph = import_graph(tmp_path)
    assert graph["vc_app.voice"] == {"vc_app", "vc_app.evaluate.similarity"}
    assert graph["vc_app.evaluate.similarity"] == {"vc_app.voice"}
    assert import_circles(graph) == [["vc_app.evaluate.similarity", "vc_app.voice"]]


def test_every_file_architecture_md_links_to_exists():
    text = (REPO / "ARCHITECTURE.md").read_text()
    targets = {t.split("#")[0] for t in re.findall(r"\]\(([^)]+)\)", text) if not t.startswith(("http", "#"))}
    assert targets, "ARCHITECTURE.md links to no file"
    assert sorted(t for t in targets if not (REPO / t).exists()) == []
