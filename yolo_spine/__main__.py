"""``python -m yolo_spine`` runs the command-line interface."""

from yolo_spine.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
