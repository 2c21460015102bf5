"""Data preparation behind `attnres data prepare` (the facade is harness.data; corpora: harness.corpus).

    tokenizer.py     byte tokenizer, Hugging Face tokenizer files (--tokenizer-file), BPE training
    shards.py        --source-dir shards (parquet, jsonl[.gz|.zst], txt): discovery, work units, readers
    docset.py        exact-duplicate filter and the k-th smallest rank, in memory bounded by settings
    stream.py        the streaming, parallel, resumable preparation of --source-dir
    tokenfile.py     writing a split (<split>.bin), its sha256 and sampled checksum, verification
    pretokenized.py  --token-files
    progress.py      progress lines with rate and ETA
    cli.py           the `attnres data` subcommands
"""
