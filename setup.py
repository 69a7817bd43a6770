from setuptools import find_packages, setup

# Core: what `import orthonets_paddle` and tools/train.py need, except Paddle itself.
# Paddle is an extra so that GPU users can install Paddle's CUDA build from Paddle's own
# wheel index first and then this package without pip pulling the CPU build over it.
CORE = [
    "numpy", "PyYAML", "tqdm", "matplotlib", "pillow", "opencv-python-headless", "filelock", "scipy",
    "visualdl",                    # training logs (Global.use_visualdl, on in every config)
    "filelock",                    # the run-folder lock
    "scipy",                       # confidence intervals of sweeps (scipy.stats)
]
ONNX = ["paddle2onnx", "onnxruntime"]  # export --onnx, infer/benchmark --backend onnx
NOTEBOOK = ["nbclient", "nbformat", "ipykernel", "jupyterlab"]  # the walkthrough notebook
TORCH = ["torch==2.13.0"]  # the PyTorch-checkpoint converter only
# + pip install --no-deps paddledet==2.6.0; ppdet imports pkg_resources (gone in setuptools 81)
DET = ["pycocotools", "scikit-learn", "terminaltables", "setuptools>=77.0.3,<81"]

setup(
    name="orthonets-paddle",
    version="0.1.0",
    description="OrthoNets (orthogonal channel attention) and its relatives in PaddlePaddle",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # configs/ is installed as orthonets_paddle/configs (one copy of each file, no link):
    # after `pip install`, `orthonets train -c orthonet18_fashionmnist` finds it there.
    packages=[*find_packages(include=["orthonets_paddle", "orthonets_paddle.*"]),
              "orthonets_paddle.configs"],
    package_dir={"orthonets_paddle.configs": "configs"},
    package_data={"orthonets_paddle.configs": ["*.yaml", "det/*.yml"]},
    entry_points={"console_scripts": ["orthonets = orthonets_paddle.commands:main"]},
    python_requires=">=3.9",
    install_requires=CORE,
    extras_require={
        # The CPU build from PyPI. GPU: see the README (Paddle's CUDA wheel index).
        "cpu": ["paddlepaddle==3.3.1"],
        "onnx": ONNX,
        "notebook": NOTEBOOK,
        "torch": TORCH,
        "det": DET,
        # the tests run the converter, the ONNX backend and the notebook
        "test": ["pytest", "pytest-timeout", *TORCH, *ONNX, *NOTEBOOK],
        "all": ["paddlepaddle==3.3.1", *ONNX, *NOTEBOOK, *TORCH, *DET],
    },
)
