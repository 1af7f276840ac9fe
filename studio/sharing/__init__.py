"""Sharing the studio safely: accounts and roles, server-path confinement, size and queue limits.

No Gradio here: `studio.ui.access` maps a request's user to these accounts and applies the checks.
"""
