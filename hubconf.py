"""paddle.hub entry points: every registered model of orthonets_paddle, by its name.

    import paddle
    paddle.hub.list("path/to/orthonets-paddle", source="local")
    model = paddle.hub.load("path/to/orthonets-paddle", "orthonet50", source="local",
                            num_classes=10, pretrained=False)
    # online: paddle.hub.load("<owner>/orthonets-paddle:main", "orthonet50", source="github")

Each entry is the model's registered function (``pretrained=False, **kwargs``: the
``build_model`` options, timm's included), so ``paddle.hub.help`` shows its docstring.
Only the model functions are public here: ``paddle.hub.list`` lists every public callable.
"""
import importlib.util as _util

# paddle.hub.load checks `dependencies` only after importing this file, and a failed import
# reaches the user as its generic "make sure config exists" error: so check them first, here.
dependencies = ["paddle", "numpy"]  # what the models need (their other imports are stdlib)
_missing = [_name for _name in dependencies if _util.find_spec(_name) is None]
if _missing:
    _pip = {"paddle": "paddlepaddle"}  # import name -> PyPI name where they differ
    raise RuntimeError(f"orthonets-paddle hubconf: missing {', '.join(_missing)}; install "
                       f"first: pip install {' '.join(_pip.get(n, n) for n in _missing)}")

import orthonets_paddle.models as _models  # noqa: E402  (paddle.hub puts this folder first on sys.path)

# One name per registered model (the registry is the list; nothing to keep in sync).
globals().update({_name: _models.registry.MODEL_ENTRYPOINTS[_name]
                  for _name in _models.list_models()})
