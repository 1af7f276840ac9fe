"""The predict-only demo app: one model (a run or an exported bundle), upload or webcam, top-k bars."""
