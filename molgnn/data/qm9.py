"""QM9 as a PyTorch Geometric dataset that loads without internet.

Sources, tried in this order:

1. the official release already in ``root/raw``: ``dsgdb9nsd.xyz.tar.bz2`` (or its extracted
   folder ``dsgdb9nsd.xyz/``) and ``uncharacterized.txt``;
2. the CSV files of the ``qm9pack`` wheel (``pip install 'molgnn[qm9]'``), found with
   ``importlib.util.find_spec`` (the package is never imported), or a folder of the same files
   given as ``source_dir`` or ``$MOLGNN_QM9PACK_DIR``;
3. a download of the official release from figshare.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import importlib.util
import os
import shutil
import sys
import tarfile
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data, InMemoryDataset
from tqdm.auto import tqdm

from molgnn.data.keys import (
    ATOM_REFERENCE_RAW,
    ATOMIC_NUMBERS,
    TARGETS,
    atom_reference,
    resolve_targets,
)
from molgnn.io.atomic import write_atomic_with

__all__ = ["QM9", "QM9_SIZE", "qm9pack_dir"]

_REMOVED: Any = object()  # default of the removed ``limit`` keyword

#: Molecules in QM9 after dropping the 3,054 that failed the authors' consistency check.
QM9_SIZE = 130_831
_FORMAT_VERSION = 1
_RAW_URL = "https://ndownloader.figshare.com/files/3195389"
_UNCHARACTERIZED_URL = "https://ndownloader.figshare.com/files/3195404"
_CSV_FILES = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
# Property columns of line 2 of the official XYZ files, after "gdb <index>".
_RAW_COLUMNS = ("A", "B", "C", "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve",
                "U0", "U", "H", "G", "cv")  # fmt: skip


def qm9pack_dir() -> Path | None:
    """The data folder of the installed ``qm9pack`` wheel, found without importing it."""
    override = os.environ.get("MOLGNN_QM9PACK_DIR")
    if override:
        return Path(override)
    try:
        spec = importlib.util.find_spec("qm9pack")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return folder if folder.is_dir() else None


class QM9(InMemoryDataset):
    r"""QM9 (Ramakrishnan et al., Sci. Data 1, 140022, 2014): 130,831 small organic molecules.

    Each item has ``z`` ``[N]`` (atomic numbers), ``pos`` ``[N, 3]`` (Å), ``y`` ``[1, T]`` (the
    chosen targets, in the units of [`molgnn.data.keys`][molgnn.data.keys]: energies in eV), ``idx``
    (the QM9 index, 1 to 133,885), ``name`` (``"gdb_<idx>"``) and ``smiles``.

    QM9's file order runs roughly from small molecules to large ones (the first 2,000 have 6.5
    heavy atoms on average, all of QM9 8.8), so a ``subset`` is a uniform random draw from the
    whole set, and ``first`` (the smallest molecules, for quick tests) says that it is not.
    [`molecule_ids`][molgnn.data.QM9.molecule_ids] lists the QM9 indices of the molecules kept.

    Processing the full set takes seconds and is cached in ``root/processed`` under a name
    keyed by the options, so different targets, subsets or seeds never collide.

    Args:
        root: Folder for ``raw/`` and ``processed/`` files.
        target: One target name or a list of them (default: ``"gap"``). Atomization energies
            (``"U0_atom"``, ...) subtract the QM9 paper's isolated-atom energies.
        subset: Keep ``subset`` molecules drawn uniformly at random, without replacement, from
            the whole source (all 130,831 molecules of QM9), in QM9 order (default: all).
            The draw is the first ``subset`` positions of
            ``numpy.random.default_rng(subset_seed).permutation(n)``, so it is the same on
            every machine and a smaller subset with the same seed lies inside a larger one.
        subset_seed: Seed of the ``subset`` draw (default: ``0``).
        first: Keep only the first ``first`` molecules in QM9 file order, the smallest ones
            (default: all). Not together with ``subset``.
        transform: Applied to each item on access.
        pre_transform: Applied once to each molecule before saving.
        source_dir: A folder with qm9pack's CSV files to read instead of the wheel's.
        download: Download the official release when no local source exists (default: ``True``).
        force_reload: Reprocess even if a processed file exists (default: ``False``).
        progress: Show a progress bar while processing (default: ``True``).

    Raises:
        ValueError: if both ``subset`` and ``first`` are given, either is not a positive
            number, or ``subset`` exceeds the molecules of the source.
        TypeError: for the removed ``limit`` keyword (use ``subset`` or ``first``).
    """

    def __init__(
        self,
        root: str,
        target: str | Sequence[str] = "gap",
        subset: int | None = None,
        subset_seed: int = 0,
        first: int | None = None,
        transform: Callable[[Data], Data] | None = None,
        pre_transform: Callable[[Data], Data] | None = None,
        source_dir: str | Path | None = None,
        download: bool = True,
        force_reload: bool = False,
        progress: bool = True,
        *,
        limit: Any = _REMOVED,
    ) -> None:
        if limit is not _REMOVED:
            raise TypeError(
                "QM9(limit=...) was removed: pass subset=N for N molecules drawn at random from "
                "all of QM9 (seeded by subset_seed), or first=N for the first N in file order "
                "(the smallest molecules)"
            )
        self.targets: tuple[str, ...] = resolve_targets(
            target if isinstance(target, str) else list(target)
        )
        self.selection = _Selection(subset, subset_seed, first)
        self.subset, self.subset_seed, self.first = subset, subset_seed, first
        self.source_dir = Path(source_dir) if source_dir is not None else None
        self.allow_download = download
        self.progress = progress
        self.source: str | None = None
        super().__init__(str(root), transform, pre_transform, force_reload=force_reload)
        self.load(self.processed_paths[0])

    @property
    def molecule_ids(self) -> np.ndarray:
        """QM9 indices (the ``gdb`` numbers, 1 to 133,885) of the molecules, in dataset order.

        ``[len(self)]`` int64; for a view such as ``dataset[perm]``, the ids of its molecules.
        """
        idx = self._data.idx.view(-1)
        if self._indices is not None:
            idx = idx[torch.as_tensor(list(self.indices()), dtype=torch.long)]
        return idx.numpy().astype(np.int64)

    @property
    def units(self) -> tuple[str, ...]:
        """Units of the target columns of ``y``."""
        return tuple(TARGETS[t].unit for t in self.targets)

    @property
    def raw_file_names(self) -> list[str]:
        return []  # sources are found in process(); PyG's download step is not used

    @property
    def processed_file_names(self) -> list[str]:
        key = [f"v{_FORMAT_VERSION}", "-".join(self.targets), self.selection.key]
        extra = repr(self.pre_transform) if self.pre_transform is not None else ""
        if self.source_dir is not None:
            extra += str(self.source_dir.resolve())
        if extra:
            key.append(hashlib.sha256(extra.encode()).hexdigest()[:10])
        return ["qm9_" + "_".join(key) + ".pt"]

    def download(self) -> None:  # pragma: no cover - PyG calls this only for raw_file_names
        pass

    def atomref(self, target: str | None = None, max_z: int = 100) -> Tensor:
        """Per-element reference values of ``target`` (default: the first) as ``[max_z]``."""
        name = target or self.targets[0]
        base = TARGETS[name].atomization_of or name
        return torch.tensor(atom_reference(base, max_z))

    # -- processing -----------------------------------------------------------------------------
    def _raw_source(self) -> Path | None:
        raw = Path(self.raw_dir)
        if not (raw / "uncharacterized.txt").is_file():
            return None
        for name in ("dsgdb9nsd.xyz", "dsgdb9nsd.xyz.tar.bz2"):
            if (raw / name).exists():
                return raw / name
        return None

    def process(self) -> None:
        csv_dir = self.source_dir or qm9pack_dir()
        raw = self._raw_source()
        if raw is not None:
            self.source = "official release"
            columns = _read_official(
                raw, Path(self.raw_dir) / "uncharacterized.txt", self.selection, self.progress
            )
        elif csv_dir is not None:
            self.source = f"qm9pack ({csv_dir})"
            columns = _read_qm9pack(csv_dir, self.selection, self.progress)
        elif self.allow_download:
            self.source = "download"
            _download_official(Path(self.raw_dir))
            raw = self._raw_source()
            assert raw is not None
            columns = _read_official(
                raw, Path(self.raw_dir) / "uncharacterized.txt", self.selection, self.progress
            )
        else:
            raise FileNotFoundError(_NO_SOURCE.format(raw=self.raw_dir))
        data, slices = _assemble(columns, self.targets)
        if self.pre_transform is not None:
            items = [
                self.pre_transform(_item(data, slices, i)) for i in range(len(slices["y"]) - 1)
            ]
            self.save(items, self.processed_paths[0])
            return
        torch.save((data.to_dict(), slices, Data), self.processed_paths[0])

    def get(self, idx: int) -> Data:
        data = super().get(idx)
        if "smiles_bytes" in data:
            data = data.clone()
            data.smiles = bytes(data.smiles_bytes.numpy()).decode()
            del data.smiles_bytes
            data.name = f"gdb_{int(data.idx)}"
        return data

    def __repr__(self) -> str:
        chosen = ""
        if self.subset is not None:
            chosen = f", subset={self.subset}, subset_seed={self.subset_seed}"
        elif self.first is not None:
            chosen = f", first={self.first}"
        return f"QM9({len(self)}, target={list(self.targets)}{chosen})"


def _count(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive number of molecules, got {value!r}")


@dataclass(frozen=True)
class _Selection:
    """Which molecules of the source to keep: all, a seeded random ``subset``, or the ``first``."""

    subset: int | None = None
    seed: int = 0
    first: int | None = None

    def __post_init__(self) -> None:
        if self.subset is not None and self.first is not None:
            raise ValueError(
                f"give subset (a random draw, here {self.subset}) or first (the first molecules "
                f"in file order, here {self.first}), not both"
            )
        _count("subset", self.subset)
        _count("first", self.first)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"subset_seed must be an integer, got {self.seed!r}")
        if self.seed < 0:
            raise ValueError(f"subset_seed must be non-negative, got {self.seed}")

    @property
    def key(self) -> str:
        """The part of the processed file's name that names the selection."""
        if self.subset is not None:
            return f"subset{self.subset}-seed{self.seed}"
        return f"first{self.first}" if self.first is not None else "all"

    @property
    def stop(self) -> int | None:
        """How many molecules in file order are enough to read (``None``: all of them)."""
        return self.first

    def rows(self, n: int) -> np.ndarray | None:
        """Sorted positions to keep among the source's ``n`` molecules; ``None`` for all."""
        if self.first is not None:
            return np.arange(min(self.first, n)) if self.first < n else None
        if self.subset is None:
            return None
        if self.subset > n:
            raise ValueError(
                f"subset={self.subset} exceeds the {n} molecules of the QM9 source; pass "
                f"subset=None for all of them"
            )
        return np.sort(np.random.default_rng(self.seed).permutation(n)[: self.subset])


