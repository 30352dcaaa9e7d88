"""`mixer export-shards`: the exact token stream of a shards folder in another library's format.

`--format megatron`: Megatron's indexed dataset (`indexed.py`), one document per sequence, in
stream order, so a Megatron run (`--data-path PREFIX`, no blend needed: the shards are already
mixed) trains on the same tokens in the same order; set its `--seq-length` to the shards'
`seq_len` and turn off its shuffling to keep the order. The token dtype comes from the
vocabulary size (the corpus's `corpus.json`, found as `mixer inspect --sample` finds it) by
Megatron's own rule. Masked-LM shards are refused: their [CLS]/[SEP]/[PAD] framing is mixer's,
not what Megatron's GPT or BERT datasets expect.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mixer.core.errors import MixerError

FORMATS = ("megatron",)


@dataclass(frozen=True)
class ShardExportSpec:
    shards: Path
    format: str
    out: Path  # the output prefix: OUT.bin + OUT.idx for megatron
    corpus: Path | None = None  # default: the corpus the shards' index records


@dataclass(frozen=True)
class ShardExportResult:
    files: tuple[Path, ...]
    sequences: int
    tokens: int
    dtype: str
    vocab_size: int


def export_shards(spec: ShardExportSpec) -> ShardExportResult:
    """Read every shard (checksums verified) in stream order and write it in `spec.format`."""
    from mixer.core.kinds import Objective
    from mixer.export.indexed import IndexedWriter, token_dtype
    from mixer.formats.corpus import load_manifest
    from mixer.formats.shards import corpus_of, read_index, read_shard

    if spec.format not in FORMATS:
        raise MixerError(f"--format {spec.format!r}: unknown format; choose one of {', '.join(FORMATS)}")
    index = read_index(spec.shards)
    if index.objective is not Objective.CAUSAL:
        raise MixerError(f"{spec.shards}: {index.objective.value} shards; --format megatron takes causal-LM shards "
                         "(build them with --objective causal)")
    out = Path(spec.out)
    if not out.name or not out.parent.is_dir():
        raise MixerError(f"--out {spec.out}: the folder {out.parent} does not exist; create it or give another PREFIX")
    shards_dir = Path(spec.shards).resolve()
    if out.parent.resolve() == shards_dir or shards_dir in out.parent.resolve().parents:
        raise MixerError(f"--out {spec.out}: inside the shards folder {spec.shards}; write the export outside it")
    if sum(e.sequences for e in index.shards) != index.num_sequences:
        raise MixerError(f"{spec.shards}/index.json: its shards do not add up to num_sequences "
                         f"{index.num_sequences}; rebuild the shards")
    vocab = load_manifest(corpus_of(spec.shards, index, spec.corpus)).vocab_size
    dtype = token_dtype(vocab)
    with IndexedWriter(out, dtype) as writer:
        for entry in index.shards:
            writer.add(read_shard(Path(spec.shards) / entry.file, index))
    return ShardExportResult(files=(writer.bin_path, writer.idx_path), sequences=writer.sequences,
                             tokens=writer.tokens, dtype=dtype.name, vocab_size=vocab)
