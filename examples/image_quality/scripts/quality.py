"""Image-quality metrics shared by laplacian.py, sobel.py and fft.py.

Each metric script reads every image under ``--input`` (one image per datum
when the pipeline globs ``/*``) and writes ``<output>/<image stem>.txt`` holding
the metric as one decimal number and a newline. Files OpenCV cannot decode are
reported and skipped. Higher values mean sharper images for all three metrics.
"""
import argparse
import os
import sys

import cv2
import numpy as np


def load_grey(path):
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    return img


def laplacian_variance(grey):
    """Variance of the 3x3 Laplacian response (the classic blur measure)."""
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def sobel_variance(grey):
    """Variance of the Sobel gradient magnitude in x and y."""
    gx = cv2.Sobel(grey, cv2.CV_64F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_64F, 0, 1, ksize=3)
    return float(np.sqrt(gx * gx + gy * gy).var())


def fft_high_frequency(grey, fraction=0.1):
    """Mean log-magnitude (dB) of the image after removing its low frequencies.

    The centred spectrum's square of half-width ``fraction * min(h, w)`` is
    zeroed, the rest transformed back, and ``20*log10|recon|`` averaged.
    """
    h, w = grey.shape
    r = max(1, int(min(h, w) * fraction))
    spectrum = np.fft.fftshift(np.fft.fft2(grey.astype(np.float64)))
    cy, cx = h // 2, w // 2
    spectrum[cy - r:cy + r, cx - r:cx + r] = 0
    recon = np.fft.ifft2(np.fft.ifftshift(spectrum))
    return float(np.mean(20 * np.log10(np.abs(recon) + 1e-8)))


METRICS = {
    "laplacian": laplacian_variance,
    "sobel": sobel_variance,
    "fft": fft_high_frequency,
}


def run_metric(metric, argv=None):
    fn = METRICS[metric]
    parser = argparse.ArgumentParser(prog=f"{metric}.py",
                                     description=f"Write the {metric} sharpness metric of each image")
    parser.add_argument("-i", "--input", nargs="+", required=True, help="input image directories")
    parser.add_argument("-o", "--output", required=True, help="output directory")
    args = parser.parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    written = 0
    for root in args.input:
        if not os.path.exists(root):
            print(f"Input directory does not exist: {root}")
            continue
        for dirpath, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(dirpath, name)
                grey = load_grey(path)
                if grey is None:
                    print(f"Skipping (not an image): {path}")
                    continue
                value = fn(grey)
                stem = os.path.splitext(name)[0]
                out = os.path.join(args.output, stem + ".txt")
                with open(out, "w") as f:
                    f.write(f"{value:.6f}\n")
                print(f"{metric}({path}) = {value:.6f} -> {out}")
                written += 1
    print(f"{written} image(s) measured")
    return 0


if __name__ == "__main__":
    sys.exit(run_metric(sys.argv[1], sys.argv[2:]))
