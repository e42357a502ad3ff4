"""The browser chat app (Gradio)."""
