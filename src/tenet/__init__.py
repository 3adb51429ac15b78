"""tenet: network virtualization for multi-tenant IaaS clouds.

The package map and the direction of imports are drawn in DESIGN.md; the test
``tests/unit/test_layers.py`` enforces them.
"""

__version__ = "0.1.0"
