"""The names every stage shares for a dataset's splits and a CT's slice planes, each defined once.

Nothing but ``typing`` is imported, so a command's argument parser can use them without loading numpy.
"""

from __future__ import annotations

from typing import Literal

#: Dataset splits, in the order they are written and reported (``images/<split>``, ``labels/<split>``).
SPLITS: tuple[str, ...] = ("train", "val", "test")

#: CT slice planes, in the order ``ct2yolo`` cuts them and ``lift`` fuses them (a sidecar's ``plane``).
PLANES: tuple[str, ...] = ("axial", "coronal", "sagittal")
#: The type of one plane name, for options that declare planes (the same names as :data:`PLANES`).
Plane = Literal["axial", "coronal", "sagittal"]
