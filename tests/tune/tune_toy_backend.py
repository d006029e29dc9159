"""A small, real training backend for testing the sweep machinery without QM9 or the ET.

It fits a two-layer MLP to a fixed random regression problem; ``explode=True`` makes the
loss NaN at the second epoch, to test failed trials.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from molgnn.tune import split_overrides


@dataclasses.dataclass(frozen=True)
class ToyModelConfig:
    hidden_channels: int = 8
    num_layers: int = 1


@dataclasses.dataclass(frozen=True)
class ToyTrainConfig:
    lr: float = 1e-2
    batch_size: int = 16
    explode: bool = False
    sleep_s: float = 0.0


_MODEL_FIELDS = {f.name for f in dataclasses.fields(ToyModelConfig)}
_TRAIN_FIELDS = {f.name for f in dataclasses.fields(ToyTrainConfig)}


def _configs(
    settings: Mapping[str, Any], values: Mapping[str, Any]
) -> tuple[ToyModelConfig, ToyTrainConfig]:
    model_fixed, train_fixed = split_overrides(
        {**settings["model_overrides"], **settings["train_overrides"]}, _MODEL_FIELDS, _TRAIN_FIELDS
    )
    model_tuned, train_tuned = split_overrides(values, _MODEL_FIELDS, _TRAIN_FIELDS)
    return (
        dataclasses.replace(ToyModelConfig(), **{**model_fixed, **model_tuned}),
        dataclasses.replace(ToyTrainConfig(), **{**train_fixed, **train_tuned}),
    )


def _model(cfg: ToyModelConfig) -> torch.nn.Module:
    layers: list[torch.nn.Module] = [torch.nn.Linear(4, cfg.hidden_channels), torch.nn.SiLU()]
    for _ in range(cfg.num_layers - 1):
        layers += [torch.nn.Linear(cfg.hidden_channels, cfg.hidden_channels), torch.nn.SiLU()]
    layers.append(torch.nn.Linear(cfg.hidden_channels, 1))
    return torch.nn.Sequential(*layers)


def make_data(seed: int = 0, n: int = 256) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen)
    y = (x[:, :1] * x[:, 1:2] + torch.sin(x[:, 2:3]) - 0.5 * x[:, 3:]) * 0.1  # eV-sized
    return {"x": x, "y": y}


class ToyTrial:
    def __init__(
        self, model_cfg: ToyModelConfig, train_cfg: ToyTrainConfig, data: dict, seed: int
    ) -> None:
        torch.manual_seed(seed)
        self.model_cfg = model_cfg
        self.train_cfg = train_cfg
        self.model = _model(model_cfg)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=train_cfg.lr)
        n = data["x"].size(0)
        self.train = (data["x"][: n * 3 // 4], data["y"][: n * 3 // 4])
        self.val = (data["x"][n * 3 // 4 :], data["y"][n * 3 // 4 :])
        self.epoch = 0

    def run_epoch(self) -> dict[str, float]:
        x, y = self.train
        total = 0.0
        for i in range(0, x.size(0), self.train_cfg.batch_size):
            loss = torch.nn.functional.mse_loss(
                self.model(x[i : i + self.train_cfg.batch_size]),
                y[i : i + self.train_cfg.batch_size],
            )
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            total += float(loss)
        self.epoch += 1
        time.sleep(self.train_cfg.sleep_s)
        if self.train_cfg.explode and self.epoch >= 2:
            total = float("nan")
        with torch.no_grad():
            val = float((self.model(self.val[0]) - self.val[1]).abs().mean())
        return {"train_loss": total, "val_mae": val}

    def save(self, path: Path) -> None:
        tmp = Path(str(path) + ".tmp")
        torch.save(
            {
                "model_config": dataclasses.asdict(self.model_cfg),
                "state_dict": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "epoch": self.epoch,
                "pid": os.getpid(),
            },
            tmp,
        )
        tmp.replace(path)

    def load(self, path: Path) -> None:
        state = torch.load(path, weights_only=True)
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])


def load_toy_model(path: str | os.PathLike[str]) -> torch.nn.Module:
    state = torch.load(path, weights_only=True)
    model = _model(ToyModelConfig(**state["model_config"]))
    model.load_state_dict(state["state_dict"])
    return model.eval()


class ToyBackend:
    def model_kind(self, model: str) -> str:
        if model != "toy":
            raise ValueError(f"unknown model preset {model!r}; valid: ['toy']")
        return "toy"

    def check_trial_config(self, settings: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        _configs(settings, values)

    def prepare_dataset(self, settings: Mapping[str, Any]) -> Any:
        return make_data(settings["seed"], n=settings["subset"] or 256)

    def create_trial(
        self,
        settings: Mapping[str, Any],
        values: Mapping[str, Any],
        *,
        device: torch.device,
        dataset: Any,
    ) -> ToyTrial:
        model_cfg, train_cfg = _configs(settings, values)
        return ToyTrial(model_cfg, train_cfg, dataset, settings["seed"])

    def evaluate_checkpoint(
        self, path: Path, settings: Mapping[str, Any], dataset: Any, split: str
    ) -> float:
        model = load_toy_model(path)
        x, y = dataset["x"], dataset["y"]
        with torch.no_grad():
            return float((model(x) - y).abs().mean())

    def resolved_configs(
        self, settings: Mapping[str, Any], values: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        model_cfg, train_cfg = _configs(settings, values)
        return dataclasses.asdict(model_cfg), dataclasses.asdict(train_cfg)
