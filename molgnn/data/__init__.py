"""Data: QM9 offline, target names and units, XYZ reading, reproducible splits."""

from molgnn.data.keys import (
    HARTREE_TO_EV,
    STANDARD_TARGETS,
    TARGET_NAMES,
    TARGETS,
    Target,
    atom_reference,
    get_target,
)
from molgnn.data.paths import default_data_root, qm9_root
from molgnn.data.qm9 import QM9, QM9_SIZE, qm9pack_dir
from molgnn.data.splits import NAMED_SPLITS, load_split, named_split, save_split, split_indices
from molgnn.data.xyz import parse_xyz, read_xyz

__all__ = [
    "HARTREE_TO_EV",
    "NAMED_SPLITS",
    "QM9",
    "QM9_SIZE",
    "STANDARD_TARGETS",
    "TARGETS",
    "TARGET_NAMES",
    "Target",
    "atom_reference",
    "default_data_root",
    "get_target",
    "load_split",
    "named_split",
    "parse_xyz",
    "qm9_root",
    "qm9pack_dir",
    "read_xyz",
    "save_split",
    "split_indices",
]
