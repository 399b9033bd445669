"""No code path unpickles untrusted data.

Corrupt .onnx files, metadata from a newer schema and sha256 mismatches are refused in
tests/test_cli.py, tests/test_metadata.py and tests/test_model.py; this file adds the static
guarantee: the runtime (``bridge/``) never uses pickle-based loaders, and the training side
(``export/``) only loads checkpoints with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# calls that can execute code hidden in a file (pickle and everything built on it)
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "joblib", "shelve", "marshal", "torch"}
UNSAFE_CALLS = {"pickle.load", "pickle.loads", "np.load", "numpy.load", "torch.load", "yaml.load", "marshal.loads"}


def _calls(tree: ast.AST) -> list[tuple[str, ast.Call]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            try:
                out.append((ast.unparse(node.func), node))
            except Exception:  # pragma: no cover - unparse never fails on parsed code
                continue
    return out


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _resolve(tree: ast.Module, expr: ast.expr) -> str:
    """Source of ``expr``, or of the module-level value a bare name is bound to."""
    if isinstance(expr, ast.Name):
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == expr.id for t in node.targets):
                return ast.unparse(node.value)
    return ast.unparse(expr)


def test_runtime_never_imports_a_pickle_loader() -> None:
    files = sorted((ROOT / "bridge").rglob("*.py"))
    assert files
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [(node.module or "").split(".")[0]]
            else:
                continue
            assert not set(names) & UNSAFE_MODULES, f"{path.relative_to(ROOT)}:{node.lineno} imports {names}"
        for name, call in _calls(tree):
            if name in UNSAFE_CALLS:
                # np.load is fine only with allow_pickle=False spelled out
                ok = name.endswith("np.load") and isinstance(_kw(call, "allow_pickle"), ast.Constant)
                ok = ok and _kw(call, "allow_pickle").value is False  # type: ignore[union-attr]
                assert ok, f"{path.relative_to(ROOT)}:{call.lineno} calls {name}"


def test_training_side_loads_checkpoints_weights_only() -> None:
    n_loads = 0
    for path in sorted((ROOT / "export").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for name, call in _calls(tree):
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            if name == "torch.load":
                n_loads += 1
                flag = _kw(call, "weights_only")
                assert isinstance(flag, ast.Constant) and flag.value is True, (
                    f"{where}: torch.load without weights_only"
                )
            elif name in {"pickle.load", "pickle.loads", "marshal.loads"}:
                raise AssertionError(f"{where} calls {name}")
            elif name == "yaml.load":
                loader = _kw(call, "Loader")
                assert loader is not None and "Safe" in _resolve(tree, loader), f"{where}: yaml.load without SafeLoader"
            elif name in {"np.load", "numpy.load"}:
                flag = _kw(call, "allow_pickle")
                assert flag is None or (isinstance(flag, ast.Constant) and flag.value is False), where
    assert n_loads > 0  # the scan sees the checkpoint loaders it is meant to check
