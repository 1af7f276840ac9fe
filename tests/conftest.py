"""Test-wide settings: never touch the network, keep torch small."""

import os

# timm's hub path must fail fast (no retries against an unreachable network) and use only local files.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
