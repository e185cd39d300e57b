"""The import graph of the ``rlipv2`` package has no circles, and the evaluation layers point one way.

Every ``import`` / ``from ... import`` of every module is read with ``ast`` (function-level imports
included: a lazy import is still a dependency). A circle fails the test with the modules on it.

Layers of the evaluation package: scoring cores (``hico_core``, ``hico_io``, ``oi_core``, ``vcoco_core``,
``vg``, ``ap``, ``boxes``, ``nms``, ``plots``) <- Detectron2 evaluators (``*_evaluator``) and <- CLIs
(``hico``, ``oi``, ``vcoco``). A core imports neither, an evaluator never imports a CLI, and a CLI
never imports an evaluator.
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rlipv2"

# Circles outside the scope of a change, allowed explicitly (none today).
ALLOWED_CIRCLES: list[set] = []

EVAL = "rlipv2.evaluation."
CORES = {EVAL + m for m in ("hico_core", "hico_io", "oi_core", "vcoco_core", "vg", "ap", "boxes", "nms", "plots",
                                   "units")}
EVALUATORS = {EVAL + m for m in ("hico_evaluator", "vcoco_evaluator", "sgg_evaluator")}
CLIS = {EVAL + m for m in ("hico", "oi", "vcoco")}


def _modules() -> dict:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        mods[".".join(parts)] = (path, is_pkg)
    return mods


def import_graph() -> dict:
    """module -> set of rlipv2 modules it imports (resolved relative imports, submodules of ``from x import y``)."""
    mods = _modules()
    graph = {}
    for name, (path, is_pkg) in mods.items():
        base = name.split(".") if is_pkg else name.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    target = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                deps.add(target)
                deps.update(f"{target}.{a.name}" for a in node.names)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def circles(graph: dict) -> list:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.add(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(comp)
    return out


def test_the_package_has_no_import_circles():
    found = [c for c in circles(import_graph()) if c not in ALLOWED_CIRCLES]
    assert not found, "import circles: " + "; ".join(" <-> ".join(sorted(c)) for c in found)


def test_circle_detection_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_evaluation_layers_point_one_way():
    graph = import_graph()
    assert CORES | EVALUATORS | CLIS <= set(graph), sorted((CORES | EVALUATORS | CLIS) - set(graph))
    for core in CORES:
        assert not graph[core] & (EVALUATORS | CLIS), (core, graph[core] & (EVALUATORS | CLIS))
    for ev in EVALUATORS:
        assert not graph[ev] & CLIS, (ev, graph[ev] & CLIS)
    for cli in CLIS:
        assert not graph[cli] & EVALUATORS, (cli, graph[cli] & EVALUATORS)


def test_text_encoder_and_alif_encoder_do_not_import_each_other():
    graph = import_graph()
    te, alif = "rlipv2.modeling.text_encoder", "rlipv2.modeling.alif_encoder"
    assert alif not in graph[te] and te not in graph[alif]
