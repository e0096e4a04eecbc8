"""The shape of the package (docs/architecture.md): cheap import, no import cycle, small modules, one name each.

These tests read the *installed* package's sources, and the repository's own
files for the documentation checks.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import types
from pathlib import Path

import vsum

PACKAGE = Path(vsum.__file__).resolve().parent
REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 800



def package_modules() -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` file of the installed package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The vsum modules ``name`` imports anywhere in its source (module level or inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    found.add(f"{target}.{alias.name}")
                elif target in known and f"{target}.{alias.name}" not in ("vsum._core", "vsum._cuda"):
                    found.add(target)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
    found.discard(name)
    return found


def test_import_vsum_imports_no_torch_and_summarize_is_a_function():
    code = ("import sys, inspect, vsum\n"
            "assert 'torch' not in sys.modules, 'import vsum imported torch'\n"
            "import vsum.boxes, vsum.proposals, vsum.features, vsum.flow, vsum.pairs, vsum.clusters, vsum.render, "
            "vsum.report, vsum.evaluate, vsum.io, vsum.threads, vsum.sd_filter, vsum.cli, vsum.manifest, vsum.runlock, "
            "vsum.digests, vsum.mask_batches, vsum.pairs_file\n"
            "assert 'torch' not in sys.modules, 'a stage module other than stage 1 imported torch'\n"
            "assert inspect.isfunction(vsum.summarize), type(vsum.summarize)\n"
            "assert inspect.isfunction(vsum.set_num_threads)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_no_import_cycle():
    modules = package_modules()
    graph = {name: imported_modules(name, path, set(modules)) for name, path in modules.items()}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in graph:
        if name not in index:
            visit(name)
    assert not cycles, f"import cycles among vsum modules: {cycles}"
    assert graph["vsum.pipeline"] >= {"vsum.masks", "vsum.proposals", "vsum.features", "vsum.pairs",
                                      "vsum.clusters", "vsum.render"}  # the walker sees imports


def test_no_module_above_the_size_limit():
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in package_modules().items()}
    too_big = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not too_big, f"modules above {MAX_LINES} lines: {too_big}"


def test_production_code_never_imports_the_references():
    modules = package_modules()
    for name, path in modules.items():
        if name.startswith("vsum.reference"):
            continue
        imported = imported_modules(name, path, set(modules))
        assert not {m for m in imported if m.startswith("vsum.reference")}, f"{name} imports vsum.reference"


def test_no_module_is_callable():
    import importlib

    for name in package_modules():
        if name == "vsum.__main__":  # `python -m vsum`: running the command is its whole job
            continue
        module = importlib.import_module(name)
        assert type(module) is types.ModuleType and not callable(module), name


#: Each function of the compiled core and the NumPy reference it is checked against (tests/test_*.py).
KERNEL_REFERENCES = {
    "box_iou": "vsum.reference.boxes.iou",
    "box_overlap_min": "vsum.reference.boxes.overlap_min",
    "box_coverage": "vsum.reference.boxes.coverage",
    "felzenszwalb": "vsum.reference.segmentation.segment",
    "selective_search": "vsum.reference.selective_search.selective_search",
    "fhog": "vsum.reference.hog.fhog",
    "hog_describe": "vsum.reference.hog.describe",
    "flow_match": "vsum.reference.flow.match",
    "flow_match_batch": "vsum.reference.flow.match",
    "flow_match_field": "vsum.reference.dense.match_field",
    "flow_fill": "vsum.reference.fill.fill_flow",
    "pairs_topk_merge": "vsum.reference.pairs.topk_merge",
}
#: Functions of the compiled core that compute nothing (thread control).
NOT_KERNELS = {"get_num_threads", "set_num_threads"}


def test_every_compiled_kernel_has_a_numpy_reference():
    import importlib

    from vsum._compiled import _core

    functions = {n for n in dir(_core) if not n.startswith("_") and callable(getattr(_core, n))}
    assert functions - NOT_KERNELS == set(KERNEL_REFERENCES), "a kernel was added or removed: update this table"
    for kernel, reference in KERNEL_REFERENCES.items():
        module, _, function = reference.rpartition(".")
        assert callable(getattr(importlib.import_module(module), function)), (kernel, reference)


def test_the_method_and_architecture_live_in_the_repository():
    method, architecture = REPO / "docs" / "method.md", REPO / "docs" / "architecture.md"
    assert method.is_file() and architecture.is_file()
    text = method.read_text(encoding="utf-8")
    for stage in ("Stage 1", "Stage 2", "Stage 3", "Stage 4", "Stage 5"):
        assert stage in text, stage
    outside = ("ALGORITHM" + ".md", "ARCHITECTURE" + ".md")  # the shared documents a clone does not have
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    files = tracked.stdout.split() if tracked.returncode == 0 else [
        str(p.relative_to(REPO)) for p in REPO.rglob("*") if p.is_file() and ".git" not in p.parts]
    citing = []
    for rel in files:
        path = REPO / rel
        if path.suffix in {".png", ".npz", ".jpg", ".whl"} or not path.is_file():
            continue
        body = path.read_text(encoding="utf-8", errors="replace")
        citing += [f"{rel}: {name}" for name in outside if name in body]
    assert not citing, f"files citing documents outside the repository: {citing}"
