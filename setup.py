from setuptools import find_packages, setup

setup(
    name="orthonets-paddle",
    version="0.1.0",
    description="OrthoNets (orthogonal channel attention) and its relatives in PaddlePaddle",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["orthonets_paddle", "orthonets_paddle.*"]),
    python_requires=">=3.9",
    install_requires=["numpy", "PyYAML", "tqdm", "matplotlib", "pillow", "opencv-python-headless"],
    extras_require={
        "cpu": ["paddlepaddle==3.3.1"],
        "gpu": ["paddlepaddle-gpu==3.3.1"],
        "log": ["visualdl"],
        "onnx": ["paddle2onnx", "onnxruntime"],
        "torch": ["torch==2.13.0"],
        "det": ["pycocotools", "scikit-learn", "terminaltables"],  # + pip install --no-deps paddledet==2.6.0
        "test": ["pytest", "pytest-timeout", "visualdl", "paddle2onnx", "onnxruntime",
                 "torch==2.13.0", "nbclient", "nbformat", "ipykernel", "opencv-python-headless"],
    },
)
