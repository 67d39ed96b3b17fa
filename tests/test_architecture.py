"""ARCHITECTURE.md stays true: its layers hold (no module imports from a layer above its own), and every
file it links to exists."""

import ast
import re

from conftest import REPO

# The layers of ARCHITECTURE.md, bottom first: module prefixes (the longest matching prefix decides).
LAYERS = {
    "base": ["vc_app.config", "vc_app.errors", "vc_app.paths", "vc_app.devices"],
    "signal": ["vc_app.mel", "vc_app.audio", "vc_app.features", "vc_app.corpus"],
    "vocoders / model": ["vc_app.models", "vc_app.vocoders", "vc_app.bundle", "vc_app.state_dicts", "vc_app.hub"],
    "orchestration": ["vc_app.converter", "vc_app.batch", "vc_app.ui_service", "vc_app.ui_limits", "vc_app.resynth",
                      "vc_app.evaluate", "vc_app.train", "vc_app.pairs", "vc_app.voice"],
    "entry points": ["vc_app.cli", "vc_app.commands", "vc_app.ui", "vc_app.recipe", "vc_app.examples",
                     "vc_app.__main__", "vc_app.train.__main__", "vc_app"],
}
ORDER = list(LAYERS)


def layer_of(module: str) -> str:
    matches = [(len(p), name) for name, prefixes in LAYERS.items() for p in prefixes
               if module == p or module.startswith(p + ".")]
    return max(matches)[1]


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for path in sorted((REPO / "vc_app").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        own = layer_of(module)
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.startswith("vc_app.") and ORDER.index(layer_of(name)) > ORDER.index(own):
                    upward.append(f"{module} ({own}) imports {name} ({layer_of(name)})")
    assert upward == []


def test_every_file_architecture_md_links_to_exists():
    text = (REPO / "ARCHITECTURE.md").read_text()
    targets = {t.split("#")[0] for t in re.findall(r"\]\(([^)]+)\)", text) if not t.startswith(("http", "#"))}
    assert targets, "ARCHITECTURE.md links to no file"
    assert sorted(t for t in targets if not (REPO / t).exists()) == []
