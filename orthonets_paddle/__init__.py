"""orthonets-paddle: OrthoNets (orthogonal channel attention) in PaddlePaddle."""
import warnings as _warnings

from .utils import threads as _threads  # noqa: F401  (first: reads OMP_NUM_THREADS before paddle sets it)

# Two notices of Paddle's that no user of this package can act on: its import warns that
# ccache (for compiling C++ extensions) is missing, and BatchNorm warns on every training
# forward that it tracks global statistics (which it always did).
_warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)
_warnings.filterwarnings("ignore", message="When training, we now always track global mean",
                         category=UserWarning)

from .layers import ChannelAttention, create_attention  # noqa: E402
from .models import *  # noqa: E402,F401,F403  (the registered model functions, build_model, ...)
from .models import __all__ as _models_all  # noqa: E402

__version__ = "0.1.0"
__all__ = ["ChannelAttention", "create_attention", *_models_all]
