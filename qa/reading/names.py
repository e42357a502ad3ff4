"""The readers shipped in the package, by name (no model library is imported here: the CLI checks names early).

``accurate`` reads with all-mpnet-base-v2 (12 layers) and ``fast`` with all-MiniLM-L6-v2 (6 layers), each
trained as a span reader; ``qa/models/<name>-reader/`` holds its weights, calibration and model card.
"""

READER_NAMES = ("accurate", "fast")
DEFAULT_READER = "fast"
READER_HELP = "reader: accurate or fast (the readers shipped in the package) or a folder that qa train-reader wrote"
