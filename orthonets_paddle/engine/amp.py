"""Mixed precision the Paddle / PaddleClas way: ``paddle.amp.decorate``, ``auto_cast`` and
``GradScaler`` with the ``AMP`` section's keys (use_amp, level, scale_loss,
use_dynamic_loss_scaling, use_fp16_test, use_promote)."""
from __future__ import annotations

import contextlib
from typing import Any, Dict, List, Optional

import paddle

__all__ = ["fp32_layers", "decorate", "autocast", "build_scaler", "fp16_eval", "float32_state"]

# PaddleClas keeps these two ops out of float16 in train and eval.
_BLACK = {"flatten_contiguous_range", "greater_than"}


def fp32_layers(model: paddle.nn.Layer) -> List[paddle.nn.Layer]:
    """Layers holding float32 buffers (the attention filter banks; BatchNorm stays float32
    anyway): O2 would cast them to float16 and round the banks; ``decorate`` excludes them."""
    return [layer for layer in model.sublayers(include_self=True)
            if any(b.dtype == paddle.float32 for b in layer.buffers(include_sublayers=False))]


def decorate(model: paddle.nn.Layer, optimizer, amp: Dict[str, Any]):
    """``paddle.amp.decorate`` for the configured level: O2 casts parameters to float16
    with float32 master weights; the banks' layers stay float32; state_dict is float32."""
    return paddle.amp.decorate(models=model, optimizers=optimizer, level=amp["level"],
                               master_weight=True if amp["level"] == "O2" else None,
                               save_dtype="float32", excluded_layers=fp32_layers(model) or None)


def fp16_eval(amp: Optional[Dict[str, Any]]) -> bool:
    """Evaluate under auto_cast: ``use_fp16_test``, and always with O2 (its parameters are
    float16; PaddleClas forces it there too)."""
    return bool(amp and amp["use_amp"] and (amp["use_fp16_test"] or amp["level"] == "O2"))


def autocast(amp: Optional[Dict[str, Any]], enable: bool = True):
    """``paddle.amp.auto_cast`` as PaddleClas opens it, or a no-op."""
    if not (enable and amp and amp["use_amp"]):
        return contextlib.nullcontext()
    return paddle.amp.auto_cast(level=amp["level"], use_promote=amp["use_promote"],
                                custom_black_list=_BLACK)


def build_scaler(amp: Dict[str, Any]) -> Optional[paddle.amp.GradScaler]:
    if not amp["use_amp"]:
        return None
    return paddle.amp.GradScaler(init_loss_scaling=amp["scale_loss"],
                                 use_dynamic_loss_scaling=amp["use_dynamic_loss_scaling"])


def float32_state(state: Dict[str, Any]) -> Dict[str, Any]:
    """A state dict with float16/bfloat16 tensors as float32 (weights files are always
    float32, whatever the model was cast to)."""
    low = (paddle.float16, paddle.bfloat16)
    return {k: (v.astype("float32") if isinstance(v, paddle.Tensor) and v.dtype in low else v)
            for k, v in state.items()}
