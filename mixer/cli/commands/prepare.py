"""`mixer prepare`: raw text folders / JSON / JSONL / CSV / Parquet / saved datasets → tokenized corpus."""
from __future__ import annotations

from pathlib import Path

import click

from mixer.cli.commands._cluster import cluster_config, cluster_options
from mixer.cli.commands._options import LocalPath, StoragePath, quiet_option


@click.command("prepare")
@click.option("--source", "sources", multiple=True, metavar="DOMAIN=PATH[:FIELD]",
              help="A domain and its raw text (folder of text files, JSON, JSONL, CSV, Parquet or a save_to_disk folder); "
                   ":FIELD names its text field (docs=a.jsonl:body). Repeat per domain.")
@click.option("--kind", "kinds", multiple=True, metavar="DOMAIN=KIND",
              help="Domain kind: code/scientific cut a random block; encyclopedia keeps English only.")
@click.option("--domain-map", type=LocalPath(path_type=Path), help="JSON map of domains → path, kind (instead of --source).")
@click.option("--out", required=True, type=StoragePath(path_type=Path),
              help="Corpus folder to write, or a URL (s3://bucket/corpus: uploaded, corpus.json last).")
@click.option("--tokenizer", default="gpt2", show_default=True, help="'gpt2' (bundled), 'train', or a tokenizer.json path.")
@click.option("--vocab-size", default=8192, show_default=True, help="Vocab size for --tokenizer train.")
@click.option("--text-field", "text_fields", multiple=True, metavar="[DOMAIN=]FIELD",
              help="Field holding the text in JSON/JSONL/CSV/Parquet/datasets [default: text]: FIELD for every source, "
                   "DOMAIN=FIELD for one (repeatable).")
@click.option("--format", "formats", multiple=True, metavar="[DOMAIN=]FORMAT",
              help="How to read a source: auto (by its files), text (every file one plain-text document), json, "
                   "jsonl, csv (.csv/.tsv with a header row), parquet or hf; FORMAT for every source, DOMAIN=FORMAT "
                   "for one [default: auto; a folder mixing JSON/JSONL/CSV/Parquet files with others is refused "
                   "unless its kind is code].")
@click.option("--split", "splits", multiple=True, metavar="[DOMAIN=]SPLIT",
              help="Only with a save_to_disk DatasetDict source: the split to prepare (needed when it has "
                   "several); SPLIT for every such source, DOMAIN=SPLIT for one.")
@click.option("--heldout-fraction", default=0.05, show_default=True,
              help="Share of each domain's kept documents held out for evaluation.")
@click.option("--heldout-max", default=10_000, show_default=True, help="At most this many held-out documents per domain.")
@click.option("--heldout-min", default=50, show_default=True,
              help="At least this many held-out documents per domain (never over a quarter of it).")
@click.option("--heldout-docs", type=int, default=None, help="A fixed number of held-out documents per domain "
              "(instead of the fraction rule).")
@click.option("--min-chars", default=1000, show_default=True, help="Keep documents with more characters than this.")
@click.option("--cut-chars", default=1000, show_default=True, help="Cut kept documents to this many characters.")
@click.option("--max-docs", type=int, default=None, help="Read at most this many documents per domain (quick runs).")
@click.option("--seed", default=0, show_default=True,
              help="Seed of the held-out choice and of the code/scientific random blocks.")
@click.option("--workers", default=1, show_default=True, help="Processes for tokenization and language id.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
@quiet_option()
@cluster_options(task_mb=True, local="--workers")
def command(sources, kinds, domain_map, out, tokenizer, vocab_size, text_fields, formats, splits, heldout_fraction,
            heldout_max, heldout_min,
            heldout_docs, min_chars, cut_chars, max_docs, seed, workers, overwrite, quiet, **cluster):
    """Apply the paper's preparation rules and tokenize each domain into Arrow files."""
    from rich.console import Console

    from mixer.cli.commands._options import print_whole
    from mixer.core.errors import MixerError
    from mixer.prepare.config import PrepareConfig
    from mixer.prepare.domain_map import load_domain_map, sources_from_options
    from mixer.prepare.pipeline import prepare_corpus, summary_table
    from mixer.prepare.rules import PrepareRules

    if domain_map and sources:
        raise MixerError("give either --domain-map or --source, not both")
    if domain_map:
        if splits or any("=" in f for f in (*text_fields, *formats)) or len(text_fields) > 1 or len(formats) > 1:
            raise MixerError("with --domain-map, give each domain's text_field, format and split in the map; "
                             "--text-field FIELD and --format FORMAT alone set the defaults")
        srcs = load_domain_map(domain_map, text_fields[0] if text_fields else "text", formats[0] if formats else "auto")
    else:
        srcs = sources_from_options(sources, kinds, text_fields, splits, formats)
    config = PrepareConfig(sources=tuple(srcs), out=out, tokenizer=tokenizer, vocab_size=vocab_size,
                           heldout_docs=heldout_docs, heldout_fraction=heldout_fraction, heldout_max=heldout_max,
                           heldout_min=heldout_min, seed=seed, workers=workers, max_docs=max_docs,
                           rules=PrepareRules(min_chars=min_chars, cut_chars=cut_chars),
                           overwrite=overwrite, progress=not quiet)
    result = prepare_corpus(config, cluster_config(**cluster))
    console = Console(width=max(Console().width, 120))
    print_whole(console, summary_table(result))
    t = result.timings
    console.print(f"wrote {out} ({result.manifest.tokenizer.kind} tokenizer, vocab {result.manifest.vocab_size:,}, "
                  f"{result.manifest.token_dtype}); {sum(t.values()) - t['tokenize_cpu']:.1f} s total, "
                  + (f"tokenize {t['tokenize']:.1f} s" if "tasks" not in t else  # --ray: tokenizing overlaps the tasks
                     f"tasks {t['tasks']:.1f} s, tokenize {t['tokenize_cpu']:.1f} s of worker time"))
