"""The analysis figures read as a paper figure should: training curves with titles, y-axis units
and their two lines explained; notes and legends outside the data (nothing hidden)."""
import numpy as np

from cryostar_engine.analysis import figures


def _losses(n=600, seed=0):
    r = np.random.default_rng(seed)
    step = np.arange(1, n + 1.0)
    return {"step": step, "images_seen": 64 * step, "loss": -1 + 0.02 * r.standard_normal(n),
            "image": -1 + 0.02 * r.standard_normal(n), "continuity": 1e-3 * r.random(n) + 1e-5,
            "elastic": 1e-4 * r.random(n), "clash": 1e-3 * (r.random(n) > 0.9),
            "kl": 3 + 0.5 * r.random(n)}


def test_training_curves_have_titles_units_and_a_legend(tmp_path):
    assert figures.plot_training_curves(tmp_path / "t.png", _losses()).is_file()
    fig = figures.training_curves_figure(_losses())
    axes = fig.axes
    titles = [ax.get_title() for ax in axes]
    assert titles == [figures.LOSS_TERMS[k][0] for k in
                      ("loss", "image", "continuity", "elastic", "clash", "kl")]
    assert [ax.get_ylabel() for ax in axes][2:5] == ["mean squared deviation (Å²)"] * 2 + \
        ["mean squared overlap (Å²)"]
    assert all(ax.get_xlabel() == "training step" for ax in axes)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == \
        ["value at each step", "running mean over 12 steps"]
    # the density stage's single column is named for what it is
    fig = figures.training_curves_figure({"step": np.arange(1.0, 9.0),
                                          "loss": np.linspace(1, 0.5, 8)})
    assert fig.axes[0].get_title() == figures.DENSITY_LOSS[0]


def _bbox(artist, fig):
    return artist.get_window_extent(fig.canvas.get_renderer())


def test_density_note_and_legends_stay_outside_the_axes():
    r = np.random.default_rng(1)
    scores = r.standard_normal((500, 2)) * [1.0, 0.3]
    labels = (scores[:, 0] > 0).astype(int)
    centres = np.array([scores[labels == c].mean(0) for c in (0, 1)])
    traj = [(1, np.c_[np.linspace(-2, 2, 5), np.zeros(5)])]
    density = figures.pc_density_figure(scores, [0.9, 0.1], centres, traj)
    scatter = figures.pc_scatter_figure(scores, [0.9, 0.1], labels, centres, traj)
    for fig in (density, scatter):
        ax = fig.axes[0]
        assert ax.get_legend() is None     # inside the axes: the centre numbers only
        assert [t.get_text() for t in ax.texts if t.get_text()] == ["0", "1"]
        (legend,) = fig.legends
        texts = [t.get_text() for t in legend.get_texts()]
        assert "PC1 trajectory" in texts and "k-means centres (numbered)" in texts
        assert min(t.get_fontsize() for t in legend.get_texts()) >= 9
        renderer = fig.canvas.get_renderer()
        assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
    texts = [t.get_text() for t in density.legends[0].get_texts()]
    assert "contours enclose 95, 75, 50, 25 % of particles" in texts
