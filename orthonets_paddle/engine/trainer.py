"""The training loop in the torchvision-reference style: ``train(cfg)`` is what
``tools/train.py`` and the notebook run; outputs use the seed notebook's names."""
from __future__ import annotations

import importlib.util
import math
import os
import time
from typing import Any, Dict, Optional

import numpy as np
import paddle

from .static import apply_to_static
from .config import dump_config, save_config
from ..data import build_dataloader, check_loader_samples, set_epoch
from ..data.loader import DataFileError, WorkerError, worker_failure
from ..data.datasets import check_same_classes, validate_dataset
from ..models import build_model_from_config
from ..models.registry import model_channels
from ..models.pretrained import FINE_TUNE, load_pretrained
from ..utils.cli import Terminated, is_interrupt
from ..utils.threads import threads_line
from .amp import autocast, build_scaler, decorate, fp16_eval
from .checkpoint import (READY, CheckpointError, RunFolderError, RunLock, arch_identity, checkpoint_files,
                         commit, current, holds_run, identity_diff, load_checkpoint,
                         load_optimizer_state, roll_forward, save_json)
from .checkpoint import check_optimizer, resume_schedule, resume_source, run_shape
from .env import (RunEnv, gather_rng_states, rank_rng, rng_state, seed_everything,
                  set_rng_state, setup_env)
from .env import check_same_on_ranks, global_batch_warning, new_streams_note
from .logger import VisualDLWriter, get_logger, log_line, new_records, progress, step_line
from .losses import build_loss
from .ema import DEFAULT_DECAY, ModelEMA
from .optim import build_optimizer, steps_per_epoch

