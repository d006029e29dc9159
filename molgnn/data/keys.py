"""QM9 target names, units and unit conversions, defined once for the whole library.

Units follow PyTorch Geometric's ``QM9`` dataset: energies in eV, dipole moment in Debye,
polarisability in a0^3, spatial extent in a0^2 and heat capacity in cal/(mol K).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: Hartree to eV (CODATA 2018, as used by PyG's ``torch_geometric/datasets/qm9.py``).
HARTREE_TO_EV = 27.211386246
#: kcal/mol to eV (as used by PyG).
KCALMOL_TO_EV = 0.04336414
#: meV per eV: molgnn reports errors of eV targets in meV.
MEV_PER_EV = 1000.0


def ev_to_mev(value: float) -> float:
    """An energy (or an error of one) in eV, as meV."""
    return value * MEV_PER_EV


#: Chemical symbols indexed by atomic number (index 0 is a placeholder).
ELEMENT_SYMBOLS: tuple[str, ...] = (
    "X", "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S",
    "Cl", "Ar", "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge",
    "As", "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd",
    "In", "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd",
    "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg",
    "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm",
    "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn",
    "Nh", "Fl", "Mc", "Lv", "Ts", "Og",
)  # fmt: skip
#: Atomic number of each chemical symbol.
ATOMIC_NUMBERS: dict[str, int] = {s: i for i, s in enumerate(ELEMENT_SYMBOLS) if i > 0}
#: The elements that occur in QM9.
QM9_ELEMENTS: tuple[int, ...] = (1, 6, 7, 8, 9)

#: Standard atomic weights by atomic number: the abridged values of the IUPAC 2021 table
#: (T. Prohaska et al., "Standard atomic weights of the elements 2021", Pure Appl. Chem. 94,
#: 573-600 (2022)) for every element that has one. The one mass table of molgnn, used by
#: [`Center`][molgnn.transforms.Center] (``mode="mass"``) and by the heads that place atoms
#: relative to the centre of mass ([`DipoleMoment`][molgnn.nn.DipoleMoment],
#: [`EquivariantDipoleMoment`][molgnn.nn.EquivariantDipoleMoment],
#: [`ElectronicSpatialExtent`][molgnn.nn.ElectronicSpatialExtent]).
#:
#: Policy for the elements it lacks: the elements without a standard atomic weight (no stable
#: isotope: Tc, Pm, Po to Ac, and Np onwards) are missing on purpose and get no made-up mass;
#: every use of one raises ``ValueError`` naming the element (as the covalent radii do).
ATOMIC_MASSES: dict[int, float] = {
    1: 1.008, 2: 4.0026, 3: 6.94, 4: 9.0122, 5: 10.81, 6: 12.011, 7: 14.007, 8: 15.999,
    9: 18.998, 10: 20.180, 11: 22.990, 12: 24.305, 13: 26.982, 14: 28.085, 15: 30.974,
    16: 32.06, 17: 35.45, 18: 39.95, 19: 39.098, 20: 40.078, 21: 44.956, 22: 47.867,
    23: 50.942, 24: 51.996, 25: 54.938, 26: 55.845, 27: 58.933, 28: 58.693, 29: 63.546,
    30: 65.38, 31: 69.723, 32: 72.630, 33: 74.922, 34: 78.971, 35: 79.904, 36: 83.798,
    37: 85.468, 38: 87.62, 39: 88.906, 40: 91.222, 41: 92.906, 42: 95.95, 44: 101.07,
    45: 102.91, 46: 106.42, 47: 107.87, 48: 112.41, 49: 114.82, 50: 118.71, 51: 121.76,
    52: 127.60, 53: 126.90, 54: 131.29, 55: 132.91, 56: 137.33, 57: 138.91, 58: 140.12,
    59: 140.91, 60: 144.24, 62: 150.36, 63: 151.96, 64: 157.25, 65: 158.93, 66: 162.50,
    67: 164.93, 68: 167.26, 69: 168.93, 70: 173.05, 71: 174.97, 72: 178.49, 73: 180.95,
    74: 183.84, 75: 186.21, 76: 190.23, 77: 192.22, 78: 195.08, 79: 196.97, 80: 200.59,
    81: 204.38, 82: 207.2, 83: 208.98, 90: 232.04, 91: 231.04, 92: 238.03,
}  # fmt: skip


def atomic_mass_table(max_z: int = len(ELEMENT_SYMBOLS)) -> list[float]:
    """[`ATOMIC_MASSES`][molgnn.data.keys.ATOMIC_MASSES] as a list indexed by atomic number,
    ``max_z`` long.

    Index 0 and the elements without a mass hold ``0.0``, which marks "no mass": a lookup
    checks for it with [`check_atomic_masses`][molgnn.data.keys.check_atomic_masses].
    """
    return [ATOMIC_MASSES.get(z, 0.0) for z in range(max_z)]


def check_atomic_masses(atomic_numbers: Iterable[int], where: str = "") -> None:
    """Raise ``ValueError`` naming the elements of ``atomic_numbers`` without a mass.

    Args:
        atomic_numbers: The atomic numbers to check.
        where: What the atoms belong to, for the message (e.g. ``"molecule 'gdb_7'"``).

    Raises:
        ValueError: if any element lacks an entry in
            [`ATOMIC_MASSES`][molgnn.data.keys.ATOMIC_MASSES].
    """
    missing = sorted({int(z) for z in atomic_numbers} - set(ATOMIC_MASSES))
    if missing:
        names = ", ".join(
            ELEMENT_SYMBOLS[z] if 0 < z < len(ELEMENT_SYMBOLS) else f"Z={z}" for z in missing
        )
        raise ValueError(
            f"{where + ': ' if where else ''}no atomic mass for element(s) {names}: they have "
            "no standard atomic weight (molgnn.data.keys.ATOMIC_MASSES)"
        )


@dataclass(frozen=True)
class Target:
    """One QM9 property.

    Args:
        name: Short name used everywhere in molgnn (``"gap"``, ``"U0"``, ...).
        unit: Unit of the values molgnn stores and predicts.
        column: Column of the qm9pack CSV files that holds the raw value.
        factor: Multiplies the raw (qm9pack / official release) value to give ``unit``.
        description: Human-readable description.
        extensive: Whether the property grows with molecule size (sum pooling is natural).
        atomization_of: For atomization energies, the total energy they are derived from by
            subtracting the isolated atoms' energies.
    """

    name: str
    unit: str
    column: str
    factor: float
    description: str
    extensive: bool
    atomization_of: str | None = None


_H = HARTREE_TO_EV
#: The 12 standard QM9 targets, in the order of the official release and PyG's first 12 columns.
TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("mu", "D", "Dipole_debye", 1.0, "dipole moment", False),
        Target("alpha", "a0^3", "Polarizability_bohr3", 1.0, "isotropic polarizability", True),
        Target("homo", "eV", "HOMO_au", _H, "energy of the HOMO", False),
        Target("lumo", "eV", "LUMO_au", _H, "energy of the LUMO", False),
        Target("gap", "eV", "HOMO_LUMO_gap_au", _H, "HOMO-LUMO gap", False),
        Target("r2", "a0^2", "R2_bohr2", 1.0, "electronic spatial extent", True),
        Target("zpve", "eV", "ZPVE_au", _H, "zero point vibrational energy", True),
        Target("U0", "eV", "InternalEnergy_0K_au", _H, "internal energy at 0 K", True),
        Target("U", "eV", "InternalEnergy_298K_au", _H, "internal energy at 298.15 K", True),
        Target("H", "eV", "Enthalphy_298K_au", _H, "enthalpy at 298.15 K", True),
        Target("G", "eV", "GibbsFreeEnergy_298K_au", _H, "free energy at 298.15 K", True),
        Target(
            "cv", "cal/(mol K)", "Heatcapacity_Cv_cal_mol_K", 1.0, "heat capacity at 298.15 K", True
        ),
        Target(
            "U0_atom", "eV", "InternalEnergy_0K_au", _H, "atomization energy at 0 K", True, "U0"
        ),
        Target(
            "U_atom",
            "eV",
            "InternalEnergy_298K_au",
            _H,
            "atomization energy at 298.15 K",
            True,
            "U",
        ),
        Target(
            "H_atom", "eV", "Enthalphy_298K_au", _H, "atomization enthalpy at 298.15 K", True, "H"
        ),
        Target(
            "G_atom",
            "eV",
            "GibbsFreeEnergy_298K_au",
            _H,
            "atomization free energy at 298.15 K",
            True,
            "G",
        ),
    )
}
#: The 12 standard QM9 targets (the atomization variants follow them in
#: [`TARGETS`][molgnn.data.TARGETS]).
STANDARD_TARGETS: tuple[str, ...] = (
    "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "cv",
)  # fmt: skip
TARGET_NAMES: tuple[str, ...] = tuple(TARGETS)

#: Energies of the isolated atoms (B3LYP/6-31G(2df,p)), in Hartree, from the QM9 paper's
#: ``atomref`` table (Ramakrishnan et al., Sci. Data 1, 140022 (2014), figshare 1057643).
#: Keys: target name -> {atomic number: energy}. ``cv`` is in cal/(mol K).
ATOM_REFERENCE_RAW: dict[str, dict[int, float]] = {
    "zpve": {1: 0.0, 6: 0.0, 7: 0.0, 8: 0.0, 9: 0.0},
    "U0": {1: -0.500273, 6: -37.846772, 7: -54.583861, 8: -75.064579, 9: -99.718730},
    "U": {1: -0.498857, 6: -37.845355, 7: -54.582445, 8: -75.063163, 9: -99.717314},
    "H": {1: -0.497912, 6: -37.844411, 7: -54.581501, 8: -75.062219, 9: -99.716370},
    "G": {1: -0.510927, 6: -37.861317, 7: -54.598897, 8: -75.079532, 9: -99.733544},
    "cv": {1: 2.981, 6: 2.981, 7: 2.981, 8: 2.981, 9: 2.981},
}


#: Targets with per-element atom references ([`atom_reference`][molgnn.data.atom_reference]): the
#: total energies. An ``"auto"`` model prior becomes the Atomref prior for them (torchmd-net's U0
#: recipe).
ATOMREF_TARGETS: tuple[str, ...] = ("U0", "U", "H", "G")


def atom_reference(target: str, max_z: int = 100) -> list[float]:
    """Per-element reference values of ``target`` in molgnn's units, indexed by atomic number.

    Elements without a reference get 0. Targets without atom references (``gap``, ``mu``, ...)
    get all zeros.

    Args:
        target: A name from ``TARGET_NAMES``.
        max_z: Length of the returned list (the largest atomic number + 1).

    Returns:
        A list of ``max_z`` floats.
    """
    spec = get_target(target)
    table = [0.0] * max_z
    for z, value in ATOM_REFERENCE_RAW.get(spec.name, {}).items():
        if z < max_z:
            table[z] = value * spec.factor
    return table


def get_target(name: str) -> Target:
    """Return the [`Target`][molgnn.data.Target] called ``name``.

    Raises:
        ValueError: if ``name`` is not a QM9 target; the message lists the valid names.
    """
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(
            f"unknown QM9 target {name!r}; valid targets are: {', '.join(TARGET_NAMES)}"
        ) from None


def resolve_targets(target: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Normalise one target name or a list of names and check each one.

    Raises:
        ValueError: for an empty list, a duplicate or an unknown name.
    """
    names = (target,) if isinstance(target, str) else tuple(target)
    if not names:
        raise ValueError("target must name at least one QM9 property")
    for name in names:
        get_target(name)
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate target names in {list(names)}")
    return names
