"""A collective group for data-parallel training: ``torch.distributed`` (gloo on CPU, NCCL on CUDA).

The one place that talks to the communication library. A :class:`Group`
is an object, not the process-wide default group of
``torch.distributed.init_process_group``: a group can be formed again
(after a worker is replaced) without tearing down global state.

Rendezvous goes through a ``TCPStore`` served by one member (rank 0 of the
group) on a port the system picks; the members join with the address it
returns (:func:`open_store`).
"""

from __future__ import annotations

import datetime
import gc
import socket
from typing import Any

__all__ = ["Group", "collective_available", "open_store"]


def collective_available() -> bool:
    """Whether ``torch.distributed`` (with gloo) can be imported here."""
    try:
        import torch.distributed as dist
    except ImportError:
        return False
    return dist.is_available() and dist.is_gloo_available()


def _dist():
    try:
        import torch.distributed as dist
    except ImportError:
        raise ImportError(
            "data-parallel training needs PyTorch (torch.distributed) on every worker: "
            "pip install torch"
        ) from None
    return dist


def open_store(host: str, world: int, timeout: float) -> tuple[Any, int]:
    """Serve a rendezvous store for ``world`` members on ``host``; returns (store, port)."""
    dist = _dist()
    store = dist.TCPStore(
        host, 0, world, is_master=True, timeout=datetime.timedelta(seconds=timeout),
        wait_for_workers=False,
    )  # fmt: skip
    return store, store.port


def _host_of(address: str) -> str:
    """``'127.0.0.1'`` of ``'tcp://127.0.0.1:4242'`` (a Dask worker's address)."""
    text = address.split("://", 1)[-1]
    return text.rsplit(":", 1)[0].strip("[]") or socket.gethostname()


class Group:
    """Member ``rank`` of a group of ``world`` processes that all-reduce arrays.

    Parameters
    ----------
    host, port : str, int
        The rendezvous store (:func:`open_store`, served by rank 0).
    rank, world : int
    generation : int
        Keys of this formation in the store (a group formed again after a
        failure uses a new generation).
    timeout : float
        Seconds a collective waits for the other members before it fails.
    device : 'cpu' or 'cuda'
        gloo on host memory, NCCL on CUDA tensors.
    store : optional
        The store object itself, for the member that serves it.
    """

    def __init__(
        self,
        host: str,
        port: int,
        rank: int,
        world: int,
        *,
        generation: int = 0,
        timeout: float = 60.0,
        device: str = "cpu",
        store: Any = None,
    ) -> None:
        dist = _dist()
        self._torch = __import__("torch")
        delta = datetime.timedelta(seconds=timeout)
        if store is None:
            store = dist.TCPStore(host, port, world, is_master=False, timeout=delta)
        self.store = store
        prefixed = dist.PrefixStore(f"backprop/{generation}/", store)
        self.rank, self.world, self.device = rank, world, device
        if device == "cuda":
            options = dist.ProcessGroupNCCL.Options()
            options._timeout = delta
            self.pg = dist.ProcessGroupNCCL(prefixed, rank, world, options)
        else:
            self.pg = dist.ProcessGroupGloo(prefixed, rank, world, delta)

    def allreduce_(self, flat: Any) -> Any:
        """Sum the 1-D buffer ``flat`` over the members, in place; returns it.

        ``flat`` is a NumPy array (gloo) or a tensor on this member's device.
        The sum runs in the library's fixed order (ring or halving-doubling
        over the same ranks), so every member receives the same bits.
        """
        torch = self._torch
        tensor = flat if isinstance(flat, torch.Tensor) else torch.from_numpy(flat)
        self.pg.allreduce([tensor]).wait()
        return flat

    def broadcast_(self, flat: Any, root: int = 0) -> Any:
        """Copy ``flat`` of member ``root`` into every member's ``flat``, in place."""
        torch = self._torch
        tensor = flat if isinstance(flat, torch.Tensor) else torch.from_numpy(flat)
        opts = _dist().BroadcastOptions()
        opts.rootRank = root
        self.pg.broadcast([tensor], opts).wait()
        return flat

    def close(self) -> None:
        """Leave the group: its connections close at once, so the other members' pending
        collective fails now rather than at its timeout (``abort`` does not close them)."""
        self.pg = None
        self.store = None
        gc.collect()  # the process group's last references, if a cycle holds them