__all__ = ["train", "train_one_epoch", "evaluate", "NonFiniteLossError"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stops with its last good checkpoint."""


def _saved(out_dir: str) -> bool:
    return os.path.isfile(current(os.path.join(out_dir, "latest.pdstates")))


_NOT_SAVED = "no checkpoint was saved yet (the first is written at the end of an epoch)"


def _nonfinite_message(what: str, g: Dict[str, Any]) -> str:
    out = g["output_dir"]
    where = (f"The last good checkpoint is {os.path.join(out, 'latest')}.* (resume with -o "
             f"Global.checkpoints={out})." if _saved(out) else _NOT_SAVED.capitalize() + ".")
    return (f"{what}; stopped. {where} Lower Optimizer.lr.learning_rate, or check the data "
            "for NaN/inf values")


def _correct(logits: paddle.Tensor, label: paddle.Tensor, k: int = 1) -> paddle.Tensor:
    k = min(k, logits.shape[-1])
    top = paddle.topk(logits, k, axis=-1)[1]
    return (top == label.reshape([-1, 1]).astype(top.dtype)).any(axis=-1).astype("float64").sum()


def _fetch(sums: paddle.Tensor, env: RunEnv) -> np.ndarray:
    """The one host sync of a print step: all-reduce the device sums, copy them out."""
    if env.distributed:
        sums = sums.clone()
        paddle.distributed.all_reduce(sums)
    return sums.numpy()


def train_one_epoch(model, loader, loss_fn, optimizer, scheduler, epoch: int, env: RunEnv,
                    records: Dict[str, Any], state: Dict[str, Any], cfg: Dict[str, Any],
                    vdl: VisualDLWriter, scaler=None, ema: Optional[ModelEMA] = None) -> Dict[str, float]:
    """One pass over ``loader``: mean train loss and accuracy over all ranks. A non-finite
    loss (its device sum stays NaN/inf) stops the run at the next print step or the end.
    With ``Global.update_freq: N`` the gradients of N batches (each loss / N) add up before
    one optimizer step; the epoch's last ``len(loader) % N`` batches are not drawn. ``ema``
    is updated after every optimizer step."""
    g = cfg["Global"]
    amp = cfg["AMP"] if scaler is not None else None
    model.train()
    # [last step's loss, sum of loss * n, hits, samples], float64 on the device
    sums = paddle.zeros([4], dtype="float64")
    freq = g.get("update_freq", 1)
    steps = steps_per_epoch(len(loader), freq) * freq  # batches drawn (whole groups)
    seen, start, lr = 0, time.perf_counter(), optimizer.get_lr()
    bar = progress(loader, steps, f"epoch {epoch + 1}/{g['epochs']}",
                   g["progress_bar"] and env.is_main)
    log = get_logger(quiet=not env.is_main)
    checked = state["global_step"]  # steps up to here had a finite loss
    # Record steps (global) and log steps (per epoch) differ; a record's (step, lr, loss)
    # stays on the device until the next log step's sync: one host sync per log step.
    pending = []

    def sync() -> np.ndarray:
        nonlocal checked
        out = _fetch(paddle.concat([sums] + [t for _, _, t in pending]), env)
        if not math.isfinite(out[1]):
            raise NonFiniteLossError(_nonfinite_message(
                f"loss is {out[1]} at epoch {epoch + 1}, within iterations {checked + 1}-"
                f"{state['global_step']}", g))
        checked = state["global_step"]
        for (step, step_lr, _), value in zip(pending, out[4:]):
            loss_value = value / env.world_size  # the step's loss, mean over ranks
            records["loss_record"]["train"]["loss"].append(loss_value)
            records["loss_record"]["train"]["iter"].append(step)
            vdl.add_scalar("train/loss", loss_value, step)
            vdl.add_scalar("train/lr", step_lr, step)
        pending.clear()
        return out[:4]

    for i, (images, labels) in enumerate(bar):
        # Mixup/Cutmix batches carry soft [B, K] labels: accuracy counts their largest entry.
        soft = labels.ndim == 2 and labels.shape[-1] > 1
        labels = labels if soft else labels.reshape([-1]).astype("int64")
        hard = labels.argmax(axis=-1).astype("int64") if soft else labels
        with autocast(amp):
            logits = model(images)
        loss = loss_fn(logits.astype("float32"), labels)  # the loss in float32
        lr = optimizer.get_lr()  # this iteration's rate (the scheduler steps after it)
        # N accumulated (loss / N) gradients = the gradient of the mean over N batches
        part = loss / freq if freq > 1 else loss
        if scaler is not None:
            scaler.scale(part).backward()  # Paddle's accumulation with a GradScaler
        else:
            part.backward()
        stepped = (i + 1) % freq == 0
        if stepped:
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.clear_grad()
            scheduler.step()
            state["global_step"] += 1
            if ema is not None:
                ema.update()

        n = labels.shape[0]
        seen += n
        last = loss.detach().astype("float64")
        sums = paddle.stack([last, sums[1] + last * n,
                             sums[2] + _correct(logits.detach(), hard), sums[3] + n])
        # The records follow the global step (curves do not restart); the log line follows
        # the iteration within the epoch, 0-based, as PaddleClas's `iter_id % print_batch_step`.
        # Each epoch's last step is recorded too: a run shorter than print_batch_step has a curve.
        if stepped and (state["global_step"] % g["print_batch_step"] == 0 or i == steps - 1):
            pending.append((state["global_step"], lr, last.reshape([1])))
        if i % g["print_batch_step"] == 0:
            host = sync()
            elapsed = max(time.perf_counter() - start, 1e-9)
            left = (steps - i - 1) + (g["epochs"] - epoch - 1) * steps  # training steps to go
            loss_mean, acc, ips = host[1] / host[3], host[2] / host[3], seen * env.world_size / elapsed
            log_line(log, bar, step_line(epoch + 1, g["epochs"], i, steps, lr, loss_mean,
                                         acc, ips, left * elapsed / (i + 1)))
            if bar is not loader:  # the log line's figures: the epoch's running means
                bar.set_postfix(loss=f"{loss_mean:.5f}", acc=f"{acc:.5f}",
                                lr=f"{lr:.2e}", ips=f"{ips:.0f} img/s", refresh=False)
        if i + 1 == steps:
            break  # an incomplete last group (update_freq) is not drawn
    host = sync()
    elapsed = time.perf_counter() - start
    return {"loss": host[1] / max(host[3], 1), "acc": host[2] / max(host[3], 1),
            "images_per_sec": host[3] / max(elapsed, 1e-9), "lr": lr}


@paddle.no_grad()
def evaluate(model, loader, loss_fn, env: Optional[RunEnv] = None,
             show_progress: bool = False, amp: Optional[Dict[str, Any]] = None) -> Dict[str, float]:
    """Top-1, top-5 and mean loss over ``loader`` (summed over ranks). With ``amp`` (the AMP
    section) and ``use_fp16_test`` or level O2 the forward runs under ``auto_cast``, as
    PaddleClas evaluates; loss and top-k are in float32."""
    env = env or RunEnv(device=paddle.get_device())
    model.eval()
    sums = paddle.zeros([4], dtype="float64")
    for images, labels in progress(loader, len(loader), "eval", show_progress and env.is_main):
        labels = labels.reshape([-1]).astype("int64")
        with autocast(amp, fp16_eval(amp)):
            logits = model(images)
        logits = logits.astype("float32")
        n = labels.shape[0]
        sums = sums + paddle.stack([loss_fn(logits, labels).astype("float64") * n, _correct(logits, labels, 1),
                                    _correct(logits, labels, 5), paddle.full([], n, "float64")])
    host = _fetch(sums, env)
    if not host[3]:  # not "acc 0.0000 (best)" over nothing
        raise DataFileError("evaluation read no samples: every image of DataLoader.Eval was left "
                            "out (loader.skip_bad_images) or its set is empty; fix or replace "
                            "the images, or check DataLoader.Eval.dataset")
    n = max(host[3], 1)
    return {"loss": host[0] / n, "acc": host[1] / n, "top5": host[2] / n, "samples": int(host[3])}


def _states(epoch: int, state: Dict[str, Any], records, scheduler, scaler=None,
            rngs=None, identity=None) -> Dict[str, Any]:
    return {"epoch": epoch, "identity": identity, "best_acc": state["best_acc"], "best_epoch": state["best_epoch"],
            "global_step": state["global_step"], "lr_scheduler": scheduler.state_dict(),
            "rng": rng_state(), "rank_rng": rngs, "records": records,
            "scaler": scaler.state_dict() if scaler is not None else None}


def _check_folder(out_dir: str, g: Dict[str, Any], resume_prefix: Optional[str]) -> None:
    # A run folder belongs to one run: refuse a new run (or a resume of another folder's
    # checkpoint) into a folder holding checkpoints, unless Global.overwrite.
    found = holds_run(out_dir)
    if not found or g["overwrite"] or resume_prefix and os.path.samefile(
            os.path.dirname(os.path.abspath(resume_prefix)), out_dir):
        return
    shown = ", ".join(found[:4]) + (" ..." if len(found) > 4 else "")
    what = (f"resuming {resume_prefix} into it would overwrite another run" if resume_prefix
            else "a new run would overwrite them")
    raise RunFolderError(
        f"Global.output_dir {out_dir} already holds a run's checkpoints ({shown}); {what}. "
        f"Resume that run with -o Global.checkpoints={out_dir}, choose another "
        "Global.output_dir, or replace it with -o Global.overwrite=True")


def _last_good(out: str) -> str:  # a dead worker's stop: what to resume from
    return (f"the last good checkpoint is {os.path.join(out, 'latest')}.* (resume with -o "
            f"Global.checkpoints={out})" if _saved(out) else _NOT_SAVED)


def _resumable(exc: BaseException, out_dir: str) -> BaseException:
    # Tell utils.cli.run how to resume a stopped run (the latest set, if any).
    if _saved(out_dir):
        exc.resume_dir = out_dir
    else:
        exc.note = _NOT_SAVED
    return exc


def train(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Train as the config says; returns best/final accuracy and the records. Every check
    (device, data, model, weights, the resume checkpoint and its identity, the run folder's
    ownership) runs before anything is written to ``Global.output_dir``."""
    g = cfg["Global"]
    env = setup_env(g["device"], (  # threads and workers chosen together (utils.threads)
        (cfg["DataLoader"].get("Train") or {}).get("loader") or {}).get("num_workers"))
    log = get_logger(quiet=not env.is_main)
    log.info(threads_line())
    if cfg["AMP"]["use_amp"] and env.device != "gpu":
        raise RuntimeError("AMP.use_amp needs a GPU (float16 autocast); this run is on the CPU. "
                           "Set -o AMP.use_amp=False, or -o Global.device=gpu on a GPU machine")
    if g["use_visualdl"] and env.is_main and importlib.util.find_spec("visualdl") is None:
        raise RuntimeError("Global.use_visualdl is true but visualdl is not installed: "
                           "pip install visualdl, or set -o Global.use_visualdl=False")
    out_dir = g["output_dir"]
    seed_everything(g["seed"], env.rank)  # each rank its own augmentations

    loaders = cfg["DataLoader"]
    if "Train" not in loaders:
        raise ValueError("config has no DataLoader.Train section; see configs/ for examples")
    shape = g["image_shape"]
    train_loader, eval_loader = (
        build_dataloader(loaders[split], split, seed=g["seed"], distributed=env.distributed,
                         class_num=cfg["Arch"].get("class_num"), image_shape=shape)
        if split == "Train" or ("Eval" in loaders and g["eval_during_train"]) else None
        for split in ("Train", "Eval"))

    model = build_model_from_config(cfg["Arch"])
    if g["pretrained_model"]:
        # Only the classifier may differ (fine-tuning); anything else is refused (issue 28).
        report = load_pretrained(model, g["pretrained_model"], strict=FINE_TUNE, verbose=False)
        log.info("pretrained: %s", report.summary())
    ema = ModelEMA(model, cfg["EMA"].get("decay", DEFAULT_DECAY)) if cfg.get("EMA") is not None else None
    # Global.to_static (issue 21): the traced program trains; engine/static.py.
    model = apply_to_static(model, g["to_static"])
    loss_fn, eval_loss_fn = build_loss(cfg["Loss"]["Train"]), build_loss(cfg["Loss"].get("Eval"))
    steps = steps_per_epoch(len(train_loader), g["update_freq"])  # optimizer steps
    optimizer, scheduler = build_optimizer(cfg["Optimizer"], model.parameters(), steps, g["epochs"])
    scaler = build_scaler(cfg["AMP"])
    if scaler is not None:
        model, optimizer = decorate(model, optimizer, cfg["AMP"])
        if cfg["AMP"]["level"] == "O2" and not cfg["AMP"]["use_fp16_test"]:
            log.warning("WARNING AMP.level O2 keeps float16 parameters: evaluation runs under "
                        "auto_cast too (as PaddleClas does), whatever AMP.use_fp16_test says")

    records = new_records()
    state = {"best_acc": -1.0, "best_epoch": -1, "global_step": 0}
    start_epoch = 0
    # Global.checkpoints: auto resumes output_dir's latest set if there is one (a restart)
    source = resume_source(g["checkpoints"], out_dir)
    ckpt = load_checkpoint(source) if source else None
    # what this run's checkpoints record and a resume compares (world, batches, schedule)
    run = run_shape(env.world_size, loaders["Train"]["sampler"]["batch_size"], steps,
                    g["epochs"], cfg["Optimizer"]["name"], g["update_freq"])
    check_same_on_ranks(env, ckpt and (ckpt["prefix"], ckpt["states"]["epoch"]), "the resume checkpoint",
                        "every node must read the same Global.output_dir and Global.checkpoints "
                        "(put them on storage all nodes share)")
    warning = global_batch_warning(env.world_size, run["batch_size"])
    if warning and env.is_main:  # once: every rank's logger shows warnings
        log.warning(warning)
    if ckpt is not None:
        check_optimizer(ckpt, run["optimizer"])
        saved = ckpt["states"].get("identity")
        if saved is None:
            raise CheckpointError(f"{ckpt['prefix']}.pdstates records no model identity; it "
                                  "cannot be checked against Arch, so it is not resumed")
        diff = identity_diff(saved, arch_identity(cfg["Arch"]))
        if diff:
            raise CheckpointError(
                f"cannot resume from {ckpt['prefix']}: it was trained as another model ("
                + "; ".join(diff) + "). Resume with the checkpoint's Arch settings (its run "
                "folder's config.yaml), or start a new run in another Global.output_dir (with "
                "Global.pretrained_model to reuse its weights)")
    _check_folder(out_dir, g, ckpt and ckpt["prefix"])
    if ckpt is not None:
        model.set_state_dict(ckpt["model"])
        load_optimizer_state(model, optimizer, ckpt["optimizer"])
        _resume_ema(ema, ckpt, log)
        st = ckpt["states"]
        step, notes = resume_schedule(st, run, scheduler)
        set_rng_state(rank_rng(st, env.rank, g["seed"]))
        streams = new_streams_note(st, env.world_size)  # ranks the checkpoint has no stream for
        notes += [streams] if streams else []
        if scaler is not None and st.get("scaler"):
            scaler.load_state_dict(st["scaler"])
        records = st["records"]
        state.update({k: st[k] for k in ("best_acc", "best_epoch", "global_step")})
        state["global_step"] = step
        start_epoch = st["epoch"] + 1
        # A run killed before its final files were all in place is finished below instead.
        if start_epoch >= g["epochs"] and os.path.isfile(os.path.join(out_dir, "final_model.pdparams")) \
                and not os.path.lexists(os.path.join(out_dir, READY)):
            log.info("resumed from %s: it has done %d epoch(s) and Global.epochs is %d, so there "
                     "is nothing to train (best acc %.4f at epoch %d). To train longer, raise "
                     "Global.epochs, e.g. -o Global.epochs=%d", ckpt["prefix"], start_epoch,
                     g["epochs"], state["best_acc"], state["best_epoch"] + 1, start_epoch + 10)
            return {"best_acc": state["best_acc"], "best_epoch": state["best_epoch"] + 1,
                    "final": None, "records": records, "output_dir": out_dir, "model": model}
        if notes:  # one line: what differs from the checkpoint's run, and what was done
            log.info("resume: %s", "; ".join(notes))
        log.info("resumed from %s: epoch %d done, best acc %.4f (epoch %d); %s", ckpt["prefix"],
                 start_epoch, state["best_acc"], state["best_epoch"] + 1,
                 f"continuing at epoch {start_epoch + 1}" if start_epoch < g["epochs"]
                 else "writing its final_model")

    # Labels against Arch.class_num, a few samples' channels and size against the model and
    # image_shape: the real cause before the first conv's weight-shape error (issue 20).
    for where, loader in (("DataLoader.Train", train_loader), ("DataLoader.Eval", eval_loader)):
        if loader is not None:
            validate_dataset(loader.dataset, cfg["Arch"]["class_num"], where)
            check_loader_samples(loader, model_channels(cfg["Arch"]), where, shape)
    if eval_loader is not None:
        check_same_classes(train_loader.dataset, eval_loader.dataset)

    # Every check passed: from here on the run owns out_dir.
    lock, vdl, main = RunLock(out_dir), VisualDLWriter(None), env.is_main
    if main:
        lock.acquire()
    try:
        if main:
            _check_folder(out_dir, g, ckpt and ckpt["prefix"])  # again, now that we hold it
            roll_forward(out_dir)  # a save killed after its commit point
            old = holds_run(out_dir) if g["overwrite"] and not ckpt else []
            for name in old:
                os.remove(os.path.join(out_dir, name))
            if old:
                log.warning("WARNING Global.overwrite: removed the previous run's %d "
                            "checkpoint file(s) from %s", len(old), out_dir)
            save_config(cfg, os.path.join(out_dir, "config.yaml"))
            log.info("config (saved to %s):\n%s", os.path.join(out_dir, "config.yaml"),
                     dump_config(cfg))
            vdl = VisualDLWriter(os.path.join(out_dir, "vdl") if g["use_visualdl"] else None)
        net = paddle.DataParallel(model) if env.distributed else model
        last_eval = None
        for epoch in range(start_epoch, g["epochs"]):
            set_epoch(train_loader, epoch)
            tr = train_one_epoch(net, train_loader, loss_fn, optimizer, scheduler, epoch, env,
                                 records, state, cfg, vdl, scaler, ema)
            row = {"epoch": epoch + 1, "lr": tr["lr"], "train_loss": tr["loss"],
                   "train_acc": tr["acc"], "train_images_per_sec": tr["images_per_sec"]}
            step = state["global_step"]
            records["acc_record"]["train"]["acc"].append(tr["acc"])
            records["acc_record"]["train"]["iter"].append(step)
            do_eval = eval_loader is not None and (
                (epoch + 1) % g["eval_interval"] == 0 or epoch + 1 == g["epochs"])
            if do_eval:
                last_eval = evaluate(net, eval_loader, eval_loss_fn, env, amp=cfg["AMP"])
                if not math.isfinite(last_eval["loss"]):
                    raise NonFiniteLossError(_nonfinite_message(
                        f"validation loss is {last_eval['loss']} after epoch {epoch + 1}", g))
                row.update(val_loss=last_eval["loss"], val_acc=last_eval["acc"],
                           val_top5=last_eval["top5"])
                for key, rec in (("loss", "loss_record"), ("acc", "acc_record")):
                    records[rec]["val"][key].append(last_eval[key])
                    records[rec]["val"]["iter"].append(step)
                ema_improved = ema is not None and _evaluate_ema(ema, eval_loader, eval_loss_fn, env,
                                                                 cfg, epoch, row)
            records["epochs"].append(row)
            metric = last_eval["acc"] if do_eval else (tr["acc"] if eval_loader is None else None)
            improved = metric is not None and metric > state["best_acc"]
            if improved:
                state.update(best_acc=metric, best_epoch=epoch)
            rngs = gather_rng_states(env)  # every rank's augmentation stream, for resume
            if main:
                for k, v in list(row.items())[1:]:  # all but "epoch"
                    vdl.add_scalar(f"epoch/{k}", v, epoch + 1)
                # One commit per epoch: these files become current together.
                files = checkpoint_files("best_model", model, optimizer,
                                         opt_name="best_optimizer.pdopt") if improved else {}
                states = _states(epoch, state, records, scheduler, scaler, rngs,
                                 arch_identity(cfg["Arch"]))
                states["ema"] = ema.state() if ema is not None else None
                states["run"] = run
                avg = ema.module if ema is not None else None
                if do_eval and ema_improved:
                    files.update(checkpoint_files("best_model_ema", avg))
                files.update(checkpoint_files("latest", model, optimizer, states, ema=avg))
                if g["save_interval"] and (epoch + 1) % g["save_interval"] == 0:
                    files.update(checkpoint_files(f"epoch_{epoch + 1}", model, optimizer, states, ema=avg))
                if epoch + 1 == g["epochs"]:
                    files.update(checkpoint_files("final_model", model, optimizer,
                                                  opt_name="final_optimizer.pdopt"))
                files["metrics.json"] = _metrics(records, state, cfg)
                commit(out_dir, files)
            summary = (f"epoch {epoch + 1}/{g['epochs']}  lr {row['lr']:.4g}  train loss "
                       f"{tr['loss']:.4f} acc {tr['acc']:.4f}  {tr['images_per_sec']:.0f} img/s")
            if do_eval:
                summary += f"  val loss {last_eval['loss']:.4f} acc {last_eval['acc']:.4f}"
                if ema is not None:
                    summary += f"  ema acc {row['val_acc_ema']:.4f}" + ("  (best ema)" if ema_improved else "")
            log.info(summary + ("  (best)" if improved else ""))
        if main:
            if start_epoch >= g["epochs"]:  # resumed after the last epoch: finish the run
                final = checkpoint_files("final_model", model, optimizer, opt_name="final_optimizer.pdopt")
                commit(out_dir, {**final, "metrics.json": _metrics(records, state, cfg)})
            if g["plot"]:
                _plot(records, out_dir)
            log.info("done: best val acc %.4f at epoch %d; outputs in %s", state["best_acc"],
                     state["best_epoch"] + 1, out_dir)
        return {"best_acc": state["best_acc"], "best_epoch": state["best_epoch"] + 1,
                "final": last_eval, "records": records, "output_dir": out_dir, "model": model}
    except (OSError, SystemError, WorkerError) as exc:
        if is_interrupt(exc):
            kind = Terminated if "Terminated" in str(exc) else KeyboardInterrupt
            raise _resumable(kind(), out_dir) from None
        dead = worker_failure(exc, [train_loader, eval_loader])
        if dead:  # not Paddle's SystemError/OSError traceback: what died, how to resume
            raise WorkerError(f"{dead}. Stopped: {_last_good(out_dir)}") from None
        raise
    except KeyboardInterrupt as exc:  # reliability (issue 20): the resume command
        raise _resumable(exc, out_dir)
    finally:
        vdl.close()
        lock.release()


def _resume_ema(ema: Optional[ModelEMA], ckpt: Dict[str, Any], log) -> None:
    """The checkpoint's EMA weights into ``ema``, exactly; one line when they do not meet."""
    if ema is None:
        if "ema" in ckpt:
            log.info("resume: %s.ema.pdparams is not used (this config has no EMA section)", ckpt["prefix"])
    elif "ema" in ckpt:
        ema.restore(ckpt["ema"], ckpt["states"].get("ema") or {})
    else:
        ema.module.set_state_dict(ema.source.state_dict())  # the copy was taken before resuming
        log.warning("WARNING resume: %s has no EMA weights (its run had no EMA section); the "
                    "EMA starts from the resumed weights", ckpt["prefix"])


def _evaluate_ema(ema: ModelEMA, loader, loss_fn, env, cfg, epoch: int, row) -> bool:
    """Evaluate the EMA weights into ``row`` (``val_*_ema``); True if their best so far.
    best_model follows the trained weights' accuracy, best_model_ema the EMA's (PaddleClas)."""
    amp = cfg["AMP"] if cfg["AMP"]["level"] == "O1" else None  # the copy is float32, not O2's
    res = evaluate(ema.module, loader, loss_fn, env, amp=amp)
    row.update(val_loss_ema=res["loss"], val_acc_ema=res["acc"], val_top5_ema=res["top5"])
    if res["acc"] > ema.best_acc:
        ema.best_acc, ema.best_epoch = res["acc"], epoch
        return True
    return False


def _metrics(records, state, cfg):
    return ({"arch": cfg["Arch"]["name"], "best_acc": state["best_acc"],
             "best_epoch": state["best_epoch"] + 1, **records}, save_json)


def _plot(records, out_dir: str) -> None:
    import matplotlib.pyplot as plt

    from ..plotting import plot_learning_curve
    for rec, title, ylabel in (("loss_record", "loss", "CE Loss"), ("acc_record", "acc", "Accuracy")):
        fig = plot_learning_curve(records[rec], title=title, ylabel=ylabel,
                                  save_path=os.path.join(out_dir, f"{title}.png"))
        plt.close(fig)  # only the files are wanted; in Jupyter it would show in the cell
