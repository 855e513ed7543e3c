"""Store adapters, shipped as ``uuid_forge.adapters``. Each module imports only its own driver.

Open one with :func:`uuid_forge.open_store`; the registry imports the module on first use.
"""
