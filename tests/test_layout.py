"""The house's dependency rules (DESIGN.md), checked on the source: an import that runs back up fails
here, not in review."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "tomsip"
LEAVES = {"conversation": set(), "security": set(), "tasks": set(), "audio": {"conversation", "tasks"}}
FORBIDDEN = {("bridge", "sip"), ("sip", "bridge"), ("speech", "call"), ("speech", "bridge"), ("speech", "sip")}


def package_imports() -> dict[str, set[str]]:
    """tomsip's top-level packages (and modules), each with the others it imports, type-only included."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        here = path.relative_to(ROOT).with_suffix("").parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "tomsip" and len(parts) > 1 and parts[1] != here:
                    edges[here].add(parts[1])
    return edges


def test_leaf_packages_import_only_leaves() -> None:
    edges = package_imports()
    for leaf, allowed in LEAVES.items():
        assert edges.get(leaf, set()) <= allowed, (leaf, edges.get(leaf))


def test_transports_and_speech_do_not_import_each_other_or_the_call() -> None:
    edges = package_imports()
    assert not {(a, b) for a, b in FORBIDDEN if b in edges.get(a, set())}


def test_no_two_packages_import_each_other() -> None:
    edges = package_imports()
    cycles = {tuple(sorted((a, b))) for a, targets in edges.items() for b in targets if a in edges.get(b, set())}
    assert not cycles
