"""orthonets-paddle: OrthoNets (orthogonal channel attention) in PaddlePaddle."""
import warnings as _warnings

from .utils import threads as _threads  # noqa: F401  (first: reads OMP_NUM_THREADS before paddle sets it)

# Two notices of Paddle's that no user of this package can act on: its import warns that
# ccache (for compiling C++ extensions) is missing, and BatchNorm warns on every training
# forward that it tracks global statistics (which it always did).
_warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)
_warnings.filterwarnings("ignore", message="When training, we now always track global mean",
                         category=UserWarning)

__version__ = "0.1.0"


def __getattr__(name: str):
    """ChannelAttention, create_attention and the models' names (build_model, orthonet18, ...),
    imported on first use: ``orthonets -h`` and ``import orthonets_paddle.utils`` stay free of
    Paddle's import."""
    if name == "__all__" or not name.startswith("__"):
        import importlib

        layers = importlib.import_module(".layers", __name__)  # not `from .`: it calls back here
        models = importlib.import_module(".models", __name__)
        names = {"ChannelAttention": layers.ChannelAttention,
                 "create_attention": layers.create_attention,
                 **{n: getattr(models, n) for n in models.__all__}}
        globals().update(names, __all__=list(names))
        if name in globals():
            return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
