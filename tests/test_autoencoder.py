import json
from pathlib import Path

import numpy as np
import pytest

import backprop as bp
from conftest import assert_close, assert_like


def test_tied_linear_forward_uses_transposed_weight(backend, rng):
    enc = bp.Linear(5, 3)
    dec = bp.TiedLinear(enc)
    x = rng.normal(size=(4, 3))
    out = dec(bp.asarray(x))
    assert_like(out, backend, (4, 5))
    W, b = bp.to_numpy(enc._parameters["weight"]), bp.to_numpy(dec._parameters["bias"])
    assert_close(out, x @ W.T + b, backend, rtol=1e-5, atol=1e-6)
    assert list(dec._parameters) == ["bias"] and "tied" in repr(dec)


def test_tied_gradient_accumulates_into_the_shared_weight(f64, rng):
    enc = bp.Linear(4, 3)
    net = bp.Sequentiel(enc, bp.TanH(), bp.TiedLinear(enc), bp.Sigmoid())
    assert len(net.parameters()) == 3  # weight once, two biases
    assert bp.gradcheck(net, bp.asarray(rng.normal(size=(5, 4))))
    # the shared gradient is the sum of both uses: encoder's X^T d1 plus decoder's d2^T H
    x, d = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    X, D = bp.asarray(x), bp.asarray(d)
    net.zero_grad()
    net.forward(X)
    net.backward(X, D)
    h = bp.to_numpy(net[1](net[0](X)))
    d2 = bp.to_numpy(net[3].backward_delta(net[2](net[1](net[0](X))), D))
    d1 = bp.to_numpy(
        net[1].backward_delta(net[0](X), net[2].backward_delta(net[1](net[0](X)), bp.asarray(d2)))
    )
    assert_close(enc._gradient["weight"], x.T @ d1 + d2.T @ h, f64)


def test_one_update_per_step_for_the_shared_weight(f64, rng):
    enc = bp.Linear(4, 3)
    net = bp.Sequentiel(enc, bp.TanH(), bp.TiedLinear(enc))
    x = bp.asarray(rng.normal(size=(5, 4)))
    net.zero_grad()
    net.forward(x)
    net.backward(x, bp.asarray(rng.normal(size=(5, 4))))
    w0, g = (
        bp.to_numpy(enc._parameters["weight"]).copy(),
        bp.to_numpy(enc._gradient["weight"]).copy(),
    )
    net.update_parameters(0.1)
    assert_close(enc._parameters["weight"], w0 - 0.1 * g, f64)


def test_tied_linear_errors(backend):
    with pytest.raises(TypeError, match="expected a Linear"):
        bp.TiedLinear(bp.TanH())
    dec = bp.TiedLinear(bp.Linear(5, 3))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3\), got \(2, 5\)"):
        dec(bp.asarray(np.zeros((2, 5))))


@pytest.mark.parametrize("tied", [False, True])
def test_builder_gradcheck(f64, rng, tied):
    ae = bp.build_autoencoder((6, 4, 2), tied=tied)
    x = bp.asarray(rng.random((3, 6)))
    assert bp.gradcheck(ae.network, x)
    assert tuple(ae.encoder(x).shape) == (3, 2)
    assert tuple(ae.decoder(ae.encoder(x)).shape) == (3, 6)
    names = [type(m).__name__ for m in ae.network.modules()][1:]
    assert names == [
        "Sequentiel",
        "Linear",
        "TanH",
        "Linear",
        "TanH",
        "Sequentiel",
        "TiedLinear" if tied else "Linear",
        "TanH",
        "TiedLinear" if tied else "Linear",
        "Sigmoid",
    ]


def test_seed_architecture():
    ae = bp.build_autoencoder((256, 100, 10))
    assert repr(ae.encoder) == (
        "Sequentiel(\n  (0): Linear(256 -> 100)  [25,700 parameters]\n  (1): TanH()\n"
        "  (2): Linear(100 -> 10)  [1,010 parameters]\n  (3): TanH()\n)"
    )
    assert repr(ae.decoder) == (
        "Sequentiel(\n  (0): Linear(10 -> 100)  [1,100 parameters]\n  (1): TanH()\n"
        "  (2): Linear(100 -> 256)  [25,856 parameters]\n  (3): Sigmoid()\n)"
    )
    with pytest.raises(ValueError, match="at least two positive ints"):
        bp.build_autoencoder((64,))


