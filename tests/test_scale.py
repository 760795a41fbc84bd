"""Issue 17: the elastic network's adaptive relaxation as one batched operation over all chain
groups equals the per-chain loop it replaced, on a many-chain protein–RNA model read from a PDB
file (C1′ beads, the 15 Å nucleotide network, nucleotide continuity).

The per-chain reference (:func:`per_chain_elastic_loss`, one ``torch.quantile`` per group) lives
here and not in the engine; ``benchmarks/throughput.py --en-per-chain`` times it against the
engine's batched path.  About 5 s on one core.
"""
import numpy as np
import pytest
import torch

from benchmarks.throughput_cases import complex_beads
from cryostar_engine.atom.graph import build_graph
from cryostar_engine.atom.losses import ElasticGroups, elastic_network_loss, group_quantiles, pair_distances
from cryostar_engine.io.pdb import read_beads, write_beads_pdb


def per_chain_elastic_loss(d, d0, groups, keep_ratio, tolerance_A=0.0):
    """The relaxation as written before issue 17: a Python loop over the chain groups
    (``groups``: one index tensor per group), one quantile each."""
    dev = d - d0
    harmonic = dev ** 2
    err = harmonic if tolerance_A <= 0 else torch.relu(dev.abs() - tolerance_A) ** 2
    with torch.no_grad():
        var = harmonic.detach().float().var(0)
        keep = torch.ones_like(var)
        for idx in groups:
            v = var.index_select(0, idx)
            kept = (v < torch.quantile(v, keep_ratio)).float()
            kept = torch.where(kept.sum() > 0, kept, torch.ones_like(kept))
            keep.index_copy_(0, idx, kept)
    return (err * keep).sum() / (keep.sum() * err.shape[0])


