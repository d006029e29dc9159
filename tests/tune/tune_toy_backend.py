"""A small, real training backend for testing the sweep machinery without QM9 or the ET.

It fits a two-layer MLP to a fixed random regression problem; ``explode=True`` makes the
loss NaN at the second epoch, to test failed trials.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import torch

from molgnn.config import Config


@dataclasses.dataclass(frozen=True)
class ToyModelConfig(Config):
    hidden_channels: int = 8
    num_layers: int = 1


@dataclasses.dataclass(frozen=True)
class ToyConfig(Config):
    """The toy's training config: a nested model config, as molgnn's TrainConfig has."""

    model: ToyModelConfig = dataclasses.field(default_factory=ToyModelConfig)
    lr: float = 1e-2
    batch_size: int = 16
    explode: bool = False
    sleep_s: float = 0.0
    subset: int | None = 256
    epochs: int = 4
    seed: int = 0


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
    def __init__(self, config: ToyConfig, data: dict) -> None:
        torch.manual_seed(config.seed)
        model_cfg = config.model
        self.model_cfg = model_cfg
        self.train_cfg = config
        self.model = _model(model_cfg)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        n = data["x"].size(0)
        self.train = (data["x"][: n * 3 // 4], data["y"][: n * 3 // 4])
        self.val = (data["x"][n * 3 // 4 :], data["y"][n * 3 // 4 :])
        self.epoch = 0

    @property
    def should_stop(self) -> bool:
        return self.epoch >= self.train_cfg.epochs

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
                "model_config": self.model_cfg.to_dict(),
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
    model = _model(ToyModelConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["state_dict"])
    return model.eval()


class ToyBackend:
    def default_space(self, base: Any) -> dict[str, Any]:
        raise ValueError("the toy has no default search space")

    def prepare_dataset(self, base: ToyConfig) -> Any:
        return make_data(base.seed, n=base.subset or 256)

    def create_trial(self, config: ToyConfig, *, device: torch.device, dataset: Any) -> ToyTrial:
        return ToyTrial(config, dataset)

    def evaluate_checkpoint(self, path: Path, base: Any, dataset: Any, split: str) -> float:
        model = load_toy_model(path)
        x, y = dataset["x"], dataset["y"]
        with torch.no_grad():
            return float((model(x) - y).abs().mean())
