"""The app's default settings, apart from the Gradio wiring so that ``qa``'s parser can show them cheaply."""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_CONCURRENCY = 4  # answers computed at once; more only queue on a small CPU
TITLE = "Ask the documents"
