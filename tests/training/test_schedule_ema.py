import pytest
import torch

from molgnn.training import WarmupPlateauSchedule, WeightEMA


def test_warmup_then_plateau():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1.0)
    sched = WarmupPlateauSchedule(opt, lr=1.0, warmup_steps=3, factor=0.5, patience=0)
    lrs = []
    for _ in range(4):
        lrs.append(sched.current_lr)
        sched.step_batch()
    assert lrs == pytest.approx([0.25, 0.5, 0.75, 1.0])
    sched.step_epoch(1.0)
    sched.step_epoch(2.0)  # no improvement with patience 0 -> halve
    assert sched.current_lr == pytest.approx(0.5)
    state = sched.state_dict()
    other = WarmupPlateauSchedule(torch.optim.AdamW([p], lr=1.0), 1.0, 3, 0.5, 0)
    other.load_state_dict(state)
    assert other.step_count == 4


def test_ema_average_and_swap():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = WeightEMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)
    assert ema.shadow["weight"].item() == pytest.approx(0.5)
    ema.swap(model)
    assert model.weight.item() == pytest.approx(0.5)
    ema.swap(model)
    assert model.weight.item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        WeightEMA(model, 1.5)
