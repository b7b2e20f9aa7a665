"""The study's computations: training, measures and verdicts, no text and no figure.

:func:`run` returns the results (JSON-ready: string keys, Python numbers),
with each claim the report makes and whether it holds, plus the pictures the
figures show (host arrays of digits and of codes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ... import (
    SGD,
    Adam,
    BCELoss,
    MSELoss,
    build_autoencoder,
    gaussian_noise,
    get_backend,
    load_digits,
    manual_seed,
    to_numpy,
)
from ...backends import host_rng

if TYPE_CHECKING:
    from ..._typing import Array
    from ...autoencoder import Autoencoder
    from ...module import Loss, Module

RAW = "raw pixels (64-D)"
#: The denoising autoencoder must beat the noisy input from this noise std on.
LARGE_NOISE = 0.2
#: The tied decoder's test BCE counts as similar within this fraction of the untied one's.
TIED_TOLERANCE = 0.05


@dataclass(frozen=True)
class Settings:
    epochs: int
    latent_sizes: tuple
    hidden: int
    noise_levels: tuple
    train_noise: float
    lr: float = 1e-2
    batch_size: int = 32
    tsne_iterations: int = 1000


FULL = Settings(
    epochs=150,
    latent_sizes=(2, 5, 10, 32),
    hidden=48,
    noise_levels=(0.1, 0.2, 0.3, 0.4, 0.5),
    train_noise=0.3,
)
QUICK = Settings(
    epochs=6,
    latent_sizes=(2, 10),
    hidden=48,
    noise_levels=(0.2, 0.4),
    train_noise=0.3,
    tsne_iterations=250,
)


# ------------------------------------------------------------------ training


def train(
    X_tr: Array,
    latent: int,
    s: Settings,
    *,
    loss: Loss | None = None,
    tied: bool = False,
    noise: float | None = None,
    seed: int = 0,
    bar: Any = None,
) -> tuple[Autoencoder, float, list[float]]:
    """Train a ``64 -> hidden -> latent`` autoencoder with Adam.

    Returns ``(autoencoder, seconds, losses)``.

    With ``noise`` (a Gaussian std) every epoch sees freshly corrupted inputs
    and is asked for the clean images (a denoising autoencoder).
    """
    manual_seed(seed)
    ae = build_autoencoder((X_tr.shape[1], s.hidden, latent), tied=tied)
    loss = loss or BCELoss()
    optimizer = Adam(s.lr)
    t0 = time.perf_counter()
    losses = []
    fit = {"batch_size": s.batch_size, "optimizer": optimizer}
    if noise is None:
        losses = list(SGD(ae.network, loss, X_tr, X_tr, epochs=s.epochs, seed=seed, **fit))
    else:
        rng = host_rng(seed + 1)
        order = host_rng(seed)
        for _ in range(s.epochs):
            noisy = gaussian_noise(X_tr, noise, rng=rng)
            losses += SGD(ae.network, loss, noisy, X_tr, epochs=1, seed=order, **fit)
    if bar is not None:
        bar.update(1)
    return ae, time.perf_counter() - t0, losses


def reconstruction_errors(net: Module, X_in: Array, X_clean: Array) -> dict:
    """Test BCE (per image, summed over pixels) and MSE (per pixel) of ``net(X_in)``.

    Both are measured against ``X_clean``.
    """
    net.eval()
    out = net.forward(X_in)
    xp = get_backend().xp
    bce = float(xp.mean(BCELoss().forward(X_clean, out)))
    mse = float(xp.mean((out - X_clean) ** 2))
    return {"bce": bce, "mse": mse}


def _outputs(net, X):
    """``net(X)`` in evaluation mode, on the host."""
    net.eval()
    return to_numpy(net.forward(X))


def _codes(ae, X):
    return _outputs(ae.encoder, X)


# ------------------------------------------------------------------- study


def run(s: Settings, seed: int = 0, progress: bool = True) -> tuple[dict, dict]:
    """Run the study; returns ``(results, pictures)``.

    ``results`` holds every measure and, under ``"claims"``, each claim with its
    verdict (:func:`claims`); it is what ``results.json`` stores. ``pictures``
    holds host arrays for the figures: ``"originals"`` (10 test digits),
    ``"reconstructions"`` (``(label, images)`` rows), ``"latent2d"`` and
    ``"tsne"`` (``(points, labels)``; ``"latent2d"`` only when 2 is a code size)
    and ``"denoising"`` (``(label, images)`` rows at the training noise).
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.manifold import TSNE
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    X_tr, X_te, y_tr, y_te = load_digits(seed=seed)
    y_tr_h, y_te_h = to_numpy(y_tr), to_numpy(y_te)
    bar = _bar(2 * len(s.latent_sizes) + 3, progress)
    settings = {**s.__dict__, "seed": seed, "backend": get_backend().describe()}
    results: dict = {"settings": settings}
    pictures: dict = {}

    # 1. reconstruction against code size, and BCE- vs MSE-trained
    manual_seed(seed)
    untrained = build_autoencoder((64, s.hidden, 10)).network
    results["untrained"] = reconstruction_errors(untrained, X_te, X_te)
    models, recon = {}, {}
    for k in s.latent_sizes:
        ae, seconds, losses = train(X_tr, k, s, seed=seed, bar=bar)
        models[k] = ae
        recon[str(k)] = {
            **reconstruction_errors(ae.network, X_te, X_te),
            "seconds": seconds,
            "final_train": losses[-1],
        }
    results["reconstruction"] = recon
    k_ref = 10 if 10 in models else s.latent_sizes[-1]
    ref = models[k_ref]
    mse_ae, _, _ = train(X_tr, k_ref, s, loss=MSELoss(), seed=seed, bar=bar)
    results["bce_vs_mse"] = {
        "latent": k_ref,
        "bce_trained": recon[str(k_ref)],
        "mse_trained": reconstruction_errors(mse_ae.network, X_te, X_te),
    }
    first = X_te[:10, ...]
    pictures["originals"] = to_numpy(first)
    pictures["reconstructions"] = [
        (f"code {k} (BCE)", _outputs(ae.network, first)) for k, ae in models.items()
    ]
    pictures["reconstructions"].append((f"code {k_ref} (MSE)", _outputs(mse_ae.network, first)))

    # 2. clustering of the codes
    raw_te = to_numpy(X_te)
    clusterings = {
        RAW: raw_te,
        f"PCA ({k_ref}-D)": PCA(k_ref, random_state=seed).fit(to_numpy(X_tr)).transform(raw_te),
        f"autoencoder code ({k_ref}-D)": _codes(ref, X_te),
    }
    for k in s.latent_sizes:
        if k != k_ref:
            clusterings[f"autoencoder code ({k}-D)"] = _codes(models[k], X_te)
    results["clustering"] = {}
    for name, features in clusterings.items():
        labels = KMeans(10, n_init=10, random_state=seed).fit_predict(features)
        results["clustering"][name] = {
            "ari": adjusted_rand_score(y_te_h, labels),
            "nmi": normalized_mutual_info_score(y_te_h, labels),
        }

    # 3. the code space, seen directly (2-D) and through t-SNE (10-D)
    if 2 in models:
        pictures["latent2d"] = (_codes(models[2], X_te), y_te_h)
    tsne = TSNE(2, random_state=seed, init="pca", max_iter=s.tsne_iterations)
    pictures["tsne"] = (tsne.fit_transform(_codes(ref, X_te)), y_te_h)

    # 4. denoising: an autoencoder trained on clean data vs one trained on noisy data
    dae, _, _ = train(X_tr, k_ref, s, noise=s.train_noise, seed=seed, bar=bar)
    rng = host_rng(seed + 7)
    rows = []
    for level in s.noise_levels:
        noisy = gaussian_noise(X_te, level, rng=rng)
        rows.append(
            {
                "noise": level,
                "noisy_input": float(get_backend().xp.mean((noisy - X_te) ** 2)),
                "clean_trained": reconstruction_errors(ref.network, noisy, X_te)["mse"],
                "noise_trained": reconstruction_errors(dae.network, noisy, X_te)["mse"],
            }
        )
    results["denoising"] = {"latent": k_ref, "train_noise": s.train_noise, "rows": rows}
    clean = X_te[:8, ...]
    noisy = gaussian_noise(clean, s.train_noise, rng=host_rng(seed + 9))
    pictures["denoising"] = [
        ("clean", to_numpy(clean)),
        ("noisy", to_numpy(noisy)),
        ("AE", _outputs(ref.network, noisy)),
        ("DAE", _outputs(dae.network, noisy)),
    ]

    # 5. codes as features for a linear classifier
    def logistic(train_features, test_features):
        clf = LogisticRegression(max_iter=3000)
        clf.fit(train_features, y_tr_h)
        return float(clf.score(test_features, y_te_h))

    classification = {RAW: logistic(to_numpy(X_tr), raw_te)}
    for k in s.latent_sizes:
        classification[str(k)] = logistic(_codes(models[k], X_tr), _codes(models[k], X_te))
    results["classification"] = classification

    # 6. tied vs untied weights, same budget
    tied, seconds, _ = train(X_tr, k_ref, s, tied=True, seed=seed, bar=bar)
    results["tied"] = {
        "latent": k_ref,
        "untied": {**recon[str(k_ref)], "parameters": ref.network.n_parameters()},
        "tied": {
            **reconstruction_errors(tied.network, X_te, X_te),
            "seconds": seconds,
            "parameters": tied.network.n_parameters(),
        },
    }
    if bar is not None:
        bar.close()
    results = jsonable(results)
    results["claims"] = claims(results)
    return results, pictures


