// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title LookalikeVault
/// @notice Hostile fixture (reliability case RPL-04): emits an event with exactly the
/// `CollateralVault.Locked` signature without taking custody of anything. It is never registered
/// as a vault; watchers must ignore it because they filter logs by vault address, not by topic.
contract LookalikeVault {
    uint256 public lastNonce;

    event Locked(
        uint256 indexed nonce,
        address indexed owner,
        address indexed asset,
        uint256 amount,
        bytes32 positionKey,
        uint64 dstChainId,
        address dstVenue,
        address beneficiary
    );

    function lock(
        address asset,
        uint256 amount,
        bytes32 positionKey,
        uint64 dstChainId,
        address dstVenue,
        address beneficiary
    ) external returns (uint256 nonce) {
        nonce = ++lastNonce;
        emit Locked(nonce, msg.sender, asset, amount, positionKey, dstChainId, dstVenue, beneficiary);
    }
}
