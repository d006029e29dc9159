import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from molgnn.nn import radius_graph


def brute_force(pos, r, batch, loop, k):
    """O(N^2) reference: for each centre, neighbours closer than r, nearest k (ties: index)."""
    edges = []
    for i in range(pos.size(0)):
        cands = []
        for j in range(pos.size(0)):
            if batch[j] != batch[i] or (i == j and not loop):
                continue
            d2 = float(((pos[j] - pos[i]) ** 2).sum())
            if d2 < r * r:
                cands.append((d2, j))
        cands.sort()
        if k is not None:
            cands = cands[:k]
        edges += [(j, i) for j in sorted(j for _, j in cands)]
    return torch.tensor(edges, dtype=torch.long).reshape(-1, 2).T


@st.composite
def clouds(draw):
    n = draw(st.integers(0, 40))
    seed = draw(st.integers(0, 2**31 - 1))
    num_graphs = draw(st.integers(1, 4))
    gen = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, 3, generator=gen, dtype=torch.float64) * 2
    batch = torch.randint(num_graphs, (n,), generator=gen)
    if draw(st.booleans()):
        batch = batch.sort().values
    return pos, batch


@settings(max_examples=60, deadline=None)
@given(clouds(), st.floats(0.5, 6.0), st.booleans(), st.sampled_from([None, 1, 3, 32]))
def test_equals_brute_force(cloud, r, loop, k):
    pos, batch = cloud
    got = radius_graph(pos, r, batch, loop=loop, max_num_neighbors=k)
    assert torch.equal(got, brute_force(pos, r, batch, loop, k))


def test_chunked_search_matches(monkeypatch):
    import molgnn.nn.radius as radius

    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(60, 3, generator=gen) * 2
    batch = torch.arange(3).repeat_interleave(20)
    expected = radius_graph(pos, 3.0, batch, max_num_neighbors=5)
    monkeypatch.setattr(radius, "_MAX_PAIRS_PER_CHUNK", 37)
    assert torch.equal(radius_graph(pos, 3.0, batch, max_num_neighbors=5), expected)


def test_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        radius_graph(torch.tensor([[0.0, 0, 0], [float("inf"), 0, 0]]), 1.0)
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        radius_graph(torch.zeros(4, 2), 1.0)
    with pytest.raises(ValueError, match="positive"):
        radius_graph(torch.zeros(4, 3), 0.0)
    with pytest.raises(ValueError, match="batch"):
        radius_graph(torch.zeros(4, 3), 1.0, torch.zeros(3, dtype=torch.long))
    assert radius_graph(torch.zeros(0, 3), 1.0).shape == (2, 0)