def index_groups(labels):
    return tuple(torch.as_tensor(np.flatnonzero(labels == g)) for g in np.unique(labels))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A 1,500-bead complex (5 AdK chains, 18 RNA strands) written as a PDB and read back."""
    beads = complex_beads(1500, nt_fraction=0.35, seed=3)
    path = tmp_path_factory.mktemp("complex") / "complex.pdb"
    write_beads_pdb(path, beads, beads.coords_A[None])
    read = read_beads(path)
    return beads, read, build_graph(read)


def test_the_model_has_nucleotide_beads_network_and_continuity(model):
    made, beads, g = model
    nt = beads.is_nucleotide
    assert nt.sum() == made.is_nucleotide.sum() == 525
    assert set(beads.atom_names[nt]) == {"C1'"} and len(set(beads.chain_ids)) >= 20
    x = beads.coords_A
    both_nt = nt[g.continuity].all(1)
    assert both_nt.sum() == 525 - len(set(beads.chain_ids[nt]))        # every strand is continuous
    assert np.allclose(np.linalg.norm(x[g.continuity[both_nt, 0]] - x[g.continuity[both_nt, 1]], axis=1),
                       5.6, atol=0.1)
    en_nt = nt[g.en]
    assert not (en_nt[:, 0] ^ en_nt[:, 1]).any()                         # no protein–RNA pairs
    d = np.linalg.norm(x[g.en[:, 0]] - x[g.en[:, 1]], axis=1)
    pairs_nt = en_nt.all(1)
    assert d[pairs_nt].max() <= 15.0 and d[pairs_nt].max() > 12.0 and d[~pairs_nt].max() <= 12.0
    chains = beads.chain_ids[g.en]
    assert (chains[pairs_nt, 0] != chains[pairs_nt, 1]).any()            # across strands: yes
    assert (chains[~pairs_nt, 0] == chains[~pairs_nt, 1]).all()          # protein: within chains
    assert len(np.unique(g.en_group)) == len(set(beads.chain_ids[~nt])) + 1


def _deformed(beads, batch=16, seed=0):
    """``(B, N, 3)`` structures: two thirds of the chains turned by random small rigid motions,
    with noise on a tenth of their beads; the others left still (a protein chain whose pairs all
    have variance 0 releases none: it must keep them all)."""
    rng = np.random.default_rng(seed)
    x = np.repeat(beads.coords_A[None], batch, 0)
    chains = np.unique(beads.chain_ids)
    still = chains[::3]                                   # protein chains A and D among them
    for c in np.setdiff1d(chains, still):
        sel = beads.chain_ids == c
        centre = x[0, sel].mean(0)
        for b in range(batch):
            axis = rng.normal(size=3)
            axis /= np.linalg.norm(axis)
            angle = rng.normal(0, 0.15)
            k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
            rot = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
            x[b, sel] = (x[b, sel] - centre) @ rot.T + centre
    moved = ~np.isin(beads.chain_ids, still)
    noisy = moved & (rng.random(len(beads)) < 0.1)
    x[:, noisy] += rng.normal(0, 0.8, (batch, noisy.sum(), 3))
    return torch.tensor(x, dtype=torch.float32, requires_grad=True)


@pytest.mark.parametrize("keep_ratio,tolerance", [(0.99, 0.0), (0.8, 0.0), (0.99, 0.5), (0.5, 1.0)])
def test_batched_relaxation_equals_the_per_chain_loop(model, keep_ratio, tolerance):
    _, beads, g = model
    pairs = torch.as_tensor(g.en)
    d0 = torch.as_tensor(g.en_d0, dtype=torch.float32)
    losses, grads = [], []
    for groups in (index_groups(g.en_group), ElasticGroups.from_labels(g.en_group)):
        coords = _deformed(beads)
        d = pair_distances(coords, pairs)
        if isinstance(groups, ElasticGroups):
            loss = elastic_network_loss(d, d0, groups, keep_ratio, tolerance_A=tolerance)
        else:
            loss = per_chain_elastic_loss(d, d0, groups, keep_ratio, tolerance_A=tolerance)
        loss.backward()
        losses.append(loss.detach())
        grads.append(coords.grad)
    assert losses[0] > 0
    assert torch.equal(losses[0], losses[1])
    assert torch.equal(grads[0], grads[1])


def test_the_comparison_is_sensitive_to_the_grouping(model):
    """One quantile over all pairs (the grouping lost) gives another loss: the equality above
    could fail."""
    _, beads, g = model
    d = pair_distances(_deformed(beads), torch.as_tensor(g.en))
    d0 = torch.as_tensor(g.en_d0, dtype=torch.float32)
    one_group = (torch.arange(len(g.en)),)
    per_chain = per_chain_elastic_loss(d, d0, index_groups(g.en_group), 0.8)
    assert not torch.equal(per_chain, per_chain_elastic_loss(d, d0, one_group, 0.8))
    assert torch.equal(per_chain, elastic_network_loss(d, d0, ElasticGroups.from_labels(g.en_group), 0.8))


def test_group_quantiles_equal_torch_quantile_per_group():
    """Ties, one-pair groups, labels not contiguous nor dense, NaN in one group."""
    gen = torch.Generator().manual_seed(1)
    labels = np.repeat([7, 2, 9, 4, 11], [1000, 1, 37, 500, 2])
    labels = labels[torch.randperm(len(labels), generator=gen).numpy()]
    values = torch.rand(len(labels), generator=gen)
    values[torch.as_tensor(labels == 4)] = torch.round(values[torch.as_tensor(labels == 4)] * 4) / 4   # ties
    values[int(np.flatnonzero(labels == 11)[0])] = float("nan")
    groups = ElasticGroups.from_labels(labels)
    for q in (0.0, 0.5, 0.8, 0.99, 1.0):
        got = group_quantiles(values, groups, q)
        want = torch.stack([torch.quantile(values[torch.as_tensor(labels == lab)], q)
                            for lab in np.unique(labels)])
        assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got[~got.isnan()], want[~want.isnan()])