_NO_SOURCE = (
    "no QM9 source found and downloads are off. Either pip install 'molgnn[qm9]' (the qm9pack "
    "wheel ships all of QM9), set MOLGNN_QM9PACK_DIR to a folder of qm9pack's CSV files, or put "
    "the official release (dsgdb9nsd.xyz.tar.bz2 and uncharacterized.txt from figshare) in {raw}"
)


def _item(data: Data, slices: dict[str, Tensor], i: int) -> Data:
    out = Data()
    for key, sl in slices.items():
        value = data[key]
        a, b = int(sl[i]), int(sl[i + 1])
        out[key] = value[a] if isinstance(value, list) else value[a:b]
    out.smiles = bytes(out.smiles_bytes.numpy()).decode()
    del out.smiles_bytes
    out.name = f"gdb_{int(out.idx)}"
    return out


class _Columns:
    """Parsed molecules, column-wise."""

    def __init__(self, index: np.ndarray, smiles: list[str], counts: np.ndarray, z: np.ndarray,
                 pos: np.ndarray, props: dict[str, np.ndarray]) -> None:  # fmt: skip
        self.index, self.smiles, self.counts, self.z, self.pos, self.props = (
            index, smiles, counts, z, pos, props,
        )  # fmt: skip

    def take(self, rows: np.ndarray | None) -> _Columns:
        """The molecules at positions ``rows`` (all for ``None``)."""
        if rows is None:
            return self
        starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])[rows]
        counts = self.counts[rows]
        # Atom positions: each kept molecule's start, repeated over its atoms, plus 0..count-1.
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        atoms = np.repeat(starts, counts) + within
        return _Columns(
            self.index[rows], [self.smiles[i] for i in rows], counts, self.z[atoms],
            self.pos[atoms], {k: v[rows] for k, v in self.props.items()},
        )  # fmt: skip


