"""`attnres data prepare` and `attnres data info`: the parser and the handlers (the work is
corpus/prepare.py; reading is records/tokens.py). `python -m corpus prepare ...` is `attnres data
prepare ...` without the rest of the command line (for CPU nodes: nothing here imports torch)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from corpus.corpora import CORPORA, DEFAULT_CORPUS, FALLBACK_CORPUS, describe_source
from corpus.params import DEFAULT_BPE_SAMPLE_MB, DEFAULT_VAL_FRACTION, params
from corpus.prepare import prepare
from corpus.stream import StreamSettings, available_cpus
from corpus.tokenizer import get_tokenizer
from records.tokens import DEFAULT_BPE_VOCAB, DataError, data_root, default_data_dir, load_tokens, read_meta


def _kwargs(args: argparse.Namespace) -> dict:
    return dict(corpus=args.corpus, tokenizer=args.tokenizer or "byte", vocab_size=args.vocab_size,
                val_fraction=args.val_fraction, seed=args.seed, source_dir=args.source_dir,
                token_files=args.token_files, token_dtype=args.token_dtype, text_column=args.text_column,
                tokenizer_file=args.tokenizer_file, eot_token=args.eot_token, dedup=not args.no_dedup,
                bpe_sample_mb=args.bpe_sample_mb)


def _cmd_prepare(args: argparse.Namespace) -> int:
    try:
        kw = _kwargs(args)
        settings = StreamSettings(workers=args.workers, batch_mb=args.batch_mb, unit_mb=args.unit_mb)
        out = args.out
        if out is None:
            p = params(kw["corpus"], kw["tokenizer"], kw["vocab_size"], kw["val_fraction"], kw["seed"],
                             kw["source_dir"], kw["token_files"], kw["token_dtype"], kw["text_column"],
                             kw["tokenizer_file"], kw["eot_token"], kw["dedup"], kw["bpe_sample_mb"])
            out = (data_root() / f"{p['corpus']}-pretokenized" if args.token_files
                   else default_data_dir(p["corpus"], p["tokenizer"], p["vocab_size"]))
        out = prepare(out, force=args.force, settings=settings, **kw)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; nothing was installed. Run the same command again: a --source-dir "
              "preparation resumes from the work units it finished", file=sys.stderr)
        return 130
    print(out)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    try:
        meta = read_meta(args.dir)
        print(f"{args.dir}: corpus {meta['corpus']}, tokenizer {meta['tokenizer']}, vocab {meta['vocab_size']}, "
              f"{meta['dtype']}")
        for name, s in meta["splits"].items():
            load_tokens(args.dir, name)  # verifies size and checksum
            print(f"  {name:5s} {s['n_tokens']:>12,} tokens {s['n_docs']:>8,} docs  "
                  f"unigram entropy {s['unigram_entropy']:.3f} nats/token  (checksum ok)")
        if meta["tokenizer"] != "pretokenized":
            sample = get_tokenizer(args.dir).decode(load_tokens(args.dir, "val")[:400].tolist())
            print("  sample (val): " + " ".join(sample.split())[:300])
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


_DESCRIPTION = """\
Write <out>/{{train,val}}.bin (token ids), meta.json, sources.json and README.txt.

Built-in corpora (--corpus), pinned registry packages:
{corpora}

Your own corpus (--source-dir DIR, recursive): *.parquet and *.jsonl[.gz|.zst] (one document per
row/line: its --text-column), *.txt/.md/.rst (one document per file, cut at blank lines into pieces
of <= 64k characters). Streamed by --workers processes, memory bounded by --batch-mb per worker
(measured ~25x batch-mb + ~100 MB each; the main process adds 16-32 bytes per document for the
duplicate filter, none with --no-dedup). The same bytes for any --workers. Interrupted (Ctrl-C,
SIGTERM, a killed job), it leaves no output; the same command again resumes from the finished work
units (kept in .<out>.work-*/ beside the output).

Tokens: UTF-8 bytes (default), a byte-level BPE trained on training documents (--tokenizer bpe), or
a Hugging Face tokenizer file used as is (--tokenizer-file tokenizer.json: its vocabulary decides
uint16 or uint32; documents end with its end-of-text token, see --eot-token).

