"""``qa index``: build or update the index of a folder of documents."""

from __future__ import annotations

import argparse
from pathlib import Path

from qa.cli.common import DEFAULT_DOCS, DEFAULT_INDEX, printable
from qa.errors import InvalidInput, MissingPath, UnsafeDestination
from qa.text import plural


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``qa index`` to the ``qa`` command."""
    from qa.embedding.encoder import BACKENDS, DEFAULT_BACKEND

    p = sub.add_parser("index", help="build or update the index of a folder of documents")
    p.add_argument("--docs", default=DEFAULT_DOCS, help="folder of .txt/.md/.html/.pdf files (default: seeds)")
    p.add_argument("--out", default=DEFAULT_INDEX,
                   help="where the index goes: a folder (default: embeddings), milvus:PATH.db (Milvus Lite) or "
                        "http://HOST:PORT (a Milvus server; token from QA_MILVUS_TOKEN); #NAME names the collection")
    p.add_argument("--model", default=None, help="embedding model path or name (default: all-MiniLM-L6-v2)")
    p.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND,
                   help=f"how the embedding model runs (default: {DEFAULT_BACKEND}; torch for models ONNX can't run)")
    p.add_argument("--chunk-size", type=int, default=800, help="passage size in characters (default: 800)")
    p.add_argument("--chunk-overlap", type=int, default=200, help="overlap in characters (default: 200)")
    p.add_argument("--full", action="store_true", help="re-embed everything instead of updating")
    p.add_argument("--cluster", default=None,
                   help="read and embed the documents on a Dask cluster: local (one worker per core on this "
                        "machine) or tcp://HOST:PORT of a running scheduler; needs pip install 'qa[cluster]'")
    p.add_argument("--replace", action="store_true",
                   help="replace an index that --out holds of another documents folder (refused without it)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the arguments, then build; prints what the build did."""
    from qa.ingest.chunking import ChunkConfig

    if not Path(args.docs).is_dir():
        raise MissingPath(f"Document folder not found: {args.docs} (pass --docs DIR with your documents).")
    try:
        chunk_config = ChunkConfig(args.chunk_size, args.chunk_overlap)
    except ValueError as err:  # the settings came straight from the command line
        raise InvalidInput(f"{err} Pass other --chunk-size/--chunk-overlap values.") from err

    from qa.stores.address import build_store, built_from, parse_address

    parse_address(args.out)  # a malformed address fails before the model loads
    before = None if args.replace else built_from(args.out)
    if before is not None and before != Path(args.docs).resolve():
        gone = "" if before.is_dir() else " (a folder that is no longer there)"
        raise UnsafeDestination(f"--out {args.out} is the index of {before}{gone}, not of {args.docs}: pass "
                                f"--replace to replace it with an index of {args.docs}, or choose another --out.")
    options = dict(model=args.model, backend=args.backend, chunk_config=chunk_config, incremental=not args.full,
                   show_progress=not args.quiet)
    if args.cluster:
        from qa.cluster.build import build_on_cluster

        stats = build_on_cluster(args.docs, args.out, args.cluster, **options)
    else:
        stats = build_store(args.docs, args.out, **options)
    skipped = _skipped(args.out)
    if not stats.written:
        print(f"Index at {args.out} is up to date: {plural(stats.documents, 'document')}, "
              f"{plural(stats.passages, 'passage')}{skipped}; nothing to embed ({stats.seconds:.1f}s).")
        return 0
    print(
        f"Indexed {plural(stats.documents, 'document')} into {plural(stats.passages, 'passage')} ({stats.index_type}) "
        f"at {args.out} in {stats.seconds:.1f}s: embedded {stats.embedded}; new {len(stats.added)}, changed "
        f"{len(stats.changed)}, removed {len(stats.removed)}{skipped}."
    )
    return 0


def _skipped(address: str) -> str:
    """"; N files skipped (a.pdf, ...)" for the files the index at ``address`` records as unreadable, so the
    summary still says so once their warnings have scrolled by; "" when there are none."""
    from qa.stores.address import read_store_manifest

    files = [printable(row["file"]) for row in read_store_manifest(address).get("skipped") or []]
    if not files:
        return ""
    named = ", ".join(files[:3]) + (", ..." if len(files) > 3 else "")
    return f"; {plural(len(files), 'file')} skipped ({named})"