def _assemble(c: _Columns, targets: tuple[str, ...]) -> tuple[Data, dict[str, Tensor]]:
    m = len(c.index)
    ys = []
    for name in targets:
        spec = TARGETS[name]
        raw = c.props[spec.atomization_of or name].astype(np.float64)
        if spec.atomization_of is not None:
            table = np.zeros(100)
            for zz, value in ATOM_REFERENCE_RAW[spec.atomization_of].items():
                table[zz] = value
            per_atom = table[c.z]
            offsets = np.add.reduceat(per_atom, np.concatenate([[0], np.cumsum(c.counts)[:-1]]))
            raw = raw - offsets
        ys.append(raw * spec.factor)
    y = torch.from_numpy(np.stack(ys, axis=1)).float()
    ptr = torch.from_numpy(np.concatenate([[0], np.cumsum(c.counts)])).long()
    data = Data(
        z=torch.from_numpy(c.z).long(),
        pos=torch.from_numpy(c.pos).float(),
        y=y,
        idx=torch.from_numpy(c.index).long(),
        # SMILES as one byte string with offsets: 130k Python strings would make every load
        # several times slower (weights_only unpickling).
        smiles_bytes=torch.frombuffer(bytearray("".join(c.smiles).encode()), dtype=torch.uint8),
    )
    one = torch.arange(m + 1)
    lengths = torch.tensor([len(s.encode()) for s in c.smiles], dtype=torch.long)
    chars = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(lengths, 0)])
    slices = {"z": ptr, "pos": ptr, "y": one, "idx": one, "smiles_bytes": chars}
    return data, slices


