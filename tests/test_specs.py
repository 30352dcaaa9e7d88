"""Values travel as typed specs, each read by one module: no raw `index.json` or checkpoint dict is
indexed outside its format module, the objective and model kind are never compared as strings, no
function takes more than 8 parameters (click commands aside: their signature is the command
line itself), and the kinds parse with one line.
Each check reads the source as a tree, so a new violation fails here by file and line."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from mixer.core.errors import MixerError
from mixer.core.kinds import ModelKind, Objective

ROOT = Path(__file__).resolve().parents[1] / "mixer"
MODULES = sorted(ROOT.rglob("*.py"))


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT.parent)}:{node.lineno}"


def test_no_raw_index_or_checkpoint_reads_outside_their_format():
    owners = {"formats/shards.py", "formats/shard_index.py", "trainers/checkpoint.py"}
    bad = []
    for path in MODULES:
        if path.relative_to(ROOT).as_posix() in owners:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) \
                    and node.value.id in ("index", "ix", "ckpt") and isinstance(node.slice, ast.Constant) \
                    and isinstance(node.slice.value, str):
                bad.append(f"{_where(path, node)}: {ast.unparse(node)}")
    assert bad == []


def test_objective_and_model_kind_are_never_compared_as_strings():
    words = {m.value for m in Objective} | {m.value for m in ModelKind}
    bad = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                parts = [node.left, *node.comparators]
                if any(isinstance(p, ast.Constant) and p.value in words for p in parts) \
                        and "tokenizer" not in path.name and "spec" not in ast.unparse(node.left):
                    bad.append(f"{_where(path, node)}: {ast.unparse(node)}")
    assert bad == []


def _exempt(fn: ast.FunctionDef) -> bool:
    text = " ".join(ast.unparse(d) for d in fn.decorator_list)
    return bool(re.search(r"\bclick\.|option|command", text))


def test_no_function_takes_more_than_eight_parameters():
    bad = []
    for path in MODULES:
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and not _exempt(fn):
                a = fn.args
                n = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs)
                n -= bool(a.args and a.args[0].arg in ("self", "cls"))
                if n > 8:
                    bad.append(f"{_where(path, fn)}: {fn.name} takes {n}")
    assert bad == []


def test_the_checks_above_can_fail(tmp_path):
    """The walkers find what they look for (a tree with one of each violation)."""
    src = ("def f(a, b, c, d, e, f, g, h, i):\n    return index['seq_len'] if objective == 'causal' else 0\n")
    tree = ast.parse(src)
    fn = tree.body[0]
    assert len(fn.args.args) == 9 and not _exempt(fn)
    assert any(isinstance(n, ast.Subscript) and ast.unparse(n) == "index['seq_len']" for n in ast.walk(tree))
    assert any(isinstance(n, ast.Compare) and ast.unparse(n) == "objective == 'causal'" for n in ast.walk(tree))


@pytest.mark.parametrize("bad", ["gpt3", "", None])
def test_model_kind_is_parsed_once_with_one_line(bad):
    with pytest.raises(MixerError, match=r"--model .*choose one of gpt2, bert"):
        ModelKind.parse(bad)
    assert ModelKind.parse("bert") is ModelKind.BERT and ModelKind.BERT.objective is Objective.MLM
    assert Objective.parse("causal").packs_documents and f"{Objective.MLM}" == "mlm"
