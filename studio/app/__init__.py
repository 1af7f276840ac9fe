"""The application layer: what the UI (studio/ui) and the CLI (studio/cli) both do, without widgets.

It sits above the engine, store and service and below the two adapters; it never imports gradio.
"""
