"""Dataset curation: near-duplicates and leakage, label issues, active learning, embedding map,
outliers and dataset warnings, with the expert's review decisions stored in the project.

Everything here works on the engine's cached frozen-backbone features (`studio.curate.features`) and
never imports gradio.
"""
