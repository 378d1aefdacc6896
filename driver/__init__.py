from driver import allocators

allocators.configure()  # before deltalake loads (see driver/allocators.py)
