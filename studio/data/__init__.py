"""The project store (SQLite + image files), image decoding, importers, exporters and splits."""
