"""The app's default settings, apart from the Gradio wiring so that ``qa``'s parser can show them cheaply."""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_CONCURRENCY = 4  # answers computed at once; more only queue on a small CPU
# Questions answered or waiting beyond which the fast reader reads, so that a question waits a few seconds at
# most behind the accurate reader's (python -m benchmarks.speed load --clients 1,4,16,50).
DEFAULT_BUSY = 8
TITLE = "Ask the documents"
