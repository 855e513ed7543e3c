"""Store adapters, shipped as ``uuid_forge.adapters``. Each module imports only its own driver.

This folder holds only concrete stores. The contract they implement (the ``Adapter`` base class,
capabilities, ``chunked``, scan items, declared options) lives in the core, :mod:`uuid_forge.contract`,
and the core never imports this folder: open a store with :func:`uuid_forge.open_store`, and the
registry imports its module on first use.
"""
