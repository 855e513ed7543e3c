"""Test helpers shipped with the package, so third-party adapters run the same contract suite.

Usage in a test module::

    from uuid_forge.testing import AdapterContract

    class TestMyStore(AdapterContract):
        @pytest.fixture
        def store(self):
            with open_store("mystore://...") as s:
                yield s

        def assert_stored_natively(self, store, record):
            ...  # read record.id back with the raw driver and check its type/encoding
"""

from .contract import INJECTION_STRINGS, AdapterContract, sample_records

__all__ = ["INJECTION_STRINGS", "AdapterContract", "sample_records"]
