"""Shared start-up of the tools: run from a checkout (the package need not be installed)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
