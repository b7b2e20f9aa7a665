"""The study's report: markdown written from ``results.json`` alone.

Every number and every verdict comes from the results (the verdicts from their
``"claims"``), so a report can be rewritten without rerunning the study::

    python -m backprop.experiments.autoencoder.report DIR/results.json --out DIR/report.md
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from .study import LARGE_NOISE, RAW, TIED_TOLERANCE


def _verdict(claim: dict) -> str:
    return "holds" if claim["holds"] else "does not hold"


def report(r: dict, *, images: str = "") -> str:
    """The report of the results ``r`` (as ``results.json`` stores them).

    ``images`` is prefixed to the figures' file names (``"autoencoder/"`` for a
    page one directory above them). Each paragraph is one line of markdown.
    """
    s = r["settings"]
    k = r["bce_vs_mse"]["latent"]
    claims = r["claims"]
    verdict = {name: _verdict(claim) for name, claim in claims.items()}
    hidden = s["hidden"]
    lines = [
        "# What a small autoencoder learns from 8x8 digits",
        "",
        "## Objective",
        "",
        "The assignment (part 5) asks for an experimental plan around an autoencoder. This "
        f"study trains symmetric autoencoders `64 -> {hidden} -> k -> {hidden} -> 64` (TanH "
        "inside and on the code, Sigmoid on the output) on scikit-learn's handwritten digits and "
        "asks six questions: how reconstruction degrades as the code shrinks and which cost "
        "trains better; whether the codes cluster by digit; what the code space looks like; "
        "whether the network removes noise; whether the codes are good features for a linear "
        "classifier; and what tying the decoder's weights to the encoder's changes.",
        "",
        "## Protocol",
        "",
        "- Data: the 1797 digits scaled to [0, 1], split 1347 train / 450 test (stratified, "
        f"seed {s['seed']}); every number below is measured on the 450 test images, which no "
        "training step saw.",
        f"- Training: Adam (lr {s['lr']}), batches of {s['batch_size']}, {s['epochs']} epochs, "
        f"BCE unless said; backend `{s['backend']}`; seed {s['seed']} for weights, batch order, "
        "noise, k-means and t-SNE.",
        "- Errors: BCE is summed over the 64 pixels of an image and averaged over images; "
        "MSE is per pixel.",
        f"- An untrained network of the same shape scores BCE {r['untrained']['bce']:.2f} and MSE "
        f"{r['untrained']['mse']:.4f}: the floor every trained model must beat.",
        f"- Whole study: {r['seconds']:.0f} s.",
        "",
        "## 1. Reconstruction against code size",
        "",
        "Expected: the error falls as the code grows, steeply from 2 to 10 dimensions, "
        "then flattens.",
        "",
        "| code size | test BCE | test MSE | training time (s) |",
        "| --- | --- | --- | --- |",
    ]
    recon = r["reconstruction"]
    for size, v in recon.items():
        lines.append(f"| {size} | {v['bce']:.2f} | {v['mse']:.4f} | {v['seconds']:.1f} |")
    bce, mse = r["bce_vs_mse"]["bce_trained"], r["bce_vs_mse"]["mse_trained"]
    lines += [
        "",
        "Observed: the error falls monotonically with the code size: "
        f"{verdict['error_falls_with_code_size']}.",
        "",
        f"![originals and reconstructions]({images}reconstructions.png)",
        "",
        f"BCE- against MSE-trained, code size {k}. Expected: BCE, the likelihood of Bernoulli "
        "pixels, pushes outputs to 0 or 1 and gives sharper strokes; MSE, a Gaussian likelihood, "
        "averages and blurs.",
        "",
        "| trained with | test BCE | test MSE |",
        "| --- | --- | --- |",
        f"| BCE | {bce['bce']:.2f} | {bce['mse']:.4f} |",
        f"| MSE | {mse['bce']:.2f} | {mse['mse']:.4f} |",
        "",
        "Observed: the BCE-trained network also has the lower MSE (the other cost's own measure): "
        f"{verdict['bce_training_gives_lower_mse']}. The last row of the figure shows the "
        "MSE-trained reconstructions.",
        "",
        "## 2. Do the codes cluster by digit?",
        "",
        "k-means (k = 10, 10 restarts) on the test images, scored against the true digits by the "
        "adjusted Rand index (ARI, 0 for chance, 1 for perfect) and normalised mutual information "
        f"(NMI). Expected: the {k}-D code, trained to summarise the image, clusters at least as "
        f"well as the raw pixels and as PCA with the same {k} dimensions.",
        "",
        "| features | ARI | NMI |",
        "| --- | --- | --- |",
    ]
    cl = r["clustering"]
    for name, v in cl.items():
        lines.append(f"| {name} | {v['ari']:.3f} | {v['nmi']:.3f} |")
    code = cl[f"autoencoder code ({k}-D)"]
    lines += [
        "",
        f"Observed: the {k}-D code beats raw pixels on ARI ({code['ari']:.3f} vs "
        f"{cl[RAW]['ari']:.3f}): {verdict['code_clusters_better_than_pixels']}; it beats PCA "
        f"({cl[f'PCA ({k}-D)']['ari']:.3f}): {verdict['code_clusters_better_than_pca']}.",
        "",
        "## 3. The code space",
        "",
        "Expected: even two dimensions separate several digits; t-SNE of the 10-D codes shows "
        "ten groups.",
        "",
        f"![2-D codes]({images}latent2d.png) ![t-SNE of the codes]({images}tsne.png)",
        "",
        "## 4. Denoising",
        "",
        "Test images corrupted by Gaussian noise (clipped to [0, 1]); MSE against the clean image. "
        f"The denoising autoencoder saw fresh noise of std {r['denoising']['train_noise']} every "
        "epoch and was asked for the clean image. Expected: both networks beat the noisy input "
        "once the noise is large (they can only output digit-like images), and the one trained "
        "on noise does better.",
        "",
        "| noise std | noisy input | trained on clean | trained on noisy |",
        "| --- | --- | --- | --- |",
    ]
    rows = r["denoising"]["rows"]
    for row in rows:
        lines.append(
            f"| {row['noise']} | {row['noisy_input']:.4f} | {row['clean_trained']:.4f} "
            f"| {row['noise_trained']:.4f} |"
        )
    lines += [
        "",
        "Observed: the denoising autoencoder beats the noisy input at every noise std >= "
        f"{LARGE_NOISE}: {verdict['denoiser_beats_noisy_input']}; it beats the clean-trained "
        f"network at every level: {verdict['denoiser_beats_clean_trained']}.",
        "",
        f"![denoising]({images}denoising.png)",
        "",
        "## 5. Codes as features for classification",
        "",
        "Logistic regression fitted on the training images' codes, accuracy on the test images. "
        "Expected: accuracy rises with the code size and approaches (but may not reach) raw "
        "pixels, since the code was trained to reconstruct, not to classify.",
        "",
        "| features | test accuracy |",
        "| --- | --- |",
    ]
    cls = r["classification"]
    sizes = [str(size) for size in s["latent_sizes"]]
    lines.append(f"| {RAW} | {cls[RAW]:.4f} |")
    lines += [f"| autoencoder code ({size}-D) | {cls[size]:.4f} |" for size in sizes]
    best_code = max(cls[size] for size in sizes)
    lines += [
        "",
        f"Observed: accuracy rises with the code size: {verdict['accuracy_rises_with_code_size']}; "
        f"the best code reaches {best_code:.4f} against {cls[RAW]:.4f} for raw pixels.",
        "",
        f"![classification]({images}classification.png)",
        "",
        "## 6. Tied against untied weights",
        "",
        "Same architecture, same budget; the tied decoder uses the transposed encoder weights. "
        "Expected: about half the weights for a similar error, a little worse on the training "
        "cost.",
        "",
        "| decoder | parameters | test BCE | test MSE | training time (s) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in ("untied", "tied"):
        v = r["tied"][name]
        lines.append(
            f"| {name} | {v['parameters']} | {v['bce']:.2f} | {v['mse']:.4f} | {v['seconds']:.1f} |"
        )
    untied, tied = r["tied"]["untied"], r["tied"]["tied"]
    share = tied["parameters"] / untied["parameters"]
    similar = claims["tied_error_within_tolerance"]["holds"]
    distance = (
        f"within {TIED_TOLERANCE:.0%} of"
        if similar
        else f"more than {TIED_TOLERANCE:.0%} away from"
    )
    big = [row for row in rows if row["noise"] >= LARGE_NOISE] or rows
    lines += [
        "",
        f"Observed: the tied decoder has {share:.0%} of the parameters and a test BCE {distance} "
        f"the untied one ({tied['bce']:.2f} vs {untied['bce']:.2f}).",
        "",
        "## What it means",
        "",
        f"- Reconstruction needs few dimensions: the {k}-D code reaches a test BCE of "
        f"{recon[str(k)]['bce']:.2f} against {r['untrained']['bce']:.2f} untrained.",
        "- BCE against MSE: "
        + (
            "training with BCE also gave the lower MSE, as expected."
            if claims["bce_training_gives_lower_mse"]["holds"]
            else "the expectation was not borne out: the MSE-trained network scored as well or "
            "better on both measures here; on 8x8 digits whose pixels are mostly near 0 or 1, "
            "the two costs lead to similar optima."
        ),
        f"- Clustering: the {k}-D code gives ARI {code['ari']:.3f} against {cl[RAW]['ari']:.3f} "
        "for raw pixels.",
        f"- Denoising: at noise std {big[-1]['noise']}, the denoising autoencoder's error is "
        f"{big[-1]['noise_trained']:.4f} against {big[-1]['noisy_input']:.4f} for the noisy input.",
        f"- As features, the {k}-D code gives {cls[str(k)]:.4f} accuracy with a linear "
        f"classifier, raw pixels {cls[RAW]:.4f}.",
        "",
        "Every 'Observed' verdict above is decided from the numbers in the tables; "
        "`results.json` holds the numbers and, under `claims`, each verdict.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        prog="python -m backprop.experiments.autoencoder.report",
        description="Write the autoencoder study's report from its results.json (no training).",
    )
    parser.add_argument("results", type=Path, help="a results.json written by the study")
    parser.add_argument(
        "--out", type=Path, help="the markdown file to write (default: standard output)"
    )
    parser.add_argument(
        "--images",
        default="",
        help="prefix of the figures' paths, relative to the report (default: none)",
    )
    parser.add_argument("--header", default="", help="a first paragraph, above the title")
    args = parser.parse_args(argv)
    text = report(json.loads(args.results.read_text()), images=args.images)
    if args.header:
        text = f"{args.header}\n\n{text}"
    if args.out is None:
        print(text, end="")
    else:
        args.out.write_text(text)
    return text


if __name__ == "__main__":
    main()
