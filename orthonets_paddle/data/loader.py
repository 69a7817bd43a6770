"""DataLoader construction from a ``DataLoader.Train`` / ``DataLoader.Eval`` config section.

The order of epoch ``e`` is ``numpy.random.default_rng(seed + e).permutation(n)``, in one
process or sharded over ranks, so a resume at epoch k replays epoch k's order.
"""
from __future__ import annotations

import functools
import logging
import multiprocessing
import random
import re
import signal
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
from paddle.io import BatchSampler, DataLoader, Dataset, DistributedBatchSampler
from paddle.io.dataloader.collate import default_collate_fn

from ..utils.cli import is_interrupt
from ..utils.hints import did_you_mean
from ..utils.schema import builder_keys
from ..utils.threads import loader_workers
from .batch_ops import build_batch_transforms
from .datasets import DataFileError, build_dataset, check_channels, dataset_params
from .images import header_problem
from .transforms import build_transforms

__all__ = ["build_dataloader", "loader_params", "sampler_params", "loader_options", "set_epoch",
           "EpochBatchSampler", "WorkerError", "worker_failure", "check_image_files", "check_loader_samples", "check_loader_channels", "SAMPLERS"]

SAMPLERS = ("DistributedBatchSampler", "BatchSampler")


def loader_params() -> Dict[str, bool]:
    """Valid keys of a ``DataLoader.Train`` / ``.Eval`` section -> whether each is required."""
    return builder_keys(_parts)


def sampler_params(name: str = "DistributedBatchSampler") -> Dict[str, bool]:
    """Valid keys of the ``sampler`` section -> whether each is required (both names alike)."""
    if name not in SAMPLERS:
        raise ValueError(f"sampler: unknown name {name!r}; {did_you_mean(name, SAMPLERS)}valid: "
                         f"{', '.join(SAMPLERS)}")
    return builder_keys(_batch_sampler)


def loader_options() -> Dict[str, bool]:
    """Valid keys of the ``loader`` section -> whether each is required."""
    return builder_keys(_loader)


