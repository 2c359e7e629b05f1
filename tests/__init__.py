"""The test suite: one package per stage (tests/ct/ for yolo_spine/ct/, …), top-level files for the shared layer.

Each folder is a package so test modules may share basenames (tests/train/test_train.py) and so tests/ is not put
on sys.path, where folders named datasets/ or io/ would shadow the real ones. Fixtures used by more than one
folder live in tests/conftest.py.
"""
