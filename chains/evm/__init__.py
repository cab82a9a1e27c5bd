"""EVM chains: contracts and their artifacts, the codec (pure), the adapter and the locker (I/O)."""