def test_tied_network_save_and_load(tmp_path, rng):
    ae = bp.build_autoencoder((6, 4, 2), tied=True)
    bp.save(ae.network, tmp_path / "ae.npz")
    loaded = bp.load(tmp_path / "ae.npz")
    x = bp.asarray(rng.random((3, 6)))
    np.testing.assert_array_equal(bp.to_numpy(loaded(x)), bp.to_numpy(ae.network(x)))
    tied = [m for m in loaded.modules() if isinstance(m, bp.TiedLinear)]
    linears = [m for m in loaded.modules() if type(m) is bp.Linear]
    assert {id(t.linear) for t in tied} == {id(m) for m in linears}
    with pytest.raises(ValueError, match="not part of the saved network"):
        bp.save(ae.decoder, tmp_path / "decoder.npz")


def test_noise_helpers(backend):
    x = bp.asarray(np.full((100, 100), 0.5))
    g = bp.to_numpy(bp.gaussian_noise(x, 0.1, rng=0))
    assert g.min() >= 0 and g.max() <= 1 and abs(g.std() - 0.1) < 0.01
    np.testing.assert_array_equal(g, bp.to_numpy(bp.gaussian_noise(x, 0.1, rng=0)))
    m = bp.to_numpy(bp.masking_noise(x, 0.25, rng=0))
    assert abs((m == 0).mean() - 0.25) < 0.02 and set(np.unique(m)) <= {0.0, 0.5}
    with pytest.raises(ValueError, match="fraction must lie in"):
        bp.masking_noise(x, 1.5)


def test_quick_study_produces_every_file(tmp_path):
    from backprop.experiments import autoencoder
    from backprop.experiments.autoencoder.report import report as write_report

    results = autoencoder.main(["--out", str(tmp_path), "--quick", "--no-progress"])
    for name in (
        "report.md",
        "results.json",
        "reconstructions.png",
        "latent2d.png",
        "tsne.png",
        "denoising.png",
        "classification.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    stored = json.loads((tmp_path / "results.json").read_text())
    numbers = [v for row in stored["denoising"]["rows"] for v in row.values()]
    numbers += [v["bce"] for v in stored["reconstruction"].values()]
    numbers += list(stored["classification"].values())
    assert all(np.isfinite(numbers))
    # the trained autoencoder's test BCE is below half of an untrained one's
    assert stored["reconstruction"]["10"]["bce"] < stored["untrained"]["bce"] / 2
    assert results["seconds"] > 0  # recorded (timing never decides a test)
    assert stored == json.loads(json.dumps(results))
    # every verdict is stored, and the report is what results.json alone gives
    report = (tmp_path / "report.md").read_text()
    assert "## 4. Denoising" in report
    assert stored["claims"] == autoencoder.claims(stored)
    assert report == write_report(stored)


DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_report_is_written_from_the_stored_results_alone():
    """The committed report is what its results.json gives, and the report decides no verdict."""
    from backprop.experiments.autoencoder.report import report

    stored = json.loads((DOCS / "autoencoder" / "results.json").read_text())
    text = report(stored)
    assert text == (DOCS / "autoencoder" / "report.md").read_text()
    assert report(stored, images="autoencoder/") in (DOCS / "autoencoder.md").read_text()
    claim = stored["claims"]["code_clusters_better_than_pixels"]
    claim["holds"] = not claim["holds"]
    changed = [(a, b) for a, b in zip(text.splitlines(), report(stored).splitlines()) if a != b]
    assert len(changed) == 1 and "beats raw pixels" in changed[0][0], changed
    assert sum("does not hold" in line for line in changed[0]) == 1, changed


@pytest.mark.slow
def test_full_study_claims(tmp_path):
    """The claims the study makes, on the full (default) run, as results.json records them."""
    from backprop.experiments import autoencoder

    with bp.use_backend("numpy", dtype="float32"):
        r = autoencoder.run(tmp_path, autoencoder.FULL, seed=0, progress=False)
    stored = json.loads((tmp_path / "results.json").read_text())
    claims = stored["claims"]
    assert claims["code_clusters_better_than_pixels"]["holds"], stored["clustering"]
    assert claims["denoiser_beats_noisy_input"]["holds"], stored["denoising"]
    # the verdicts agree with the numbers beside them
    cl = stored["clustering"]
    assert cl["autoencoder code (10-D)"]["ari"] > cl["raw pixels (64-D)"]["ari"], cl
    for row in stored["denoising"]["rows"]:
        if row["noise"] >= 0.2:
            assert row["noise_trained"] < row["noisy_input"], row
    assert claims == autoencoder.claims(stored)
    assert r["seconds"] < 300