_STRIP_BRACKETS = str.maketrans("", "", "[]")
_STRIP_SYMBOLS = str.maketrans("", "", "[]'\" ")


def _elements(tokens: list[str], where: str) -> np.ndarray:
    try:
        return np.array(list(map(ATOMIC_NUMBERS.__getitem__, tokens)), dtype=np.int64)
    except KeyError as err:
        raise ValueError(f"{where}: unknown element {err.args[0]!r}") from None


def _read_qm9pack(folder: Path, selection: _Selection, progress: bool) -> _Columns:
    files = [folder / f for f in _CSV_FILES if (folder / f).is_file()]
    if not files:
        raise FileNotFoundError(f"no qm9pack CSV files ({', '.join(_CSV_FILES)}) in {folder}")
    prop_columns = {name: TARGETS[name].column for name in (
        "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "cv")}  # fmt: skip
    wanted = ["Index", "SMILES", "N_atoms", "Elements", "XYZ_Ang", *prop_columns.values()]
    frames: dict[str, list[list[str]]] = {k: [] for k in wanted}
    rows = 0
    bar = tqdm(
        files, desc="reading QM9 (qm9pack)", unit="file", disable=not progress, file=sys.stderr
    )
    for path in bar:
        table = _read_csv(path, wanted)
        for k in wanted:
            frames[k].append(table[k])
        rows += len(table["Index"])
        if selection.stop is not None and rows >= selection.stop:
            break
    col = {k: [v for part in frames[k] for v in part] for k in wanted}
    # Keep the chosen rows before parsing: coordinates and elements are most of the work.
    keep = selection.rows(len(col["Index"]))
    if keep is not None:
        col = {k: [v[i] for i in keep] for k, v in col.items()}
    counts = np.asarray(col["N_atoms"], dtype=np.int64)
    if (counts < 1).any():
        bad = int(np.asarray(col["Index"])[counts < 1][0])
        raise ValueError(f"{folder}: molecule {bad} has no atoms")
    flat = ",".join(col["XYZ_Ang"]).translate(_STRIP_BRACKETS)
    pos = np.fromstring(flat, dtype=np.float64, sep=",")  # C parser; accepts "0." floats
    if pos.size != 3 * counts.sum():
        raise ValueError(
            f"{folder}: the coordinates hold {pos.size // 3} atoms but N_atoms adds up to "
            f"{counts.sum()} (a truncated or corrupt CSV file?)"
        )
    if not np.isfinite(pos).all():
        raise ValueError(f"{folder}: NaN or infinite coordinates in the CSV files")
    tokens = ",".join(col["Elements"]).translate(_STRIP_SYMBOLS).split(",")
    z = _elements(tokens, str(folder))
    if z.size != counts.sum():
        raise ValueError(f"{folder}: Elements and N_atoms disagree (a corrupt CSV file?)")
    props = {name: np.asarray(col[c], dtype=np.float64) for name, c in prop_columns.items()}
    return _Columns(
        np.asarray(col["Index"], dtype=np.int64), list(col["SMILES"]), counts, z,
        pos.reshape(-1, 3), props,
    )  # fmt: skip


def _read_csv(path: Path, columns: list[str]) -> dict[str, list[str]]:
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if pd is not None:
        try:
            frame = pd.read_csv(path, usecols=columns, keep_default_na=False)
        except ValueError as err:
            raise ValueError(f"{path}: truncated or corrupt CSV file ({err})") from None
        return {c: frame[c].tolist() for c in columns}
    out: dict[str, list[str]] = {c: [] for c in columns}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(columns) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        for row in reader:
            for c in columns:
                out[c].append(row[c])
    return out


def _read_uncharacterized(path: Path) -> set[int]:
    skip = set()
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            skip.add(int(parts[0]))
    return skip


def _member_text(tar: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    handle = tar.extractfile(member)
    if handle is None:
        raise ValueError(f"{member.name}: cannot read from the archive")
    return handle.read().decode()


def _read_official(
    source: Path, uncharacterized: Path, selection: _Selection, progress: bool
) -> _Columns:
    skip = _read_uncharacterized(uncharacterized)
    if source.is_dir():
        files = sorted(source.glob("*.xyz"))
        texts: Iterator[tuple[str, str]] = ((f.name, f.read_text()) for f in files)
        total = len(files)
    else:
        with tarfile.open(source, "r:bz2") as tar:
            members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
            contents = [(m.name, _member_text(tar, m)) for m in members]
        texts = iter(contents)
        total = len(contents)
    index, smiles, counts, zs, pos = [], [], [], [], []
    props: dict[str, list[float]] = {k: [] for k in _RAW_COLUMNS}
    for name, text in tqdm(texts, total=total, desc="reading QM9 (official release)",
                           disable=not progress, file=sys.stderr):  # fmt: skip
        lines = text.splitlines()
        try:
            n = int(lines[0])
            header = lines[1].split()
            idx = int(header[1])
        except (IndexError, ValueError):
            raise ValueError(f"{name}: not a QM9 XYZ file (bad count or property line)") from None
        if idx in skip:
            continue
        if len(lines) < n + 5 or len(header) < 2 + len(_RAW_COLUMNS):
            raise ValueError(f"{name}: truncated QM9 XYZ file")
        for key, value in zip(_RAW_COLUMNS, header[2 : 2 + len(_RAW_COLUMNS)]):
            props[key].append(float(value.replace("*^", "e")))
        for k in range(n):
            parts = lines[2 + k].split()
            zs.append(_elements([parts[0]], f"{name}, line {3 + k}")[0])
            pos.append([float(t.replace("*^", "e")) for t in parts[1:4]])
        index.append(idx)
        counts.append(n)
        smiles.append(lines[n + 3].split()[0])
        if selection.stop is not None and len(index) >= selection.stop:
            break
    pos_a = np.asarray(pos, dtype=np.float64)
    if not np.isfinite(pos_a).all():
        raise ValueError(f"{source}: NaN or infinite coordinates")
    columns = _Columns(
        np.asarray(index, dtype=np.int64), smiles, np.asarray(counts, dtype=np.int64),
        np.asarray(zs, dtype=np.int64), pos_a.reshape(-1, 3),
        {k: np.asarray(v) for k, v in props.items()},
    )  # fmt: skip
    return columns.take(selection.rows(len(index)))


def _download_official(raw_dir: Path) -> None:  # pragma: no cover - needs internet
    raw_dir.mkdir(parents=True, exist_ok=True)
    for url, name in (
        (_RAW_URL, "dsgdb9nsd.xyz.tar.bz2"),
        (_UNCHARACTERIZED_URL, "uncharacterized.txt"),
    ):
        target = raw_dir / name
        if target.exists():
            continue
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                write_atomic_with(target, functools.partial(shutil.copyfileobj, response))
        except OSError as err:
            raise FileNotFoundError(
                f"downloading QM9 from {url} failed ({err}). " + _NO_SOURCE.format(raw=raw_dir)
            ) from None