def _permutation(n: int, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng(seed + epoch).permutation(n)


class EpochBatchSampler(DistributedBatchSampler):
    """``paddle.io.DistributedBatchSampler`` whose order is ``default_rng(seed + epoch)``
    (Paddle's depends on the epoch only), padded by wrapping to a multiple of the ranks;
    rank r takes every nranks-th index from r. ``pad=False`` (evaluation) repeats nothing,
    so sums over ranks count every sample once. One process is one rank."""

    def __init__(self, dataset: Any, batch_size: int, shuffle: bool = False,
                 drop_last: bool = False, seed: int = 0, num_replicas: Optional[int] = None,
                 rank: Optional[int] = None, pad: bool = True):
        super().__init__(dataset, batch_size, num_replicas=num_replicas, rank=rank,
                         shuffle=shuffle, drop_last=drop_last)
        self.seed = int(seed)
        self.pad = pad
        if not pad:
            self.num_samples = len(range(self.local_rank, len(dataset), self.nranks))

    def __iter__(self) -> Iterator[List[int]]:
        order = _permutation(len(self.dataset), self.shuffle, self.seed, self.epoch)
        if self.shuffle:
            self.epoch += 1
        if self.pad:
            order = np.resize(order, self.total_size)
        order = order[self.local_rank::self.nranks].tolist()
        step = self.batch_size * self._acc_steps
        for start in range(0, len(order), step):
            batch = order[start:start + step]
            if len(batch) == step or not self.drop_last:
                yield batch


# Paddle 3.3.1's DataLoader hangs (num_workers 0) or buries the message under "Blocking
# queue is killed" (workers) when a dataset's __getitem__ or the collate_fn raises. So
# neither raises inside the loader: a failing sample becomes a marker, collate turns a
# batch it cannot build into an error batch of plain arrays, and the loader's iterator
# raises the message in the main process.
_ERROR_MARK = np.frombuffer(b"orthonets-data-error", dtype=np.uint8)
_SKIP_MARK = np.frombuffer(b"orthonets-data-skip!", dtype=np.uint8)


class _Failed:
    def __init__(self, message: str, bad_file: bool = False):
        self.message, self.bad_file = message, bad_file

    def text(self, section: str) -> str:
        """The message; for an unreadable file with the option that leaves such files out."""
        return self.message + (f"; or leave bad images out with -o {section}.loader."
                               f"skip_bad_images=True" if self.bad_file else "")


class _Sample(tuple):
    """A dataset item ``(image, label)`` that remembers its index (for collate's messages)."""

    index = -1


def describe(dataset: Any, idx: int) -> str:
    """The file behind sample ``idx`` when the dataset knows it, else ``sample idx``."""
    try:
        if hasattr(dataset, "describe"):
            return f"{dataset.describe(idx)} (sample {idx})"
        samples = getattr(dataset, "samples", None)
        if samples is not None and isinstance(samples[idx][0], str):
            return f"{samples[idx][0]} (sample {idx})"
    except Exception:  # noqa: BLE001  (a description must never fail)
        pass
    return f"sample {idx}"


class _GuardedDataset(Dataset):
    """``dataset`` whose failing items become ``_Failed`` markers (attributes pass through)."""

    def __init__(self, dataset: Any):
        super().__init__()
        self.dataset = dataset

    def __getitem__(self, idx: int) -> Any:
        try:
            item = self.dataset[idx]
        except Exception as exc:  # noqa: BLE001  (re-raised in the main process)
            if isinstance(exc, DataFileError):
                return _Failed(str(exc), bad_file=True)
            text = " ".join(str(exc).split())[:500]  # one line, bounded
            return _Failed(f"{describe(self.dataset, idx)}: {type(exc).__name__}: {text} (while "
                           f"reading or transforming it: fix transform_ops, e.g. a Resize before "
                           f"a crop larger than the image, or replace the file)")
        if isinstance(item, tuple):
            item = _Sample(item)
            item.index = idx
        return item

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


def _text(messages: List[str]) -> np.ndarray:
    # One leading byte keeps the array non-empty (Paddle refuses 0-size batch members).
    return np.frombuffer(b"\n" + "\n".join(messages).encode("utf-8"), dtype=np.uint8).copy()


def _error(message: str) -> List[np.ndarray]:
    return [_ERROR_MARK.copy(), _text([message]), np.zeros([1], np.uint8)]


def _size(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def shape_message(section: str, where: str, shape: Sequence[int], image_shape: Sequence[int],
                  common: bool = False) -> Optional[str]:
    """One line when a CHW sample does not have ``Global.image_shape``'s size, else None.
    ``common``: every sample seen has this size (then image_shape may be what is wrong)."""
    shape = tuple(int(v) for v in shape)
    if len(shape) == 3 and shape[1:] == tuple(int(v) for v in image_shape[1:]):
        return None
    if len(shape) == 3 and shape[-1] in (1, 3) and shape[0] not in (1, 3):
        return (f"{section}: {where} is {_size(shape)} after transform_ops, channels last; the "
                f"model takes channels first ({_size(image_shape)}): end transform_ops with "
                f"ToTensor: {{}} (or ToCHWImage: {{}})")
    if len(shape) != 3:
        return (f"{section}: {where} has shape {list(shape)} after transform_ops, not [C, H, W] "
                f"({_size(image_shape)}, Global.image_shape); end transform_ops with ToTensor: {{}}")
    alt = (f", or set -o Global.image_shape=[{image_shape[0]},{shape[1]},{shape[2]}] if "
           f"{shape[1]}x{shape[2]} is the size you mean" if common else "")
    h, w = int(image_shape[1]), int(image_shape[2])
    crop = h if h == w else f"[{h}, {w}]"
    return (f"{section}: {where} is {_size(shape)} after transform_ops but Global.image_shape is "
            f"{list(image_shape)} (the model's input; every image needs that size): make "
            f"transform_ops end at {h}x{w}: Resize: {{size: [{h}, {w}]}} (an exact size; Resize: "
            f"{{size: N}} keeps the aspect ratio), RandomResizedCrop: {{size: {crop}}}, or Resize: "
            f"{{size: {max(h, w)}}} then CenterCrop: {{size: {crop}}} (a crop larger than the "
            f"image does not enlarge it){alt}")


def _shape_error(good: List[Any], dataset: Any, section: str,
                 image_shape: Optional[Sequence[int]] = None) -> Optional[str]:
    """One line naming the first sample whose image differs in shape from
    ``image_shape`` (when given) or from the batch's first."""
    if image_shape is not None:
        bad = next((s for s in good if shape_message("", "", np.shape(s[0]), image_shape)), None)
        if bad is not None:
            shape = np.shape(bad[0])
            return shape_message(section, describe(dataset, getattr(bad, "index", -1)), shape,
                                 image_shape, len(good) > 1 and all(np.shape(o[0]) == shape for o in good))
    first = np.shape(good[0][0])
    for s in good[1:]:
        if np.shape(s[0]) != first:
            where = describe(dataset, getattr(s, "index", -1))
            ref = describe(dataset, getattr(good[0], "index", -1))
            return (f"{section}: {where} is {_size(np.shape(s[0]))} after transform_ops but "
                    f"{ref} is {_size(first)}; images in one batch need one size: end the "
                    f"resizing with a fixed-size crop (CenterCrop: {{size: N}} or CropImage: "
                    f"{{size: N}}), or give Resize/ResizeImage an exact [h, w] size")
    return None


def _collate(batch: List[Any], skip: bool = False, batch_ops: Optional[Callable] = None,
             dataset: Any = None, section: str = "DataLoader",
             image_shape: Optional[Sequence[int]] = None) -> Any:
    failed = [s for s in batch if isinstance(s, _Failed)]
    if failed and not skip:
        return _error(failed[0].text(section))
    failed = [s.message for s in failed]
    good = [s for s in batch if not isinstance(s, _Failed)]
    if not good:  # every sample of the batch is bad: the loader drops the batch
        return [_SKIP_MARK.copy(), _text(failed), np.zeros([1], np.uint8)]
    try:
        message = _shape_error(good, dataset, section, image_shape) if isinstance(good[0], tuple) else None
        if message is not None:
            return _error(message)
        if batch_ops is not None:
            good = batch_ops([tuple(s) for s in good])
        out = default_collate_fn(good)
    except Exception as exc:  # noqa: BLE001  (never raise inside Paddle's loader)
        return _error(f"{section}: cannot make a batch ({type(exc).__name__}: {exc}); check "
                      f"transform_ops / batch_transform_ops")
    return [*out, _text(failed)] if skip else out


def _marked(batch: Any, mark: np.ndarray) -> Optional[str]:
    # Shape first, on the tensor: a batch of images is not copied to numpy to learn that.
    if not (isinstance(batch, (list, tuple)) and len(batch) == 3) or \
            tuple(batch[0].shape) != mark.shape:
        return None
    first = np.asarray(batch[0].numpy() if hasattr(batch[0], "numpy") else batch[0])
    return _decode(batch[1]) if first.dtype == np.uint8 and np.array_equal(first, mark) else None


def _decode(item: Any) -> str:
    raw = np.asarray(item.numpy() if hasattr(item, "numpy") else item)
    return raw.astype(np.uint8).tobytes().decode("utf-8", "replace")[1:]


class FailFastDataLoader(DataLoader):
    """``paddle.io.DataLoader`` that raises the dataset's or collate's own error
    (``DataFileError`` naming the file) in the main process, whatever ``num_workers`` is;
    with ``skip_bad_images`` a bad sample is left out with a warning (``skipped`` counts)."""

    skip_bad_images = False
    skipped = 0
    section = "DataLoader"
    workers: List[Any] = []  # this pass's worker processes (multiprocessing.Process)

    def __iter__(self):
        before = set(multiprocessing.active_children())
        it = super().__iter__()  # starts the workers
        self.workers = [p for p in multiprocessing.active_children() if p not in before]
        # Paddle logs a dead worker's pid, then raises without it: worker_failure says both
        logging.getLogger().addFilter(_paddle_worker_note)
        try:
            yield from self._batches(it)
        except (SystemError, OSError, RuntimeError) as exc:  # a worker's, re-raised by Paddle
            dead = worker_failure(exc, [self])
            if dead is None:
                raise
            raise WorkerError(dead) from None
        finally:
            logging.getLogger().removeFilter(_paddle_worker_note)
            self.workers = []

    def _batches(self, it):
        log = logging.getLogger("orthonets_paddle")
        for batch in it:
            message = _marked(batch, _ERROR_MARK)
            if message is not None:
                del it  # stop the loader's thread / workers before raising
                raise DataFileError(message)
            if not self.skip_bad_images:
                yield batch
                continue
            notes = _marked(batch, _SKIP_MARK)
            all_bad = notes is not None
            if not all_bad:
                *batch, extra = batch
                notes = _decode(extra)
            for note in filter(None, notes.split("\n")):
                self.skipped += 1
                log.warning("WARNING skipped a bad sample (%d so far; skip_bad_images is "
                            "true): %s", self.skipped, note)
            if not all_bad:
                yield batch


class WorkerError(RuntimeError):
    """A DataLoader worker process died (killed, out of memory, shared memory full)."""


def _paddle_worker_note(record: logging.LogRecord) -> bool:
    return "workers exit unexpectedly" not in record.getMessage()


def worker_failure(exc: BaseException, loaders: Sequence[Any]) -> Optional[str]:
    """One line naming the dead worker(s) of ``loaders`` (``FailFastDataLoader``s) when
    ``exc`` is Paddle's report of one (a ``SystemError`` or ``OSError``, raised by the loader
    or by its SIGCHLD handler anywhere in the main thread), else None."""
    if isinstance(exc, WorkerError):
        return str(exc)
    if is_interrupt(exc) or not isinstance(exc, (SystemError, OSError, RuntimeError)):
        return None
    text = " ".join(str(exc).split())
    for loader in loaders:
        dead = [(p.pid, p.exitcode) for p in getattr(loader, "workers", ())
                if p.exitcode not in (None, 0)]
        dead = [d for d in dead if d[1] != -signal.SIGTERM] or dead  # Paddle's shutdown of the rest
        found = re.search(r"DataLoader process \(pid (\d+)\)", text)
        # a shared-memory failure while this loader runs (not a full disk elsewhere)
        shm = any(code == -signal.SIGBUS for _, code in dead) or bool(
            getattr(loader, "workers", None) and re.search(r"/dev/shm|shared memory|bus error",
                                                           text, re.IGNORECASE))
        if not (dead or found or shm):
            continue
        section = getattr(loader, "section", "DataLoader")
        names = [f"pid {pid}, " + (f"killed by {signal.Signals(-code).name}" if code < 0 else
                                   f"exit code {code}") for pid, code in dead] or [
            f"pid {found.group(1)}, {text.split(' exited ')[-1].split(' (at ')[0]}" if found
            else f"{type(exc).__name__}: {text[:300]}"]
        fix = (f"/dev/shm is likely full or too small: set -o {section}.loader.use_shared_memory"
               f"=False (or give the machine/container more shared memory)" if shm else
               f"if it recurs, look for the out-of-memory killer (dmesg) and lower "
               f"{section}.loader.num_workers or sampler.batch_size")
        return (f"{section}: a DataLoader worker process {'died' if dead or found else 'failed'} "
                f"({'; '.join(names)}); {fix}")
    return None


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Make the next pass over ``loader`` use epoch ``epoch``'s shuffling order."""
    loader.batch_sampler.set_epoch(epoch)


# A section's parts and the builders of its ``sampler`` and ``loader``: their keyword-only
# parameters are the config keys (utils.schema.builder_keys), which engine.config checks.
def _parts(*, dataset: Dict[str, Any], sampler: Dict[str, Any], loader: Optional[Dict] = None):
    return dataset, _given(sampler), _given(loader)


def _batch_sampler(dataset: Any, seed: int, distributed: bool, train: bool, *, batch_size: int,
                   name: str = "DistributedBatchSampler", shuffle: Optional[bool] = None,
                   drop_last: bool = False) -> BatchSampler:
    sampler_params(name)  # the name's check, for direct calls
    # Both names shard in a distributed run (training pads, evaluation not).
    return EpochBatchSampler(dataset, batch_size, train if shuffle is None else shuffle, drop_last,
                             seed, *((None, None) if distributed else (1, 0)), pad=train)


def _loader(dataset: Any, sampler: BatchSampler, collate: Callable, *, num_workers="auto",
            use_shared_memory: bool = True, skip_bad_images: bool = False) -> DataLoader:
    loader = FailFastDataLoader(_GuardedDataset(dataset), batch_sampler=sampler,
                                num_workers=loader_workers(num_workers),  # auto: utils.threads
                                use_shared_memory=use_shared_memory,
                                return_list=True,
                                collate_fn=functools.partial(collate, skip=skip_bad_images))
    loader.skip_bad_images = skip_bad_images
    return loader


def _given(section: Any) -> Dict[str, Any]:
    return {k: v for k, v in (section or {}).items() if v is not None}  # null: the default


def build_dataloader(loader_cfg: Dict[str, Any], mode: str, seed: int = 0,
                     distributed: bool = False, class_num: Optional[int] = None,
                     image_shape: Optional[Sequence[int]] = None) -> DataLoader:
    """Build a ``paddle.io.DataLoader`` from a PaddleClas ``DataLoader.Train/Eval`` section::

        dataset: {name: Cifar10, data_file: ..., transform_ops: [...],
                  batch_transform_ops: [...]}          # batch ops: train only
        sampler: {name: DistributedBatchSampler, batch_size: 256, shuffle: true,
                  drop_last: true}
        loader:  {num_workers: 2, use_shared_memory: true, skip_bad_images: false}

    Keys and value types are checked by ``engine.config``. A dataset without ``mode`` gets
    ``train`` or ``test``; ``shuffle`` defaults to true for training. ``num_workers: 0``
    (or ``use_shared_memory: false``) is the fix for shared-memory crashes ("Bus error").

    Args:
        loader_cfg: the section.
        mode: ``train`` or ``eval`` (``val``/``test``/``infer`` too, any case).
        seed: shuffling seed; epoch e uses ``default_rng(seed + e)``.
        distributed: shard over the ranks of ``paddle.distributed``.
        class_num: ``Arch.class_num`` for ``batch_transform_ops`` (None: the dataset's).
        image_shape: ``Global.image_shape``; a batch holding an image of another size then
            ends with one line naming its file (else only sizes differing within a batch).

    Returns:
        The loader; ``set_epoch(loader, e)`` selects epoch e's order.

    Raises:
        ValueError: batch ops in an eval loader, or a dataset too small for one batch with
            ``drop_last``.
    """
    ds_cfg, smp, opts = _parts(**loader_cfg)
    train = str(mode).lower() == "train"
    if not train and str(mode).lower() not in ("eval", "val", "test", "infer"):
        raise ValueError(f"build_dataloader: unknown mode {mode!r}; use 'train' or 'eval'")
    where = f"DataLoader.{'Train' if train else 'Eval'}"
    ds_cfg = dict(ds_cfg)
    transforms = build_transforms(ds_cfg.pop("transform_ops", None), backend=ds_cfg.get("backend"))
    batch_cfg = ds_cfg.pop("batch_transform_ops", None)
    if batch_cfg and not train:
        raise ValueError(f"{where}.dataset.batch_transform_ops: Mixup/Cutmix are for training "
                         f"only; remove them from the eval loader")
    if "mode" not in ds_cfg and "name" in ds_cfg and "mode" in dataset_params(ds_cfg["name"]):
        ds_cfg["mode"] = "train" if train else "test"
    dataset = build_dataset(ds_cfg, transforms=transforms)
    check_image_files(dataset, where, bool(opts.get("skip_bad_images")))
    if not len(dataset):  # else evaluation reports accuracy 0 ("best") over no images
        raise DataFileError(f"{where}.dataset ({ds_cfg.get('name')}) has no samples; give it "
                            f"a non-empty set (check its paths and files)")
    batch_ops = build_batch_transforms(
        batch_cfg, class_num if class_num else getattr(dataset, "num_classes", None))
    sampler = _batch_sampler(dataset, seed, distributed, train, **smp)
    if smp.get("drop_last") and sampler.num_samples < smp["batch_size"]:
        raise ValueError(f"{where}: {sampler.num_samples} samples per process is fewer than sampler."
                         f"batch_size {smp['batch_size']} with drop_last true, so there would be "
                         f"no batches; lower batch_size, raise dataset.num_samples, or set "
                         f"drop_last: false")
    collate = functools.partial(_collate, batch_ops=batch_ops, dataset=dataset, section=where,
                                image_shape=list(image_shape) if image_shape else None)
    loader = _loader(dataset, sampler, collate, **opts)
    loader.section = where
    return loader


# Header reads cost ~0.2 s per 10,000 cached files here, ~3 s uncached: an ImageNet-sized
# set (1.28 M files) would wait minutes at every start, so larger sets are read as they go.
HEADER_CHECK_MAX = 200_000


def check_image_files(dataset: Any, where: str, skip: bool = False) -> None:
    """Read the first bytes of every image file of ``dataset`` (up to ``HEADER_CHECK_MAX``
    files) so a corrupt one stops the run now, not after an epoch; with ``skip`` (the
    loader's ``skip_bad_images``) bad files are left out with one warning.

    Raises:
        DataFileError: a file is empty or has no image header, naming it and the option.
    """
    samples = getattr(dataset, "samples", None)
    if not samples:
        return
    if len(samples) > HEADER_CHECK_MAX:
        logging.getLogger("orthonets_paddle").info(
            "%s: %d image files, more than the %d whose headers are checked at start; a bad "
            "file is reported when it is read", where, len(samples), HEADER_CHECK_MAX)
        return
    bad = [(i, why) for i, (path, _) in enumerate(samples) if (why := header_problem(path))]
    if not bad:
        return
    i, why = bad[0]
    line = f", {dataset.describe_label(i)}" if hasattr(dataset, "describe_label") else ""
    first = f"image {samples[i][0]} (sample {i}{line}) {why}"
    if not skip:
        more = f" (and {len(bad) - 1} more such file(s))" if len(bad) > 1 else ""
        raise DataFileError(f"{where}: {first}{more}; delete or replace it, or leave bad images "
                            f"out with -o {where}.loader.skip_bad_images=True")
    logging.getLogger("orthonets_paddle").warning(
        "WARNING %s: left out %d bad image file(s) (loader.skip_bad_images is true), e.g. %s",
        where, len(bad), first)
    dropped = {j for j, _ in bad}
    dataset.keep([j for j in range(len(samples)) if j not in dropped])


def check_loader_samples(loader: DataLoader, expected: int, source: str,
                         image_shape: Optional[Sequence[int]] = None, count: int = 3) -> None:
    """Before any batch runs: read ``count`` samples spread over the dataset through the
    transforms and check them against the model's ``expected`` channels (``check_channels``)
    and ``image_shape`` ([C, H, W], None: no size check). An unreadable sample ends here
    with its file named (unless ``skip_bad_images``); the random state is left as it was.
    ``source`` is the config section named in messages.

    Raises:
        DataFileError: a probed sample cannot be read, or has another size or layout.
        ValueError: its channel count is not the model's.
    """
    dataset = loader.dataset
    if not len(dataset):
        return
    n, state = len(dataset), (random.getstate(), np.random.get_state())
    # first, middle, last...: spread out, so a folder's odd class is likelier to be seen
    picks = sorted({round(i * (n - 1) / max(count - 1, 1)) for i in range(min(count, n))})
    try:
        samples = [(i, dataset[i]) for i in picks]
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
    checked_channels = False
    shapes = {np.shape(s[0]) for _, s in samples if not isinstance(s, _Failed)}
    for idx, sample in samples:
        if isinstance(sample, _Failed):
            if getattr(loader, "skip_bad_images", False):
                continue
            raise DataFileError(sample.text(source))
        image = np.asarray(sample[0])
        if image.ndim != 3:
            continue  # PIL images or anything else the loader itself will report
        where = describe(getattr(dataset, "dataset", dataset), idx)
        if image.dtype.kind == "f" and not np.isfinite(image).all():
            # the model may turn NaN inputs into finite losses (a ReLU passes 0): no stop later
            raise DataFileError(f"{source}: {where} has NaN/inf values after transform_ops; "
                                f"check Normalize's std (no zeros) and the ops before it")
        if image_shape is not None and image.shape[-1] in (1, 3) and image.shape[0] not in (1, 3):
            raise DataFileError(shape_message(source, where, image.shape, image_shape))
        if not checked_channels:
            check_channels(image.shape[0], expected, source)
            checked_channels = True
        if image_shape is not None:
            message = shape_message(source, where, image.shape, image_shape,
                                    len(shapes) == 1 and len(samples) > 1)
            if message is not None:
                raise DataFileError(message)


def check_loader_channels(loader: DataLoader, expected: int, source: str) -> None:
    """``check_loader_samples`` on the loader's first sample, channels only."""
    check_loader_samples(loader, expected, source, None, count=1)
