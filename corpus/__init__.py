"""Data preparation: `attnres data prepare` and `attnres data info` (torch-free; runs on a CPU node).

The writer of prepared token data; its format and reader (what training reads) are records/tokens.py.

    cli.py           the `attnres data` subcommands (attnres/cli.py's COMMANDS points here)
    prepare.py       prepare(): parameters, build into a temporary directory, verify, install
    params.py        what decides a prepared set's content, and the command that recreates it
    corpora.py       the built-in corpora: pinned sources and their extractors
    packages.py      fetching pinned registry packages (pip, apt) and reading wheels, .debs, R data
    text.py          text cleaning and HTML prose extraction
    inmemory.py      the document-level split rule; built-in corpora prepared in memory
    shards.py        --source-dir shards (parquet, jsonl[.gz|.zst], txt): discovery, work units, readers
    stream.py        the streaming, parallel, resumable preparation of --source-dir (main process)
    workers.py       its worker processes: one work unit -> hashes, ranks and token ids
    docset.py        exact-duplicate filter and the k-th smallest rank, in memory bounded by settings
    tokenizer.py     byte tokenizer, Hugging Face tokenizer files (--tokenizer-file), BPE training
    tokenfile.py     writing a split (<split>.bin) with its sha256, sampled checksum and unigram counts
    pretokenized.py  --token-files
"""
