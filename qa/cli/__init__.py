"""The ``qa`` command: index, search, ask, eval, serve, train-reader.

Each subcommand parses its arguments, calls the library, and prints. Errors a user can fix
(missing folder, stale index, empty question) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from qa.embedding.encoder import BACKENDS, DEFAULT_BACKEND
from qa.retrieval.retriever import MODES
from qa.stores.local import IndexNotFoundError, StaleIndexError

logger = logging.getLogger("qa")

DEFAULT_DOCS = "seeds"
DEFAULT_INDEX = "embeddings"


def _passage_rows(hits, documents) -> list[dict]:
    return [h.to_dict(documents[h.passage.doc_id].title) for h in hits]


def cmd_index(args: argparse.Namespace) -> int:
    from qa.ingest.chunking import ChunkConfig
    from qa.stores.local import build_index

    stats = build_index(
        args.docs, args.out, model=args.model, backend=args.backend,
        chunk_config=ChunkConfig(args.chunk_size, args.chunk_overlap),
        incremental=not args.full, show_progress=not args.quiet,
    )
    print(
        f"Indexed {stats.documents} documents into {stats.passages} passages ({stats.index_type}) at {args.out} "
        f"in {stats.seconds:.1f}s: embedded {stats.embedded}; new {len(stats.added)}, changed {len(stats.changed)}, "
        f"removed {len(stats.removed)}."
    )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from qa.retrieval.retriever import Retriever

    retriever = Retriever.load(args.index)
    hits = retriever.search(args.question, top_k=args.k, mode=args.mode, doc_ids=args.doc)
    rows = _passage_rows(hits, retriever.documents)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for row in rows:
        snippet = " ".join(row["text"].split())
        print(f"{row['rank']}. [{row['score']:.4f}] {row['title']} ({row['doc_id']}, chars {row['start']}-{row['end']})")
        print(f"   {snippet[:300]}{'…' if len(snippet) > 300 else ''}")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from qa.answering.pipeline import QA

    qa = QA.load(args.index, threshold=args.threshold)
    answer = qa.ask(args.question, top_k=args.k, mode=args.mode)
    if args.json:
        print(json.dumps(qa.to_json(answer), ensure_ascii=False, indent=2))
        return 0
    if answer.abstained:
        print("The documents don't say. Closest passages:")
        for row in _passage_rows(answer.hits[:3], qa.documents):
            print(f"  - {row['title']}: {' '.join(row['text'].split())[:200]}…")
        return 0
    print(f"{answer.text}    (confidence {answer.score:.2f})")
    print(f"  “{' '.join(answer.evidence.split())}”")
    for n, c in enumerate(answer.citations, start=1):
        print(f"  [{n}] {c.title} ({c.doc_id}, {c.location or f'chars {c.start}-{c.end}'})")
    return 0


def cmd_train_reader(args: argparse.Namespace) -> int:
    from qa.training.trainer import TrainConfig, train_reader

    cfg = TrainConfig(
        base_model=args.base_model or "", max_length=args.max_length, stride=args.stride,
        batch_size=args.batch_size, learning_rate=args.lr, epochs=args.epochs,
        time_budget_minutes=args.time_budget, holdout_fraction=args.holdout, bf16=not args.no_bf16, seed=args.seed,
    )
    summary = train_reader(args.data, args.out, cfg, max_examples=args.max_examples, show_progress=not args.quiet)
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qa", description="Question answering over your documents, with citations.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="build or update the index of a folder of documents")
    p.add_argument("--docs", default=DEFAULT_DOCS, help="folder of .txt/.md/.html/.pdf files (default: seeds)")
    p.add_argument("--out", default=DEFAULT_INDEX, help="index folder (default: embeddings)")
    p.add_argument("--model", default=None, help="embedding model path or name (default: all-MiniLM-L6-v2)")
    p.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND,
                   help=f"how the embedding model runs (default: {DEFAULT_BACKEND}; torch for models ONNX can't run)")
    p.add_argument("--chunk-size", type=int, default=800, help="passage size in characters (default: 800)")
    p.add_argument("--chunk-overlap", type=int, default=200, help="overlap in characters (default: 200)")
    p.add_argument("--full", action="store_true", help="re-embed everything instead of updating")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_index)

    def retrieval_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("question")
        p.add_argument("-k", type=int, default=5, help="passages to retrieve (default: 5)")
        p.add_argument("--mode", choices=MODES, default="hybrid")
        p.add_argument("--index", default=DEFAULT_INDEX, help="index folder (default: embeddings)")
        p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("search", help="retrieve the passages that best match a question")
    retrieval_args(p)
    p.add_argument("--doc", action="append", help="search only this document id (repeatable)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="answer a question with a verbatim quote and its citation")
    retrieval_args(p)
    p.add_argument("--threshold", type=float, default=None, help="no-answer threshold (default: calibrated)")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("train-reader", help="fine-tune the span reader on SQuAD-format files")
    p.add_argument("--data", nargs="+", required=True, help="SQuAD-format JSON files")
    p.add_argument("--out", required=True, help="output folder (checkpoints resume from here)")
    p.add_argument("--base-model", default=None, help="encoder to start from (default: packaged all-MiniLM-L6-v2)")
    p.add_argument("--max-length", type=int, default=384)
    p.add_argument("--stride", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--time-budget", type=float, default=None, help="minutes; the LR schedule fits the budget")
    p.add_argument("--holdout", type=float, default=0.2, help="share of articles held out for validation")
    p.add_argument("--max-examples", type=int, default=None, help="train on at most this many questions")
    p.add_argument("--no-bf16", action="store_true", help="train in fp32")
    p.add_argument("--seed", type=int, default=13, help="order of examples and batches (the validation split "
                   "does not depend on it); another seed when training on from a trained reader")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train_reader)

    from qa.cli.evaluate import register as register_eval
    from qa.app.ui import register as register_serve

    register_eval(sub)
    register_serve(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from qa.errors import offline_mode

    offline_mode()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, IndexNotFoundError, StaleIndexError) as err:
        print(f"qa: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
