"""Raw chain helpers the devnet tests share: one JSON-RPC call, a position key for a devnet
trader, the venue contract and a trader's USDC balance on evm-a."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from web3 import Web3

from chains.evm.artifacts import load_artifact
from shared.positions import position_key

__all__ = ["evm_balance", "key_for", "rpc", "venue"]


def rpc(url: str, method: str, *params: Any) -> Any:
    """One raw JSON-RPC call (anvil cheat codes, raw block tags)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    request = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


def key_for(devnet: dict[str, Any], trader: str, salt: bytes) -> str:
    venue_b = devnet["chains"]["evm-b"]
    owner = devnet["devnet"]["traders"][trader]["evm_address"]
    return position_key(venue_b["chain_id"], venue_b["contracts"]["venue"], owner,
                        salt.ljust(32, b"\0"))


def venue(devnet: dict[str, Any]) -> Any:
    b = devnet["chains"]["evm-b"]
    w3 = Web3(Web3.HTTPProvider(b["rpc_urls"][0]))
    return w3.eth.contract(address=b["contracts"]["venue"],
                           abi=load_artifact("IsolatedMarginVenue").abi)


def evm_balance(devnet: dict[str, Any], owner: str) -> int:
    a = devnet["chains"]["evm-a"]
    w3 = Web3(Web3.HTTPProvider(a["rpc_urls"][0]))
    token = w3.eth.contract(address=a["assets"]["USDC"]["address"],
                            abi=load_artifact("TestToken").abi)
    return int(token.functions.balanceOf(owner).call())