Re-running with the same options verifies the prepared files (size and sha256) and returns; a
damaged set is rebuilt. Downloaded packages and trained BPE tokenizers are cached in
<data root>/cache; the data root is $ATTNRES_DATA_DIR, else data/ in the working directory."""

_EPILOG = f"""\
examples:
  attnres data prepare
  attnres data prepare --tokenizer bpe --vocab-size 4096
  attnres data prepare --corpus {FALLBACK_CORPUS}
  attnres data prepare --source-dir fineweb/ --tokenizer-file gpt2/tokenizer.json --workers 32 --no-dedup --out data/fw-gpt2
  attnres data prepare --source-dir my_texts/ --out data/mine-byte
  attnres data prepare --token-files shard0.bin shard1.bin --token-dtype uint16 --out data/mine"""


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    corpora = "\n".join(f"  {n:7s} {'(default) ' if n == DEFAULT_CORPUS else ''}{c.description}\n"
                        f"          {describe_source(n)}" for n, c in CORPORA.items())
    p = sub.add_parser("prepare", help="download/extract a corpus (or stream yours), tokenize, split, write token files",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=_DESCRIPTION.format(corpora=corpora), epilog=_EPILOG)
    p.add_argument("--corpus", default=DEFAULT_CORPUS, choices=sorted(CORPORA),
                   help=f"built-in corpus (default {DEFAULT_CORPUS}; {FALLBACK_CORPUS} needs Debian 12)")
    p.add_argument("--tokenizer", default=None, choices=("byte", "bpe"),
                   help="byte: UTF-8 bytes, vocab 256 (default, for CPU ladders); bpe: byte-level BPE trained "
                   "on the training split")
    p.add_argument("--tokenizer-file", type=Path, default=None,
                   help="a Hugging Face tokenizers JSON (e.g. GPT-2's or a Llama-style tokenizer.json), used as is")
    p.add_argument("--eot-token", default=None,
                   help="the --tokenizer-file's end-of-document token (default: the first it has of "
                   "<|endoftext|>, <|end_of_text|>, </s>, <eos>)")
    p.add_argument("--vocab-size", type=int, default=None,
                   help=f"BPE vocabulary (default {DEFAULT_BPE_VOCAB}); for --token-files the tokenizer's "
                   "vocabulary (default: largest id + 1)")
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (default <data root>/<corpus>-<tokenizer>, e.g. data/wiki-byte)")
    p.add_argument("--source-dir", type=Path, default=None,
                   help="your own corpus: a directory of parquet / jsonl[.gz|.zst] shards or text files")
    p.add_argument("--text-column", default="text", help="the text column/field of parquet and jsonl shards (default text)")
    p.add_argument("--token-files", type=Path, nargs="+", default=None,
                   help="your own pre-tokenized data: raw uint16/uint32 files or .npy arrays")
    p.add_argument("--token-dtype", choices=("uint16", "uint32"), default=None, help="dtype of raw --token-files")
    p.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION,
                   help=f"fraction of documents held out for validation (default {DEFAULT_VAL_FRACTION})")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/validation split (default 0)")
    g = p.add_argument_group("--source-dir streaming (none of these changes the output bytes)")
    g.add_argument("--workers", type=int, default=0,
                   help=f"tokenizer processes (default 0 = every CPU this process may use, here {available_cpus()})")
    g.add_argument("--batch-mb", type=float, default=StreamSettings.batch_mb,
                   help=f"MB of text each worker tokenizes at once: bounds its memory (default {StreamSettings.batch_mb:g})")
    g.add_argument("--unit-mb", type=float, default=StreamSettings.unit_mb,
                   help=f"MB of text per work unit, the grain of parallelism and of resuming (default {StreamSettings.unit_mb:g})")
    p.add_argument("--no-dedup", action="store_true",
                   help="keep exact duplicate documents (for corpora deduplicated upstream, e.g. FineWeb)")
    p.add_argument("--bpe-sample-mb", type=float, default=DEFAULT_BPE_SAMPLE_MB,
                   help=f"--source-dir with --tokenizer bpe: MB of training documents the BPE learns from "
                   f"(default {DEFAULT_BPE_SAMPLE_MB:g})")
    p.add_argument("--force", action="store_true", help="replace an existing, different prepared directory")
    p.set_defaults(func=_cmd_prepare)


def register(subparsers: argparse._SubParsersAction) -> None:
    d = subparsers.add_parser("data", help="prepare and inspect token data",
                              description="Prepare token data for training and inspect it.")
    sub = d.add_subparsers(dest="data_command", metavar="ACTION")
    sub.required = True
    _add_prepare(sub)
    i = sub.add_parser("info", help="summarise a prepared directory and verify its checksums")
    i.add_argument("dir", type=Path, nargs="?", default=default_data_dir(), help="prepared directory")
    i.set_defaults(func=_cmd_info)


def main(argv: list[str] | None = None) -> int:
    """`python -m corpus prepare ...`: `attnres data ...` without importing torch (CPU nodes)."""
    parser = argparse.ArgumentParser(prog="python -m corpus")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    register(sub)
    args = parser.parse_args(["data", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
