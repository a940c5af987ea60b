#!/usr/bin/env python3
"""The layering checks of `make test` (DESIGN §9, issue 17).

For hub/src and agent/src: builds the graph of top-level modules from the
`crate::<module>` paths in each module's code (comments stripped), and fails
on any import cycle between modules; fails when a module of the hub outside
api/ and the entry points (serve, demo) names `crate::api`; fails on a
source file over MAX_FILE_LINES lines, on hub/src/api/ over MAX_API_LINES
lines in all, and on an HTTP handler (an `async fn` under a
`#[utoipa::path]` in hub/src/api/) over MAX_HANDLER_LINES lines.

Problems listed in tools/layers-known.txt (the ones left while issue 17 is
under way, one key per line) are reported but do not fail; the list may only
shrink: a listed problem that is gone is reported so its line is removed.

Usage: tools/check_layers.py [--report | --keys]
  --report: print, never fail; --keys: print the key of every problem (what
  tools/layers-known.txt holds)
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATES = {"hub": ROOT / "hub/src", "agent": ROOT / "agent/src"}
# Modules of the hub that may name crate::api: the API itself and the
# subcommands that serve it.
API_USERS = {"api", "serve", "demo"}
MAX_FILE_LINES = 800
MAX_API_LINES = 5000
MAX_HANDLER_LINES = 40

LINE_COMMENT = re.compile(r"//.*$", re.MULTILINE)
BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
CRATE_PATH = re.compile(r"\bcrate::(\{[^;]*?\}|[a-z_][a-z0-9_]*)")


def strip_comments(text):
    return LINE_COMMENT.sub("", BLOCK_COMMENT.sub("", text))


def first_segments(group):
    """`{a::b, c, d::{e}}` -> {a, c, d}; `a` -> {a}."""
    if not group.startswith("{"):
        return {group}
    inner, depth, part, parts = group[1:-1], 0, "", []
    for ch in inner:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(part)
            part = ""
        else:
            part += ch
    parts.append(part)
    names = set()
    for p in parts:
        m = re.match(r"\s*([a-z_][a-z0-9_]*)", p)
        if m and m.group(1) != "self":
            names.add(m.group(1))
    return names


def module_of(src, path):
    rel = path.relative_to(src)
    if len(rel.parts) > 1:
        return rel.parts[0]
    return rel.stem


def graph(src):
    modules = {module_of(src, p) for p in src.rglob("*.rs")} - {"lib", "main"}
    edges = {m: {} for m in modules}
    for path in sorted(src.rglob("*.rs")):
        module = module_of(src, path)
        if module not in modules:
            continue
        text = strip_comments(path.read_text())
        for match in CRATE_PATH.finditer(text):
            for target in first_segments(match.group(1)):
                if target in modules and target != module:
                    line = text.count("\n", 0, match.start()) + 1
                    edges[module].setdefault(target, f"{path.relative_to(ROOT)}:{line}")
    return edges


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def long_handlers(api):
    """(file:line, name, lines) of each handler over MAX_HANDLER_LINES."""
    found = []
    for path in sorted(api.rglob("*.rs")):
        lines = path.read_text().splitlines()
        pending = False
        for i, line in enumerate(lines):
            if line.lstrip().startswith("#[utoipa::path"):
                pending = True
            m = re.match(r"\s*(pub(\([a-z]+\))? )?async fn ([a-z0-9_]+)", line)
            if pending and m:
                pending = False
                depth, started, end = 0, False, None
                for j in range(i, len(lines)):
                    depth += lines[j].count("{") - lines[j].count("}")
                    started = started or "{" in lines[j]
                    if started and depth <= 0:
                        end = j
                        break
                length = (end if end is not None else len(lines) - 1) - i + 1
                if length > MAX_HANDLER_LINES:
                    found.append((f"{path.relative_to(ROOT)}:{i + 1}", m.group(3), length))
    return found


KNOWN = ROOT / "tools/layers-known.txt"


def main():
    report = "--report" in sys.argv
    failures = []
    for name, src in CRATES.items():
        edges = graph(src)
        for component in cycles(edges):
            shown = ", ".join(
                f"{a} -> {b} ({edges[a][b]})"
                for a in component
                for b in component
                if b in edges[a]
            )
            failures.append((f"cycle {name}: {' '.join(component)}", f"{name}: import cycle among {component}: {shown}"))
        if name == "hub":
            for module, targets in sorted(edges.items()):
                if "api" in targets and module not in API_USERS:
                    failures.append((f"api-import {module}", f"hub: {module} imports crate::api ({targets['api']})"))
        for path in sorted(src.rglob("*.rs")):
            count = len(path.read_text().splitlines())
            if count > MAX_FILE_LINES:
                rel = path.relative_to(ROOT)
                failures.append((f"long-file {rel}", f"{rel}: {count} lines (> {MAX_FILE_LINES})"))
    api = CRATES["hub"] / "api"
    api_lines = sum(len(p.read_text().splitlines()) for p in api.rglob("*.rs"))
    if api_lines > MAX_API_LINES:
        failures.append(("api-lines", f"hub/src/api: {api_lines} lines (> {MAX_API_LINES})"))
    for where, handler, length in long_handlers(api):
        file = where.split(":")[0]
        failures.append((f"long-handler {file} {handler}", f"{where}: handler {handler} is {length} lines (> {MAX_HANDLER_LINES})"))
    if "--keys" in sys.argv:
        for key, _ in failures:
            print(key)
        return 0
    known = set()
    if KNOWN.exists():
        known = {
            line.strip()
            for line in KNOWN.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        }
    new = [message for key, message in failures if key not in known]
    keys = {key for key, _ in failures}
    for key, message in failures:
        print(("known: " if key in known else "NEW: ") + message)
    for key in sorted(known - keys):
        print(f"fixed (remove from {KNOWN.relative_to(ROOT)}): {key}")
    print(
        f"layers: {len(new)} new problems, {len(failures) - len(new)} known; "
        f"hub/src/api is {api_lines} lines" + (" (report only)" if report else "")
    )
    return 0 if report or not new else 1


if __name__ == "__main__":
    sys.exit(main())
