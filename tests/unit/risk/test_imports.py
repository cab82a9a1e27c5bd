"""The risk core imports nothing that does chain, bridge, worker or Redis I/O (DESIGN §3)."""

import ast
import subprocess
import sys
from pathlib import Path

import orchestrator.risk

FORBIDDEN = ("chains", "bridges", "workers", "redis", "web3", "solana", "solders", "celery",
             "eth_account", "eth_abi", "eth_utils", "aiohttp", "requests", "httpx")
RISK_DIR = Path(orchestrator.risk.__file__).parent
ROOT = RISK_DIR.parent.parent


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; use absolute imports")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            raise AssertionError(f"{path}: dynamic import")
    return found


def module_file(name: str) -> Path | None:
    """The project file for ``orchestrator.x.y`` (module or package), else None."""
    rel = Path(*name.split("."))
    for candidate in (ROOT / rel.with_suffix(".py"), ROOT / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_no_forbidden_import_anywhere_reachable_from_risk() -> None:
    """Walk risk/*.py and, transitively, every project module they import."""
    todo = sorted(RISK_DIR.glob("*.py"))
    assert len(todo) >= 9
    seen: set[Path] = set()
    offenders: list[str] = []
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_modules(path):
            if name.split(".")[0] in FORBIDDEN:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
            elif name.split(".")[0] in ("orchestrator", "shared") and (target := module_file(name)):
                todo.append(target)
    assert not offenders, offenders
    assert ROOT / "shared" / "errors.py" in seen  # the walk did leave risk/


def test_importing_every_risk_module_loads_no_forbidden_package() -> None:
    names = sorted(f"orchestrator.risk.{p.stem}" for p in RISK_DIR.glob("*.py"))
    code = (f"import sys\nfor n in {names!r}: __import__(n)\n"
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == ""


def test_walker_sees_plain_from_and_nested_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import web3\nfrom chains.base import ChainRef\n"
                     "def f():\n    import redis.asyncio\n")
    assert {"web3", "chains.base", "redis.asyncio"} <= imported_modules(probe)
