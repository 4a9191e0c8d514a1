"""`aero version`: the fingerprint tree of each stage of the workspace."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.tree import Tree

    from aeromancy.fingerprint import Fingerprint


def command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Print the version tree (code, runtime, data, params, stage) of each stage,
    with its data hashes and params as dvc.lock records them."""
    from aeromancy import config, fingerprint, gitstate
    from aeromancy.console import err, out
    from aeromancy.runtime.host import HostRuntime

    root = config.find_root()
    config.load(root)
    # TODO: take the configured runtime once sealed runtimes land (issue 5).
    prints = fingerprint.workspace(root, HostRuntime().describe())
    if as_json:
        stages = [fp.as_dict() for fp in prints]
        out().print_json(json.dumps({"stages": stages}, ensure_ascii=False))
    else:
        for fp in prints:
            out().print(_render(_tree(fp)), markup=False, soft_wrap=True)
    dirty = gitstate.dirty_paths(root)
    if dirty:
        shown = ", ".join(str(path) for path in dirty)
        err().print(
            f"warning: uncommitted changes, not part of these versions: {shown}",
            markup=False,
        )


def _tree(fp: Fingerprint) -> Tree:
    from rich.tree import Tree

    from aeromancy.fingerprint import NODES

    name = fp.tree["stage"]["name"]
    tree = Tree(f"stage {name}  {fp.digest[:12]}", highlight=False)
    digests = fp.node_digests
    for node in NODES:
        _add(tree.add(f"{node}  {digests[node][:12]}"), fp.tree[node])
    return tree


def _render(tree: Tree) -> str:
    """The tree as text, wide enough that no hash is cut however narrow the
    terminal: rich crops a tree's lines to the console's width."""
    import io

    from rich.console import Console

    wide = Console(file=io.StringIO(), width=1000, no_color=True, highlight=False)
    with wide.capture() as captured:
        wide.print(tree)
    return "\n".join(line.rstrip() for line in captured.get().splitlines())


def _add(branch: Tree, value: Mapping[str, Any]) -> None:
    for key, item in value.items():
        if isinstance(item, Mapping) and item:
            _add(branch.add(str(key)), item)
        else:
            branch.add(f"{key}: {_shown(item)}")


def _shown(item: Any) -> str:
    if item is None:
        return "-"
    if isinstance(item, str):
        return item
    return json.dumps(item, ensure_ascii=False)
