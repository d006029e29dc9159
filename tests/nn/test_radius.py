import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import molgnn.nn.radius as radius
from molgnn.nn import radius_graph


def brute_force(pos, r, batch, loop, k):
    """O(N^2) reference: for each centre, neighbours closer than r, nearest k (ties: index)."""
    r2 = float(r) * float(r)
    edges = []
    for i in range(pos.size(0)):
        cands = []
        for j in range(pos.size(0)):
            if batch[j] != batch[i] or (i == j and not loop):
                continue
            d2 = (
                (pos[j] - pos[i]) ** 2
            ).sum()  # in the dtype of pos, compared as radius_graph does
            if bool(d2 < r2):
                cands.append((float(d2), j))
        cands.sort()
        if k is not None:
            cands = cands[:k]
        edges += [(j, i) for j in sorted(j for _, j in cands)]
    return torch.tensor(edges, dtype=torch.long).reshape(-1, 2).T


@st.composite
def clouds(draw):
    """Random atoms in up to 4 molecules; batch sorted or not, molecule ids possibly with gaps."""
    n = draw(st.integers(0, 40))
    seed = draw(st.integers(0, 2**31 - 1))
    num_graphs = draw(st.integers(1, 4))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    gen = torch.Generator().manual_seed(seed)
    pos = (torch.randn(n, 3, generator=gen, dtype=torch.float64) * 2).to(dtype)
    batch = torch.randint(num_graphs, (n,), generator=gen)
    if draw(st.booleans()):
        batch = batch.sort().values
    return pos, batch


@settings(max_examples=60, deadline=None)
@given(
    clouds(),
    st.floats(0.5, 6.0),
    st.booleans(),
    st.sampled_from([None, 1, 3, 32]),
    st.sampled_from(["auto", "dense", "chunked"]),
)
def test_equals_brute_force(cloud, r, loop, k, path):
    pos, batch = cloud
    expected = brute_force(pos, r, batch, loop, k)
    with pytest.MonkeyPatch.context() as mp:
        if path == "dense":
            mp.setattr(radius, "_MAX_PADDING_WASTE", 10**9)
        elif path == "chunked":
            mp.setattr(radius, "_MAX_PADDING_WASTE", 0)
        got = radius_graph(pos, r, batch, loop=loop, max_num_neighbors=k)
        assert torch.equal(got, expected)
        if batch.numel() and bool((batch == 0).all()):
            assert torch.equal(radius_graph(pos, r, None, loop=loop, max_num_neighbors=k), expected)


def test_small_chunks_match(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(60, 3, generator=gen) * 2
    batch = torch.arange(3).repeat_interleave(20)
    expected = brute_force(pos, 3.0, batch, False, 5)
    assert torch.equal(radius_graph(pos, 3.0, batch, max_num_neighbors=5), expected)
    monkeypatch.setattr(radius, "_MAX_PAIRS_PER_CHUNK", 37)  # many chunks, chunked path
    assert torch.equal(radius_graph(pos, 3.0, batch, max_num_neighbors=5), expected)
    one = brute_force(pos, 3.0, torch.zeros(60), False, 5)
    assert torch.equal(radius_graph(pos, 3.0, max_num_neighbors=5), one)


def test_exact_small_cases():
    # a square of side 1 around atom 0 at the centre: 4 neighbours at 1/sqrt(2) Å, ties
    s = 0.5
    pos = torch.tensor([[0.0, 0, 0], [s, s, 0], [-s, s, 0], [-s, -s, 0], [s, -s, 0]])
    edges = radius_graph(pos, 0.8, max_num_neighbors=2)
    assert edges.tolist() == [[1, 2, 0, 0, 0, 0], [0, 0, 1, 2, 3, 4]]  # ties: lower index wins
    # two molecules interleaved: no edge between them, indices refer to the input order
    pos = torch.tensor([[0.0, 0, 0], [0.1, 0, 0], [1.0, 0, 0], [1.1, 0, 0]])
    batch = torch.tensor([1, 0, 1, 0])
    assert radius_graph(pos, 2.0, batch).tolist() == [[2, 3, 0, 1], [0, 1, 2, 3]]
    # gradient flows through positions taken from the graph
    pos = pos.clone().requires_grad_()
    j, i = radius_graph(pos, 2.0, batch)
    (pos[j] - pos[i]).norm(dim=-1).sum().backward()
    assert pos.grad is not None and torch.isfinite(pos.grad).all()


def test_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        radius_graph(torch.tensor([[0.0, 0, 0], [float("inf"), 0, 0]]), 1.0)
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        radius_graph(torch.zeros(4, 2), 1.0)
    with pytest.raises(ValueError, match="positive"):
        radius_graph(torch.zeros(4, 3), 0.0)
    with pytest.raises(ValueError, match="batch"):
        radius_graph(torch.zeros(4, 3), 1.0, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        radius_graph(torch.zeros(2, 3), 1.0, torch.zeros(2))
    with pytest.raises(ValueError, match="negative"):
        radius_graph(torch.zeros(2, 3), 1.0, torch.tensor([0, -1]))
    with pytest.raises(ValueError, match="max_num_neighbors"):
        radius_graph(torch.zeros(2, 3), 1.0, max_num_neighbors=0)
    assert radius_graph(torch.zeros(0, 3), 1.0).shape == (2, 0)
    assert radius_graph(torch.zeros(0, 3), 1.0, torch.zeros(0, dtype=torch.long)).shape == (2, 0)
    # huge but finite coordinates overflow the quick sum check without being refused
    far = torch.tensor([[3e38, 0.0, 0.0], [3e38, 1e-3, 0.0]])
    assert radius_graph(far, 1.0).shape[0] == 2
