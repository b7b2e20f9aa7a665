"""``python -m backprop``: train the seed's networks on the bundled digits."""

from .experiments.seed import main as _main


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
