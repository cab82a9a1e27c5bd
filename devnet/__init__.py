"""The embedded local default: anvil chains, the local Solana RPC, Redis, deploy + manifest."""
