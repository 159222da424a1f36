import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))


def pytest_report_header(config):
    import lossext

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return f"torch {torch.__version__}; lossext CPU kernels: {lossext.cpu_isa()}; CUDA device: {cuda}"