# ------------------------------------------------------------------ claims


def claims(r: dict) -> dict:
    """Each claim the report states, decided from the numbers in ``r`` (the results, JSON form).

    Returns ``{name: {"statement": str, "holds": bool}}``, in the report's order.
    """
    sizes = [str(k) for k in r["settings"]["latent_sizes"]]
    k = r["bce_vs_mse"]["latent"]
    recon, cl, cls = r["reconstruction"], r["clustering"], r["classification"]
    code = cl[f"autoencoder code ({k}-D)"]
    rows = r["denoising"]["rows"]
    untied, tied = r["tied"]["untied"], r["tied"]["tied"]
    verdicts = {
        "error_falls_with_code_size": (
            "the test BCE never rises as the code grows",
            all(recon[a]["bce"] >= recon[b]["bce"] for a, b in zip(sizes, sizes[1:])),
        ),
        "bce_training_gives_lower_mse": (
            f"with a {k}-D code, the BCE-trained network's test MSE is no higher than "
            "the MSE-trained one's",
            r["bce_vs_mse"]["bce_trained"]["mse"] <= r["bce_vs_mse"]["mse_trained"]["mse"],
        ),
        "code_clusters_better_than_pixels": (
            f"k-means finds the digits better (ARI) in the {k}-D code than in the raw pixels",
            code["ari"] > cl[RAW]["ari"],
        ),
        "code_clusters_better_than_pca": (
            f"k-means finds the digits better (ARI) in the {k}-D code than in PCA "
            f"with {k} dimensions",
            code["ari"] > cl[f"PCA ({k}-D)"]["ari"],
        ),
        "denoiser_beats_noisy_input": (
            f"at every noise std >= {LARGE_NOISE}, the denoising autoencoder's output is closer "
            "to the clean image than its noisy input",
            all(
                row["noise_trained"] < row["noisy_input"]
                for row in rows
                if row["noise"] >= LARGE_NOISE
            ),
        ),
        "denoiser_beats_clean_trained": (
            "at every noise std, the denoising autoencoder beats the one trained on clean images",
            all(row["noise_trained"] < row["clean_trained"] for row in rows),
        ),
        "accuracy_rises_with_code_size": (
            "the accuracy of a logistic regression on the codes never falls as the code grows",
            all(cls[a] <= cls[b] for a, b in zip(sizes, sizes[1:])),
        ),
        "tied_error_within_tolerance": (
            f"the tied decoder's test BCE is within {TIED_TOLERANCE:.0%} of the untied one's",
            abs(tied["bce"] - untied["bce"]) <= TIED_TOLERANCE * untied["bce"],
        ),
    }
    return {
        name: {"statement": text, "holds": bool(holds)} for name, (text, holds) in verdicts.items()
    }


# ----------------------------------------------------------------- helpers


def _bar(total, enabled):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="training autoencoders", unit="net")


def jsonable(value: Any) -> Any:
    """``value`` with string keys, lists for tuples and Python numbers for array scalars."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value
