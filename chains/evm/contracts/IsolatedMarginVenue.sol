// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";

/// @title IsolatedMarginVenue
/// @notice The venue on the venue chain. One position = one market, one side, one size and its
/// own collateral entries, keyed by `positionKeyOf` (DESIGN §2.5), so collateral backing one
/// position can never reach another.
/// @dev Placeholder. Later changes add, in this order of storage: the attester set and consumed
/// lock ids (EIP-712 `LockAttestation` credits, DESIGN §2.4), per (srcChain, vault, asset)
/// credited totals for the accountant (§2.7), positions and their collateral entries, the
/// oracle address, and on-chain liquidation checks (E < MM at the oracle price, §3).
contract IsolatedMarginVenue is Ownable2Step {
    constructor(address initialOwner) Ownable(initialOwner) {}

    /// @notice The key a trader's collateral is locked for, known before any collateral moves.
    function positionKeyOf(address owner_, bytes32 salt) external view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), owner_, salt));
    }
}
