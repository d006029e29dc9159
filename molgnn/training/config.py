"""The training configuration: one frozen dataclass, readable from YAML and ``key=value`` pairs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from molgnn.config import Config
from molgnn.data.keys import ATOMREF_TARGETS, get_target
from molgnn.models.configs import ModelConfig
from molgnn.training.losses import get_loss

__all__ = ["TrainConfig"]

_DEVICES = ("auto", "cpu", "cuda")


def _default_model() -> ModelConfig:
    from molgnn.models import PRESETS

    return PRESETS["et-small"]


@dataclass(frozen=True)
class TrainConfig(Config):
    """Everything a training run needs. Defaults give the embedded CPU run of ``molgnn train``.

    Every field is checked by type when the config is made (from Python, YAML or ``--set``):
    ``epochs: 1.7`` or ``lr: "fast"`` is an error that names the field.

    The optimisation follows the ET paper's QM9 recipe (AdamW, linear warm-up, then
    ReduceLROnPlateau on the validation loss), scaled down for a quick CPU run.

    Args:
        model: The model's config ([`ModelConfig`][molgnn.models.ModelConfig]). A preset name
            (``"et-qm9"``, see [`molgnn.models.PRESETS`][molgnn.models.PRESETS]) or a mapping is
            resolved when the config is made: ``{"preset": "et-small", "num_layers": 2}``, or
            ``{"kind": "et", ...}`` on that kind's defaults; in a YAML file or
            [`merged`][molgnn.config.Config.merged], a mapping without ``preset`` or ``kind``
            changes fields of the current model. Its ``prior`` is the one switch of the
            atom-reference prior: ``"auto"`` (the presets' value) is resolved by
            [`resolved`][molgnn.training.TrainConfig.resolved] to ``"atomref"`` for U0, U, H and G,
            ``None`` otherwise (default: the ``"et-small"`` preset).
        target: QM9 target name (default: ``"gap"``, in eV).
        data_root: Folder of the processed dataset (default: molgnn's data cache).
        subset: Train, validate and test on ``subset`` molecules drawn at random from all of
            QM9 ([`QM9`][molgnn.data.QM9]'s ``subset``); ``None`` for all 130,831
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
        warmup_steps: Linear warm-up steps; ``None`` takes a quarter of the run's optimiser
            steps, at most 200 (the online loop's default, whose retrains are short)
            (default: ``200``).
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
            (on unless the model's prior holds the target's atom references) (default:
            ``None``).
        seed: Seed of the model initialisation and batch order (default: ``0``).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (default: ``"auto"``).
        devices: Train data-parallel on this many devices of this machine, one process per
            device (GPUs 0 to ``devices - 1`` on CUDA, else CPU processes that share the
            cores), each training its slice of every batch; ``batch_size`` stays the global
            batch, so the run follows the single-process run with the same batches
            (default: ``1``).
        bf16: bf16 autocast on CUDA (default: ``False``).
        compile: Compile the model's hot path with ``torch.compile`` (see
            [`MolecularModel.compile`][molgnn.models.MolecularModel.compile]): the first
            batches are slow while it compiles, later ones faster (default: ``False``).
        tune_malloc: On the CPU, make glibc keep freed memory for reuse
            ([`tune_malloc`][molgnn.training.tune_malloc]), which saves the page faults of every
            step's large temporaries; the process then keeps its peak memory (default: ``True``).
        out_dir: Output folder for checkpoints and logs (default: ``"runs/train"``).
    """

    #: Renamed fields: ``model_overrides`` became fields of ``model`` and ``atomref`` became
    #: ``model.prior``.
    RENAMED: ClassVar[dict[str, str]] = {"model_overrides": "model", "atomref": "model.prior"}

    model: ModelConfig = field(default_factory=_default_model)
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
    warmup_steps: int | None = 200
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
    seed: int = 0
    device: str = "auto"
    devices: int = 1
    bf16: bool = False
    compile: bool = False
    tune_malloc: bool = True
    out_dir: str = "runs/train"

    def __post_init__(self) -> None:
        super().__post_init__()
        get_target(self.target)
        get_loss(self.loss)
        if self.device not in _DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"unknown device {self.device!r}; use auto, cpu, cuda or cuda:N")
        for name in ("batch_size", "inference_batch_size", "epochs", "devices"):
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
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be non-negative, got {self.warmup_steps}")

    def _check_field(self, name: str, value: Any, hint: Any) -> Any:
        if name == "model" and not isinstance(value, ModelConfig):
            from molgnn.models import model_config

            if not isinstance(value, str | dict):
                raise ValueError(
                    f"model: expected a preset name, a mapping or a model config, got "
                    f"{value!r} ({type(value).__name__})"
                )
            try:
                return model_config(value)
            except ValueError as err:
                raise ValueError(f"model: {err}") from None
        return super()._check_field(name, value, hint)

    @classmethod
    def from_checkpoint(cls, payload: Mapping[str, Any]) -> TrainConfig:
        """The training config a molgnn checkpoint stored (its ``train_config``).

        Checkpoints from before the config tree stored a preset name with ``model_overrides``
        and ``atomref``; their model is read from the checkpoint's ``model_config``.
        """
        from molgnn.models import stored_model_config

        values = dict(payload["train_config"])
        if "model_overrides" in values or isinstance(values.get("model"), str):
            values.pop("model_overrides", None)
            values.pop("atomref", None)
            values["model"] = stored_model_config(payload["model_config"])
        elif isinstance(values.get("model"), Mapping):
            values["model"] = stored_model_config(values["model"])
        return cls.from_stored(values)

    def resolved(self) -> TrainConfig:
        """This config with the model's ``"auto"`` prior resolved for the target
        ([`for_target`][molgnn.models.ModelConfig.for_target]); the
        [`Trainer`][molgnn.training.Trainer] trains this."""
        model = self.model.for_target(self.target)
        return self if model is self.model else self.replace(model=model)

    @property
    def uses_atom_reference(self) -> bool:
        """Whether the (resolved) model's prior is fitted with the target's atom references."""
        prior = getattr(self.resolved().model, "prior", None)
        return prior is not None and self.target in ATOMREF_TARGETS

    @property
    def use_standardize(self) -> bool:
        """Whether outputs are standardised (``standardize`` resolved)."""
        return (not self.uses_atom_reference) if self.standardize is None else self.standardize
