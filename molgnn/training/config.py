"""The training configuration: one frozen dataclass, readable from YAML and ``key=value`` pairs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from molgnn.config import Config, parse_assignment, yaml_value
from molgnn.data.keys import get_target

__all__ = ["ENERGY_TARGETS", "TrainConfig", "parse_assignment"]

#: Targets trained with the atom-reference prior by default (REFERENCE: torchmd-net's U0 recipe).
ENERGY_TARGETS = ("U0", "U", "H", "G")
_LOSSES = ("mse", "l1")
_DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig(Config):
    """Everything a training run needs. Defaults give the embedded CPU run of ``molgnn train``.

    Every field is checked by type when the config is made (from Python, YAML or ``--set``):
    ``epochs: 1.7`` or ``lr: "fast"`` is an error that names the field.

    The optimisation follows the ET paper's QM9 recipe (AdamW, linear warm-up, then
    ReduceLROnPlateau on the validation loss), scaled down for a quick CPU run.

    Args:
        model: Model preset name (``molgnn.models.PRESETS``) (default: ``"et-small"``).
        model_overrides: Fields of the preset's config to change, e.g. ``{"num_layers": 2}``.
        target: QM9 target name (default: ``"gap"``, in eV).
        data_root: Folder of the processed dataset (default: molgnn's data cache).
        subset: Train, validate and test on ``subset`` molecules drawn at random from all of
            QM9 (:class:`~molgnn.data.QM9`'s ``subset``); ``None`` for all 130,831
            (default: ``2000``).
        subset_seed: Seed of the ``subset`` draw (default: ``0``).
        train_size: Training molecules, a count or a fraction (default: ``0.8``).
        val_size: Validation molecules, a count or a fraction (default: ``0.1``).
        test_size: Test molecules; ``None`` takes the rest (default: ``None``).
        split_seed: Seed of the split permutation (default: ``1``, torchmd-net's).
        batch_size: Training batch size (default: ``32``).
        inference_batch_size: Validation and test batch size (default: ``128``).
        lr: Peak learning rate (default: ``5e-4``).
        weight_decay: AdamW weight decay (default: ``0.0``).
        warmup_steps: Linear warm-up steps (default: ``200``).
        lr_factor: ReduceLROnPlateau factor (default: ``0.8``).
        lr_patience: ReduceLROnPlateau patience in epochs (default: ``5``).
        lr_min: Smallest learning rate (default: ``1e-7``).
        epochs: Most epochs (default: ``14``, about two minutes on 2 CPU cores).
        early_stopping_patience: Epochs without validation improvement before stopping
            (default: ``150``).
        max_time: Stop after this many seconds of training, ``None`` for no limit.
        loss: ``"mse"`` or ``"l1"`` (default: ``"mse"``).
        ema_decay: Decay of an exponential moving average of the weights, used for validation,
            test and the saved model; ``None`` for none (default: ``None``).
        gradient_clip: Clip the gradient norm to this value; ``None`` for no clipping.
        standardize: Scale outputs by the training targets' mean and std; ``None`` chooses
            (on unless ``atomref`` is on) (default: ``None``).
        atomref: Use the QM9 atom-reference prior; ``None`` chooses (on for U0, U, H, G).
        seed: Seed of the model initialisation and batch order (default: ``0``).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (default: ``"auto"``).
        bf16: bf16 autocast on CUDA (default: ``False``).
        compile: Compile the model's hot path with :func:`torch.compile` (see
            :meth:`MolecularModel.compile <molgnn.models.MolecularModel.compile>`): the first
            batches are slow while it compiles, later ones faster (default: ``False``).
        tune_malloc: On the CPU, make glibc keep freed memory for reuse
            (:func:`~molgnn.training.tune_malloc`), which saves the page faults of every step's
            large temporaries; the process then keeps its peak memory (default: ``True``).
        out_dir: Output folder for checkpoints and logs (default: ``"runs/train"``).
    """

    model: str = "et-small"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    target: str = "gap"
    data_root: str | None = None
    subset: int | None = 2000
    subset_seed: int = 0
    train_size: float = 0.8
    val_size: float = 0.1
    test_size: float | None = None
    split_seed: int = 1
    batch_size: int = 32
    inference_batch_size: int = 128
    lr: float = 5e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    lr_factor: float = 0.8
    lr_patience: int = 5
    lr_min: float = 1e-7
    epochs: int = 14
    early_stopping_patience: int = 150
    max_time: float | None = None
    loss: str = "mse"
    ema_decay: float | None = None
    gradient_clip: float | None = None
    standardize: bool | None = None
    atomref: bool | None = None
    seed: int = 0
    device: str = "auto"
    bf16: bool = False
    compile: bool = False
    tune_malloc: bool = True
    out_dir: str = "runs/train"

    def __post_init__(self) -> None:
        super().__post_init__()
        get_target(self.target)
        if self.loss not in _LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; valid losses: {', '.join(_LOSSES)}")
        if self.device not in _DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"unknown device {self.device!r}; use auto, cpu, cuda or cuda:N")
        for name in ("batch_size", "inference_batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.subset is not None and (isinstance(self.subset, bool) or self.subset < 3):
            raise ValueError(f"subset must hold at least 3 molecules, got {self.subset}")
        if self.subset_seed < 0:
            raise ValueError(f"subset_seed must be non-negative, got {self.subset_seed}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in (0, 1), got {self.ema_decay}")
        if not isinstance(self.model_overrides, dict):
            raise ValueError("model_overrides must be a mapping of model config fields")

    @property
    def use_atomref(self) -> bool:
        """Whether the atom-reference prior is used (``atomref`` resolved)."""
        return self.target in ENERGY_TARGETS if self.atomref is None else self.atomref

    @property
    def use_standardize(self) -> bool:
        """Whether outputs are standardised (``standardize`` resolved)."""
        return (not self.use_atomref) if self.standardize is None else self.standardize

    def with_assignments(self, assignments: Iterable[str]) -> TrainConfig:
        """Apply ``key=value`` strings (``--set``), type-checked like every other value.

        ``model.X=value`` sets ``model_overrides["X"]`` (checked when the model is built).
        """
        config = self
        for text in assignments:
            key, value = parse_assignment(text)
            if key.startswith("model."):
                overrides = {**config.model_overrides, key[len("model.") :]: yaml_value(value)}
                config = config.replace(model_overrides=overrides)
            else:
                config = Config.with_assignments(config, [text])
        return config
